"""condensed_cifar100 on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from tensorflow_datasets import testing

from datasets_builders.condensed_cifar100 import condensed_cifar100_dataset_builder


class CondensedCifar100Test(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_cifar100_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["kcenter_ipc1"]
  # 100 classes x 1 selected image; a selection is trained on as stored.
  SPLITS = {"train": 100, "stored": 100}
  OVERLAPPING_SPLITS = ["stored"]  # factor 1: the formed images are the stored ones


if __name__ == "__main__":
  testing.test_main()
