"""condensed_speech_commands: 8-word Speech Commands condensed by tfcondense (README.md)."""
from __future__ import annotations

from datasets_builders import _condensed
from tfcondense.data.speech import CLASS_NAMES

SOURCE = _condensed.register_source(_condensed.SourceSpec.from_info(
    "speech_commands", class_names=CLASS_NAMES,  # the 8 words of IDC's Mini Speech Commands
    formation="time",
    homepage="https://www.tensorflow.org/datasets/catalog/speech_commands"))


class Builder(_condensed.CondensedBuilder):
  """condensed_speech_commands: one config per method and images per class."""

  SOURCE = SOURCE
  # IDC reports speech at 10 and 20 stored spectrograms per class (Table 4).
  BUILDER_CONFIGS = _condensed.make_configs(SOURCE, ipcs=(1, 10, 20, 50))
  DEFAULT_BUILDER_CONFIG_NAME = "idc_ipc10"
