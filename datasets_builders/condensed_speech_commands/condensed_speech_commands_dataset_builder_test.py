"""condensed_speech_commands on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from tensorflow_datasets import testing

from datasets_builders.condensed_speech_commands import condensed_speech_commands_dataset_builder


class CondensedSpeechCommandsTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_speech_commands_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["idc_ipc1"]
  # 8 words x 1 stored spectrogram; the time formation (factor 2) forms 2 from each.
  SPLITS = {"train": 16, "stored": 8}


if __name__ == "__main__":
  testing.test_main()
