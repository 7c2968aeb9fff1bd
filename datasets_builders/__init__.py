"""TFDS builders of condensed datasets: `tfds.load("condensed_fashion_mnist/idc_ipc10")`.

Importing this package registers one builder per source (condensed_fashion_mnist,
condensed_cifar10, condensed_cifar100, condensed_tiny_imagenet,
condensed_imagenet_subset, condensed_speech_commands), each with the configs
`<method>_ipc<1|10|50>` (`..._nclass<10|100>` for imagenet_subset). It imports
TensorFlow and tensorflow-datasets. See datasets_builders/_condensed.py for where the
data come from, and `tfcondense.export` for `to_tfds` and `load`.
"""
from __future__ import annotations

from datasets_builders import _condensed
from datasets_builders.condensed_cifar10 import condensed_cifar10_dataset_builder
from datasets_builders.condensed_cifar100 import condensed_cifar100_dataset_builder
from datasets_builders.condensed_fashion_mnist import condensed_fashion_mnist_dataset_builder
from datasets_builders.condensed_imagenet_subset import condensed_imagenet_subset_dataset_builder
from datasets_builders.condensed_speech_commands import condensed_speech_commands_dataset_builder
from datasets_builders.condensed_tiny_imagenet import condensed_tiny_imagenet_dataset_builder

SOURCES = _condensed.SOURCES
ArtifactNotFoundError = _condensed.ArtifactNotFoundError
ArtifactMismatchError = _condensed.ArtifactMismatchError

__all__ = ["SOURCES", "ArtifactNotFoundError", "ArtifactMismatchError",
           "condensed_cifar10_dataset_builder", "condensed_cifar100_dataset_builder",
           "condensed_fashion_mnist_dataset_builder",
           "condensed_imagenet_subset_dataset_builder",
           "condensed_speech_commands_dataset_builder",
           "condensed_tiny_imagenet_dataset_builder"]
