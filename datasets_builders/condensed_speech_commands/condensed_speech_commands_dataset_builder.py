"""condensed_speech_commands: 8-word Speech Commands condensed by tfcondense (README.md)."""
from __future__ import annotations

from datasets_builders import _condensed

SOURCE = _condensed.register_source(_condensed.SourceSpec(
    name="speech_commands", title="Speech Commands (8 words)", image_shape=(64, 64, 1),
    # Not a tfcondense source yet: the 8 words of IDC's mini Speech Commands.
    class_names=("down", "go", "left", "no", "right", "stop", "up", "yes"),
    formation="time", registered_source=False,
    homepage="https://www.tensorflow.org/datasets/catalog/speech_commands"))


class Builder(_condensed.CondensedBuilder):
  """condensed_speech_commands: one config per method and images per class."""

  SOURCE = SOURCE
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE)
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10"
