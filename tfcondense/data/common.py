"""Small helpers shared by the data sources."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from tfcondense.errors import InvalidConfigError


def check_limit(limit_per_class: Optional[int]) -> None:
  """Raises InvalidConfigError unless `limit_per_class` is None or a positive int."""
  if limit_per_class is None:
    return
  if isinstance(limit_per_class, bool) or not isinstance(limit_per_class, (int, np.integer)) \
      or limit_per_class < 1:
    raise InvalidConfigError(
        f"limit_per_class must be None or a positive integer, got {limit_per_class!r}")


def first_per_class(labels: np.ndarray, limit: Optional[int]) -> np.ndarray:
  """Indices, in their original order, of the first `limit` examples of each class.

  Args:
    labels: integer labels [N].
    limit: how many to keep per class; None keeps everything.

  Returns:
    int64 indices into `labels`, sorted.
  """
  labels = np.asarray(labels)
  if limit is None:
    return np.arange(len(labels))
  order = np.argsort(labels, kind="stable")
  ordered = labels[order]
  rank = np.arange(len(labels)) - np.searchsorted(ordered, ordered, side="left")
  return np.sort(order[rank < limit])


def to_unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 images -> float32 in [0, 1]."""
  return np.multiply(images, np.float32(1.0 / 255.0), dtype=np.float32)


def resolve_dir(value: Optional[str | os.PathLike], env_var: str,
                default: Optional[str] = None) -> Optional[str]:
  """The directory option, else the environment variable, else `default`."""
  if value is None:
    value = os.environ.get(env_var) or default
  if value is None:
    return None
  return os.path.expanduser(os.fspath(value))


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and std of NHWC float images."""
  mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
  std = images.std(axis=(0, 1, 2), dtype=np.float64)
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def prepare_command(name: str) -> str:
  """A shell command that downloads and prepares the TFDS dataset `name` (for messages).

  Not `tfds build`: the tfds CLI of tensorflow-datasets 4.9 does not start without
  apache-beam and mlcroissant (tensorflow/datasets#5463).
  """
  return (f"python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', "
          "data_dir='<dir>').download_and_prepare()\"")
