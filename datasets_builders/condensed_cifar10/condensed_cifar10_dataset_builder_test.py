"""condensed_cifar10 on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from tensorflow_datasets import testing

from datasets_builders.condensed_cifar10 import condensed_cifar10_dataset_builder


class CondensedCifar10Test(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_cifar10_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["dm_mf_ipc1"]
  # 10 classes x 1 stored image; DM+MF's uniform formation (factor 2) forms 4 from each.
  SPLITS = {"train": 40, "stored": 10}


if __name__ == "__main__":
  testing.test_main()
