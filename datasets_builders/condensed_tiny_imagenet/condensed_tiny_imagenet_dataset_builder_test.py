"""condensed_tiny_imagenet on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from tensorflow_datasets import testing

from datasets_builders.condensed_tiny_imagenet import condensed_tiny_imagenet_dataset_builder


class CondensedTinyImagenetTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_tiny_imagenet_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["random_ipc1"]
  # 200 classes x 1 random image; a selection is trained on as stored.
  SPLITS = {"train": 200, "stored": 200}
  OVERLAPPING_SPLITS = ["stored"]  # factor 1: the formed images are the stored ones


if __name__ == "__main__":
  testing.test_main()
