"""Fashion-MNIST from its four IDX files (Debian package `dataset-fashion-mnist`)."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from tfcondense.data import idx
from tfcondense.data.common import check_limit, first_per_class, resolve_dir, to_unit_float
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import SourceUnavailableError

ENV_VAR = "TFCONDENSE_FASHION_MNIST_DIR"
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist/"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
MEAN = (0.2861,)
STD = (0.3530,)
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


register_info(SourceInfo("fashion_mnist", "Fashion-MNIST", (28, 28, 1), 10, MEAN, STD))


@SOURCES.register("fashion_mnist")
def fashion_mnist(*, path: Optional[str] = None,
                  limit_per_class: Optional[int] = None) -> SourceData:
  """Fashion-MNIST: 60000 train / 10000 test, 28x28x1, 10 classes.

  Args:
    path: directory holding `train-images-idx3-ubyte.gz`, `train-labels-idx1-ubyte.gz`,
      `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz` (un-gzipped names are
      accepted too). Defaults to $TFCONDENSE_FASHION_MNIST_DIR, else
      /usr/share/datasets/fashion-mnist/ (`apt-get install dataset-fashion-mnist`).
    limit_per_class: keep only the first N train images of each class.

  Returns:
    The SourceData, normalised with mean 0.2861 / std 0.3530.

  Raises:
    SourceUnavailableError: the directory or a file is missing, or a file is corrupt.
  """
  check_limit(limit_per_class)
  root = resolve_dir(path, ENV_VAR, DEFAULT_DIR)
  paths = {key: _find(root, stem) for key, stem in FILES.items()}
  missing = [FILES[k] + ".gz" for k, p in paths.items() if p is None]
  if missing:
    where = "is not a directory" if not os.path.isdir(root) else "lacks " + ", ".join(missing)
    raise SourceUnavailableError(
        f"Fashion-MNIST not found: {root} {where}. Install the Debian package "
        f"(`apt-get install dataset-fashion-mnist`, files go to {DEFAULT_DIR}), or put the "
        "four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a directory and pass "
        f"path=... or set {ENV_VAR}.")
  splits = {}
  for split in ("train", "test"):
    x = idx.read_idx(paths[f"{split}_images"], idx.IMAGES_MAGIC)
    y = idx.read_idx(paths[f"{split}_labels"], idx.LABELS_MAGIC)
    _check(x, y, paths[f"{split}_images"], paths[f"{split}_labels"])
    splits[split] = (x, y.astype(np.int32))
  x, y = splits["train"]
  keep = first_per_class(y, limit_per_class)
  if limit_per_class is not None:
    x, y = x[keep], y[keep]
  tx, ty = splits["test"]
  return SourceData(
      name="fashion_mnist", train_images=to_unit_float(x)[..., None], train_labels=y,
      test_images=to_unit_float(tx)[..., None], test_labels=ty,
      class_names=CLASS_NAMES, mean=MEAN, std=STD)


def _find(root: str, stem: str) -> Optional[str]:
  for name in (stem + ".gz", stem):
    p = os.path.join(root, name)
    if os.path.isfile(p):
      return p
  return None


def _check(x: np.ndarray, y: np.ndarray, x_path: str, y_path: str) -> None:
  if x.shape[1:] != (28, 28):
    raise SourceUnavailableError(f"{x_path}: images are {x.shape[1:]}, expected 28x28")
  if len(x) != len(y):
    raise SourceUnavailableError(
        f"{x_path} has {len(x)} images but {y_path} has {len(y)} labels; the files do not "
        "belong together.")
  if len(y) and y.max() >= len(CLASS_NAMES):
    raise SourceUnavailableError(f"{y_path}: label {int(y.max())} is out of range 0..9")
