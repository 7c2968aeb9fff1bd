"""condensed_tiny_imagenet: Tiny ImageNet condensed by tfcondense (see README.md)."""
from __future__ import annotations

from datasets_builders import _condensed

SOURCE = _condensed.register_source(_condensed.SourceSpec.from_info(
    "tiny_imagenet",
    # The source names its 200 classes from the dataset's own wnids.txt / words.txt, so
    # the label names come from each artifact's meta.json.
    num_classes=200, homepage="https://www.kaggle.com/c/tiny-imagenet"))


class Builder(_condensed.CondensedBuilder):
  """condensed_tiny_imagenet: one config per method and images per class."""

  SOURCE = SOURCE
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE)
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10"
