"""What arrives at each step: class orders and groups, and task sequences.

Class-incremental (IDC, Kim et al., ICML 2022, Sec. 5.4 and Fig. 7; setting of Zhao &
Bilen, "Dataset Condensation with Distribution Matching", WACV 2023): the classes of
one source arrive in `steps` equal groups in a fixed seeded order.

Task-incremental (DC, Zhao et al., ICLR 2021, Sec. 4: SVHN -> MNIST -> USPS): a
sequence of datasets, each a task with its own classes. Images of different shapes
are brought to one (H, W, C) by `harmonize` (bilinear resize; 1 -> C channels by
repetition, RGB -> 1 by luminance).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError

#: The task sequence of DC's task-incremental experiment. `usps` is not a registered
#: source here: pass a SourceData for it (see `task_sequence`).
DIGIT_TASKS = ("svhn_cropped", "mnist", "usps")


# ----------------------------------------------------------------- class orders
def make_class_order(num_classes: int, seed: int = 0) -> Tuple[int, ...]:
  """A fixed seeded class order: `numpy.random.default_rng(seed).permutation`."""
  if int(num_classes) < 1:
    raise InvalidConfigError(f"num_classes must be positive, got {num_classes}")
  return tuple(int(c) for c in np.random.default_rng(int(seed)).permutation(int(num_classes)))


def split_classes(order: Sequence[int], steps: int,
                  num_classes: Optional[int] = None) -> Tuple[Tuple[int, ...], ...]:
  """Splits a class order into `steps` consecutive equal groups.

  Args:
    order: every class id exactly once.
    steps: number of groups; must divide the number of classes.
    num_classes: if given, `order` must be a permutation of range(num_classes).

  Raises:
    InvalidConfigError: steps does not divide the classes, or a bad order.
  """
  order = tuple(int(c) for c in order)
  n = len(order)
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise InvalidConfigError(f"steps must be a positive integer, got {steps!r}")
  steps = int(steps)
  if len(set(order)) != n:
    raise InvalidConfigError(f"the class order repeats a class: {list(order)}")
  if num_classes is not None and sorted(order) != list(range(int(num_classes))):
    raise InvalidConfigError(
        f"the class order must list each of the {num_classes} classes once, got "
        f"{list(order)}")
  if n % steps:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    raise InvalidConfigError(
        f"{steps} steps do not divide the {n} classes into equal groups; use one of "
        f"{divisors} steps")
  k = n // steps
  return tuple(order[i * k:(i + 1) * k] for i in range(steps))


def split_source(source: SourceData, steps: int, order_seed: int = 0,
                 order: Optional[Sequence[int]] = None) -> List[SourceData]:
  """`source` as `steps` tasks of disjoint classes (each relabelled 0..k-1).

  Task names are `<source>` (so source-specific defaults, e.g. IDC's, still apply).
  """
  order = (tuple(order) if order is not None
           else make_class_order(source.num_classes, order_seed))
  return [source.subset(g) for g in split_classes(order, steps, source.num_classes)]


# ------------------------------------------------------------- task sequences
def _convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
  c = x.shape[-1]
  if c == channels:
    return x
  if c == 1:
    return np.repeat(x, channels, axis=-1)
  if c == 3 and channels == 1:
    return np.tensordot(x, _LUMA, axes=([-1], [0]))[..., None].astype(np.float32)
  raise InvalidConfigError(f"cannot convert {c}-channel images to {channels} channels; "
                           "only 1 -> C (repeat) and 3 -> 1 (luminance) are supported")


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, tf.image.rgb_to_grayscale


def _convert_stats(values: Sequence[float], channels: int) -> Tuple[float, ...]:
  v = np.asarray(values, np.float64)
  if len(v) == channels:
    return tuple(float(a) for a in v)
  if len(v) == 1:
    return tuple(float(v[0]) for _ in range(channels))
  return (float(v @ _LUMA),)


def convert_images(images: np.ndarray, shape: Sequence[int], batch: int = 4096) -> np.ndarray:
  """float32 [N, H, W, C] in [0, 1] brought to `shape` (bilinear resize, channels)."""
  h, w, c = (int(d) for d in shape)
  images = np.asarray(images, np.float32)
  if images.shape[1:3] != (h, w):
    images = np.concatenate([
        tf.image.resize(images[i:i + batch], (h, w), method="bilinear",
                        antialias=True).numpy()
        for i in range(0, len(images), batch)]) if len(images) else \
        np.zeros((0, h, w, images.shape[-1]), np.float32)
  return np.clip(_convert_channels(images, c), 0.0, 1.0).astype(np.float32)


def harmonize(sources: Sequence[SourceData],
              image_shape: Optional[Sequence[int]] = None) -> List[SourceData]:
  """Brings every source to one image shape (for a task sequence).

  Args:
    sources: the tasks.
    image_shape: target (H, W, C); None = the largest height, width and channel count
      among the sources (SVHN -> MNIST -> USPS becomes 32x32x3: MNIST and USPS are
      upsampled and their gray channel repeated).

  Returns:
    New SourceData (names kept), images resized bilinearly (antialiased when
    shrinking) and channel-converted (1 -> C repeat, RGB -> gray by ITU-R 601
    luminance), normalisation statistics converted the same way.
  """
  if not sources:
    raise InvalidConfigError("a task sequence needs at least one source")
  shapes = [s.image_shape for s in sources]
  target = tuple(int(d) for d in image_shape) if image_shape is not None else tuple(
      max(s[i] for s in shapes) for i in range(3))
  if len(target) != 3 or min(target) < 1:
    raise InvalidConfigError(f"image_shape must be (H, W, C), got {image_shape!r}")
  out = []
  for s in sources:
    if s.image_shape == target:
      out.append(s)
      continue
    out.append(SourceData(
        name=s.name, train_images=convert_images(s.train_images, target),
        train_labels=s.train_labels, test_images=convert_images(s.test_images, target),
        test_labels=s.test_labels, class_names=s.class_names,
        mean=_convert_stats(s.mean, target[2]), std=_convert_stats(s.std, target[2])))
  return out


def task_sequence(tasks: Sequence[Union[str, SourceData]],
                  image_shape: Optional[Sequence[int]] = None,
                  loader: Optional[Callable[..., SourceData]] = None,
                  **load_options) -> List[SourceData]:
  """Loads (names) or takes (SourceData) the tasks and harmonises their shapes.

  Example: `task_sequence(["svhn_cropped", "mnist", usps_source])` for DC's digit
  sequence (`usps` is not a registered source: build its SourceData yourself), or
  `task_sequence(["digits", "fashion_mnist"])` with the data on this machine.

  Args:
    tasks: source names (loaded with `loader`, default `tfcondense.data.load_source`)
      or SourceData.
    image_shape: common (H, W, C) (None: the largest of each dimension).
    loader: `fn(name, **load_options) -> SourceData`.
    **load_options: passed to the loader for every named task (e.g. limit_per_class).
  """
  if loader is None:
    from tfcondense.data import load_source as loader  # pylint: disable=g-import-not-at-top
  sources = [t if isinstance(t, SourceData) else loader(t, **load_options) for t in tasks]
  return harmonize(sources, image_shape)
