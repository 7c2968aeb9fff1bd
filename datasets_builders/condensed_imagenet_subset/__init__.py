"""condensed_imagenet_subset dataset."""
