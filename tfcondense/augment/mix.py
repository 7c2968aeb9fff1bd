"""CutMix with a stateless seed and integer labels.

Yun et al. 2019, "CutMix: Regularization Strategy to Train Strong Classifiers with
Localizable Features", as used in evaluation by DC-BENCH (Cui et al. 2022) and IDC:
with probability `prob` per batch, lam ~ Beta(beta, beta), one box of area ~(1 - lam)
pasted from a permuted batch, lam corrected to the exact box area, and the loss
lam CE(y_a) + (1 - lam) CE(y_b).

Hand-written rather than `keras.layers.CutMix` (keras 3.15), which does not fit: it
evaluates `seed or self._get_seed_generator(...)`, so a [2] seed tensor fails
(ambiguous truth value eagerly, OperatorNotAllowedInGraphError in tf.function); it
draws a per-sample lam and box, mixes one-hot labels instead of returning the label
indices, has no per-batch application probability, and reuses the same seed for the
x and y box offsets (correlated boxes).
"""
from __future__ import annotations

from typing import Tuple

import tensorflow as tf

from tfcondense.augment.ops import SeedLike, as_seed, fold
from tfcondense.errors import InvalidConfigError


def sample_beta(seed: SeedLike, alpha: float, beta: float) -> tf.Tensor:
  """A scalar Beta(alpha, beta) draw from two stateless gamma draws."""
  seed = as_seed(seed)
  g1 = tf.random.stateless_gamma([], fold(seed, 1), alpha=alpha)
  g2 = tf.random.stateless_gamma([], fold(seed, 2), alpha=beta)
  return g1 / tf.maximum(g1 + g2, 1e-12)


def cutmix_box(seed: SeedLike, lam: tf.Tensor, height, width) -> tf.Tensor:
  """The reference `rand_bbox`: int32 [4] (top, left, bottom, right), half-open.

  cut = int(size * sqrt(1 - lam)) per axis, centre uniform over the image, box
  [centre - cut // 2, centre + cut // 2) clipped to the image.
  """
  seed = as_seed(seed)
  ratio = tf.sqrt(1.0 - tf.cast(lam, tf.float32))
  size = tf.cast(tf.stack([height, width]), tf.int32)
  cut = tf.cast(tf.cast(size, tf.float32) * ratio, tf.int32)
  centre = tf.cast(tf.floor(tf.random.stateless_uniform([2], seed) * tf.cast(size, tf.float32)),
                   tf.int32)
  centre = tf.minimum(centre, size - 1)
  lo = tf.clip_by_value(centre - cut // 2, 0, size)
  hi = tf.clip_by_value(centre + cut // 2, 0, size)
  return tf.concat([lo, hi], axis=0)


def cutmix(x: tf.Tensor, y: tf.Tensor, seed: SeedLike, prob: float = 0.5,
           beta: float = 1.0) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
  """CutMix one batch (Yun et al. 2019).

  Args:
    x: [B, H, W, C] images (any space: pixel or normalised).
    y: [B] integer labels.
    seed: [2] int seed.
    prob: probability of mixing this batch (one draw per batch, as the reference).
    beta: Beta(beta, beta) parameter of lam (> 0).

  Returns:
    (x_mixed, y_a, y_b, lam): y_a = y, y_b = y of the pasted images, lam (float32
    scalar) the exact fraction of each image that is its own. When not applied
    returns x, y, y, 1.0 (an empty box also gives lam = 1.0).
  """
  if beta <= 0:
    raise InvalidConfigError(f"beta must be > 0, got {beta}")
  seed = as_seed(seed)
  dyn = tf.shape(x)
  b, h, w = dyn[0], dyn[1], dyn[2]
  apply = tf.random.stateless_uniform([], fold(seed, 1)) < prob
  lam = sample_beta(fold(seed, 2), beta, beta)
  box = cutmix_box(fold(seed, 3), lam, h, w)
  perm = tf.argsort(tf.random.stateless_uniform(tf.reshape(b, [1]), fold(seed, 4)))
  rows = tf.range(h)
  cols = tf.range(w)
  in_box = (((rows >= box[0]) & (rows < box[2]))[:, None]
            & ((cols >= box[1]) & (cols < box[3]))[None, :])
  in_box = in_box & apply
  x_mixed = tf.where(in_box[None, :, :, None], tf.gather(x, perm), x)
  area = tf.cast((box[2] - box[0]) * (box[3] - box[1]), tf.float32)
  lam = tf.where(apply, 1.0 - area / tf.cast(h * w, tf.float32), 1.0)
  y_b = tf.where(apply, tf.gather(y, perm), y)
  return x_mixed, y, y_b, lam


def cutmix_loss(logits: tf.Tensor, y_a: tf.Tensor, y_b: tf.Tensor, lam: tf.Tensor) -> tf.Tensor:
  """Mean of lam CE(logits, y_a) + (1 - lam) CE(logits, y_b) over the batch."""
  logits = tf.cast(logits, tf.float32)
  lam = tf.cast(lam, tf.float32)
  ce_a = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y_a, tf.int32), logits)
  ce_b = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(y_b, tf.int32), logits)
  return tf.reduce_mean(lam * ce_a + (1.0 - lam) * ce_b)
