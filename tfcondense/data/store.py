"""The class-indexed in-memory store every data source returns."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional, Sequence, Tuple

import numpy as np

from tfcondense.errors import InvalidConfigError


@dataclasses.dataclass(frozen=True, eq=False)
class SourceData:
  """A labelled image dataset held in memory, indexed by class.

  Images are float32 NHWC in [0, 1] (unnormalised); normalisation statistics are
  kept beside them and applied by the consumer (evaluator, condensation loop).

  Attributes:
    name: registry name of the source, e.g. "fashion_mnist".
    train_images: float32 [N, H, W, C] in [0, 1].
    train_labels: int32 [N] in [0, num_classes).
    test_images: float32 [M, H, W, C] in [0, 1].
    test_labels: int32 [M].
    class_names: one name per class.
    mean: per-channel mean used for normalisation (length C).
    std: per-channel std used for normalisation (length C).
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: Tuple[str, ...]
  mean: Tuple[float, ...]
  std: Tuple[float, ...]

  def __post_init__(self):
    for split, x, y in (("train", self.train_images, self.train_labels),
                        ("test", self.test_images, self.test_labels)):
      if x.ndim != 4:
        raise InvalidConfigError(f"{self.name} {split} images must be NHWC, got shape {x.shape}")
      if len(x) != len(y):
        raise InvalidConfigError(f"{self.name} {split}: {len(x)} images but {len(y)} labels")
    if len(self.mean) != self.image_shape[-1] or len(self.std) != self.image_shape[-1]:
      raise InvalidConfigError(f"{self.name}: mean/std need one value per channel")
    # Per-class index lists, computed once (the store is immutable).
    order = np.argsort(self.train_labels, kind="stable")
    counts = np.bincount(self.train_labels, minlength=self.num_classes)
    object.__setattr__(self, "_class_indices",
                       tuple(np.split(order, np.cumsum(counts)[:-1])))

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    return tuple(int(d) for d in self.train_images.shape[1:])

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def fingerprint(self) -> dict:
    """What identifies the training data: the image count and a SHA-1 of the training
    images and labels (about 0.2 s for Fashion-MNIST's 60,000). Two loads of the same
    files (wherever they lie) agree; another `limit_per_class`, data folder or
    version of the data does not. Computed once per store."""
    cached = self.__dict__.get("_fingerprint")
    if cached is None:
      digest = hashlib.sha1()
      for array in (self.train_images, self.train_labels):
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(np.ascontiguousarray(array).data)
      cached = dict(name=self.name, train_images=int(len(self.train_labels)),
                    sha1=digest.hexdigest())
      object.__setattr__(self, "_fingerprint", cached)
    return dict(cached)

  def class_indices(self, c: int) -> np.ndarray:
    """Indices into `train_images` of the examples of class `c` (sorted)."""
    return self._class_indices[c]

  def class_counts(self) -> np.ndarray:
    return np.array([len(i) for i in self._class_indices])

  def images_of_class(self, c: int) -> np.ndarray:
    return self.train_images[self.class_indices(c)]

  def check_ipc(self, ipc: int) -> None:
    """Raises InvalidConfigError unless every class has at least `ipc` images."""
    if ipc < 1:
      raise InvalidConfigError(f"IPC must be at least 1, got {ipc}")
    counts = self.class_counts()
    c = int(np.argmin(counts))
    if ipc > counts[c]:
      raise InvalidConfigError(
          f"IPC {ipc} exceeds the {counts[c]} images of class {c} "
          f"({self.class_names[c]!r}) in {self.name}; use ipc <= {counts[c]}.")

  def sample_class(self, c: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` distinct random images of class `c` (with replacement only if the class is smaller)."""
    idx = self.class_indices(c)
    pick = rng.choice(len(idx), size=n, replace=n > len(idx))
    return self.train_images[idx[pick]]

  def normalize(self, x):
    """(x - mean) / std per channel; works on numpy arrays and tensors."""
    return (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

  def subset(self, classes: Sequence[int], name: Optional[str] = None) -> "SourceData":
    """The store restricted to `classes`, relabelled 0..len(classes)-1 in that order."""
    classes = [int(c) for c in classes]
    remap = np.full(self.num_classes, -1, np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    tr = np.isin(self.train_labels, classes)
    te = np.isin(self.test_labels, classes)
    return SourceData(
        name=name or self.name, train_images=self.train_images[tr],
        train_labels=remap[self.train_labels[tr]], test_images=self.test_images[te],
        test_labels=remap[self.test_labels[te]],
        class_names=tuple(self.class_names[c] for c in classes),
        mean=self.mean, std=self.std)
