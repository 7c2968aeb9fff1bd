"""Early-stage model pools and model augmentation (Zhang et al., CVPR 2023,
"Accelerating Dataset Distillation via Model Augmentation", Acc-DD).

Gradient matching (IDC) and distribution matching (DM) spend most of a short budget
on freshly initialised networks. Acc-DD instead trains a small pool of networks
briefly on the real data once, and at every outer iteration starts from one pool
member moved a little along two random directions:

* the pool (`ensure_pool`): `size` networks (default 5) with distinct initialisation
  seeds, each trained for `epochs` epochs (default 2, their CIFAR setting) on the real
  data with IDC's network update (per-sample `color_crop` augmentation, CutMix with
  p = 0.5, SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64). A pool lives in
  one directory per (source fingerprint, model, pool settings) (`pool_directory`),
  shared by every run and cell; it is built one network at a time, each member's
  weights written atomically (`member_000.npz`, ...), so a killed build resumes at
  the first missing member and gives the same pool as an uninterrupted one;
* model augmentation (`perturb`): theta <- theta + a d1 + b d2 with d1, d2 Gaussian
  directions each rescaled filter by filter to the norm of that filter of theta (the
  filter normalisation of Li et al., NeurIPS 2018, "Visualizing the Loss Landscape of
  Neural Nets"); weights of rank < 2 (biases, normalisation scales and shifts) get no
  perturbation; |a|, |b| ~ U[0.01, 0.09] with independent random signs.

Everything is a function of explicit seeds: member i starts from
`models.initialize(model, member_seed(seed, i))`, its batches fold (seed, i, epoch,
step) in, and a user's draws (`ModelPool.draw`, `perturb`) fold their own step in.
Written from the paper's description; no code of the authors' repository is used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfcondense import atomic
from tfcondense import fileio
from tfcondense import progress as progress_lib
from tfcondense import seeds
from tfcondense.augment import mix
from tfcondense.augment import ops as dsa_ops
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base

#: Where pools go when no directory is given: $TFCONDENSE_POOL_DIR, else this.
DEFAULT_ROOT = os.path.join("~", ".cache", "tfcondense", "pools")
ENV_VAR = "TFCONDENSE_POOL_DIR"
MANIFEST = "pool.json"
MEMBER = "member_{:03d}.npz"
#: Bumped when the way members are trained changes (part of the pool key).
VERSION = 1

# Salts (tfcondense/seeds.py): member i's initialisation (fresh_seed(seed, ., i)); the
# root [seed, SALT_ROOT] into which member i's epoch permutations, augmentation and
# CutMix fold SALT_MEMBER_BATCHES; folded into perturb's key: the Gaussian directions
# (variable, direction), |a|, |b| and their signs.
SALT_ROOT = seeds.salt("pool.root")
SALT_MEMBER_INIT = seeds.salt("pool.member_init")
SALT_MEMBER_BATCHES = seeds.salt("pool.member_batches")
SALT_DIRECTION = seeds.salt("pool.direction")
SALT_COEFFICIENT = seeds.salt("pool.coefficient")
SALT_SIGN = seeds.salt("pool.sign")


@dataclasses.dataclass(frozen=True)
class PoolConfig:
  """How a pool is trained; every field is part of the pool's key.

  Attributes:
    size: networks in the pool (Acc-DD: 5).
    epochs: epochs over the real training set per network (Acc-DD CIFAR ConvNet: 2).
    seed: the pool's seed (members use distinct seeds derived from it). Independent
      of a condensation run's seed, so that runs with other seeds share the pool.
    model, model_options: the network (registry name, options as sorted pairs).
    precision: "float32" or "mixed_bfloat16" (the Keras dtype policy of the network).
    batch: real images per SGD step.
    lr, momentum, weight_decay: SGD (PyTorch convention, as IDC's network update).
    strategy: per-sample DSA augmentation of the batches (IDC's `net_strategy`).
    cutmix_prob, cutmix_beta: CutMix of the batches.
  """

  size: int = 5
  epochs: int = 2
  seed: int = 0
  model: str = "convnet3"
  model_options: Tuple[Tuple[str, Any], ...] = ()
  precision: str = "float32"
  batch: int = 64
  lr: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 5e-4
  strategy: str = "color_crop"
  cutmix_prob: float = 0.5
  cutmix_beta: float = 1.0

  def check(self) -> None:
    if self.size < 1 or self.epochs < 1 or self.batch < 1:
      raise InvalidConfigError(
          f"a model pool needs size, epochs and batch >= 1, got {self.size}, "
          f"{self.epochs}, {self.batch}")

  def as_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["model_options"] = dict(self.model_options)
    return d


def default_root() -> str:
  """$TFCONDENSE_POOL_DIR, else ~/.cache/tfcondense/pools."""
  return os.path.expanduser(os.environ.get(ENV_VAR) or DEFAULT_ROOT)


def pool_key(source, config: PoolConfig) -> Dict[str, Any]:
  """What identifies a pool: the training data's fingerprint, the settings, VERSION."""
  return dict(data=source.fingerprint(), pool=config.as_dict(), version=VERSION)


def pool_directory(source, config: PoolConfig, root: Optional[str] = None) -> str:
  """`<root>/<source>-<model>-k<size>-e<epochs>-<hash of pool_key>`."""
  text = json.dumps(pool_key(source, config), sort_keys=True)
  digest = hashlib.sha1(text.encode()).hexdigest()[:12]
  name = f"{source.name}-{config.model}-k{config.size}-e{config.epochs}-{digest}"
  return os.path.join(root or default_root(), name)


def member_seed(seed: int, index: int) -> int:
  """The `models.initialize` seed of member `index` (a Python int)."""
  return base.fresh_seed(seed, SALT_MEMBER_INIT, index)


def build_network(config: PoolConfig, source):
  """The pool's network architecture under its dtype policy (weights are redrawn per
  member by `ensure_pool`)."""
  return training.build_with_precision(config.precision, config.model, source.image_shape,
                                       source.num_classes, seed=config.seed,
                                       **dict(config.model_options))


class _Trainer:
  """Trains one network in place, epoch by epoch, as IDC's network update does."""

  def __init__(self, model, source, config: PoolConfig):
    self.model = model
    self.config = config
    self.real = base.RealData(source)
    self.variables = list(model.trainable_variables)
    self.buffers = training.zeros_like_all(self.variables)
    self.aug = dsa_ops.DSA(config.strategy, mode="all")
    self.steps = -(-self.real.size // config.batch)
    self._epoch_fn = tf.function(self._epoch)

  def _epoch(self, seed):
    """One pass over a stateless permutation of the real data."""
    cfg = self.config
    size = self.real.size
    perm = tf.argsort(tf.random.stateless_uniform([size], base.fold(seed, 0)))
    for i in tf.range(self.steps):
      idx = perm[i * cfg.batch:tf.minimum((i + 1) * cfg.batch, size)]
      self._step(idx, base.fold(seed, 1, tf.cast(i, tf.int64)))
    return tf.constant(0)

  @training.untraced_by_autograph
  def _step(self, idx, s):
    """One SGD step on the real images `idx`, augmented and CutMixed with seed `s`."""
    cfg = self.config
    x = self.aug(self.real.normalize(tf.gather(self.real.images, idx)), base.fold(s, 1))
    x, ya, yb, lam = mix.cutmix(x, tf.gather(self.real.labels, idx), base.fold(s, 2),
                                prob=cfg.cutmix_prob, beta=cfg.cutmix_beta)
    with tf.GradientTape() as tape:
      loss = mix.cutmix_loss(self.model(x, training=True), ya, yb, lam)
    training.sgd_step(self.variables, self.buffers, tape.gradient(loss, self.variables),
                      cfg.lr, cfg.momentum, cfg.weight_decay)

  def train_member(self, index: int, bar=None) -> None:
    from tfcondense.models import initialize  # pylint: disable=g-import-not-at-top
    cfg = self.config
    initialize(self.model, member_seed(cfg.seed, index))
    training.reset_all(self.buffers)
    root = tf.constant([cfg.seed, SALT_ROOT], tf.int64)
    for epoch in range(cfg.epochs):
      self._epoch_fn(base.fold(root, SALT_MEMBER_BATCHES, index, epoch))
      if bar is not None:
        bar.update(1)


def _read_manifest(directory: str) -> Dict[str, Any]:
  path = os.path.join(directory, MANIFEST)
  return fileio.read_json(path) if fileio.exists(path) else {}


def member_path(directory: str, index: int) -> str:
  return os.path.join(directory, MEMBER.format(index))


def ensure_pool(source, config: PoolConfig, root: Optional[str] = None, *, model=None,
                show_progress: bool = True) -> "ModelPool":
  """The pool of `config` for `source`, training the members that are missing.

  Members already on disk are kept (a killed build resumes with the first missing
  one; a member is trained from its own seed, so the pool equals an uninterrupted
  build). The directory's `pool.json` records the key and each member's training
  seconds (`ModelPool.minutes`).

  Args:
    source: the SourceData (real training images).
    config: a PoolConfig.
    root: the folder holding pools (None: `default_root()`); local or a tf.io.gfile URL.
    model: a built network of `config.model` to train in place (e.g. the matching
      network of the caller; its weights are overwritten); None builds one.
    show_progress: a progress bar over the epochs still to train.

  Returns:
    A ModelPool over the directory.

  Raises:
    InvalidConfigError: bad settings, or the directory holds another pool.
  """
  config.check()
  directory = pool_directory(source, config, root)
  key = json.loads(json.dumps(pool_key(source, config), sort_keys=True))
  manifest = _read_manifest(directory)
  if manifest and manifest.get("key") != key:
    raise InvalidConfigError(f"{directory} holds a pool of other settings; remove it")
  seconds = dict(manifest.get("seconds", {}))
  todo = [i for i in range(config.size) if not fileio.exists(member_path(directory, i))]
  if todo:
    model = model if model is not None else build_network(config, source)
    trainer = _Trainer(model, source, config)
    with progress_lib.progress(len(todo) * config.epochs, "model pool",
                               enabled=show_progress, unit="epoch") as bar:
      for i in todo:
        t0 = time.perf_counter()
        trainer.train_member(i, bar)
        arrays = {f"w{j:03d}": np.asarray(v.numpy()) for j, v in enumerate(model.weights)}
        atomic.write_bytes(member_path(directory, i), fileio.npz_bytes(**arrays))
        seconds[str(i)] = round(time.perf_counter() - t0, 2)
        atomic.write_json(os.path.join(directory, MANIFEST), dict(
            key=key, seconds=seconds, variables=[v.path for v in model.weights]))
  return ModelPool(directory, config.size)


class ModelPool:
  """The members of a built pool, loaded into a network on demand.

  Args:
    directory: a folder written by `ensure_pool`.
    size: members to use (0 .. size - 1).
  """

  def __init__(self, directory: str, size: int):
    self.directory = directory
    self.size = int(size)
    missing = [i for i in range(self.size) if not fileio.exists(member_path(directory, i))]
    if missing:
      raise InvalidConfigError(f"model pool {directory} lacks members {missing}; build it "
                               "with tfcondense.methods.pool.ensure_pool")
    self._members: Dict[int, List[np.ndarray]] = {}

  @property
  def minutes(self) -> Optional[float]:
    """Minutes spent training the members (None where a member's time is unknown)."""
    seconds = _read_manifest(self.directory).get("seconds", {})
    if any(str(i) not in seconds for i in range(self.size)):
      return None
    return round(sum(float(seconds[str(i)]) for i in range(self.size)) / 60, 2)

  def weights(self, index: int) -> List[np.ndarray]:
    """Member `index`'s arrays, in the order of `model.weights` (cached)."""
    if index not in self._members:
      arrays = fileio.load_npz(member_path(self.directory, index))
      self._members[index] = [arrays[k] for k in sorted(arrays)]
    return self._members[index]

  def load(self, model, index: int) -> None:
    """Assigns member `index`'s weights to `model` (same architecture)."""
    arrays = self.weights(int(index))
    if len(arrays) != len(model.weights) or any(
        tuple(a.shape) != tuple(v.shape) for a, v in zip(arrays, model.weights)):
      raise InvalidConfigError(f"model pool {self.directory} was trained for another "
                               "architecture than this network")
    for v, a in zip(model.weights, arrays):
      v.assign(tf.cast(a, v.dtype))

  def draw(self, seed) -> int:
    """A member index drawn uniformly from a stateless seed ([2] int)."""
    return int(tf.random.stateless_uniform([], seed, 0, self.size, dtype=tf.int64))


def filter_normalized_direction(weight: tf.Tensor, seed) -> tf.Tensor:
  """A Gaussian direction shaped like `weight` whose every filter (slice along the
  last, output axis: a conv kernel's [kh, kw, in] for one output channel, a dense
  kernel's column) has the norm of the same filter of `weight` (Li et al. 2018)."""
  w = tf.convert_to_tensor(weight, tf.float32)
  d = tf.random.stateless_normal(tf.shape(w), seed, dtype=tf.float32)
  axes = list(range(len(w.shape) - 1))
  w_norm = tf.sqrt(tf.reduce_sum(tf.square(w), axis=axes, keepdims=True))
  d_norm = tf.sqrt(tf.reduce_sum(tf.square(d), axis=axes, keepdims=True))
  return d * w_norm / (d_norm + 1e-10)


def perturbation_coefficients(seed, low: float = 0.01, high: float = 0.09) -> tf.Tensor:
  """(a, b) with |a|, |b| ~ U[low, high] and independent random signs (float32 [2])."""
  magnitude = tf.random.stateless_uniform([2], base.fold(seed, SALT_COEFFICIENT), low, high)
  sign = tf.where(tf.random.stateless_uniform([2], base.fold(seed, SALT_SIGN)) < 0.5,
                  -1.0, 1.0)
  return magnitude * sign


def perturb(variables: Sequence[tf.Variable], seed, low: float = 0.01,
            high: float = 0.09) -> Tuple[float, float]:
  """Model augmentation: theta <- theta + a d1 + b d2, in place.

  d1, d2 are `filter_normalized_direction`s drawn per variable; variables of rank < 2
  (biases, normalisation scales and shifts) are left as they are.

  Args:
    variables: the network's trainable variables.
    seed: a [2] int stateless seed (fold the outer iteration in before).
    low, high: the range of |a| and |b|.

  Returns:
    (a, b) as Python floats.
  """
  ab = perturbation_coefficients(seed, low, high)
  for j, v in enumerate(variables):
    if len(v.shape) < 2:
      continue
    d1 = filter_normalized_direction(v, base.fold(seed, SALT_DIRECTION, j, 0))
    d2 = filter_normalized_direction(v, base.fold(seed, SALT_DIRECTION, j, 1))
    v.assign_add(tf.cast(ab[0] * d1 + ab[1] * d2, v.dtype))
  return float(ab[0]), float(ab[1])
