"""What every method shares: the two registries, and for synthesis real-data sampling
and seeds (SGD and networks under a precision: `tfcondense.training`).

A synthesis method is a module under `tfcondense/methods/` holding a frozen config
dataclass and a class driven by `tfcondense.engine.run` (one `step(step)` per unit of
work, `checkpoint_items()`, `image_summaries()`, attributes `synthetic` and
`total_steps`); the module registers a `SynthesisSpec` in `SYNTHESIS` and
`tfcondense.condensation.condense` does the rest (resume, budget, artifact, grids).

Config dataclasses provide `resolve(source_name) -> config` (fill source-dependent
defaults and validate) and `as_dict()` (JSON-serialisable), and have the fields
`ipc` and `seed` (and `factor` when they use a formation).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfcondense import formation as formation_lib
from tfcondense import synthetic as synthetic_lib
from tfcondense.registry import Registry


@dataclasses.dataclass(frozen=True)
class SynthesisSpec:
  """How to make one synthesis method.

  Attributes:
    config_cls: its frozen config dataclass.
    build: (source, config, init_options) -> a method object for `engine.run`.
    defaults: config overrides implied by the method name (e.g. factor=1 for IDC-I).
    description: one line for --help.
  """

  config_cls: type
  build: Callable[..., Any]
  defaults: Dict[str, Any] = dataclasses.field(default_factory=dict)
  description: str = ""


SYNTHESIS = Registry(
    "synthesis method",
    hint="Synthesis methods register in their module under tfcondense/methods/ "
         "(idc.py, dm.py, dc.py, mtt.py, kip.py).")

#: Selection methods: ``fn(source, ipc, seed, **options) -> (images, labels, meta)``,
#: registered with ``@SELECTION.register(name)`` in their module
#: (tfcondense/methods/selection.py); `tfcondense.methods.select` runs them.
SELECTION = Registry(
    "selection method",
    hint="Selection methods register in their module (tfcondense/methods/selection.py).")


def register(name: str, config_cls: type, build: Callable[..., Any],
             description: str = "", **defaults) -> None:
  """Registers a synthesis method under `name`."""
  SYNTHESIS.register(name)(SynthesisSpec(config_cls, build, dict(defaults), description))


def fold(seed, *salts) -> tf.Tensor:
  """`stateless_fold_in` of each salt in turn (one seed folded per step / class / op)."""
  for s in salts:
    seed = tf.random.experimental.stateless_fold_in(seed, s)
  return seed


def cross_entropy(logits, labels) -> tf.Tensor:
  """Mean sparse softmax cross-entropy, computed in float32."""
  logits = tf.cast(logits, tf.float32)
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.cast(labels, tf.int32), logits))


def normalised_lr(lr: float, std) -> tf.Tensor:
  """The stored-pixel learning rate equal to an SGD step of `lr` on normalised images.

  The reference code of DC / DSA (Zhao et al., ICLR 2021 / ICML 2021), DM (Zhao & Bilen,
  WACV 2023), MTT (Cazenavette et al., CVPR 2022), and IDC on speech (Kim et al., ICML
  2022, standardised spectrograms) keeps its synthetic images normalised,
  z = (x - mean) / std, and publishes learning rates for z; tfcondense stores pixels x.
  With dL/dx = (dL/dz) / std and x = mean + std * z, the step z -= lr * dL/dz is
  x -= lr * std**2 * dL/dx, so this returns lr * std**2 per channel (shape (C,),
  broadcasting over NHWC) and the published values keep their meaning.

  Args:
    lr: the learning rate in normalised units.
    std: the source's per-channel std (a sequence of C floats).

  Returns:
    A float32 tensor of shape (C,).
  """
  return float(lr) * tf.square(tf.constant(std, tf.float32))


def fresh_seed(seed: int, salt: int, index: int) -> int:
  """A Python int seed for `models.initialize` derived statelessly from (seed, salt, index).

  `stateless_fold_in(s, d)` returns `[hash(s), d]`: its first element ignores `d`, so
  a constant is folded in after `index` and the first element of that is taken.
  """
  s = fold(tf.constant([seed, salt], tf.int64), index, 0)
  return int(s[0].numpy()) % (2**31 - 1)


class RealData:
  """The source's training images in one non-trainable variable, sampled statelessly.

  Kept as a variable (not checkpointed, not baked into graphs as a constant), with a
  per-class index table padded with -1, so per-class batches are drawn inside
  `tf.function`s by `top_k` of stateless uniform keys (without replacement, as the
  reference's `randperm(n)[:k]`).
  """

  def __init__(self, source):
    self.source = source
    self.num_classes = source.num_classes
    self.images = tf.Variable(source.train_images, trainable=False, name="real_images")
    self.labels = tf.constant(source.train_labels, tf.int32)
    counts = source.class_counts()
    table = np.full((self.num_classes, counts.max()), -1, np.int64)
    for c in range(self.num_classes):
      table[c, :counts[c]] = source.class_indices(c)
    self.class_table = tf.constant(table)
    self.mean = tf.constant(source.mean, tf.float32)
    self.std = tf.constant(source.std, tf.float32)
    self.size = int(len(source.train_labels))

  def normalize(self, x: tf.Tensor) -> tf.Tensor:
    return (x - tf.cast(self.mean, x.dtype)) / tf.cast(self.std, x.dtype)

  def class_batch(self, c, n: int, seed) -> tf.Tensor:
    """`n` distinct random images of class `c` ([n, H, W, C], unnormalised).

    `n` larger than the class takes the whole class (fewer rows come back).
    """
    row = self.class_table[c]
    keys = tf.where(row >= 0, tf.random.stateless_uniform(tf.shape(row), seed), -1.0)
    k = tf.minimum(n, tf.reduce_sum(tf.cast(row >= 0, tf.int32)))
    pos = tf.math.top_k(keys, k=k, sorted=False).indices
    return tf.gather(self.images, tf.gather(row, pos))

  def random_batch(self, n: int, seed):
    """(`n` images drawn uniformly with replacement, their labels)."""
    idx = tf.random.stateless_uniform([n], seed, 0, self.size, dtype=tf.int64)
    return tf.gather(self.images, idx), tf.gather(self.labels, idx)


def siamese_class_pair(aug, real: RealData, synthetic, c, n_real: int, seed):
  """Class `c`'s real batch and formed synthetic images, normalised, under ONE DSA draw.

  The siamese augmentation of DSA / DM: `aug.sample(1, ...)` is shared by both
  batches. Returns (real [<=n_real, H, W, C], synthetic [k, H, W, C]).
  """
  params = aug.sample(1, fold(seed, 1))
  x_real = aug.apply(real.normalize(real.class_batch(c, n_real, fold(seed, 2))), params)
  x_syn = aug.apply(real.normalize(synthetic.formed_class(c)), params)
  return x_real, x_syn


def make_synthetic(source, cfg, init_options: Optional[Dict[str, Any]] = None):
  """A SyntheticSet from a config with ipc, init, seed and optional formation fields."""
  name = getattr(cfg, "formation", None) or "identity"
  factor = int(getattr(cfg, "factor", 1))
  form = formation_lib.make_formation(name, factor, **dict(getattr(cfg, "formation_options", ())))
  form.check_image_shape(source.image_shape)
  return synthetic_lib.SyntheticSet.initialize(source, cfg.ipc, form, init=cfg.init,
                                               seed=cfg.seed, **(init_options or {}))
