"""Multi-formation: the differentiable decoders from stored to formed images.

IDC (Kim et al., ICML 2022, "Dataset Condensation via Efficient Synthetic-Data
Parameterization") stores S = ipc images per class and trains on the
images *formed* from them by a differentiable function f: the uniform formation cuts
every stored image into an f x f grid of tiles and bilinearly upsamples each tile to
the full resolution, so one stored image yields f^2 training images at the storage
cost of one. The variants registered here (reference-code names from
snu-mllab/Efficient-Dataset-Condensation, ``condense.py`` ``Synthesizer``):

* ``identity`` (IDC-I): formed = stored.
* ``uniform``: the f x f grid decode (``decode_zoom`` of the reference code).
* ``multiscale``: the uniform decodes at factors 1..f concatenated (``decode_zoom_multi``).
* ``bound``: at most ``max_per_class`` formed images per class. ``mode="reference"``
  (default) is ``decode_zoom_bound``: a class's later stored images are decoded at
  lower factors (down to 1) so that every stored image is still formed;
  ``mode="truncate"`` keeps the first ``max_per_class`` formed images of the uniform
  decode and drops the rest.
* ``time``: for spectrograms, f segments along the time axis only (f per stored;
  ``speech/condense_speech.py``).
* ``learnable``: the uniform decode followed by a small residual convolutional
  upsampler whose weights are learned with the stored images and count in storage
  (an extension; not in the reference code).

Every formation maps ``(stored [N, H, W, C], labels [N])`` to ``(formed [N*k, H, W, C],
labels repeated k times)`` in stored-major order: the k formed images of stored image
i are rows ``i*k .. i*k+k-1`` (``bound`` forms fewer, still stored-major). Upsampling
is bilinear with half-pixel centres, the semantics of
``tf.image.resize(method="bilinear", antialias=False)`` and PyTorch's
``F.interpolate(mode="bilinear", align_corners=False)``, written here as two fixed
interpolation matrices so the result keeps the input dtype (float64 stays exact,
bfloat16 stays bfloat16) and the gradient w.r.t. the stored pixels is the exact
adjoint.
"""
from __future__ import annotations

import inspect
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

FORMATIONS = Registry(
    "formation",
    hint="Formations (IDC multi-formation, Kim et al. 2022) live in tfcondense/formation.py.")

PAD_VALUE = 0.5  # IDC pads stored images to a multiple of the factor with 0.5.


# ------------------------------------------------------------------ TF building blocks
def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
  """The [out_size, in_size] matrix of 1-D bilinear resizing with half-pixel centres.

  Output pixel d samples the input at s = (d + 0.5) * in / out - 0.5, clamped to the
  valid range, as ``tf.image.resize(..., "bilinear", antialias=False)`` does.
  """
  m = np.zeros((out_size, in_size), np.float64)
  scale = in_size / out_size
  for d in range(out_size):
    s = min(max((d + 0.5) * scale - 0.5, 0.0), in_size - 1.0)
    lo = int(math.floor(s))
    hi = min(lo + 1, in_size - 1)
    frac = s - lo
    m[d, lo] += 1.0 - frac
    m[d, hi] += frac
  return m


def _resize_axis(x: tf.Tensor, axis: int, out_size: int) -> tf.Tensor:
  """Bilinearly resizes NHWC `x` along axis 1 (H) or 2 (W) to `out_size`."""
  in_size = x.shape[axis]
  if in_size == out_size:
    return x
  m = tf.constant(bilinear_matrix(out_size, in_size), dtype=x.dtype)
  equation = "hp,npwc->nhwc" if axis == 1 else "wq,nhqc->nhwc"
  return tf.einsum(equation, m, x)


def _pad_to_multiple(x: tf.Tensor, rows: int, cols: int) -> tf.Tensor:
  """Pads H to a multiple of `rows` and W to a multiple of `cols` (bottom/right), 0.5."""
  h, w = x.shape[1], x.shape[2]
  ph, pw = -h % rows, -w % cols
  if ph == 0 and pw == 0:
    return x
  return tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], constant_values=PAD_VALUE)


def grid_decode(x: tf.Tensor, rows: int, cols: int) -> tf.Tensor:
  """Cuts every image into a rows x cols grid and upsamples each tile to full size.

  Args:
    x: [N, H, W, C] float, static H, W, C.
    rows, cols: grid size; H and W are first padded with 0.5 to multiples of them.

  Returns:
    [N * rows * cols, H, W, C], same dtype; tile (r, c) of image i is row
    i * rows * cols + r * cols + c.
  """
  if rows == 1 and cols == 1:
    return x
  h, w, c = x.shape[1], x.shape[2], x.shape[3]
  x = _pad_to_multiple(x, rows, cols)
  th, tw = x.shape[1] // rows, x.shape[2] // cols
  tiles = tf.reshape(x, [-1, rows, th, cols, tw, c])
  tiles = tf.transpose(tiles, [0, 1, 3, 2, 4, 5])
  tiles = tf.reshape(tiles, [-1, th, tw, c])
  return _resize_axis(_resize_axis(tiles, 1, h), 2, w)


def rank_within_class(labels: tf.Tensor) -> tf.Tensor:
  """Position of each element among the earlier elements with the same label.

  ``rank[i] = #{j < i : labels[j] == labels[i]}``, in O(N log N) with a stable sort,
  for any integer labels and a dynamic N.
  """
  labels = tf.reshape(labels, [-1])
  order = tf.argsort(labels, stable=True)
  ranked = tf.gather(labels, order)
  is_new = tf.concat([tf.ones_like(ranked[:1], dtype=tf.bool),
                      tf.not_equal(ranked[1:], ranked[:-1])], axis=0)
  segment = tf.cumsum(tf.cast(is_new, tf.int32)) - 1
  position = tf.range(tf.size(labels, out_type=tf.int32))
  start = tf.math.segment_min(position, segment)
  rank_sorted = position - tf.gather(start, segment)
  return tf.gather(rank_sorted, tf.math.invert_permutation(order))


def _positive_int(what: str, value) -> int:
  """`value` as an int >= 1, else InvalidConfigError."""
  try:
    ok = not isinstance(value, bool) and int(value) == value and int(value) >= 1
  except (TypeError, ValueError):
    ok = False
  if not ok:
    raise InvalidConfigError(f"{what} must be an integer >= 1, got {value!r}")
  return int(value)


def _check_factor(factor) -> int:
  return _positive_int("formation factor", factor)


def _check_images(stored: tf.Tensor) -> None:
  shape = stored.shape
  if shape.rank != 4 or None in shape[1:]:
    raise InvalidConfigError(
        f"stored images must be NHWC with static H, W, C, got shape {shape}")
  if not stored.dtype.is_floating:
    raise InvalidConfigError(f"stored images must be floating point, got {stored.dtype.name}")


def _numpy_inputs(images, labels, batch) -> Tuple[int, np.ndarray, np.ndarray]:
  """Validated (batch, float32 images [N, H, W, C], int32 labels [N]) for form_numpy."""
  batch = _positive_int("batch", batch)
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32).reshape(-1)
  if images.ndim != 4 or len(images) != len(labels):
    raise InvalidConfigError(
        f"expected images [N, H, W, C] and labels [N], got {images.shape}, {labels.shape}")
  return batch, images, labels


def _image_shape(image_shape: Sequence[int]) -> Tuple[int, int, int]:
  dims = tuple(int(d) for d in image_shape)
  if len(dims) != 3:
    raise InvalidConfigError(f"image_shape must be (H, W, C), got {tuple(image_shape)}")
  return dims


# ------------------------------------------------------------------ base class
#: Fewest stored pixels a tile may keep along a cut axis (`Formation.check_image_shape`).
MIN_TILE = 2


class Formation:
  """A formation function (IDC, Kim et al. 2022): stored -> formed images.

  Subclasses set `name`, implement `formed_per_stored` and `_form`, and may override
  `_keep` (a mask over the stored-major formed images), `_options` and `variables`.

  Attributes:
    name: registry name.
    factor: the formation factor f.
  """

  name = "base"

  def __init__(self, factor: int = 1):
    self.factor = _check_factor(factor)

  # -- what subclasses define
  def formed_per_stored(self) -> int:
    """Formed images per stored image (an upper bound for `bound`)."""
    raise NotImplementedError

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    """[N, H, W, C] -> [N * formed_per_stored(), H, W, C], stored-major."""
    raise NotImplementedError

  def _keep(self, labels: tf.Tensor) -> Optional[tf.Tensor]:
    """Optional bool mask [N * k] of formed images to keep; None keeps all."""
    del labels
    return None

  def _options(self) -> dict:
    return {}

  def _split_axes(self) -> Tuple[int, ...]:
    """The image axes (1 = H, 2 = W) the factor cuts into tiles."""
    return (1, 2) if self.factor > 1 else ()

  def check_image_shape(self, image_shape: Sequence[int]) -> None:
    """Raises InvalidConfigError unless every tile keeps at least `MIN_TILE` pixels of
    the stored image along each cut axis (a factor near the image side only pads and
    forms thousands of constant images).

    Args:
      image_shape: (H, W, C) of the source's images.
    """
    for axis in self._split_axes():
      side = int(image_shape[axis - 1])
      if side // self.factor < MIN_TILE:
        raise InvalidConfigError(
            f"factor {self.factor} cuts the {side}-pixel {'height' if axis == 1 else 'width'}"
            f" into tiles under {MIN_TILE} pixels; use factor <= {max(1, side // MIN_TILE)}")

  def _formed_count(self, num_stored: int, num_classes: Optional[int]) -> int:
    del num_classes
    return num_stored * self.formed_per_stored()

  # -- public API
  def __call__(self, stored: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Forms the training images.

    Args:
      stored: [N, H, W, C] float (dtype kept), static H, W, C; N may be dynamic.
      labels: [N] integer labels.

    Returns:
      (formed [N*k, H, W, C], formed_labels [N*k]) in stored-major order, where
      formed_labels = tf.repeat(labels, k) (then masked for `bound`).
    """
    stored = tf.convert_to_tensor(stored)
    labels = tf.convert_to_tensor(labels)
    _check_images(stored)
    return self._form_labeled(stored, labels)

  def _form_labeled(self, stored: tf.Tensor,
                    labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """`__call__` after validation: `_form`, labels repeated, then the `_keep` mask."""
    formed = self._form(stored)
    formed_labels = tf.repeat(labels, self.formed_per_stored())
    keep = self._keep(labels)
    if keep is not None:
      formed = tf.boolean_mask(formed, keep)
      formed_labels = tf.boolean_mask(formed_labels, keep)
    return formed, formed_labels

  def build(self, channels: int) -> None:
    """Creates any variables for `channels`-channel images (a no-op here).

    Generic code may call `formation.build(C)` before collecting `variables`.
    """
    del channels

  @property
  def variables(self) -> List[tf.Variable]:
    """Learnable weights of the formation (only `learnable` has any)."""
    return []

  def num_parameters(self, image_shape: Sequence[int]) -> int:
    """Learnable scalars for images of `image_shape` (H, W, C)."""
    del image_shape
    return 0

  def storage(self, num_stored: int, image_shape: Sequence[int],
              num_classes: Optional[int] = None) -> Dict[str, int]:
    """Storage accounting of a condensed set (IDC: the bytes of ipc images per class).

    Args:
      num_stored: stored images N.
      image_shape: (H, W, C).
      num_classes: classes (equally sized); used by `bound`, ignored elsewhere.

    Returns:
      {'stored_images', 'stored_pixels', 'parameters', 'stored_bytes' (float32),
      'formed_images'}.
    """
    h, w, c = _image_shape(image_shape)
    num_stored = int(num_stored)
    pixels = num_stored * h * w * c
    params = int(self.num_parameters((h, w, c)))
    return {"stored_images": num_stored, "stored_pixels": pixels, "parameters": params,
            "stored_bytes": 4 * (pixels + params),
            "formed_images": int(self._formed_count(num_stored, num_classes))}

  def describe(self) -> dict:
    """JSON-serialisable description for the artifact's meta.json (see `from_meta`)."""
    return {"name": self.name, "factor": self.factor, **self._options()}

  def get_weights(self) -> Dict[str, np.ndarray]:
    """Learnable weights by name (empty unless the formation has variables)."""
    return {}

  def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
    """Restores `get_weights()` output; formations without weights accept only {}."""
    if weights:
      raise InvalidConfigError(
          f"formation {self.name!r} has no weights, got {', '.join(sorted(weights))}")

  def form_numpy(self, images: np.ndarray, labels: np.ndarray,
                 batch: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """Forms a whole stored set in chunks of `batch` stored images.

    The per-class cap of `bound` is applied to the whole set, not per chunk.

    Returns:
      (formed float32 [M, H, W, C], formed_labels int32 [M]).
    """
    batch, images, labels = _numpy_inputs(images, labels, batch)
    k = self.formed_per_stored()
    chunks = [self._form(tf.constant(images[i:i + batch])).numpy()
              for i in range(0, len(images), batch)]
    formed = (np.concatenate(chunks) if chunks
              else np.zeros((0,) + images.shape[1:], np.float32))
    formed_labels = np.repeat(labels, k)
    keep = self._keep(tf.constant(labels))
    if keep is not None:
      keep = keep.numpy()
      formed, formed_labels = formed[keep], formed_labels[keep]
    return formed.astype(np.float32), formed_labels.astype(np.int32)

  def __repr__(self) -> str:
    opts = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
    return f"{type(self).__name__}({opts})"


# ------------------------------------------------------------------ formations
@FORMATIONS.register("identity")
class IdentityFormation(Formation):
  """IDC-I (Kim et al. 2022): the stored images are trained on as they are."""

  name = "identity"

  def __init__(self, factor: int = 1):
    super().__init__(factor)
    if self.factor != 1:
      raise InvalidConfigError(
          f"the identity formation has factor 1, got {factor}; use 'uniform' for f > 1")

  def formed_per_stored(self) -> int:
    return 1

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    return stored


@FORMATIONS.register("uniform")
class UniformFormation(Formation):
  """Uniform multi-formation (Kim et al. 2022): f x f tiles, each upsampled.

  H and W are padded (bottom/right) with 0.5 to multiples of f; tile (r, c) of stored
  image i is formed image i * f^2 + r * f + c.
  """

  name = "uniform"

  def formed_per_stored(self) -> int:
    return self.factor ** 2

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    return grid_decode(stored, self.factor, self.factor)


@FORMATIONS.register("multiscale")
class MultiscaleFormation(Formation):
  """Multi-scale multi-formation (Kim et al. 2022): uniform decodes at 1..f.

  Per stored image: the image itself, then its 2 x 2 tiles, ..., then its f x f tiles.
  """

  name = "multiscale"

  def formed_per_stored(self) -> int:
    return sum(j * j for j in range(1, self.factor + 1))

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    h, w, c = stored.shape[1:]
    per_scale = [tf.reshape(grid_decode(stored, j, j), [-1, j * j, h, w, c])
                 for j in range(1, self.factor + 1)]
    return tf.reshape(tf.concat(per_scale, axis=1), [-1, h, w, c])


BOUND_MODES = ("reference", "truncate")


@tf.custom_gradient
def _dense_gradient(x: tf.Tensor):
  """Identity whose gradient is a dense tensor (tf.gather alone would give
  tf.IndexedSlices w.r.t. the stored images, unlike every other formation)."""
  return tf.identity(x), tf.convert_to_tensor


def bound_schedule(num_stored: int, factor: int,
                   max_per_class: int = 128) -> List[Tuple[int, int]]:
  """How IDC's ``decode_zoom_bound`` splits one class's stored images among factors.

  Greedy from the highest factor down: with `budget` stored images still to decode
  and `decoded` formed so far, factor j (> 1) takes
  ``n_j = min((max_per_class - decoded - budget) // j**2, budget)`` images, the next
  ones in stored order, and factor 1 takes the rest. One formed image is reserved for
  every stored image not yet decoded, so the total never exceeds the cap.

  Args:
    num_stored: the class's stored images.
    factor: the largest factor f.
    max_per_class: the cap.

  Returns:
    [(j, n_j)] for j = f, f-1, ..., 1 (the images decoded at j are the next n_j
    in stored order); formed images = sum(n_j * j * j).

  Raises:
    InvalidConfigError: f > 1 and num_stored > max_per_class (the reference's
      arithmetic breaks down there: negative slice sizes).
  """
  num_stored, factor = int(num_stored), _check_factor(factor)
  cap = _positive_int("max_per_class", max_per_class)
  _check_bound_count(num_stored, factor, cap)
  schedule, budget, decoded = [], num_stored, 0
  for j in range(factor, 1, -1):
    n = min((cap - decoded - budget) // (j * j), budget)
    schedule.append((j, n))
    budget -= n
    decoded += n * j * j
  schedule.append((1, budget))
  return schedule


def _check_bound_count(count: int, factor: int, cap: int) -> None:
  if factor > 1 and count > cap:
    raise InvalidConfigError(_bound_count_message(factor, cap) + f" (got {count})")


def _bound_count_message(factor: int, cap: int) -> str:
  return (f"bound formation (mode='reference', factor {factor}) needs at most "
          f"max_per_class={cap} stored images per class, since every stored image is "
          f"formed at least once; raise max_per_class or use mode='truncate'")


@FORMATIONS.register("bound")
class BoundFormation(UniformFormation):
  """Multi-formation with at most `max_per_class` formed images per class (IDC "bound").

  ``mode="reference"`` (default) follows ``Synthesizer.decode_zoom_bound`` in
  ``condense.py`` of snu-mllab/Efficient-Dataset-Condensation, which the reference
  applies to one class's ipc stored images at a time (``Synthesizer.decode`` with
  ``decode_type='bound'``, bound 128): going from factor f down to 2, the next
  ``min((bound - decoded - remaining) // j**2, remaining)`` stored images are decoded
  at factor j (uniform j x j tiles), where ``remaining`` counts the stored images
  not yet decoded and ``decoded`` the formed images so far; the images left over are
  used as they are (factor 1). Every stored image is formed and a class forms at
  most `max_per_class` images, though not always exactly that many: one formed image
  is reserved per stored image, so ipc 50, f = 2, cap 128 gives 19 images at
  factor 2 and 31 at factor 1, 107 formed (see `bound_schedule`). Differences from
  the reference: the formed images are stored-major (the reference concatenates the
  factor groups, each tile-major); classes are the label values of the batch, in
  any order and of any sizes (each class's images take the factors in stored
  order); and a class with more than `max_per_class` stored images at f > 1, where
  the reference's arithmetic goes wrong (negative slices), raises
  InvalidConfigError when the labels are known at trace time (eager, or constant
  labels in a tf.function) and fails a ``tf.debugging`` assertion
  (InvalidArgumentError) at run time otherwise. At f = 1 nothing is capped, as the
  reference does not call the bound decode then.

  ``mode="truncate"``: the uniform decode, keeping each class's formed images in
  stored-major order (first stored image's tiles first) until the cap; the stored
  images past it receive no gradient.

  Both group classes by label value, whatever the order of the stored set.
  `formed_per_stored()` is the upper bound f * f; `storage(..., num_classes=...)`
  reports the mode's real formed count for equally sized classes.

  Args:
    factor: f.
    max_per_class: the cap (the reference uses 128).
    mode: "reference" or "truncate".
  """

  name = "bound"

  def __init__(self, factor: int = 1, max_per_class: int = 128, mode: str = "reference"):
    super().__init__(factor)
    self.max_per_class = _positive_int("max_per_class", max_per_class)
    if mode not in BOUND_MODES:
      raise InvalidConfigError(
          f"bound formation mode must be one of {BOUND_MODES}, got {mode!r}")
    self.mode = mode

  def _options(self) -> dict:
    return {"max_per_class": self.max_per_class, "mode": self.mode}

  # -- truncate
  def _keep(self, labels: tf.Tensor) -> tf.Tensor:
    k = self.formed_per_stored()
    first = rank_within_class(labels) * k  # class rank of each stored image's first tile
    rank = tf.reshape(first[:, None] + tf.range(k, dtype=first.dtype)[None, :], [-1])
    return rank < self.max_per_class

  # -- reference
  def stored_factors(self, labels: tf.Tensor) -> tf.Tensor:
    """The factor (1..f) each stored image is decoded at in reference mode.

    Vectorised `bound_schedule` over the classes: works for dynamic N and inside
    tf.function.

    Args:
      labels: [N] integer labels.

    Returns:
      int32 [N].
    """
    labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
    cap = self.max_per_class
    rank = rank_within_class(labels)
    _, class_index, counts = tf.unique_with_counts(labels, out_idx=tf.int32)
    checks = []
    if self.factor > 1:
      static = tf.get_static_value(labels)
      if static is not None:
        if static.size:
          _check_bound_count(int(np.unique(static, return_counts=True)[1].max()),
                             self.factor, cap)
      else:
        checks.append(tf.debugging.assert_less_equal(
            counts, tf.constant(cap, tf.int32), message=_bound_count_message(self.factor, cap)))
    budget = tf.gather(counts, class_index)  # each image's class count, then what is left
    decoded = tf.zeros_like(budget)
    start = tf.zeros_like(budget)
    factors = tf.ones_like(budget)
    for j in range(self.factor, 1, -1):
      n = tf.clip_by_value((cap - decoded - budget) // (j * j), 0, budget)
      taken = (rank >= start) & (rank < start + n)
      factors = tf.where(taken, tf.fill(tf.shape(factors), j), factors)
      start += n
      budget -= n
      decoded += n * (j * j)
    with tf.control_dependencies(checks):
      return tf.identity(factors)

  def _form_mixed(self, stored: tf.Tensor, factors: tf.Tensor) -> tf.Tensor:
    """Decodes stored image i at factors[i], stored-major (differentiable)."""
    stored = _dense_gradient(stored)
    factors = tf.cast(factors, tf.int32)
    offsets = tf.cumsum(factors * factors, exclusive=True)  # first row of each image
    parts, rows = [], []
    for j in range(self.factor, 0, -1):
      index = tf.reshape(tf.where(tf.equal(factors, j)), [-1])
      parts.append(grid_decode(tf.gather(stored, index), j, j))
      first = tf.gather(offsets, index)
      rows.append(tf.reshape(first[:, None] + tf.range(j * j)[None, :], [-1]))
    formed = tf.concat(parts, axis=0)
    return tf.gather(formed, tf.math.invert_permutation(tf.concat(rows, axis=0)))

  def _form_labeled(self, stored: tf.Tensor,
                    labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    if self.mode == "truncate":
      return super()._form_labeled(stored, labels)
    factors = self.stored_factors(labels)
    return (self._form_mixed(stored, factors),
            tf.repeat(tf.reshape(labels, [-1]), factors * factors))

  def form_numpy(self, images: np.ndarray, labels: np.ndarray,
                 batch: int = 256) -> Tuple[np.ndarray, np.ndarray]:
    """As `Formation.form_numpy`; the factors are planned over the whole set."""
    if self.mode == "truncate":
      return super().form_numpy(images, labels, batch)
    batch, images, labels = _numpy_inputs(images, labels, batch)
    factors = self.stored_factors(tf.constant(labels)).numpy()  # whole set's classes
    chunks = [self._form_mixed(tf.constant(images[i:i + batch]),
                               tf.constant(factors[i:i + batch])).numpy()
              for i in range(0, len(images), batch)]
    formed = (np.concatenate(chunks) if chunks
              else np.zeros((0,) + images.shape[1:], np.float32))
    return formed.astype(np.float32), np.repeat(labels, factors * factors).astype(np.int32)

  def _formed_count(self, num_stored: int, num_classes: Optional[int]) -> int:
    classes = int(num_classes) if num_classes else 1
    per_class = num_stored // classes
    if self.mode == "truncate":
      return classes * min(self.max_per_class, per_class * self.formed_per_stored())
    schedule = bound_schedule(per_class, self.factor, self.max_per_class)
    return classes * sum(n * j * j for j, n in schedule)


@FORMATIONS.register("time")
class TimeFormation(Formation):
  """Speech multi-formation (Kim et al. 2022): f segments along time only.

  Spectrograms are stored [N, T, F, 1] with time on axis 1 (as ``tf.signal.stft``
  lays out frames). The time axis is padded with 0.5 to a multiple of f, cut into f
  equal segments and each is upsampled back to (H, W): f formed per stored image.

  Args:
    factor: f.
    axis: 1 splits H (default), 2 splits W.
  """

  name = "time"

  def __init__(self, factor: int = 1, axis: int = 1):
    super().__init__(factor)
    if axis not in (1, 2) or isinstance(axis, bool):
      raise InvalidConfigError(f"time formation axis must be 1 (H) or 2 (W), got {axis!r}")
    self.axis = int(axis)

  def _options(self) -> dict:
    return {"axis": self.axis}

  def _split_axes(self) -> Tuple[int, ...]:
    return (self.axis,) if self.factor > 1 else ()

  def formed_per_stored(self) -> int:
    return self.factor

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    if self.axis == 1:
      return grid_decode(stored, self.factor, 1)
    return grid_decode(stored, 1, self.factor)


_WEIGHT_NAMES = ("conv1_kernel", "conv1_bias", "conv2_kernel", "conv2_bias")


@FORMATIONS.register("learnable")
class LearnableFormation(UniformFormation):
  """Uniform formation plus a learned residual upsampler (extension of IDC).

  out = up + conv3x3(relu(conv3x3(up))), with up the uniform decode. The second
  convolution starts at zero, so at initialisation this equals `uniform` exactly; the
  first kernel is uniform in +-1/sqrt(fan_in) from `seed`. Its weights count in the
  storage budget (`storage()['parameters']`).

  The variables need the channel count: pass `channels`, call `build(channels)`, or
  call the formation once (eagerly) before collecting `variables` for an optimizer.

  Args:
    factor: f.
    width: hidden channels of the residual block.
    seed: seed of the first kernel's initialisation.
    channels: image channels C; builds the variables at once when given.
  """

  name = "learnable"

  def __init__(self, factor: int = 1, width: int = 16, seed: int = 0,
               channels: Optional[int] = None):
    super().__init__(factor)
    self.width = _positive_int("learnable formation width", width)
    self.seed = int(seed)
    self._vars: Optional[Dict[str, tf.Variable]] = None
    if channels is not None:
      self.build(channels)

  @property
  def channels(self) -> Optional[int]:
    return None if self._vars is None else int(self._vars["conv1_kernel"].shape[2])

  def _options(self) -> dict:
    return {"width": self.width, "seed": self.seed, "channels": self.channels}

  def build(self, channels: int) -> None:
    """Creates the four variables for `channels`-channel images (idempotent)."""
    channels = int(channels)
    if self._vars is not None:
      if channels != self.channels:
        raise InvalidConfigError(
            f"learnable formation built for {self.channels} channels, got {channels}")
      return
    c, w = channels, self.width
    bound = 1.0 / math.sqrt(9 * c)
    with tf.init_scope():  # Eager variables even when first called in a tf.function.
      kernel1 = tf.random.stateless_uniform([3, 3, c, w], seed=[self.seed, 0],
                                            minval=-bound, maxval=bound, dtype=tf.float32)
      init = {"conv1_kernel": kernel1, "conv1_bias": tf.zeros([w]),
              "conv2_kernel": tf.zeros([3, 3, w, c]), "conv2_bias": tf.zeros([c])}
      self._vars = {k: tf.Variable(init[k], trainable=True, name=f"formation_{k}")
                    for k in _WEIGHT_NAMES}

  @property
  def variables(self) -> List[tf.Variable]:
    if self._vars is None:
      raise InvalidConfigError(
          "the learnable formation has no variables yet: pass channels=C to "
          "make_formation, call build(C), or call it once on the stored images first")
    return [self._vars[k] for k in _WEIGHT_NAMES]

  def num_parameters(self, image_shape: Sequence[int]) -> int:
    c, w = _image_shape(image_shape)[2], self.width
    return 9 * c * w + w + 9 * w * c + c

  def _form(self, stored: tf.Tensor) -> tf.Tensor:
    self.build(stored.shape[-1])
    up = grid_decode(stored, self.factor, self.factor)
    k1, b1, k2, b2 = (tf.cast(v, up.dtype) for v in self.variables)
    hidden = tf.nn.relu(tf.nn.conv2d(up, k1, 1, "SAME") + b1)
    return up + tf.nn.conv2d(hidden, k2, 1, "SAME") + b2

  def get_weights(self) -> Dict[str, np.ndarray]:
    return {} if self._vars is None else {k: v.numpy() for k, v in self._vars.items()}

  def set_weights(self, weights: Dict[str, np.ndarray]) -> None:
    missing = [k for k in _WEIGHT_NAMES if k not in weights]
    extra = sorted(set(weights) - set(_WEIGHT_NAMES))
    if missing or extra:
      raise InvalidConfigError(
          f"learnable formation weights need {', '.join(_WEIGHT_NAMES)}; "
          f"missing {missing}, unexpected {extra}")
    self.build(np.shape(weights["conv1_kernel"])[2])
    for k in _WEIGHT_NAMES:
      value = np.asarray(weights[k], np.float32)
      if value.shape != tuple(self._vars[k].shape):
        raise InvalidConfigError(
            f"learnable formation weight {k} has shape {value.shape}, "
            f"expected {tuple(self._vars[k].shape)}")
      self._vars[k].assign(value)


# ------------------------------------------------------------------ construction
def make_formation(name: str, factor: int = 1, **options) -> Formation:
  """Builds the registered formation `name` (IDC, Kim et al. 2022).

  Args:
    name: identity, uniform, multiscale, bound, time or learnable.
    factor: the formation factor f >= 1.
    **options: the formation's options (max_per_class, mode, axis, width, seed,
      channels).

  Raises:
    UnknownNameError: unknown name.
    InvalidConfigError: factor < 1, or an option the formation does not take or
      out of range.
  """
  cls = FORMATIONS.get(name)
  factor = _check_factor(factor)
  try:
    inspect.signature(cls).bind(factor=factor, **options)
  except TypeError as e:
    accepted = [p for p in inspect.signature(cls).parameters if p != "factor"]
    raise InvalidConfigError(
        f"formation {name!r} takes options {accepted or '(none)'}, got {sorted(options)}"
    ) from e
  return cls(factor=factor, **options)


def from_meta(meta: dict, weights: Optional[Dict[str, np.ndarray]] = None) -> Formation:
  """Rebuilds the formation recorded in an artifact's meta.json.

  `meta["formation"]` is either `describe()` output (a dict) or a plain name, with the
  factor in `meta["factor"]`. Without it, factor 1 means identity and f > 1 uniform.

  Args:
    meta: artifact metadata.
    weights: `get_weights()` output for the learnable formation.
  """
  spec = meta.get("formation")
  if isinstance(spec, dict):
    options = dict(spec)
    name = options.pop("name")
    factor = options.pop("factor", meta.get("factor", 1))
  else:
    factor = meta.get("factor", 1)
    name = spec if spec else ("uniform" if int(factor) > 1 else "identity")
    options = {}
  formation = make_formation(name, factor, **options)
  if weights:
    formation.set_weights(weights)
  return formation
