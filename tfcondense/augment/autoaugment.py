"""AutoAugment and RandAugment, vectorised with per-sample draws.

Cubuk et al. 2019, "AutoAugment: Learning Augmentation Strategies from Data" (the
CIFAR-10 policy of the appendix, as tabled in torchvision's
`AutoAugmentPolicy.CIFAR10`), and Cubuk et al. 2020, "RandAugment: Practical
automated data augmentation with a reduced search space". Op semantics and magnitude
bins follow torchvision (`_augmentation_space`, `_apply_op`): 10 bins for
AutoAugment, 31 for RandAugment; geometric ops use nearest interpolation and fill 0
(torchvision's `fill=None`).

Neither Keras 3 nor keras-cv has AutoAugment. `keras.layers.RandAugment` exists but
does not fit: its `get_random_transformation` ignores the `seed` argument (it always
draws from the layer's own stateful SeedGenerator, so no per-step stateless seed can
be passed in a `tf.function`) and it draws the op indices once per BATCH
(`randint((num_ops,))`), not per sample. So both policies are built here from plain
ops.

Graph ops are vectorised, so a per-sample choice of op is done by splitting the batch
by op (`tf.dynamic_partition`), running each op on its own samples, and stitching the
results back (`tf.dynamic_stitch`); all geometric ops of a stage share one
gather-based warp (each sample's matrix is selected first). Not XLA-compilable
(dynamic shapes, bincount). Images are float NHWC in [0, 1]; "uint8" ops (posterize,
equalize) quantise to round(255 x).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import tensorflow as tf

from tfcondense.augment import affine
from tfcondense.augment.ops import SeedLike, as_seed, fold
from tfcondense.errors import InvalidConfigError

SubPolicy = Tuple[Tuple[str, float, object], Tuple[str, float, object]]

#: AutoAugment's CIFAR-10 policy: 25 sub-policies of two (op, probability, bin).
CIFAR10_POLICY: Tuple[SubPolicy, ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

#: RandAugment's op space (torchvision order).
RANDAUGMENT_OPS: Tuple[str, ...] = (
    "Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
    "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
SIGNED_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
              "Contrast", "Sharpness")


def magnitude(op: str, bin_index, num_bins: int, height: int, width: int) -> float:
  """torchvision's magnitude of `op` at `bin_index` of `num_bins` (unsigned).

  Shear up to 0.3, translate up to 150/331 of the size (pixels, truncated to int when
  applied), rotate up to 30 degrees, enhance factors 1 +- 0.9, posterize bits 8..4,
  solarize threshold 1..0 (in [0, 1] units).
  """
  if bin_index is None or op in ("Identity", "AutoContrast", "Equalize", "Invert"):
    return 0.0
  t = bin_index / (num_bins - 1)
  if op in ("ShearX", "ShearY"):
    return 0.3 * t
  if op == "TranslateX":
    return 150.0 / 331.0 * width * t
  if op == "TranslateY":
    return 150.0 / 331.0 * height * t
  if op == "Rotate":
    return 30.0 * t
  if op in ("Brightness", "Color", "Contrast", "Sharpness"):
    return 0.9 * t
  if op == "Posterize":
    return float(int(8 - round(bin_index / ((num_bins - 1) / 4))))
  if op == "Solarize":
    return 1.0 - t
  raise InvalidConfigError(f"unknown AutoAugment op {op!r}")


# ----------------------------------------------------------------------------- pixel ops
def _col(v: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
  return tf.reshape(tf.cast(v, x.dtype), [-1, 1, 1, 1])


def _blend(x, other, factor):
  """clamp(factor x + (1 - factor) other) to [0, 1], torchvision's `_blend`."""
  f = _col(factor, x)
  return tf.clip_by_value(f * x + (1.0 - f) * other, 0.0, 1.0)


def grayscale(x: tf.Tensor) -> tf.Tensor:
  """[B, H, W, 1] luma (ITU-R 601-2 weights, as torchvision); identity for 1 channel."""
  c = x.shape[-1]
  if c == 1:
    return x
  if c == 3:
    w = tf.constant([0.2989, 0.587, 0.114], x.dtype)
    return tf.reduce_sum(x * w, axis=-1, keepdims=True)
  return tf.reduce_mean(x, axis=-1, keepdims=True)


def invert(x, m=None):
  del m
  return 1.0 - x


def brightness(x, factor):
  return _blend(x, tf.zeros_like(x), factor)


def color(x, factor):
  """Saturation: blend with the grayscale image; a no-op for 1 channel."""
  if x.shape[-1] == 1:
    return x
  return _blend(x, grayscale(x), factor)


def contrast(x, factor):
  """Blend with the mean grayscale level of each image."""
  return _blend(x, tf.reduce_mean(grayscale(x), axis=[1, 2, 3], keepdims=True), factor)


def sharpness(x, factor):
  """Blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (border kept)."""
  # 3x3 sum by average pooling, plus 4 x the centre: no per-channel kernel needed.
  box = tf.nn.avg_pool2d(x, 3, 1, "VALID") * 9.0
  smooth = (box + 4.0 * x[:, 1:-1, 1:-1, :]) / 13.0
  smooth = tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]])
  h, w = affine.spatial_size(x)
  rows = tf.range(h)
  cols = tf.range(w)
  interior = (((rows > 0) & (rows < h - 1))[:, None] & ((cols > 0) & (cols < w - 1))[None, :])
  degenerate = tf.where(interior[None, :, :, None], smooth, x)
  return _blend(x, degenerate, factor)


def _to_uint8(x: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0), tf.int32)


def posterize(x, bits):
  """Keeps the top `bits` bits ([B] ints in 1..8) of round(255 x)."""
  bits = tf.reshape(tf.cast(bits, tf.int32), [-1, 1, 1, 1])
  mask = 256 - tf.bitwise.left_shift(1, 8 - bits)
  return tf.cast(tf.bitwise.bitwise_and(_to_uint8(x), mask), x.dtype) / 255.0


def solarize(x, threshold):
  """Inverts pixels >= threshold ([B], in [0, 1] units)."""
  return tf.where(x >= _col(threshold, x), 1.0 - x, x)


def autocontrast(x, m=None):
  """Stretches each image-channel to [0, 1]; constant channels are left unchanged."""
  del m
  lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
  hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
  flat = hi <= lo
  scale = tf.where(flat, tf.ones_like(hi), 1.0 / tf.where(flat, tf.ones_like(hi), hi - lo))
  lo = tf.where(flat, tf.zeros_like(lo), lo)
  return tf.clip_by_value((x - lo) * scale, 0.0, 1.0)


def equalize(x, m=None):
  """Histogram equalisation per image-channel on round(255 x), as PIL / torchvision.

  hist = 256-bin histogram; step = (count of all pixels but those of the brightest
  level) // 255; if step == 0 the channel is unchanged, else
  lut[v] = (cumsum(hist)[v - 1] + step // 2) // step (lut[0] = 0), clipped to 255.
  """
  del m
  dyn = tf.shape(x)
  b, h, w, c = dyn[0], dyn[1], dyn[2], dyn[3]
  q = _to_uint8(x)
  rows = tf.reshape(tf.transpose(q, [0, 3, 1, 2]), tf.stack([b * c, h * w]))
  hist = tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1)  # [B*C, 256]
  last = tf.gather(hist, tf.reduce_max(rows, axis=-1), batch_dims=1)
  step = (h * w - last) // 255
  safe = tf.maximum(step, 1)[:, None]
  lut = (tf.cumsum(hist, axis=-1) + safe // 2) // safe
  lut = tf.clip_by_value(tf.concat([tf.zeros_like(lut[:, :1]), lut[:, :-1]], axis=-1), 0, 255)
  out = tf.where((step > 0)[:, None], tf.gather(lut, rows, batch_dims=1), rows)
  out = tf.transpose(tf.reshape(out, tf.stack([b, c, h, w])), [0, 2, 3, 1])
  return tf.cast(out, x.dtype) / 255.0


_PIXEL_OPS = {
    "Invert": invert, "AutoContrast": autocontrast, "Equalize": equalize,
    "Posterize": posterize, "Solarize": solarize,
    "Brightness": lambda x, m: brightness(x, 1.0 + m),
    "Color": lambda x, m: color(x, 1.0 + m),
    "Contrast": lambda x, m: contrast(x, 1.0 + m),
    "Sharpness": lambda x, m: sharpness(x, 1.0 + m),
}


# ------------------------------------------------------------------------- geometric ops
def geometric_matrix(op: str, m: tf.Tensor, height, width) -> tf.Tensor:
  """Pixel-space [B, 2, 3] matrices (output pixel -> input point), torchvision-style.

  Shears are about the top-left corner (torchvision `center=[0, 0]`), translations are
  truncated to whole pixels (`int(magnitude)`), rotation is counter-clockwise by m
  degrees about the image centre.
  """
  m = tf.cast(m, tf.float32)
  one, z = tf.ones_like(m), tf.zeros_like(m)
  whole = tf.cast(tf.cast(m, tf.int32), tf.float32)  # int(m): truncation towards zero
  if op == "ShearX":  # x_in = x + m (y + 1/2): pixel centres, corner origin.
    rows = ([one, m, 0.5 * m], [z, one, z])
  elif op == "ShearY":
    rows = ([one, z, z], [m, one, 0.5 * m])
  elif op == "TranslateX":
    rows = ([one, z, -whole], [z, one, z])
  elif op == "TranslateY":
    rows = ([one, z, z], [z, one, -whole])
  elif op == "Rotate":
    a = m * (math.pi / 180.0)
    c, s = tf.cos(a), tf.sin(a)
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    rows = ([c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy])
  else:
    raise InvalidConfigError(f"not a geometric op: {op!r}")
  return tf.stack([tf.stack(rows[0], -1), tf.stack(rows[1], -1)], axis=1)


def apply_ops(x: tf.Tensor, op_index: tf.Tensor, mag: tf.Tensor, op_names: Sequence[str],
              interpolation: str = "nearest", fill: float = 0.0) -> tf.Tensor:
  """Per sample b: x[b] -> op_names[op_index[b]](x[b], mag[b]); op_index < 0 = identity.

  The batch is split by op with `tf.dynamic_partition`, each op runs on its own
  samples only (all geometric ops together, in one warp with per-sample matrices),
  and `tf.dynamic_stitch` puts the results back in order: about one op's work per
  image instead of every op on the whole batch.
  """
  for n in op_names:
    if n not in _PIXEL_OPS and n not in GEOMETRIC_OPS and n != "Identity":
      raise InvalidConfigError(f"unknown AutoAugment op {n!r}")
  pixel = [n for n in dict.fromkeys(op_names) if n in _PIXEL_OPS]
  geo = [n for n in dict.fromkeys(op_names) if n in GEOMETRIC_OPS]
  # Group 0: identity, 1: geometric, 2 + i: pixel[i].
  group_of = [1 if n in GEOMETRIC_OPS else 2 + pixel.index(n) if n in _PIXEL_OPS else 0
              for n in op_names]
  op_index = tf.cast(op_index, tf.int32)
  group = tf.where(op_index < 0, 0,
                   tf.gather(tf.constant(group_of, tf.int32), tf.maximum(op_index, 0)))
  num_groups = 2 + len(pixel)
  mag = tf.cast(mag, tf.float32)
  ids = tf.dynamic_partition(tf.range(tf.shape(x)[0]), group, num_groups)
  xs = tf.dynamic_partition(x, group, num_groups)
  ms = tf.dynamic_partition(mag, group, num_groups)
  results = [xs[0]]
  if geo:
    sub_op = tf.dynamic_partition(op_index, group, num_groups)[1]
    sub_x, sub_m = xs[1], ms[1]
    h, w = affine.spatial_size(x)
    matrix = tf.zeros(tf.stack([tf.shape(sub_x)[0], 2, 3]))
    for k, n in enumerate(op_names):
      if n in geo:
        matrix = tf.where(tf.reshape(sub_op == k, [-1, 1, 1]), geometric_matrix(n, sub_m, h, w),
                          matrix)
    results.append(affine.affine_transform(sub_x, matrix, interpolation=interpolation,
                                           fill=fill))
  else:
    results.append(xs[1])
  for i, n in enumerate(pixel):
    results.append(_PIXEL_OPS[n](xs[2 + i], ms[2 + i]))
  out = tf.dynamic_stitch(ids, results)
  out.set_shape(x.shape)
  return out


def _static_hw(x: tf.Tensor) -> Tuple[int, int]:
  h, w = x.shape[1], x.shape[2]
  if h is None or w is None:
    raise InvalidConfigError(f"AutoAugment / RandAugment need static image sizes, got {x.shape}")
  return int(h), int(w)


def autoaugment(x: tf.Tensor, seed: SeedLike, policy: Sequence[SubPolicy] = CIFAR10_POLICY,
                num_bins: int = 10, interpolation: str = "nearest",
                fill: float = 0.0) -> tf.Tensor:
  """AutoAugment (Cubuk et al. 2019) with a sub-policy drawn per image.

  As torchvision: pick a sub-policy, then for each of its two ops apply it with its
  probability (uniform <= p), negating the magnitude of signed ops with probability
  1/2.

  Args:
    x: float [B, H, W, C] in [0, 1] (static H, W).
    seed: [2] int seed.
    policy: sub-policies, default `CIFAR10_POLICY`.
    num_bins: magnitude bins (10 in AutoAugment).
    interpolation, fill: for the geometric ops (torchvision: nearest, 0).

  Returns:
    The augmented batch, same shape and dtype, in [0, 1].
  """
  seed = as_seed(seed)
  h, w = _static_hw(x)
  b = tf.shape(x)[0]
  pick = tf.random.stateless_uniform([b], fold(seed, 0), 0, len(policy), dtype=tf.int32)
  for stage in range(2):
    entries = [sp[stage] for sp in policy]
    names = sorted({e[0] for e in entries})
    table_op = tf.constant([names.index(e[0]) for e in entries], tf.int32)
    table_p = tf.constant([e[1] for e in entries], tf.float32)
    table_m = tf.constant([magnitude(e[0], e[2], num_bins, h, w) for e in entries], tf.float32)
    table_signed = tf.constant([e[0] in SIGNED_OPS for e in entries])
    u = tf.random.stateless_uniform([b, 2], fold(seed, 1 + stage))
    applied = u[:, 0] <= tf.gather(table_p, pick)
    negate = tf.gather(table_signed, pick) & (u[:, 1] < 0.5)
    mag = tf.gather(table_m, pick) * tf.where(negate, -1.0, 1.0)
    op_index = tf.where(applied, tf.gather(table_op, pick), -1)
    x = apply_ops(x, op_index, mag, names, interpolation, fill)
  return x


def randaugment(x: tf.Tensor, seed: SeedLike, num_ops: int = 2, magnitude_bin: int = 9,
                num_bins: int = 31, interpolation: str = "nearest",
                fill: float = 0.0) -> tf.Tensor:
  """RandAugment (Cubuk et al. 2020): `num_ops` ops drawn uniformly per image.

  torchvision's version: 14 ops (with Identity), magnitude bin `magnitude_bin` of
  `num_bins`, signed ops negated with probability 1/2.

  Args:
    x: float [B, H, W, C] in [0, 1] (static H, W).
    seed: [2] int seed.
    num_ops: N, ops applied in sequence.
    magnitude_bin: M.
    num_bins: number of magnitude bins (31 in torchvision).
    interpolation, fill: for the geometric ops.
  """
  if not 0 <= magnitude_bin < num_bins:
    raise InvalidConfigError(f"magnitude_bin must be in [0, {num_bins}), got {magnitude_bin}")
  seed = as_seed(seed)
  h, w = _static_hw(x)
  b = tf.shape(x)[0]
  names = RANDAUGMENT_OPS
  table_m = tf.constant([magnitude(n, magnitude_bin, num_bins, h, w) for n in names], tf.float32)
  table_signed = tf.constant([n in SIGNED_OPS for n in names])
  for i in range(num_ops):
    s = fold(seed, i)
    op_index = tf.random.stateless_uniform([b], s, 0, len(names), dtype=tf.int32)
    coin = tf.random.stateless_uniform([b], fold(s, 1)) < 0.5
    negate = tf.gather(table_signed, op_index) & coin
    mag = tf.gather(table_m, op_index) * tf.where(negate, -1.0, 1.0)
    x = apply_ops(x, op_index, mag, names, interpolation, fill)
  return x
