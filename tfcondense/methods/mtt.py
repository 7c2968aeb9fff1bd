"""MTT (Cazenavette et al., CVPR 2022, "Dataset Distillation by Matching Training
Trajectories"; "TM" in DC-BENCH).

Two phases, as the reference's `buffer.py` and `distill.py`:

1. Experts (`train_experts`, `tfcondense.methods.mtt_experts`): networks trained on
   the REAL data (SGD lr_teacher 0.01, momentum 0, weight decay 0, batch 256, DSA
   augmentation drawn per sample) from `models.initialize(model, expert_init_seed(seed,
   i))`; the flattened trainable parameters are saved after every epoch (row 0 = the
   initialisation), one `[epochs + 1, P]` float32 `.npy` per expert.
2. Distillation (`MTT`, driven by `tfcondense.engine.run`), per step: pick expert e
   and start epoch s < max_start_epoch; θ_0 = θ*_s; for n = 1..N (`syn_steps`) take a
   minibatch of `batch_syn` synthetic images (one pass over a fresh permutation per
   ceil(num_syn / batch_syn) steps, as the reference's `randperm` chunks), augment
   it (DSA, per-sample draws) and step θ_n = θ_{n-1} − α ∇ℓ(f(x; θ_{n-1})); the loss

       L = ||θ_N − θ*_{s+M}||² / ||θ*_s − θ*_{s+M}||²        (M = expert_epochs)

   is differentiated through the whole unroll (second order) w.r.t. the synthetic
   images and the learnable step size α (`syn_lr`, initialised to lr_teacher), each
   updated by its own SGD with momentum 0.5 (lr_img, lr_lr).

The student is the model applied functionally, `model.stateless_call` on slices of
the flat parameter vector, so each student step is an ordinary differentiable
function of (θ, x, α). The distillation step is one `tf.function` traced once.

Augmentation (`tfcondense.methods.mtt_augment`): the reference's `ParamDiffAug` has
`aug_mode = 'S'`: per call ONE of the strategy's tokens is chosen for the whole batch
and applied with per-sample parameters (`aug_mode="single"`, the default here);
`aug_mode="all"` applies every op in turn. The same rule augments the experts' real
batches.

Learning rate of the images: `lr_img` is in the reference's units, i.e. a step on the
NORMALISED images ((x − mean) / std): the stored images are unnormalised [0, 1]
pixels, so the pixel-space step is lr_img · std² per channel, which makes the
reference's published values directly usable. The reference uses lr_img = 1000 for
CIFAR-10/100 (ZCA) and ImageNet subsets (no ZCA) and 10000 for Tiny ImageNet (no
ZCA); we default to those (1000 for sources the reference never ran). On the tests'
quadrant toy set (16×16×1, std 0.3, ConvNet-3 of width 8) 1000 overshoots once
(loss 0.36 → 1.1 at the second step) and then falls to 0.12 within 30 steps, while
100 decreases monotonically to 0.04: if the loss of a new source jumps or diverges,
lower lr_img by 10x (a NaN stops the run with the last good checkpoint kept).

Memory (`tfcondense.methods.mtt_memory`): the tape keeps every student step's
intermediates, so the plain unroll's memory grows linearly with syn_steps;
`checkpoint_unroll=True` recomputes each student step in the backward pass (about 9x
less memory for about 1.45x the time), and "auto" (the default) checkpoints only where
the plain unroll's estimate would not fit in the host's available memory (with a GPU
visible the plain unroll is kept).

The module holds the distillation (`MTTConfig`, `MTT`, the functional student, the
trajectory loss) and its registration; the experts, the augmentation and the memory
model live in the three `mtt_*` modules named above, and their public names are
importable from here as well.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from tfcondense import hardware
from tfcondense import seeds
from tfcondense.augment import ops as dsa_ops
from tfcondense import training
from tfcondense.errors import InvalidConfigError, check_choice
from tfcondense.methods import base
from tfcondense.methods import mtt_experts as experts_lib
from tfcondense.methods import mtt_memory as memory_lib
from tfcondense.methods.mtt_augment import AUG_MODES, Augment
from tfcondense.methods.mtt_experts import (EXPERT_PATTERN, EXPERT_VERSION,
                                            expert_init_seed, expert_paths,
                                            flat_parameters, load_experts)
from tfcondense.methods.mtt_memory import forward_floats, unroll_memory_bytes

__all__ = [
    "AUG_MODES", "Augment", "EXPERT_PATTERN", "EXPERT_VERSION", "FunctionalModel", "LOOPS",
    "MTT", "MTTConfig", "SOURCE_LR_IMG", "expert_init_seed", "expert_paths",
    "flat_parameters", "forward_floats", "load_experts", "train_experts",
    "trajectory_loss", "unroll_memory_bytes",
]

#: Image learning rate per source, in the reference's normalised-image units (see the
#: module docstring); sources not listed take `_DEFAULT_LR_IMG`.
SOURCE_LR_IMG: Dict[str, float] = {
    "cifar10": 1000.0,        # reference (ZCA)
    "cifar100": 1000.0,       # reference (ZCA)
    "imagenet_subset": 1000.0,  # reference ImageNet subsets (no ZCA)
    "tiny_imagenet": 10000.0,   # reference (no ZCA)
}
_DEFAULT_LR_IMG = 1000.0

LOOPS = ("python", "while")

#: syn_steps above which `loop="auto"` uses a `tf.while_loop` (shorter traces).
_AUTO_WHILE_ABOVE = 30
#: The memory model's constants under their names before the split (`mtt_memory`).
_AUTO_MEMORY_FRACTION = memory_lib.AUTO_MEMORY_FRACTION
_GRAPH_TO_TAPE = memory_lib.GRAPH_TO_TAPE
#: Salt of the root [seed, .] of the per-step draws (tfcondense/seeds.py).
SALT_ROOT = seeds.salt("mtt.root")


@dataclasses.dataclass(frozen=True)
class MTTConfig:
  """MTT settings (reference defaults for CIFAR-10 IPC 10 unless noted).

  Attributes:
    ipc: stored images per class.
    init: random (real images, the reference's pix_init="real"), noise, kcenter or
      herding.
    model: student / expert network (registry name) and `model_options` (pairs).
    experts_dir: directory of expert trajectories written by `train_experts`
      (required).
    expert_epochs: M, the expert epochs the student must cover (reference 2).
    max_start_epoch: start epochs are drawn from [0, max_start_epoch), clipped so
      that s + expert_epochs exists in the experts (reference 20 for IPC 10).
    syn_steps: N, student steps per distillation step (reference 30 at IPC 10,
      50 at IPC 1; 20 here to halve the memory of the unroll).
    batch_syn: synthetic images per student step (None: all of them).
    lr_img: image learning rate in normalised-image units (None: per source,
      `SOURCE_LR_IMG`); momentum 0.5 as the reference.
    lr_lr: learning rate of the learnable student step size (reference 1e-5 at IPC
      10, 1e-7 at IPC 1); momentum 0.5.
    lr_teacher: the experts' learning rate and the step size's initial value.
    iterations: distillation steps (reference 5000).
    strategy: DSA strategy of the student batches (and of the experts' training).
    aug_mode: "single" (the reference's aug_mode 'S': one strategy token per batch,
      per-sample parameters) or "all" (every op in turn).
    loop: "python" (unrolled trace), "while" (`tf.range` loop, a compact trace) or
      "auto" (python up to 30 student steps).
    checkpoint_unroll: recompute each student step in the backward pass
      (`MTT.checkpointed_update`): memory ~ syn_steps x (P + batch pixels) instead of
      syn_steps x batch activations, for ~1.45x the time. "auto": only where the
      plain unroll would not fit in memory (`mtt_memory`); the choice made is
      `MTT.checkpoint_unroll`.
    seed: everything random derives from it.
  """

  ipc: int = 10
  init: str = "random"
  model: str = "convnet3"
  model_options: Tuple[Tuple[str, Any], ...] = ()
  experts_dir: Optional[str] = None
  expert_epochs: int = 2
  max_start_epoch: int = 20
  syn_steps: int = 20
  batch_syn: Optional[int] = None
  lr_img: Optional[float] = None
  lr_lr: float = 1e-5
  lr_teacher: float = 0.01
  iterations: int = 5000
  strategy: str = "color_crop_cutout_flip_scale_rotate"
  aug_mode: str = "single"
  loop: str = "auto"
  checkpoint_unroll: Union[bool, str] = "auto"
  seed: int = 0

  def resolve(self, source_name: str) -> "MTTConfig":
    """Fills lr_img from `SOURCE_LR_IMG`, resolves loop="auto", checks the values."""
    loop = self.loop
    if loop == "auto":
      loop = "while" if self.syn_steps > _AUTO_WHILE_ABOVE else "python"
    cfg = dataclasses.replace(
        self, loop=loop,
        lr_img=self.lr_img if self.lr_img is not None
        else SOURCE_LR_IMG.get(source_name, _DEFAULT_LR_IMG))
    cfg.check()
    return cfg

  def check(self) -> None:
    if self.ipc < 1:
      raise InvalidConfigError(f"ipc must be >= 1, got {self.ipc}")
    if not expert_paths(self.experts_dir):
      where = (f"holds no {experts_lib.describe_expected_files()} files" if self.experts_dir
               else "is not set")
      raise InvalidConfigError(
          f"MTT needs expert trajectories, but experts_dir={self.experts_dir!r} {where}; "
          "train them first with tfcondense.methods.mtt.train_experts(source, directory, "
          "num_experts, epochs) and pass experts_dir=directory")
    if self.expert_epochs < 1 or self.max_start_epoch < 1:
      raise InvalidConfigError(
          f"expert_epochs and max_start_epoch must be >= 1, got {self.expert_epochs}, "
          f"{self.max_start_epoch}")
    if self.syn_steps < 1 or self.iterations < 1:
      raise InvalidConfigError(
          f"syn_steps and iterations must be >= 1, got {self.syn_steps}, {self.iterations}")
    if self.batch_syn is not None and self.batch_syn < 1:
      raise InvalidConfigError(f"batch_syn must be >= 1 or None, got {self.batch_syn}")
    for name in ("lr_img", "lr_teacher"):
      value = getattr(self, name)
      if value is not None and not value > 0:
        raise InvalidConfigError(f"{name} must be positive, got {value}")
    if not self.lr_lr >= 0:
      raise InvalidConfigError(f"lr_lr must be >= 0 (0 freezes syn_lr), got {self.lr_lr}")
    check_choice("aug_mode", self.aug_mode, AUG_MODES)
    check_choice("loop", self.loop, LOOPS + ("auto",))
    if self.checkpoint_unroll not in (True, False, "auto"):
      raise InvalidConfigError(
          f"checkpoint_unroll must be True, False or 'auto', got {self.checkpoint_unroll!r}")
    dsa_ops.parse_strategy(self.strategy)  # raises with the known op names

  def as_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    d["model_options"] = dict(self.model_options)
    return d


class FunctionalModel:
  """A Keras model applied to a flat parameter vector (differentiable w.r.t. it).

  `model.stateless_call` runs the layers with the given values in place of the
  variables, so the output is an ordinary TF function of the parameters (the
  reference's `ReparamModule`). The flat layout is `model.trainable_variables`'
  order, each variable flattened row-major (the layout `train_experts` saves).
  Non-trainable state (BatchNorm statistics) is read, and its update discarded.
  """

  def __init__(self, model):
    self.model = model
    self.shapes = [tuple(int(d) for d in v.shape) for v in model.trainable_variables]
    self.sizes = [int(np.prod(s)) for s in self.shapes]
    self.num_params = int(sum(self.sizes))

  def unflatten(self, theta: tf.Tensor) -> List[tf.Tensor]:
    return [tf.reshape(p, s) for p, s in zip(tf.split(theta, self.sizes), self.shapes)]

  def __call__(self, theta: tf.Tensor, x: tf.Tensor, training: bool = True) -> tf.Tensor:
    non_trainable = [tf.convert_to_tensor(v) for v in self.model.non_trainable_variables]
    logits, _ = self.model.stateless_call(self.unflatten(theta), non_trainable, x,
                                          training=training)
    return logits


def trajectory_loss(theta_end, theta_start, theta_target) -> tf.Tensor:
  """||θ_N − θ*_{s+M}||² / ||θ*_s − θ*_{s+M}||² (the reference's normalised loss)."""
  num = tf.reduce_sum(tf.square(theta_end - theta_target))
  den = tf.reduce_sum(tf.square(theta_start - theta_target))
  return num / den


class MTT:
  """The MTT method object driven by `tfcondense.engine.run` (one step = one
  distillation iteration: one expert segment matched).

  Args:
    source: the SourceData (its mean / std normalise the images; its real images are
      used only by the initialiser).
    config: an MTTConfig (resolved against the source here).
    synthetic: an initialised SyntheticSet (built from the config when None).
    init_options: options for the initialiser (e.g. cache_dir for kcenter).
  """

  def __init__(self, source, config: MTTConfig, synthetic=None,
               init_options: Optional[Dict[str, Any]] = None):
    from tfcondense.models import build_model  # pylint: disable=g-import-not-at-top
    cfg = config.resolve(source.name)
    self.config = cfg
    self.source = source
    if cfg.init != "noise":
      source.check_ipc(cfg.ipc)
    self.synthetic = synthetic or base.make_synthetic(source, cfg, init_options)
    self.num_classes = source.num_classes
    self.total_steps = int(cfg.iterations)

    self.model = build_model(cfg.model, source.image_shape, source.num_classes,
                             seed=cfg.seed, **dict(cfg.model_options))
    self.student = FunctionalModel(self.model)
    self.experts, rows = load_experts(expert_paths(cfg.experts_dir),
                                      self.student.num_params)
    #: start epochs are drawn from [0, max_start): s + expert_epochs <= rows - 1.
    self.max_start = min(cfg.max_start_epoch, rows - cfg.expert_epochs)
    if self.max_start < 1:
      raise InvalidConfigError(
          f"the experts in {cfg.experts_dir} hold {rows - 1} epochs, fewer than "
          f"expert_epochs={cfg.expert_epochs}; lower expert_epochs or train longer experts "
          "(train_experts(..., epochs=...))")

    self.syn_lr = tf.Variable(float(cfg.lr_teacher), trainable=True, name="syn_lr")
    self._lr_buffer = training.zeros_like_all([self.syn_lr])
    self._img_buffers = training.zeros_like_all([self.synthetic.images])
    self._mean = tf.constant(source.mean, tf.float32)
    self._std = tf.constant(source.std, tf.float32)
    # A step of lr_img on the normalised images is lr_img * std^2 on the stored pixels.
    self._pixel_lr = base.normalised_lr(cfg.lr_img, source.std)
    num_syn = int(self.synthetic.images.shape[0])
    self.batch_syn = min(int(cfg.batch_syn or num_syn), num_syn)
    #: Whether the unroll is checkpointed (config's checkpoint_unroll, "auto" resolved).
    self.checkpoint_unroll = self._choose_checkpointing(source)
    self._augment = Augment(cfg.strategy, cfg.aug_mode)
    self._seed = tf.constant([cfg.seed, SALT_ROOT], tf.int64)
    self._step_fn = tf.function(self._distill_step)

  def _choose_checkpointing(self, source) -> bool:
    """Resolves checkpoint_unroll="auto" from the memory estimates (`mtt_memory`)."""
    cfg = self.config
    if cfg.checkpoint_unroll != "auto":
      return bool(cfg.checkpoint_unroll)
    available = hardware.available_memory_bytes()
    if available is None or tf.config.list_physical_devices("GPU"):
      return False  # with a GPU the host's memory says nothing about the device's
    return memory_lib.needs_checkpointing(
        available, cfg.syn_steps, self.batch_syn, forward_floats(self.model, source.image_shape),
        self.student.num_params, int(np.prod(source.image_shape)))

  # -- state -------------------------------------------------------------------------
  def checkpoint_items(self) -> Dict[str, Any]:
    return {"synthetic": [self.synthetic.images],
            "synthetic_momentum": self._img_buffers,
            "syn_lr": self.syn_lr,
            "syn_lr_momentum": self._lr_buffer}

  def image_summaries(self) -> Dict[str, Any]:
    return {"stored": tf.convert_to_tensor(self.synthetic.images[:32])}

  # -- one distillation step -----------------------------------------------------------
  def segment(self, step: int) -> Tuple[int, int]:
    """(expert, start epoch) of step `step`, drawn statelessly from (seed, step)."""
    seed = base.fold(self._seed, tf.constant(step, tf.int64))
    e = tf.random.stateless_uniform([], base.fold(seed, 1), 0, len(self.experts), tf.int64)
    s = tf.random.stateless_uniform([], base.fold(seed, 2), 0, self.max_start, tf.int64)
    return int(e), int(s)

  def endpoints(self, expert: int, start: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """(θ*_s, θ*_{s+M}) of one expert as float32 tensors."""
    traj = self.experts[expert]
    m = self.config.expert_epochs
    return (tf.constant(np.asarray(traj[start], np.float32)),
            tf.constant(np.asarray(traj[start + m], np.float32)))

  def step(self, step: int) -> Dict[str, float]:
    expert, start = self.segment(step)
    theta_start, theta_target = self.endpoints(expert, start)
    seed = base.fold(self._seed, tf.constant(step, tf.int64), 3)
    loss = self._step_fn(seed, theta_start, theta_target)
    return {"loss": loss, "syn_lr": self.syn_lr.value(), "start_epoch": float(start)}

  def normalize(self, x: tf.Tensor) -> tf.Tensor:
    return (x - self._mean) / self._std

  def _minibatch(self, x_all, y_all, seed, i):
    """Student step i's batch: chunk i mod k of permutation i div k (k chunks each)."""
    n, b = int(x_all.shape[0]), self.batch_syn
    if b >= n:
      return x_all, y_all
    k = -(-n // b)
    i = tf.cast(i, tf.int64)
    perm = tf.argsort(tf.random.stateless_uniform([n], base.fold(seed, 1, i // k)))
    j = tf.cast(i % k, tf.int32)
    idx = perm[j * b:tf.minimum((j + 1) * b, n)]
    return tf.gather(x_all, idx), tf.gather(y_all, idx)

  def student_update(self, theta, x, y, lr):
    """θ − lr · ∇_θ CE(f(x; θ), y), differentiable w.r.t. θ, x and lr."""
    with tf.GradientTape() as tape:
      tape.watch(theta)
      loss = base.cross_entropy(self.student(theta, x, training=True), y)
    return theta - lr * tape.gradient(loss, theta)

  def checkpointed_update(self, theta, x, y, lr):
    """`student_update` whose intermediates are recomputed in the backward pass.

    `tf.recompute_grad` runs its forward with recording stopped, which also stops
    the student's own (inner) gradient tape, so the checkpoint is written here with
    `tf.custom_gradient`: the backward keeps only (θ, x, lr) and recomputes the step
    under a fresh tape (second order), after the incoming gradient exists (the data
    dependency below, as `tf.recompute_grad` does, stops the executor from running
    the recomputation early and holding all of them at once).
    """

    @tf.custom_gradient
    def update(theta, x, lr):
      def grad(d_out, variables=None):
        first = tf.reshape(d_out, [-1])[:1]
        ready = tf.cast(tf.reduce_max(first), tf.bool)
        dep = tf.where(tf.equal(ready, ready), 0.0, float("nan"))
        inputs = [theta + dep, x + tf.cast(dep, x.dtype), lr + dep]
        with tf.GradientTape() as tape:
          tape.watch(inputs)
          out = self.student_update(inputs[0], inputs[1], y, inputs[2])
        grads = tape.gradient(out, inputs, output_gradients=d_out,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if variables is None:
          return grads
        return grads, [tf.zeros_like(v) for v in variables]  # no gradient to read-only state
      return self.student_update(theta, x, y, lr), grad

    return update(theta, x, lr)

  def unroll(self, theta, images, lr, seed):
    """θ_N after `syn_steps` student steps from θ on the (stored) `images`."""
    cfg = self.config
    x_all = self.normalize(images)
    y_all = self.synthetic.labels

    def one(theta, i):
      x, y = self._minibatch(x_all, y_all, seed, i)
      x = self._augment(x, base.fold(seed, 2, tf.cast(i, tf.int64)))
      if self.checkpoint_unroll:
        # An op inside the loop body: the recomputation in the backward pass of a
        # while loop cannot reference a tensor captured from outside the body.
        return self.checkpointed_update(theta, x, tf.identity(y), lr)
      return self.student_update(theta, x, y, lr)

    if cfg.loop == "while":
      for i in tf.range(cfg.syn_steps):
        theta = one(theta, i)
    else:
      for i in range(cfg.syn_steps):
        theta = one(theta, i)
    return theta

  def loss_and_grads(self, seed, theta_start, theta_target):
    """(trajectory loss, [d loss / d images, d loss / d syn_lr])."""
    images = self.synthetic.images
    with tf.GradientTape() as tape:
      theta_end = self.unroll(theta_start, images, self.syn_lr.value(), seed)
      loss = trajectory_loss(theta_end, theta_start, theta_target)
    grads = tape.gradient(loss, [images, self.syn_lr])
    return loss, grads

  def _distill_step(self, seed, theta_start, theta_target):
    loss, (g_img, g_lr) = self.loss_and_grads(seed, theta_start, theta_target)
    training.sgd_step([self.synthetic.images], self._img_buffers, [g_img], self._pixel_lr,
                      0.5)
    training.sgd_step([self.syn_lr], self._lr_buffer, [g_lr], self.config.lr_lr, 0.5)
    return loss


# -- experts -----------------------------------------------------------------------------
def train_experts(source, directory: str, num_experts: int, epochs: int,
                  config: Optional[MTTConfig] = None, **options) -> List[str]:
  """`mtt_experts.train_experts` with `config` defaulting to `MTTConfig()`.

  Trains `num_experts` expert networks of `epochs` epochs each on the real data into
  `directory` (existing experts of the current version are kept) and returns their
  paths; `**options` are that function's keyword arguments (steps_per_epoch,
  batch_size, momentum, weight_decay, show_progress).
  """
  return experts_lib.train_experts(source, directory, num_experts, epochs,
                                   config or MTTConfig(), **options)


def _build(source, config, init_options):
  return MTT(source, config, init_options=init_options)


base.register("mtt", MTTConfig, _build,
              "MTT (Cazenavette et al. 2022): match expert training trajectories "
              "(needs experts_dir from train_experts)")
