"""scikit-learn's 8x8 handwritten digits, with a fixed stratified train/test split."""
from __future__ import annotations

from typing import Optional

import numpy as np

from tfcondense.data.common import channel_stats, check_limit, first_per_class
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError

TEST_FRACTION = 0.2
SPLIT_SEED = 0


# Mean / std are the train split's (they depend on `size`); digits do not flip.
register_info(SourceInfo("digits", "scikit-learn digits", (16, 16, 1), 10, flip_safe=False))


@SOURCES.register("digits")
def digits(*, size: int = 16, limit_per_class: Optional[int] = None) -> SourceData:
  """The 1797 UCI digits bundled with scikit-learn (no download needed).

  There is no official split: 20% of each class goes to test, chosen by
  `sklearn.model_selection.train_test_split(stratify=labels, random_state=0)`, so the
  split is the same on every machine. Mean/std are computed on the train split (after
  resizing).

  Args:
    size: output side in pixels. The native images are 8x8; the default 16 upsamples
      (bilinear) so that a depth-3 ConvNet with 2x2 pooling sees 16->8->4->2 rather than
      a degenerate 1x1 map (instance norm on 2x2 maps). Pass size=8 for the raw data.
    limit_per_class: keep only the first N train images of each class.

  Returns:
    The SourceData: [N, size, size, 1] float32 in [0, 1], classes "0".."9".
  """
  check_limit(limit_per_class)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise InvalidConfigError(f"digits size must be a positive integer, got {size!r}")
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top

  bunch = load_digits()
  images = (bunch.images.astype(np.float32) / 16.0)[..., None]
  labels = bunch.target.astype(np.int32)
  x, tx, y, ty = train_test_split(images, labels, test_size=TEST_FRACTION,
                                  stratify=labels, random_state=SPLIT_SEED)
  if limit_per_class is not None:
    keep = first_per_class(y, limit_per_class)
    x, y = x[keep], y[keep]
  if size != 8:
    x, tx = _resize(x, size), _resize(tx, size)
  mean, std = channel_stats(x)
  return SourceData(
      name="digits", train_images=x, train_labels=y, test_images=tx, test_labels=ty,
      class_names=tuple(str(i) for i in range(10)), mean=mean, std=std)


def _resize(images: np.ndarray, size: int) -> np.ndarray:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = tf.image.resize(images, (size, size), method="bilinear").numpy()
  return np.clip(out, 0.0, 1.0).astype(np.float32)
