"""condensed_cifar10 dataset."""
