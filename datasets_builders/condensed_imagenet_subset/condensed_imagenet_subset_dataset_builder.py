"""condensed_imagenet_subset: ImageNet-10 / -100 condensed by tfcondense (see README.md)."""
from __future__ import annotations

from datasets_builders import _condensed

SOURCE = _condensed.register_source(_condensed.SourceSpec.from_info(
    "imagenet_subset",
    # Classes are the first nclass wnids of the user's class list: one config per
    # count, label names from each artifact's meta.json.
    nclasses=(10, 100), idc_factor=3, homepage="https://www.image-net.org/"))


class Builder(_condensed.CondensedBuilder):
  """condensed_imagenet_subset: one config per method and images per class."""

  SOURCE = SOURCE
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE)
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10_nclass10"
