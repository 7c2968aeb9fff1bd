"""condensed_cifar10: CIFAR-10 condensed by tfcondense (see README.md)."""
from __future__ import annotations

from datasets_builders import _condensed
from tfcondense.data.tfds_sources import CIFAR10_NAMES

SOURCE = _condensed.register_source(_condensed.SourceSpec.from_info(
    "cifar10", class_names=CIFAR10_NAMES, homepage="https://www.cs.toronto.edu/~kriz/cifar.html"))


class Builder(_condensed.CondensedBuilder):
  """condensed_cifar10: one config per method and images per class."""

  SOURCE = SOURCE
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE)
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10"
