"""condensed_cifar100 dataset."""
