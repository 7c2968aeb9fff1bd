"""Evaluation augmentation policies: `make_policy(name, ...) -> policy(x, seed) -> x`.

A policy maps a float32 NHWC batch of UNNORMALISED images in [0, 1] and a [2] int
seed to an augmented batch, still in pixel space (the evaluator normalises
afterwards). All draws are stateless and per sample (DC-BENCH, Cui et al. 2022,
applies one transform to the whole batch; independent per-sample draws are the
better estimator and what we do), so a policy runs inside `tf.function` every step.

Keras 3 preprocessing layers were checked (keras 3.15, TF backend) and none is used:

* `RandomFlip.get_random_transformation(data, seed=...)` draws per sample, but the seed
  goes through `keras.random.draw_seed`, which accepts only a Python int or a
  `SeedGenerator` and raises ValueError for a [2] tensor (eager and in tf.function);
  an int seed is a trace-time constant (the same flips every step).
* `RandomCrop` draws ONE offset per batch (shape `()`), crops without padding, and
  rejects tensor seeds likewise.
* `RandomColorJitter.get_random_transformation` returns None: its sub-layers draw
  inside `transform_images` from the layer's own stateful SeedGenerator, ignoring any
  seed passed.
* `RandAugment` ignores the `seed` argument too and picks its ops once per batch.

So the ops are written here (flip, padded crop by gather, torchvision colour jitter).

Names: none, imagenet, crop_flip, dsa, autoaugment, randaugment, and time_shift_noise
(spectrograms). The evaluator passes `dsa` the strategy of its protocol
(`tfcondense.evaluation.Protocol.dsa_strategy`: no cutout under CutMix, as the IDC
reference); the default below is the full DSA strategy for callers without CutMix.
"""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

from tfcondense.augment import affine
from tfcondense.augment import autoaugment as aa
from tfcondense.augment import ops
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

Policy = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

POLICIES: Registry = Registry("augmentation policy")


def make_policy(name: str, *, image_shape: Sequence[int], mean: Sequence[float],
                std: Sequence[float], flip: bool = True, **kwargs) -> Policy:
  """Builds the named evaluation augmentation policy.

  Args:
    name: a registered policy (`POLICIES.names()`).
    image_shape: (H, W, C) of the images.
    mean, std: per-channel normalisation statistics (length C), used by `dsa`, which
      augments in normalised space as the reference.
    flip: whether horizontal flips are allowed (False for digits); used by
      `imagenet` and `dsa` (AutoAugment / RandAugment have no flip).
    **kwargs: policy-specific options (e.g. randaugment's num_ops, magnitude).

  Returns:
    policy(x, seed) -> x: float NHWC in [0, 1] and a [2] int seed, to the augmented
    batch in pixel space (same shape and dtype).
  """
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3:
    raise InvalidConfigError(f"image_shape must be (H, W, C), got {image_shape}")
  mean = tuple(float(m) for m in mean)
  std = tuple(float(s) for s in std)
  if len(mean) != image_shape[-1] or len(std) != image_shape[-1]:
    raise InvalidConfigError(f"mean / std need {image_shape[-1]} channels, got {mean}, {std}")
  return POLICIES.get(name)(image_shape=image_shape, mean=mean, std=std, flip=flip, **kwargs)


@POLICIES.register("none")
def _none(*, image_shape, mean, std, flip) -> Policy:
  del image_shape, mean, std, flip
  return lambda x, seed: x


def _jit(fn, jit_compile: bool):
  """XLA-compiles the deterministic "apply" half of a policy.

  The random draws stay outside XLA, so the output does not depend on XLA's choice of
  RNG. XLA fuses the many elementwise ops: colour jitter 5.8 -> 1.4 ms, DSA 7.8 ->
  5.6 ms on a 64x32x32x3 batch (2 shared CPU cores).
  """
  return tf.function(fn, jit_compile=True) if jit_compile else fn


def sample_color_jitter(batch_size, seed, brightness: float = 0.4, contrast: float = 0.4,
                        saturation: float = 0.4, hue: float = 0.2) -> dict:
  """Per-sample colour-jitter factors.

  Returns:
    {"brightness", "contrast", "saturation": [B] ~ U(1 - s, 1 + s), "hue": [B] ~
    U(-hue, hue)}; a key is left out when its strength is 0.
  """
  seed = ops.as_seed(seed)
  shape = tf.reshape(tf.cast(batch_size, tf.int32), [1])
  params = {}
  for salt, (key, s) in enumerate((("brightness", brightness), ("contrast", contrast),
                                   ("saturation", saturation))):
    if s:
      params[key] = tf.random.stateless_uniform(shape, ops.fold(seed, 1 + salt), 1.0 - s,
                                                1.0 + s)
  if hue:
    params["hue"] = tf.random.stateless_uniform(shape, ops.fold(seed, 4), -hue, hue)
  return params


def apply_color_jitter(x: tf.Tensor, params: dict) -> tf.Tensor:
  """torchvision `ColorJitter` semantics on [0, 1] images, per sample.

  Brightness scales, contrast blends with the mean gray level, saturation blends with
  gray (no-op for 1 channel), each clamped to [0, 1]; hue shifts H in HSV (3 channels
  only). torchvision shuffles the order of the four per call; a fixed order
  (brightness, contrast, saturation, hue) is used.
  """
  if "brightness" in params:
    x = aa.brightness(x, params["brightness"])
  if "contrast" in params:
    x = aa.contrast(x, params["contrast"])
  if "saturation" in params:
    x = aa.color(x, params["saturation"])
  if "hue" in params and x.shape[-1] == 3:
    hsv = tf.image.rgb_to_hsv(x)
    delta = tf.reshape(tf.cast(params["hue"], x.dtype), [-1, 1, 1, 1])
    h = tf.math.floormod(hsv[..., :1] + delta, 1.0)
    x = tf.clip_by_value(tf.image.hsv_to_rgb(tf.concat([h, hsv[..., 1:]], -1)), 0.0, 1.0)
  return x


def color_jitter(x: tf.Tensor, seed, brightness: float = 0.4, contrast: float = 0.4,
                 saturation: float = 0.4, hue: float = 0.2) -> tf.Tensor:
  """Per-sample torchvision-style colour jitter (see `apply_color_jitter`)."""
  return apply_color_jitter(
      x, sample_color_jitter(tf.shape(x)[0], seed, brightness, contrast, saturation, hue))


@POLICIES.register("imagenet")
def _imagenet(*, image_shape, mean, std, flip, padding: int = 4, brightness: float = 0.4,
              contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.2,
              jit_compile: bool = True) -> Policy:
  """DC-BENCH's ImagenetAug: padded random crop, flip, colour jitter (per sample)."""
  del image_shape, mean, std
  flipper = ops.Flip()

  def apply(x, params):
    # RandomCrop(size, padding) == integer translation in [-padding, padding], zero fill.
    x = affine.translate(x, params["shift"])
    if flip:
      x = flipper.apply(x, params["flip"])
    return apply_color_jitter(x, params["jitter"])

  apply = _jit(apply, jit_compile)

  def policy(x, seed):
    seed = ops.as_seed(seed)
    b = tf.shape(x)[0]
    params = {
        "shift": tf.random.stateless_uniform(tf.stack([b, 2]), ops.fold(seed, 1), -padding,
                                             padding + 1, dtype=tf.int32),
        "flip": flipper.sample(b, ops.fold(seed, 2)),
        "jitter": sample_color_jitter(b, ops.fold(seed, 3), brightness, contrast, saturation,
                                      hue),
    }
    return apply(x, params)

  return policy


@POLICIES.register("crop_flip")
def _crop_flip(*, image_shape, mean, std, flip, padding: int = 4,
               jit_compile: bool = True) -> Policy:
  """What a Keras user writes: a random crop after zero padding by `padding` pixels
  (an integer translation) and a horizontal flip, per sample; no colour change."""
  return _imagenet(image_shape=image_shape, mean=mean, std=std, flip=flip, padding=padding,
                   brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                   jit_compile=jit_compile)


@POLICIES.register("dsa")
def _dsa(*, image_shape, mean, std, flip,
         strategy: str = "color_crop_cutout_flip_scale_rotate",
         mode: str = "one_geometric", jit_compile: bool = True) -> Policy:
  """Per-sample DSA (Zhao & Bilen 2021) as used by the IDC evaluation.

  The reference augments NORMALISED images with zero fill, i.e. fill = the mean
  colour in pixel space: the policy normalises, applies DSA, and de-normalises. In
  "one_geometric" mode each sample gets the colour ops, ONE of crop / scale / rotate
  (chosen per sample; the reference chooses once per batch), then flip and cutout.
  `flip=False` drops flip from the strategy. The output is not clipped to [0, 1]
  (brightness / contrast / saturation may leave it, as in the reference).
  `jit_compile` XLA-compiles the apply half (draws stay outside XLA).
  """
  del image_shape
  names = strategy.lower().split("_")
  if not flip:
    names = [n for n in names if n != "flip"]
  aug = ops.DSA("_".join(names), mode=mode)
  mean_t = tf.constant(mean, tf.float32)
  std_t = tf.constant(std, tf.float32)

  def apply(x, params):
    m, s = tf.cast(mean_t, x.dtype), tf.cast(std_t, x.dtype)
    return aug.apply((x - m) / s, params) * s + m

  apply = _jit(apply, jit_compile)

  def policy(x, seed):
    return apply(x, aug.sample(tf.shape(x)[0], seed))

  return policy


@POLICIES.register("autoaugment")
def _autoaugment(*, image_shape, mean, std, flip, **kwargs) -> Policy:
  """AutoAugment's CIFAR-10 policy (Cubuk et al. 2019), per sample."""
  del image_shape, mean, std, flip
  return lambda x, seed: aa.autoaugment(x, seed, **kwargs)


@POLICIES.register("randaugment")
def _randaugment(*, image_shape, mean, std, flip, num_ops: int = 2, magnitude: int = 9,
                 num_bins: int = 31) -> Policy:
  """RandAugment (Cubuk et al. 2020), N = num_ops, M = magnitude, per sample."""
  del image_shape, mean, std, flip
  return lambda x, seed: aa.randaugment(x, seed, num_ops=num_ops, magnitude_bin=magnitude,
                                        num_bins=num_bins)


@POLICIES.register("time_shift_noise")
def _time_shift_noise(*, image_shape, mean, std, flip, max_shift: float = 0.125,
                      noise: float = 0.03) -> Policy:
  """Our spectrogram augmentation: a per-sample time shift and additive noise.

  For the speech source's [N, time, freq, 1] images (tfcondense/speech/audio.py), each
  sample is shifted along time (axis 1) by a whole number of frames drawn uniformly in
  [-max_shift * T, max_shift * T] (0.125 of a 1 s clip = 125 ms), the frames shifted in
  being silence (0 on the stored scale, log(1e-3)), then gets Gaussian noise with a
  per-sample std drawn in [0, noise], clipped back to [0, 1]. IDC evaluates speech with
  no augmentation; this is an option of ours (`--augmentation time_shift_noise`).
  Frequency is never moved, so the policy suits spectrograms only.
  """
  del mean, std, flip
  frames = int(image_shape[0])
  limit = int(round(max_shift * frames))

  def policy(x, seed):
    n = tf.shape(x)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shift = tf.random.stateless_uniform([n], seeds[0], -limit, limit + 1, dtype=tf.int32)
    src = tf.range(frames)[None, :] - shift[:, None]  # output frame t reads t - shift
    valid = (src >= 0) & (src < frames)
    moved = tf.gather(x, tf.clip_by_value(src, 0, frames - 1), axis=1, batch_dims=1)
    moved = tf.where(valid[:, :, None, None], moved, tf.zeros_like(moved))
    sigma = tf.random.stateless_uniform([n, 1, 1, 1], seeds[1], 0.0, noise, dtype=x.dtype)
    eps = tf.random.stateless_normal(tf.shape(x), seeds[2], dtype=x.dtype)
    return tf.clip_by_value(moved + sigma * eps, 0.0, 1.0)

  return policy
