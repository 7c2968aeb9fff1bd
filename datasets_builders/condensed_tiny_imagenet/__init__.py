"""condensed_tiny_imagenet dataset."""
