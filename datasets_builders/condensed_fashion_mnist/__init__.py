"""condensed_fashion_mnist dataset."""
