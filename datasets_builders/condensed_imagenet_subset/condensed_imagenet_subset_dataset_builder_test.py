"""condensed_imagenet_subset on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from tensorflow_datasets import testing

from datasets_builders.condensed_imagenet_subset import condensed_imagenet_subset_dataset_builder


class CondensedImagenetSubsetTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_imagenet_subset_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["random_ipc1_nclass10"]
  # ImageNet-10: 10 classes x 1 random image, trained on as stored.
  SPLITS = {"train": 10, "stored": 10}
  OVERLAPPING_SPLITS = ["stored"]  # factor 1: the formed images are the stored ones


if __name__ == "__main__":
  testing.test_main()
