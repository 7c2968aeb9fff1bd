"""DM: distribution matching (Zhao & Bilen, WACV 2023, "Dataset Condensation with
Distribution Matching"), and DM through a multi-formation (DM+MF, Kim et al. 2022).

Per iteration a freshly initialised, untrained ConvNet embeds a real batch of each
class and that class's synthetic (formed) images, both augmented with ONE shared DSA
draw per class (siamese); the loss is the sum over classes of the squared distance
between the mean embeddings, and one SGD step (lr 1.0, momentum 0.5, as the
reference) updates the stored images. The reference steps NORMALISED images, so the
step on our stored pixels is lr_img * std**2 per channel (`base.normalised_lr`). No
network is trained, which makes DM the cheapest synthesis method per iteration.

`model_pool` K > 0 draws the embedder of every iteration from an early-stage pool of
K networks trained on the real data instead (as IDM, Zhao et al., CVPR 2023,
"Improved Distribution Matching for Dataset Condensation", draws its embedders from
a queue of partly trained networks): `tfcondense.methods.pool`, the same pool IDC's
`pool` arm uses (same source, model, precision and pool settings: one directory),
each draw perturbed by the model augmentation of Acc-DD (Zhang et al., CVPR 2023)
unless `pool_perturb` is False. With `dm_mf` (factor 2) this is the multi-formation
arm of issue 39.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from tfcondense import data
from tfcondense import hardware
from tfcondense import seeds
from tfcondense.augment import ops as dsa_ops
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base
from tfcondense.methods import pool as pool_lib

# Salts (tfcondense/seeds.py): the root [seed, SALT_ROOT] of the per-step draws; the
# fresh embedder of each step; folded into the root with step i: which pool member
# embeds step i, and its model augmentation.
SALT_ROOT = seeds.salt("dm.root")
SALT_MODEL_INIT = seeds.salt("dm.model_init")
SALT_POOL_DRAW = seeds.salt("dm.pool_draw")
SALT_PERTURB = seeds.salt("dm.perturb")


@dataclasses.dataclass(frozen=True)
class DMConfig:
  """DM / DM+MF settings (reference: 20,000 iterations, 256 real images per class).

  Attributes:
    ipc: stored images per class.
    factor: multi-formation factor (1 = plain DM; DM+MF uses 2).
    formation, formation_options: formation name (identity / uniform / ...) and options.
    init: random (default for factor 1), mix (default for factor > 1), noise, kcenter,
      herding.
    model, model_options: the embedding network (None: ConvNet-3 with instance norm;
      ConvNet-4 for speech).
    iterations: SGD steps on the images (one per step, a fresh network each).
    real_per_class: real images per class per step.
    strategy: siamese DSA strategy.
    lr_img, momentum_img: SGD on the stored images; lr_img in the reference's units
      (a step on the normalised images, lr_img * std**2 on the stored pixels; learnable
      formation weights take lr_img itself).
    precision: "float32" or "mixed_bfloat16" (the network only).
    seed: everything random derives from it.
    model_pool: K > 0: each iteration's embedder is a member of a pool of K networks
      trained `pool_epochs` epochs on the real data (`pool.ensure_pool` with IDC's
      network-update recipe, from `pool_seed`, in `pool_dir`, None:
      `pool.default_root()`), perturbed (`pool.perturb`, |a|, |b| in `perturb_range`)
      when `pool_perturb`; 0: a fresh network per iteration (DM).
  """

  ipc: int = 10
  factor: int = 1
  formation: Optional[str] = None
  formation_options: Tuple[Tuple[str, Any], ...] = ()
  init: Optional[str] = None
  model: Optional[str] = None
  model_options: Tuple[Tuple[str, Any], ...] = ()
  iterations: int = 20000
  real_per_class: int = 256
  strategy: str = "color_crop_cutout_flip_scale_rotate"
  lr_img: float = 1.0
  momentum_img: float = 0.5
  precision: str = "float32"
  seed: int = 0
  model_pool: int = 0
  pool_epochs: int = 2
  pool_seed: int = 0
  pool_dir: Optional[str] = None
  pool_perturb: bool = True
  perturb_range: Tuple[float, float] = (0.01, 0.09)

  def resolve(self, source_name: str) -> "DMConfig":
    """Fills None fields from the source's `SourceInfo`: a spectrogram source gets its
    evaluation network (ConvNet-4, as IDC's speech code) and time-axis formation; every
    other source ConvNet-3 and uniform tiles."""
    info = data.info_or_default(source_name)
    spectrogram = info.kind == "spectrogram"
    cfg = dataclasses.replace(
        self, formation=self.formation or ("identity" if self.factor == 1
                                           else "time" if spectrogram else "uniform"),
        init=self.init or ("mix" if self.factor > 1 else "random"),
        model=self.model or (info.eval_model if spectrogram else "convnet3"))
    cfg.check()
    return cfg

  def check(self) -> None:
    if self.ipc < 1 or self.factor < 1 or self.iterations < 1 or self.real_per_class < 1:
      raise InvalidConfigError("ipc, factor, iterations and real_per_class must be >= 1")
    if not self.lr_img > 0:
      raise InvalidConfigError(f"lr_img must be positive, got {self.lr_img}")
    if self.precision not in hardware.PRECISIONS:
      raise InvalidConfigError(
          f"precision must be one of {hardware.PRECISIONS}, got {self.precision!r}")
    if self.model_pool < 0:
      raise InvalidConfigError(f"model_pool must be >= 0, got {self.model_pool}")

  def pool_config(self) -> pool_lib.PoolConfig:
    """The pool's settings: IDC's network-update recipe on this model and precision."""
    return pool_lib.PoolConfig(size=self.model_pool, epochs=self.pool_epochs,
                               seed=self.pool_seed, model=self.model,
                               model_options=self.model_options, precision=self.precision)

  def as_dict(self) -> Dict[str, Any]:
    """JSON-ready fields; the pool fields only with a pool (plain DM records as before)."""
    d = dataclasses.asdict(self)
    d["formation_options"] = dict(self.formation_options)
    d["model_options"] = dict(self.model_options)
    d["perturb_range"] = list(self.perturb_range)
    if not self.model_pool:
      for k in ("model_pool", "pool_epochs", "pool_seed", "pool_dir", "pool_perturb",
                "perturb_range"):
        del d[k]
    return d


def mean_embedding_distance(embed, real: tf.Tensor, syn: tf.Tensor) -> tf.Tensor:
  """||mean(embed(real)) - mean(embed(syn))||^2 (float32), DM's per-class loss."""
  er = tf.reduce_mean(tf.cast(embed(real, training=True), tf.float32), axis=0)
  es = tf.reduce_mean(tf.cast(embed(syn, training=True), tf.float32), axis=0)
  return tf.reduce_sum(tf.square(er - es))


class DM:
  """The DM method object driven by `tfcondense.engine.run` (one step = one iteration).

  Args:
    source: the SourceData.
    config: a DMConfig (resolved here).
    synthetic: an initialised SyntheticSet (built from the config when None).
    init_options: options for the initialiser (e.g. cache_dir for kcenter).
  """

  def __init__(self, source, config: DMConfig, synthetic=None,
               init_options: Optional[Dict[str, Any]] = None):
    from tfcondense.models import embedding_model  # pylint: disable=g-import-not-at-top
    cfg = config.resolve(source.name)
    source.check_ipc(cfg.ipc)
    self.config = cfg
    self.synthetic = synthetic or base.make_synthetic(source, cfg, init_options)
    self.num_classes = source.num_classes
    self.total_steps = cfg.iterations
    self.model = training.build_with_precision(cfg.precision, cfg.model, source.image_shape,
                                               source.num_classes, seed=cfg.seed,
                                               **dict(cfg.model_options))
    self.embed = embedding_model(self.model)
    self.real = base.RealData(source)
    self._siamese = dsa_ops.DSA(cfg.strategy, mode="all")
    self._buffers = training.zeros_like_all(self.synthetic.trainable_variables)
    n_vars = len(self.synthetic.trainable_variables)
    self._lrs = ([base.normalised_lr(cfg.lr_img, source.std)]
                 + [cfg.lr_img] * (n_vars - 1))
    self._seed = tf.constant([cfg.seed, SALT_ROOT], tf.int64)
    self._step_fn = tf.function(self._step, autograph=False)  # no tensor control flow
    #: The pool of real-data-trained embedders (model_pool > 0), or None.
    self.pool = (pool_lib.ensure_pool(source, cfg.pool_config(), cfg.pool_dir,
                                      model=self.model) if cfg.model_pool else None)

  def checkpoint_items(self) -> Dict[str, Any]:
    return {"synthetic": self.synthetic.trainable_variables,
            "synthetic_momentum": self._buffers}

  def image_summaries(self) -> Dict[str, Any]:
    return {"stored": tf.convert_to_tensor(self.synthetic.images[:32])}

  def class_loss(self, c, seed) -> tf.Tensor:
    """Class `c`'s DM loss under one siamese draw (differentiable w.r.t. the images)."""
    real, syn = base.siamese_class_pair(self._siamese, self.real, self.synthetic, c,
                                        self.config.real_per_class, seed)
    return mean_embedding_distance(self.embed, real, syn)

  def _step(self, step):
    seed = base.fold(self._seed, step)
    variables = self.synthetic.trainable_variables
    with tf.GradientTape() as tape:
      loss = tf.add_n([self.class_loss(c, base.fold(seed, c))
                       for c in range(self.num_classes)])
    grads = tape.gradient(loss, variables)
    training.sgd_step(variables, self._buffers, grads, self._lrs,
                      self.config.momentum_img)
    return loss / self.num_classes

  def step(self, step: int) -> Dict[str, float]:
    from tfcondense.models import initialize  # pylint: disable=g-import-not-at-top
    if self.pool is not None:
      self.pool.load(self.model, self.pool.draw(base.fold(self._seed, SALT_POOL_DRAW, step)))
      if self.config.pool_perturb:
        pool_lib.perturb(self.model.trainable_variables,
                         base.fold(self._seed, SALT_PERTURB, step), *self.config.perturb_range)
    else:
      initialize(self.model, base.fresh_seed(self.config.seed, SALT_MODEL_INIT, step))
    return {"loss": self._step_fn(tf.constant(step, tf.int64))}


def _build(source, config, init_options):
  return DM(source, config, init_options=init_options)


base.register("dm", DMConfig, _build, "DM (Zhao & Bilen 2023): distribution matching")
base.register("dm_mf", DMConfig, _build,
              "DM+MF: distribution matching through multi-formation (factor 2)", factor=2)
