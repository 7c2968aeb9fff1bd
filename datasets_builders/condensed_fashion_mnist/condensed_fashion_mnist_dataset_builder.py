"""condensed_fashion_mnist: Fashion-MNIST condensed by tfcondense (see README.md)."""
from __future__ import annotations

from datasets_builders import _condensed
from tfcondense.data.fashion_mnist import CLASS_NAMES

SOURCE = _condensed.register_source(_condensed.SourceSpec.from_info(
    "fashion_mnist", class_names=CLASS_NAMES, homepage="https://github.com/zalandoresearch/fashion-mnist"))


class Builder(_condensed.CondensedBuilder):
  """condensed_fashion_mnist: one config per method and images per class."""

  SOURCE = SOURCE
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE)
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10"
