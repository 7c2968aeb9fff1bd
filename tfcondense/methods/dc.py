"""DC (Zhao, Mopuri & Bilen, ICLR 2021, "Dataset Condensation with Gradient Matching")
and DSA (Zhao & Bilen, ICML 2021, "... with Differentiable Siamese Augmentation").

One iteration (the papers' K = 1000 of them): a freshly initialised network; then
`outer_loop` times: for every class, the gradient-matching loss between a real batch
of that class (256 images) and the class's synthetic images, summed over classes,
and ONE SGD step (momentum 0.5) on the synthetic images; then, except after the last
outer loop, the network is trained `inner_loop` epochs on the SYNTHETIC set (batch
256, SGD lr 0.01). The distance is DC's per-output-channel cosine over every layer
(biases and normalisation parameters contribute 0). DSA adds one siamese DSA draw per
class to the matching and per-sample DSA to the network's training on the synthetic
set.

The papers define (outer_loop, inner_loop) only for IPC 1, 10, 20, 30, 40, 50:
(1, 1), (10, 50), (20, 25), (30, 20), (40, 15), (50, 10). Other IPCs, which the
reference code rejects, use our rule `outer_loop = min(ipc, 50)`,
`inner_loop = clip(round(500 / ipc), 1, 50)`: it reproduces 1, 10, 20 and 50 exactly,
keeps roughly 500 network epochs per iteration, and stays finite beyond 50.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from tfcondense import hardware
from tfcondense import matching
from tfcondense import seeds
from tfcondense.augment import ops as dsa_ops
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base

PAPER_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15),
               50: (50, 10)}
DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"

# Salts (tfcondense/seeds.py): the root [seed, .] of the per-step draws, and of the
# fresh network of each step.
SALT_ROOT = seeds.salt("dc.root")
SALT_MODEL_INIT = seeds.salt("dc.model_init")


def loops_for(ipc: int) -> Tuple[int, int]:
  """(outer_loop, inner_loop) of DC / DSA for `ipc` (the papers' table, else our rule)."""
  if ipc in PAPER_LOOPS:
    return PAPER_LOOPS[ipc]
  return min(ipc, 50), int(min(50, max(1, round(500 / ipc))))


@dataclasses.dataclass(frozen=True)
class DCConfig:
  """DC / DSA settings (None fields take the papers' values for the IPC).

  Attributes:
    ipc: stored images per class.
    init: random (default), noise, kcenter, herding.
    model, model_options: the network (ConvNet-3, instance norm).
    iterations: the papers' K (1000).
    outer_loop, inner_loop: see the module docstring (None: by IPC).
    real_per_class: real images per class per matching step (256).
    strategy: DSA strategy ("none" = DC).
    metric, match_layers: "cos" over "all" layers (DC's distance).
    lr_img, momentum_img: SGD on the images (0.1, 0.5); lr_img is in the reference's
      units, a step on the normalised images (`base.normalised_lr`: lr_img * std**2
      on the stored pixels).
    lr_net, net_batch: SGD on the network (0.01, no momentum), batch on the synthetic set.
    precision: "float32" or "mixed_bfloat16" (the network only).
    seed: everything random derives from it.
  """

  ipc: int = 10
  init: str = "random"
  model: str = "convnet3"
  model_options: Tuple[Tuple[str, Any], ...] = ()
  iterations: int = 1000
  outer_loop: Optional[int] = None
  inner_loop: Optional[int] = None
  real_per_class: int = 256
  strategy: str = "none"
  metric: str = "cos"
  match_layers: str = "all"
  lr_img: float = 0.1
  momentum_img: float = 0.5
  lr_net: float = 0.01
  net_batch: int = 256
  precision: str = "float32"
  seed: int = 0

  def resolve(self, source_name: str) -> "DCConfig":
    del source_name
    outer, inner = loops_for(self.ipc) if self.ipc >= 1 else (1, 1)
    cfg = dataclasses.replace(self, outer_loop=self.outer_loop or outer,
                              inner_loop=self.inner_loop or inner)
    cfg.check()
    return cfg

  def check(self) -> None:
    if min(self.ipc, self.iterations, self.real_per_class, self.net_batch) < 1:
      raise InvalidConfigError("ipc, iterations, real_per_class and net_batch must be >= 1")
    if (self.outer_loop or 1) < 1 or (self.inner_loop or 1) < 1:
      raise InvalidConfigError("outer_loop and inner_loop must be >= 1")
    matching.DISTANCES.get(self.metric)
    dsa_ops.parse_strategy(self.strategy)
    if self.precision not in hardware.PRECISIONS:
      raise InvalidConfigError(
          f"precision must be one of {hardware.PRECISIONS}, got {self.precision!r}")

  def as_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["model_options"] = dict(self.model_options)
    return d


class DC:
  """DC / DSA driven by `tfcondense.engine.run` (one step = one of the K iterations)."""

  def __init__(self, source, config: DCConfig, synthetic=None,
               init_options: Optional[Dict[str, Any]] = None):
    cfg = config.resolve(source.name)
    source.check_ipc(cfg.ipc)
    self.config = cfg
    self.synthetic = synthetic or base.make_synthetic(source, cfg, init_options)
    self.num_classes = source.num_classes
    self.total_steps = cfg.iterations
    self.model = training.build_with_precision(cfg.precision, cfg.model, source.image_shape,
                                               source.num_classes, seed=cfg.seed,
                                               **dict(cfg.model_options))
    self.matched = matching.matched_variables(self.model, cfg.match_layers)
    self.real = base.RealData(source)
    self._aug = dsa_ops.DSA(cfg.strategy, mode="all")
    self._buffers = training.zeros_like_all(self.synthetic.trainable_variables)
    # The reference steps normalised images: lr_img on them is lr_img * std^2 on pixels.
    self.image_lr = base.normalised_lr(cfg.lr_img, source.std)
    self._seed = tf.constant([cfg.seed, SALT_ROOT], tf.int64)
    n = int(self.synthetic.images.shape[0])
    self._net_batch = min(cfg.net_batch, n)
    self._batches_per_epoch = math.ceil(n / self._net_batch)
    self._match_fn = tf.function(self._match_all, autograph=False)  # no tensor control flow
    self._net_fn = tf.function(self._train_on_synthetic)

  def checkpoint_items(self) -> Dict[str, Any]:
    # One step is a whole iteration with a fresh network, so the network is not state.
    return {"synthetic": self.synthetic.trainable_variables,
            "synthetic_momentum": self._buffers}

  def image_summaries(self) -> Dict[str, Any]:
    return {"stored": tf.convert_to_tensor(self.synthetic.images[:32])}

  def class_match_loss(self, c, seed) -> tf.Tensor:
    """Class `c`'s matching loss (call under a tape watching the stored images)."""
    real, syn = base.siamese_class_pair(self._aug, self.real, self.synthetic, c,
                                        self.config.real_per_class, seed)
    y_real = tf.fill(tf.shape(real)[:1], tf.cast(c, tf.int32))
    y_syn = tf.fill(tf.shape(syn)[:1], tf.cast(c, tf.int32))
    return matching.gradient_match(self.model, self.matched, real, y_real, syn, y_syn,
                                   self.config.metric)

  def _match_all(self, step, outer):
    """Loss summed over classes, then one SGD step on the images (as DC)."""
    seed = base.fold(self._seed, step, outer, 1)
    variables = self.synthetic.trainable_variables
    with tf.GradientTape() as tape:
      loss = tf.add_n([self.class_match_loss(c, base.fold(seed, c))
                       for c in range(self.num_classes)])
    grads = tape.gradient(loss, variables)
    training.sgd_step(variables, self._buffers, grads, self.image_lr,
                      self.config.momentum_img)
    return loss / self.num_classes

  def _train_on_synthetic(self, step, outer):
    """`inner_loop` epochs of SGD on the synthetic set (DSA: per-sample augmentation)."""
    cfg = self.config
    seed = base.fold(self._seed, step, outer, 2)
    x_all, y_all = self.synthetic.formed()
    x_all = tf.stop_gradient(x_all)
    n = tf.shape(y_all)[0]
    variables = self.model.trainable_variables
    for e in tf.range(cfg.inner_loop):
      perm = tf.argsort(tf.random.stateless_uniform([n], base.fold(seed, e)))
      for b in tf.range(self._batches_per_epoch):
        idx = perm[b * self._net_batch:(b + 1) * self._net_batch]
        x = self.real.normalize(tf.gather(x_all, idx))
        x = self._aug(x, base.fold(seed, e, b, 3))
        with tf.GradientTape() as tape:
          loss = base.cross_entropy(self.model(x, training=True), tf.gather(y_all, idx))
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
          if g is not None:
            v.assign_sub(cfg.lr_net * g)
    return tf.constant(0)

  def step(self, step: int) -> Dict[str, float]:
    from tfcondense.models import initialize  # pylint: disable=g-import-not-at-top
    cfg = self.config
    initialize(self.model, base.fresh_seed(cfg.seed, SALT_MODEL_INIT, step))
    s = tf.constant(step, tf.int64)
    total = 0.0
    for ol in range(cfg.outer_loop):
      o = tf.constant(ol, tf.int64)
      total += float(self._match_fn(s, o))
      if ol < cfg.outer_loop - 1:
        self._net_fn(s, o)
    return {"loss": total / cfg.outer_loop}


def _build(source, config, init_options):
  return DC(source, config, init_options=init_options)


base.register("dc", DCConfig, _build, "DC (Zhao et al. 2021): gradient matching")
base.register("dsa", DCConfig, _build,
              "DSA (Zhao & Bilen 2021): DC with differentiable siamese augmentation",
              strategy=DSA_STRATEGY)
