"""IDC and IDC-I (Kim et al., ICML 2022, "Dataset Condensation via Efficient
Synthetic-Data Parameterization"), Algorithm 1.

Per outer iteration a freshly initialised network (optionally first trained for
`pretrain_steps` on real data, as the reference does for ImageNet) and the stored
images clamped to [0, 1]; per inner iteration:

1. for each class c, one gradient-matching step on the stored images: 64 real images
   of class c and c's formed images (at most 128, randomly subsampled), both
   normalised and augmented with ONE shared DSA draw (siamese, `color_crop_cutout`);
   the distance between the network's gradients on the two batches (conv kernels,
   l1 / mse / cos summed over layers) is minimised by SGD with momentum 0.5 on the
   whole stored tensor (as the reference: one optimiser, one step per class; for
   speech the reference's lr_img is for standardised spectrograms and is mapped to
   our [0, 1] images by std**2, see `SOURCE_DEFAULTS`);
2. network steps on REAL data (64 mixed-class images per step until `n_data` images
   are seen) with per-sample `color_crop` augmentation and CutMix (p = 0.5), SGD
   lr 0.01, momentum 0.9, weight decay 5e-4.

IDC-I is the same with the identity formation (factor 1) and `random` init.

Arms (`ARMS`, config field `arm`): ways to make a short budget count, each one flag
apart from the reference schedule:

* ``plain``: Algorithm 1 as above (the default; its artifacts and config records are
  those of the versions before arms existed);
* ``pool``: every outer iteration starts from a member of an early-stage model pool,
  drawn at random and perturbed along two filter-normalised random directions (Zhang
  et al., CVPR 2023, "Accelerating Dataset Distillation via Model Augmentation";
  `tfcondense.methods.pool`); short inner loops (`inner_iterations` 10-25) then let
  1,000 inner iterations see 40-100 networks;
* ``representative``: every `representative_every` inner iterations each class's real
  batch becomes the k-means representatives of a candidate subset in the matching
  network's features (Liu et al., ICCV 2023, "DREAM: Efficient Dataset Distillation by
  Representative Matching"; `tfcondense.methods.representative`);
* ``pool+representative``: both.

Speed: the matching of all classes is ONE traced `tf.function` (the classes' real-data
gradients do not depend on the stored images, so the graph can run them ahead of the
sequential data updates), the network update another; nothing retraces across
iterations. `precision="mixed_bfloat16"` runs the network in bfloat16 (statistics
and losses in float32), about 1.3x faster on CPUs with AMX / AVX512-BF16.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Dict, Optional, Tuple

import tensorflow as tf

from tfcondense import data
from tfcondense import hardware
from tfcondense import matching
from tfcondense import seeds
from tfcondense import synthetic as synthetic_lib
from tfcondense.augment import mix
from tfcondense.augment import ops as dsa_ops
from tfcondense.methods import base
from tfcondense.methods import idc_replicated  # noqa: F401  (registers the per-replica steps)
from tfcondense.methods import pool as pool_lib
from tfcondense.methods import representative as representative_lib
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

#: Reference defaults per source (REFERENCE.md section 1): base data learning rate
#: (scaled by ipc / 10), matching distance, real images seen per network update, and
#: multi-formation factor. Sources the reference never ran use the closest kin and
#: are marked so. `lr_units="normalised"`: the reference keeps that source's synthetic
#: data normalised (speech: spectrograms standardised with the scalar train mean / std,
#: `speech/condense_speech.py`), so its lr_img is a step on normalised data and IDC
#: applies lr_img * std**2 to the stored [0, 1] images (`base.normalised_lr`); the image
#: sources' reference stores [0, 1] pixels, as we do, and their lr_img applies as is.
SOURCE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "fashion_mnist": dict(lr_img=1e-4, metric="l1", n_data=500, factor=2),
    "mnist": dict(lr_img=1e-4, metric="l1", n_data=500, factor=2),
    "digits": dict(lr_img=1e-4, metric="l1", n_data=500, factor=2),  # ours: MNIST's
    "svhn_cropped": dict(lr_img=5e-3, metric="mse", n_data=500, factor=2),
    "cifar10": dict(lr_img=5e-3, metric="mse", n_data=2000, factor=2),
    "cifar100": dict(lr_img=5e-3, metric="mse", n_data=2000, factor=2),
    "tiny_imagenet": dict(lr_img=5e-3, metric="mse", n_data=2000, factor=2),  # ours
    "imagenet_subset": dict(lr_img=3e-3, metric="l1", n_data=500, factor=3),
    # formation "time" and ConvNet-4 come from the source's SourceInfo (a spectrogram).
    "speech_commands": dict(lr_img=3e-3, lr_units="normalised", metric="l1", n_data=500,
                            factor=2, lr_net=3e-4),
}
_FALLBACK = dict(lr_img=1e-3, metric="l1", n_data=500, factor=2)


def source_defaults(source_name: str) -> Dict[str, Any]:
  """IDC's settings for a source: its `SOURCE_DEFAULTS` row (or the fallback), with a
  spectrogram source's time-axis formation and network from its `SourceInfo`."""
  d = dict(SOURCE_DEFAULTS.get(source_name, _FALLBACK))
  info = data.info_or_default(source_name)
  if info.kind == "spectrogram":
    d.setdefault("formation", "time")
    d.setdefault("model", info.eval_model)
  return d

# Salts (tfcondense/seeds.py): the root [seed, SALT_ROOT] of the per-step draws; the
# fresh network of each outer iteration; the seed of the representative refreshes
# (fresh_seed(seed, SALT_REPRESENTATIVE, 0)); folded into the root with outer iteration
# i: which pool member starts it, and its model augmentation.
SALT_ROOT = seeds.salt("idc.root")
SALT_MODEL_INIT = seeds.salt("idc.model_init")
SALT_REPRESENTATIVE = seeds.salt("idc.representative")
SALT_POOL_DRAW = seeds.salt("idc.pool_draw")
SALT_PERTURB = seeds.salt("idc.perturb")


@dataclasses.dataclass(frozen=True)
class Arm:
  """Defaults an arm gives the fields left at None.

  Attributes:
    model_pool: networks in the early-stage pool (0: fresh networks).
    representative_every: inner iterations between k-means refreshes (0: random
      real batches).
    description: one line.
  """

  model_pool: int = 0
  representative_every: int = 0
  description: str = ""


ARMS = Registry("IDC arm", hint="Arms are registered in tfcondense/methods/idc.py.")
ARMS.register("plain")(Arm(0, 0, "Algorithm 1: fresh networks, random real batches"))
ARMS.register("pool")(Arm(5, 0, "early-stage model pool + model augmentation (Acc-DD)"))
ARMS.register("representative")(Arm(0, 10, "k-means representative real batches (DREAM)"))
ARMS.register("pool+representative")(Arm(5, 10, "model pool and representative batches"))

#: The fields the arms added, with the values that leave Algorithm 1 as it was; a
#: config at these values is recorded without them (`IDCConfig.as_dict`).
_ARM_FIELDS = dict(arm="plain", model_pool=0, pool_epochs=2, pool_seed=0, pool_dir=None,
                   perturb_range=(0.01, 0.09), representative_every=0,
                   representative_candidates=256, representative_max_iter=100)


@dataclasses.dataclass(frozen=True)
class IDCConfig:
  """IDC / IDC-I settings; None fields take the source's reference default.

  Attributes:
    ipc: stored images per class.
    factor: multi-formation factor f (1 = IDC-I; None: the source's, 2 for 28-64 px
      data and 3 for ImageNet subsets).
    formation: formation name (uniform, multiscale, bound, time, learnable; None:
      identity when factor is 1, else uniform, time for speech).
    init: mix, random, noise, kcenter, herding or kmeans (DREAM's medoids, see
      `representative`) (None: mix if factor > 1 else random).
    model: matching network (registry name; None: ConvNet-3, ConvNet-4 for speech) and
      `model_options` (tuple of pairs).
    outer_iterations / inner_iterations: the loops of Algorithm 1 (2000 / 100 in the
      paper for 28-32 px data).
    real_per_class: real images per class per matching step.
    max_formed_per_class: formed images per matching step (random subset above it).
    strategy: siamese DSA strategy for matching; net_strategy: per-sample augmentation
      of the network update.
    metric: l1, mse or cos; match_layers: "kernels" (rank > 2) or "all".
    lr_img: data learning rate (None: source base * ipc / 10); momentum_img 0.5. In
      the reference's units: for speech a step on the standardised spectrograms (see
      `SOURCE_DEFAULTS`, lr_units), for images on the [0, 1] pixels.
    lr_formation: learning rate of a learnable formation's weights.
    lr_net, momentum_net, weight_decay_net, net_batch, n_data: the network update
      (lr_net None: 0.01, the reference's 3e-4 for speech).
    pretrain_steps: network steps on real data before matching, per outer iteration
      (the reference trains ImageNet-10 networks 10 epochs first).
    pretrained: paths of Keras `.weights.h5` files (see `save_pretrained`); outer
      iteration i starts from file i mod len(pretrained) instead of a fresh
      initialisation (the reference loads early-epoch checkpoints for ImageNet-100).
    cutmix_prob, cutmix_beta: CutMix in the network update.
    precision: "float32" or "mixed_bfloat16" (the network only).
    seed: everything random derives from it.
    arm: a name in `ARMS` (plain, pool, representative, pool+representative); it
      fills `model_pool` and `representative_every` where they are None.
    model_pool: K > 0 starts every outer iteration from one of K networks trained
      `pool_epochs` epochs on the real data with the network update's recipe
      (`pool.ensure_pool`, built once in `pool_dir`, None: `pool.default_root()`,
      from `pool_seed`), perturbed by `pool.perturb` with |a|, |b| in
      `perturb_range` (Acc-DD).
    representative_every: N > 0 re-clusters every N inner iterations: the real batch
      of a class is the k-means representatives of `representative_candidates` of
      its images in the matching network's features (`representative_max_iter`
      k-means iterations) (DREAM).
    feature_weight: w > 0 adds w times DREAM+'s term to each class's matching loss:
      the `metric` distance between the mean penultimate features (`models.
      embedding_model` of the matching network) of the real and of the synthetic batch
      (`matching.feature_mean_distance`; DREAM+, arXiv 2310.15052, adds it with
      weight 1). 0 (default) is Algorithm 1's loss.
  """

  ipc: int = 10
  factor: Optional[int] = None
  formation: Optional[str] = None
  formation_options: Tuple[Tuple[str, Any], ...] = ()
  init: Optional[str] = None
  model: Optional[str] = None
  model_options: Tuple[Tuple[str, Any], ...] = ()
  outer_iterations: int = 2000
  inner_iterations: int = 100
  real_per_class: int = 64
  max_formed_per_class: int = 128
  strategy: str = "color_crop_cutout"
  net_strategy: str = "color_crop"
  metric: Optional[str] = None
  match_layers: str = "kernels"
  lr_img: Optional[float] = None
  momentum_img: float = 0.5
  lr_formation: float = 1e-4
  lr_net: Optional[float] = None
  momentum_net: float = 0.9
  weight_decay_net: float = 5e-4
  net_batch: int = 64
  n_data: Optional[int] = None
  pretrain_steps: int = 0
  pretrained: Tuple[str, ...] = ()
  cutmix_prob: float = 0.5
  cutmix_beta: float = 1.0
  precision: str = "float32"
  seed: int = 0
  arm: str = "plain"
  model_pool: Optional[int] = None
  pool_epochs: int = 2
  pool_seed: int = 0
  pool_dir: Optional[str] = None
  perturb_range: Tuple[float, float] = (0.01, 0.09)
  representative_every: Optional[int] = None
  representative_candidates: int = 256
  representative_max_iter: int = 100
  feature_weight: float = 0.0

  def resolve(self, source_name: str) -> "IDCConfig":
    """Fills None fields from `SOURCE_DEFAULTS` and the arm, and checks the values."""
    d = source_defaults(source_name)
    arm = ARMS.get(self.arm)
    factor = self.factor if self.factor is not None else d["factor"]
    formation = self.formation or ("identity" if factor == 1
                                   else d.get("formation", "uniform"))
    cfg = dataclasses.replace(
        self, factor=factor, formation=formation, model=self.model or d.get("model", "convnet3"),
        init=self.init or ("mix" if factor > 1 else "random"),
        metric=self.metric or d["metric"],
        lr_img=self.lr_img if self.lr_img is not None else d["lr_img"] * self.ipc / 10,
        n_data=self.n_data or d["n_data"],
        lr_net=self.lr_net if self.lr_net is not None else d.get("lr_net", 0.01),
        arm=self.arm.lower(),
        model_pool=self.model_pool if self.model_pool is not None else arm.model_pool,
        representative_every=(self.representative_every
                              if self.representative_every is not None
                              else arm.representative_every))
    cfg.check()
    return cfg

  def check(self) -> None:
    if self.ipc < 1 or (self.factor is not None and self.factor < 1):
      raise InvalidConfigError(f"ipc and factor must be >= 1, got {self.ipc}, {self.factor}")
    if self.outer_iterations < 1 or self.inner_iterations < 1:
      raise InvalidConfigError("outer_iterations and inner_iterations must be >= 1")
    if self.metric is not None:
      matching.DISTANCES.get(self.metric)
    if self.precision not in hardware.PRECISIONS:
      raise InvalidConfigError(
          f"precision must be one of {hardware.PRECISIONS}, got {self.precision!r}")
    missing = [p for p in self.pretrained if not os.path.exists(p)]
    if missing:
      raise InvalidConfigError(f"pretrained weights not found: {missing}; make them with "
                               "tfcondense.methods.idc.save_pretrained")
    if self.lr_img is not None and not self.lr_img > 0:
      raise InvalidConfigError(f"lr_img must be positive, got {self.lr_img}")
    ARMS.get(self.arm)
    if (self.model_pool or 0) < 0 or (self.representative_every or 0) < 0:
      raise InvalidConfigError("model_pool and representative_every must be >= 0, got "
                               f"{self.model_pool}, {self.representative_every}")
    if self.model_pool and self.pretrained:
      raise InvalidConfigError("model_pool and pretrained both choose the starting "
                               "networks; set one of them")
    if not (math.isfinite(self.feature_weight) and self.feature_weight >= 0):
      raise InvalidConfigError(f"feature_weight must be >= 0, got {self.feature_weight}")
    low, high = self.perturb_range
    if not 0 <= low <= high:
      raise InvalidConfigError(f"perturb_range must be (low, high) with 0 <= low <= high, "
                               f"got {self.perturb_range}")

  @property
  def net_steps(self) -> int:
    """Network steps per inner iteration: ceil(n_data / net_batch)."""
    return math.ceil((self.n_data or 500) / self.net_batch)

  def pool_config(self) -> pool_lib.PoolConfig:
    """The model pool's settings: the network update's recipe (resolved configs)."""
    return pool_lib.PoolConfig(
        size=int(self.model_pool), epochs=self.pool_epochs, seed=self.pool_seed,
        model=self.model, model_options=self.model_options, precision=self.precision,
        batch=self.net_batch, lr=self.lr_net, momentum=self.momentum_net,
        weight_decay=self.weight_decay_net, strategy=self.net_strategy,
        cutmix_prob=self.cutmix_prob, cutmix_beta=self.cutmix_beta)

  def as_dict(self) -> Dict[str, Any]:
    """JSON-ready fields; the arm fields only where they differ from `plain` (so the
    records of plain runs, and resumes of their workdirs, are as before arms)."""
    d = dataclasses.asdict(self)
    d["formation_options"] = dict(self.formation_options)
    d["model_options"] = dict(self.model_options)
    d["pretrained"] = list(self.pretrained)
    d["perturb_range"] = list(self.perturb_range)
    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in _ARM_FIELDS.items()}
    if all(d[k] == v or (v == 0 and d[k] is None) for k, v in plain.items()):
      for k in plain:
        del d[k]
    if not d["feature_weight"]:  # records (and resumes) of runs before the field
      del d["feature_weight"]
    return d


class IDC:
  """The IDC method object driven by `tfcondense.engine.run` (one step = one inner
  iteration).

  Args:
    source: the SourceData (real training images for matching and network updates).
    config: an IDCConfig (resolved against the source here).
    synthetic: an initialised SyntheticSet (built from the config when None).
    init_options: options for the initialiser (e.g. cache_dir for kcenter).
  """

  def __init__(self, source, config: IDCConfig, synthetic=None,
               init_options: Optional[Dict[str, Any]] = None):
    cfg = config.resolve(source.name)
    self.config = cfg
    self.source = source
    source.check_ipc(cfg.ipc)
    if cfg.init == "kmeans":  # medoids in the features of the matching network
      init_options = dict(dict(model=cfg.model, model_options=cfg.model_options),
                          **(init_options or {}))
    self.synthetic = synthetic or base.make_synthetic(source, cfg, init_options)
    self.num_classes = source.num_classes
    self.total_steps = cfg.outer_iterations * cfg.inner_iterations

    self.model = training.build_with_precision(cfg.precision, cfg.model, source.image_shape,
                                               source.num_classes, seed=cfg.seed,
                                               **dict(cfg.model_options))
    self.matched = matching.matched_variables(self.model, cfg.match_layers)
    self._net_vars = list(self.model.trainable_variables)
    self._net_buffers = training.zeros_like_all(self._net_vars)
    self._img_buffers = training.zeros_like_all(self.synthetic.trainable_variables)
    normalised = SOURCE_DEFAULTS.get(source.name, _FALLBACK).get("lr_units") == "normalised"
    #: The step size applied to the stored images (lr_img, or lr_img * std^2 per
    #: channel where the reference's lr_img is for normalised data).
    self.image_lr = (base.normalised_lr(cfg.lr_img, source.std) if normalised
                     else tf.constant(cfg.lr_img, tf.float32))
    self.real = base.RealData(source)
    self._siamese = dsa_ops.DSA(cfg.strategy, mode="all")
    self._net_aug = dsa_ops.DSA(cfg.net_strategy, mode="all")
    self._seed = tf.constant([cfg.seed, SALT_ROOT], tf.int64)
    #: The early-stage model pool (arm `pool`), or None.
    self.pool = None
    if cfg.model_pool:
      self.pool = pool_lib.ensure_pool(source, cfg.pool_config(), cfg.pool_dir,
                                       model=self.model)
    #: The matching network's penultimate features (for DREAM's clustering and
    #: DREAM+'s term), or None.
    self._embed = None
    if cfg.representative_every or cfg.feature_weight:
      from tfcondense.models import embedding_model  # pylint: disable=g-import-not-at-top
      self._embed = embedding_model(self.model)
    #: The representative real batches (arm `representative`), or None.
    self.representative = None
    if cfg.representative_every:
      embed = self._embed
      self.representative = representative_lib.RepresentativeBatches(
          self.real, lambda x: embed(x, training=False), cfg.real_per_class,
          cfg.representative_candidates, base.fresh_seed(cfg.seed, SALT_REPRESENTATIVE, 0),
          cfg.representative_max_iter)
    self._match_fn = tf.function(self._match_all, autograph=False)  # no tensor control flow
    self._net_fn = tf.function(self._network_update)

  # -- state -------------------------------------------------------------------------
  def checkpoint_items(self) -> Dict[str, Any]:
    items = {"synthetic": self.synthetic.trainable_variables,
             "synthetic_momentum": self._img_buffers,
             "network": list(self.model.weights),
             "network_momentum": self._net_buffers}
    if self.representative is not None:
      items["representative"] = self.representative.indices
    return items

  def image_summaries(self) -> Dict[str, Any]:
    stored = self.synthetic.images
    formed, _ = self.synthetic.formation(stored[:min(16, int(stored.shape[0]))],
                                         self.synthetic.labels[:16])
    return {"stored": tf.convert_to_tensor(stored[:32]), "formed": formed[:32]}

  def begin_outer(self, outer: int) -> None:
    """A fresh network and optimiser, stored images clamped (Algorithm 1, line 3).

    With a model pool the network is a perturbed pool member instead: member
    `pool.draw(fold(seed, SALT_POOL_DRAW, outer))`, moved by `pool.perturb` with
    `fold(seed, SALT_PERTURB, outer)`.
    """
    from tfcondense.models import initialize  # pylint: disable=g-import-not-at-top
    if self.pool is not None:
      self.pool.load(self.model, self.pool.draw(base.fold(self._seed, SALT_POOL_DRAW, outer)))
      pool_lib.perturb(self._net_vars, base.fold(self._seed, SALT_PERTURB, outer),
                       *self.config.perturb_range)
    elif self.config.pretrained:
      self.model.load_weights(self.config.pretrained[outer % len(self.config.pretrained)])
    else:
      initialize(self.model, base.fresh_seed(self.config.seed, SALT_MODEL_INIT, outer))
    training.reset_all(self._net_buffers)
    self.synthetic.clamp()
    if self.config.pretrain_steps:
      self._net_fn(tf.constant(-1 - outer, tf.int64),
                   tf.constant(self.config.pretrain_steps, tf.int32))

  # -- one inner iteration -------------------------------------------------------------
  def step(self, step: int) -> Dict[str, float]:
    outer, inner = divmod(int(step), self.config.inner_iterations)
    if inner == 0:
      self.begin_outer(outer)
    rep = self.representative
    if rep is not None and inner % self.config.representative_every == 0:
      rep.refresh(step)
    s = tf.constant(step, tf.int64)
    loss = self._match_fn(s)
    self._net_fn(s, tf.constant(self.config.net_steps, tf.int32))
    return {"loss": loss}

  def _subsample(self, x, seed):
    n = int(self.config.ipc * self.synthetic.formation.formed_per_stored())
    k = self.config.max_formed_per_class
    if n <= k:
      return x
    rows = tf.shape(x)[0]  # a bound formation may form fewer than its upper bound
    pos = tf.math.top_k(tf.random.stateless_uniform([rows], seed), k=tf.minimum(k, rows),
                        sorted=False).indices
    return tf.gather(x, pos)

  def class_match_loss(self, c, seed, tape_vars, stored=None):
    """Matching loss of class `c` under one siamese draw (differentiable w.r.t. the
    stored images through the formation); returns (loss, grads w.r.t. tape_vars).

    `stored` ([ipc, H, W, C], optional) replaces class c's rows of the stored
    variable: `tfcondense.methods.idc_replicated` matches a replica's local copy of its classes'
    rows this way (pass `tape_vars=[stored]`); the ops are the same as without it.
    """
    cfg = self.config
    params = self._siamese.sample(1, base.fold(seed, 1))
    if self.representative is not None:
      real = self.representative.batch(c)
    else:
      real = self.real.class_batch(c, cfg.real_per_class, base.fold(seed, 2))
    real = self._siamese.apply(self.real.normalize(real), params)
    y_real = tf.fill(tf.shape(real)[:1], tf.cast(c, tf.int32))
    with tf.GradientTape() as outer:
      if stored is None:
        formed = self.synthetic.formed_class(c)
      else:
        outer.watch(stored)
        formed, _ = self.synthetic.formation(
            stored, tf.gather(self.synthetic.labels, self.synthetic.class_rows(c)))
      formed = self._subsample(formed, base.fold(seed, 3))
      syn = self._siamese.apply(self.real.normalize(formed), params)
      y_syn = tf.fill(tf.shape(syn)[:1], tf.cast(c, tf.int32))
      loss = matching.gradient_match(self.model, self.matched, real, y_real, syn, y_syn,
                                     cfg.metric)
      if cfg.feature_weight:
        loss += cfg.feature_weight * matching.feature_mean_distance(
            self._embed(real, training=True), self._embed(syn, training=True), cfg.metric)
    return loss, outer.gradient(loss, tape_vars)

  def _apply_data_grads(self, grads, variables, lrs):
    """One SGD-momentum step on the synthetic variables after one class's match.

    A variable without a gradient still has its momentum decayed and applied
    (`missing="zero"`): the reference keeps all classes in one tensor under one
    `torch.optim.SGD`, so every class's step moves every buffer (zero gradient, not none).
    """
    training.sgd_step(variables, self._img_buffers, grads, lrs, self.config.momentum_img,
                      missing="zero")

  def match_seed(self, step):
    """Seed of inner iteration `step`'s matching (class c folds in c)."""
    return base.fold(self._seed, step, 7)

  def network_seed(self, step):
    """Seed of the network update after inner iteration `step` (step i folds in i)."""
    return base.fold(self._seed, step, 8)

  @property
  def data_buffers(self) -> list:
    """Momentum buffers of the data optimiser, one per `synthetic.trainable_variables`."""
    return self._img_buffers

  def _match_all(self, step):
    """All classes' matching steps of inner iteration `step`; returns the mean loss."""
    cfg = self.config
    seed = self.match_seed(step)
    variables = self.synthetic.trainable_variables
    lrs = [self.image_lr] + [cfg.lr_formation] * (len(variables) - 1)
    total = tf.constant(0.0)
    for c in range(self.num_classes):
      loss, grads = self.class_match_loss(c, base.fold(seed, c), variables)
      self._apply_data_grads(grads, variables, lrs)
      total += loss
    return total / self.num_classes

  # -- network update on real data --------------------------------------------------------
  def network_batch(self, seed):
    """One network step's real batch: `net_batch` images drawn with replacement,
    augmented per sample, then CutMixed; returns (x, y_a, y_b, lam) (see `mix.cutmix`)."""
    cfg = self.config
    x, y = self.real.random_batch(cfg.net_batch, base.fold(seed, 1))
    x = self._net_aug(self.real.normalize(x), base.fold(seed, 2))
    return mix.cutmix(x, y, base.fold(seed, 3), prob=cfg.cutmix_prob, beta=cfg.cutmix_beta)

  @property
  def network_variables(self) -> list:
    """The network's trainable variables, in the order `apply_network_grads` takes."""
    return self._net_vars

  def apply_network_grads(self, grads) -> None:
    """One SGD step (lr, momentum, weight decay of the config) with `grads`."""
    cfg = self.config
    training.sgd_step(self._net_vars, self._net_buffers, grads, cfg.lr_net,
                      cfg.momentum_net, cfg.weight_decay_net)

  def replace_steps(self, match_fn, net_fn) -> None:
    """Swaps the traced steps `step` and `begin_outer` call: `match_fn(step) -> mean
    loss` and `net_fn(step, count)` (`tfcondense.methods.idc_replicated` runs them per replica)."""
    self._match_fn = match_fn
    self._net_fn = net_fn

  def _network_update(self, step, count):
    """`count` SGD steps of the network on real data (augmentation + CutMix)."""
    seed = self.network_seed(step)
    for i in tf.range(count):
      self._network_step(base.fold(seed, tf.cast(i, tf.int64)))
    return tf.constant(0)

  @training.untraced_by_autograph
  def _network_step(self, seed):
    """One SGD step of the network on a real batch drawn with `seed`."""
    x, ya, yb, lam = self.network_batch(seed)
    with tf.GradientTape() as tape:
      loss = mix.cutmix_loss(self.model(x, training=True), ya, yb, lam)
    self.apply_network_grads(tape.gradient(loss, self._net_vars))


def save_pretrained(source, directory: str, count: int, steps: int,
                    config: Optional[IDCConfig] = None) -> list:
  """Trains `count` networks for `steps` real-data steps each and saves their weights.

  The networks are trained exactly as IDC's network update does (augmentation,
  CutMix, SGD), from the initialisation outer iteration i would use, so
  `IDCConfig(pretrained=paths)` starts matching from early-trained networks.

  Returns:
    The `.weights.h5` paths, one per network.
  """
  cfg = dataclasses.replace(config or IDCConfig(), pretrained=(), pretrain_steps=0)
  method = IDC(source, cfg, synthetic=synthetic_lib.SyntheticSet.initialize(
      source, 1, init="noise"))
  os.makedirs(directory, exist_ok=True)
  paths = []
  for i in range(count):
    method.begin_outer(i)
    method._net_fn(tf.constant(-10_000 - i, tf.int64), tf.constant(steps, tf.int32))
    path = os.path.join(directory, f"net{i:03d}.weights.h5")
    method.model.save_weights(path)
    paths.append(path)
  return paths


def _build(source, config, init_options):
  return IDC(source, config, init_options=init_options)


base.register("idc", IDCConfig, _build,
              "IDC (Kim et al. 2022): multi-formation (factor 2 default) + gradient matching")
base.register("idc_i", IDCConfig, _build, "IDC-I: IDC without multi-formation (factor 1)",
              factor=1)
