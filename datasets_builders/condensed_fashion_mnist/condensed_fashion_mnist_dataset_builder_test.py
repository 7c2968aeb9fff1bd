"""condensed_fashion_mnist on its dummy_data/ (written by scripts/make_dummy_data.py)."""
from __future__ import annotations

from unittest import mock

from tensorflow_datasets import testing

from datasets_builders.condensed_fashion_mnist import condensed_fashion_mnist_dataset_builder


class CondensedFashionMnistTest(testing.DatasetBuilderTestCase):
  DATASET_CLASS = condensed_fashion_mnist_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["idc_ipc1"]
  # 10 classes x 1 stored image; IDC's uniform formation (factor 2) forms 4 from each.
  SPLITS = {"train": 40, "stored": 10}

  def setUp(self):
    super().setUp()
    # Test the manual dir (dummy_data/) even once artifacts/ ships this config.
    patcher = mock.patch.object(self.DATASET_CLASS, "PREBUILT_ARTIFACTS", False)
    patcher.start()
    self.patchers.append(patcher)


if __name__ == "__main__":
  testing.test_main()
