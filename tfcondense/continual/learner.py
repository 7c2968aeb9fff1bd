"""Class- and task-incremental learning from exemplar memories (condensed or selected).

Class-incremental (IDC, Kim et al., ICML 2022, Sec. 5.4 and Fig. 7; setting of Zhao &
Bilen, "Dataset Condensation with Distribution Matching", WACV 2023; code base of Hou
et al., "Learning a Unified Classifier Incrementally via Rebalancing", CVPR 2019): the
classes arrive in `steps` equal groups in a fixed seeded order. When a group arrives,
its exemplars are made from that group's data only (`tfcondense.continual.memory`) and
added to the memory; the classifier grows by the new classes, keeping the old rows;
the network is then trained ONLY on the memory of all classes seen so far with

    L = CE_cutmix(z, y) + beta * L_KD,
    L_KD = T^2 * (1/B) sum_b KL( softmax(z_prev[b, :n_old] / T) || softmax(z[b, :n_old] / T) ),

T = 2, beta = 1, where z are the current logits and z_prev the frozen previous model's
on the same (augmented, CutMixed) batch. The IDC reference writes it as
`KLDivLoss()(log_softmax(z_old / T), softmax(z_prev / T)) * T * T * beta * n_old`; its
`KLDivLoss()` averages over the B * n_old elements, so the `* n_old` turns that into
the per-sample sum over classes: exactly the batch-mean KL above (REFERENCE.md, Sec. 1,
"Continual learning"; checked against `continual-learning/utils/
incremental_train_and_eval.py` of snu-mllab/Efficient-Dataset-Condensation). After
each step the model is tested on the test images of all classes seen so far.

Task-incremental (DC, Zhao et al., ICLR 2021, Sec. 4: SVHN -> MNIST -> USPS): a
sequence of datasets, each a task with its own classes. The network has one head per
task, implemented as ONE classifier whose columns are split into per-task blocks
(task offsets): task t owns columns [offset_t, offset_t + K_t), its softmax (in the
loss and at test time, where the task is known) runs over its block only. Blocks
share no parameters, so this is the multi-head network, grown task by task exactly
as the class-incremental classifier is (old blocks copied). By default the network
trains on the current task's full training set plus the memory of earlier tasks
(`train_on="memory+current"`, DC's setting); distillation keeps each old head's
softmax close to the previous model's, block by block. Images of different shapes
are brought to one (H, W, C) by `harmonize` (bilinear resize; 1 -> C channels by
repetition, RGB -> 1 by luminance), and one normalisation (the mean of the tasks'
per-channel statistics) is used for all tasks.

Training reuses the evaluator's pieces (`tfcondense.evaluation.Trainer`: the per-sample
augmentation policy, CutMix, the stateless batch order, PyTorch SGD with the
milestone schedule; only the loss of its `_step` is extended here). The network is
not re-initialised between steps (the reference continues training the same model);
SGD momentum restarts at every step (a new optimiser per step, as the reference).

Resume: with `run_dir`, every finished step leaves its memory (an artifact directory),
the model weights and its results under `run_dir/step_XXX/`, and `state.json`
(written last, atomically) lists the finished steps. A new learner with the same
settings continues after the last finished step without rebuilding earlier memories
(a memory built before an interruption in the middle of a step is reused too).
`config.json` guards the settings, as `tfcondense.engine` does.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from tfcondense import atomic
from tfcondense import evaluation as ev
from tfcondense import fileio
from tfcondense import progress as progress_lib
from tfcondense.continual import memory as memory_lib
from tfcondense.data.store import SourceData
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

#: Continual protocols: the reference trains 1000 epochs per step, lr x0.2 at epochs
#: 600 and 800 (milestones 0.6 / 0.8), SGD 0.01 / 0.9 / 5e-4, batch 64, DSA
#: augmentation then CutMix p = 0.5. `cpu` keeps all of it but a fixed 500 SGD steps
#: per step; `smoke` is for tests.
PROTOCOLS: Dict[str, ev.Protocol] = {
    "paper": ev.Protocol(name="continual_paper", epochs=1000, milestones=(0.6, 0.8),
                         num_evals=1),
    "cpu": ev.Protocol(name="continual_cpu", epochs=None, steps=500, milestones=(0.6, 0.8),
                       num_evals=1),
    "smoke": ev.Protocol(name="continual_smoke", epochs=None, steps=4, batch_size=16,
                         milestones=(0.6, 0.8), num_evals=1),
}

#: What the network trains on at each step.
TRAIN_ON = ("memory", "memory+current")

#: The task sequence of DC's task-incremental experiment. `usps` is not a registered
#: source here: pass a SourceData for it (see `task_sequence`).
DIGIT_TASKS = ("svhn_cropped", "mnist", "usps")

_SALT_MEMORY, _SALT_MODEL, _SALT_TRAIN = 0xE7, 0x3D, 0x7A
_STATE = "state.json"


def get_protocol(protocol: Union[str, ev.Protocol], **overrides) -> ev.Protocol:
  """A continual protocol (name in PROTOCOLS) or a Protocol, with field overrides."""
  if isinstance(protocol, str):
    if protocol not in PROTOCOLS:
      raise InvalidConfigError(
          f"unknown continual protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[protocol]
  return ev.get_protocol(protocol, **overrides)


@dataclasses.dataclass(frozen=True)
class ContinualConfig:
  """Memory, training and distillation settings shared by both learners.

  Attributes:
    memory_ipc: stored full-size images per class (the memory budget; IDC stores
      this many and trains on memory_ipc * f^2 formed images). Reference: 20.
    strategy: exemplar strategy (name in `tfcondense.continual.EXEMPLARS`).
    exemplars: ExemplarConfig (the condensation budget of dm / idc_i / idc).
    protocol: training protocol per step (a name in PROTOCOLS or a Protocol).
    model: network (models registry name) and `model_options` (sorted pairs).
    temperature: distillation temperature T (reference 2).
    distill_weight: beta, the weight of the distillation term (reference 1; 0 = off).
    train_on: "memory" (only exemplars, the class-incremental reference) or
      "memory+current" (the current step's full training set plus the memory of
      earlier steps, DC's task-incremental setting); None = the learner's default.
    flip: horizontal flips in the augmentation (None: off for digit sources).
    seed: every random choice derives from it (per step by stateless folding).
  """

  memory_ipc: int = 20
  strategy: str = "herding"
  exemplars: memory_lib.ExemplarConfig = memory_lib.ExemplarConfig()
  protocol: Union[str, ev.Protocol] = "cpu"
  model: str = "convnet3"
  model_options: Tuple[Tuple[str, Any], ...] = ()
  temperature: float = 2.0
  distill_weight: float = 1.0
  train_on: Optional[str] = None
  flip: Optional[bool] = None
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "protocol", get_protocol(self.protocol))
    if isinstance(self.model_options, dict):
      object.__setattr__(self, "model_options", tuple(sorted(self.model_options.items())))
    self.check()

  def check(self) -> None:
    """Raises InvalidConfigError / UnknownNameError for a bad setting (nothing runs)."""
    from tfcondense.models import MODELS  # pylint: disable=g-import-not-at-top
    if isinstance(self.memory_ipc, bool) or int(self.memory_ipc) != self.memory_ipc \
        or self.memory_ipc < 1:
      raise InvalidConfigError(
          f"a memory of memory_ipc={self.memory_ipc!r} images per class cannot hold one "
          "image per class; use memory_ipc >= 1 (the reference keeps 20)")
    memory_lib.get_strategy(self.strategy)
    MODELS.get(self.model)
    if not self.temperature > 0:
      raise InvalidConfigError(f"temperature must be positive, got {self.temperature}")
    if not self.distill_weight >= 0:
      raise InvalidConfigError(f"distill_weight must be >= 0, got {self.distill_weight}")
    if self.train_on is not None and self.train_on not in TRAIN_ON:
      raise InvalidConfigError(
          f"train_on must be one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")

  def record(self) -> Dict[str, Any]:
    """The settings that change the results (for the run directory's guard)."""
    return dict(memory_ipc=int(self.memory_ipc), strategy=self.strategy.lower(),
                exemplars=self.exemplars.record(),
                protocol=dataclasses.asdict(self.protocol), model=self.model,
                model_options={k: v for k, v in self.model_options},
                temperature=float(self.temperature),
                distill_weight=float(self.distill_weight), train_on=self.train_on,
                flip=self.flip, seed=int(self.seed))


# ----------------------------------------------------------------- class orders
def make_class_order(num_classes: int, seed: int = 0) -> Tuple[int, ...]:
  """A fixed seeded class order: `numpy.random.default_rng(seed).permutation`."""
  if int(num_classes) < 1:
    raise InvalidConfigError(f"num_classes must be positive, got {num_classes}")
  return tuple(int(c) for c in np.random.default_rng(int(seed)).permutation(int(num_classes)))


def split_classes(order: Sequence[int], steps: int,
                  num_classes: Optional[int] = None) -> Tuple[Tuple[int, ...], ...]:
  """Splits a class order into `steps` consecutive equal groups.

  Args:
    order: every class id exactly once.
    steps: number of groups; must divide the number of classes.
    num_classes: if given, `order` must be a permutation of range(num_classes).

  Raises:
    InvalidConfigError: steps does not divide the classes, or a bad order.
  """
  order = tuple(int(c) for c in order)
  n = len(order)
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise InvalidConfigError(f"steps must be a positive integer, got {steps!r}")
  steps = int(steps)
  if len(set(order)) != n:
    raise InvalidConfigError(f"the class order repeats a class: {list(order)}")
  if num_classes is not None and sorted(order) != list(range(int(num_classes))):
    raise InvalidConfigError(
        f"the class order must list each of the {num_classes} classes once, got "
        f"{list(order)}")
  if n % steps:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    raise InvalidConfigError(
        f"{steps} steps do not divide the {n} classes into equal groups; use one of "
        f"{divisors} steps")
  k = n // steps
  return tuple(order[i * k:(i + 1) * k] for i in range(steps))


def split_source(source: SourceData, steps: int, order_seed: int = 0,
                 order: Optional[Sequence[int]] = None) -> List[SourceData]:
  """`source` as `steps` tasks of disjoint classes (each relabelled 0..k-1).

  Task names are `<source>` (so source-specific defaults, e.g. IDC's, still apply).
  """
  order = (tuple(order) if order is not None
           else make_class_order(source.num_classes, order_seed))
  return [source.subset(g) for g in split_classes(order, steps, source.num_classes)]


# ------------------------------------------------------------- task sequences
def _convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
  c = x.shape[-1]
  if c == channels:
    return x
  if c == 1:
    return np.repeat(x, channels, axis=-1)
  if c == 3 and channels == 1:
    return np.tensordot(x, _LUMA, axes=([-1], [0]))[..., None].astype(np.float32)
  raise InvalidConfigError(f"cannot convert {c}-channel images to {channels} channels; "
                           "only 1 -> C (repeat) and 3 -> 1 (luminance) are supported")


_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, tf.image.rgb_to_grayscale


def _convert_stats(values: Sequence[float], channels: int) -> Tuple[float, ...]:
  v = np.asarray(values, np.float64)
  if len(v) == channels:
    return tuple(float(a) for a in v)
  if len(v) == 1:
    return tuple(float(v[0]) for _ in range(channels))
  return (float(v @ _LUMA),)


def convert_images(images: np.ndarray, shape: Sequence[int], batch: int = 4096) -> np.ndarray:
  """float32 [N, H, W, C] in [0, 1] brought to `shape` (bilinear resize, channels)."""
  h, w, c = (int(d) for d in shape)
  images = np.asarray(images, np.float32)
  if images.shape[1:3] != (h, w):
    images = np.concatenate([
        tf.image.resize(images[i:i + batch], (h, w), method="bilinear",
                        antialias=True).numpy()
        for i in range(0, len(images), batch)]) if len(images) else \
        np.zeros((0, h, w, images.shape[-1]), np.float32)
  return np.clip(_convert_channels(images, c), 0.0, 1.0).astype(np.float32)


def harmonize(sources: Sequence[SourceData],
              image_shape: Optional[Sequence[int]] = None) -> List[SourceData]:
  """Brings every source to one image shape (for a task sequence).

  Args:
    sources: the tasks.
    image_shape: target (H, W, C); None = the largest height, width and channel count
      among the sources (SVHN -> MNIST -> USPS becomes 32x32x3: MNIST and USPS are
      upsampled and their gray channel repeated).

  Returns:
    New SourceData (names kept), images resized bilinearly (antialiased when
    shrinking) and channel-converted (1 -> C repeat, RGB -> gray by ITU-R 601
    luminance), normalisation statistics converted the same way.
  """
  if not sources:
    raise InvalidConfigError("a task sequence needs at least one source")
  shapes = [s.image_shape for s in sources]
  target = tuple(int(d) for d in image_shape) if image_shape is not None else tuple(
      max(s[i] for s in shapes) for i in range(3))
  if len(target) != 3 or min(target) < 1:
    raise InvalidConfigError(f"image_shape must be (H, W, C), got {image_shape!r}")
  out = []
  for s in sources:
    if s.image_shape == target:
      out.append(s)
      continue
    out.append(SourceData(
        name=s.name, train_images=convert_images(s.train_images, target),
        train_labels=s.train_labels, test_images=convert_images(s.test_images, target),
        test_labels=s.test_labels, class_names=s.class_names,
        mean=_convert_stats(s.mean, target[2]), std=_convert_stats(s.std, target[2])))
  return out


def task_sequence(tasks: Sequence[Union[str, SourceData]],
                  image_shape: Optional[Sequence[int]] = None,
                  loader: Optional[Callable[..., SourceData]] = None,
                  **load_options) -> List[SourceData]:
  """Loads (names) or takes (SourceData) the tasks and harmonises their shapes.

  Example: `task_sequence(["svhn_cropped", "mnist", usps_source])` for DC's digit
  sequence (`usps` is not a registered source: build its SourceData yourself), or
  `task_sequence(["digits", "fashion_mnist"])` with the data on this machine.

  Args:
    tasks: source names (loaded with `loader`, default `tfcondense.data.load_source`)
      or SourceData.
    image_shape: common (H, W, C) (None: the largest of each dimension).
    loader: `fn(name, **load_options) -> SourceData`.
    **load_options: passed to the loader for every named task (e.g. limit_per_class).
  """
  if loader is None:
    from tfcondense.data import load_source as loader  # pylint: disable=g-import-not-at-top
  sources = [t if isinstance(t, SourceData) else loader(t, **load_options) for t in tasks]
  return harmonize(sources, image_shape)


# --------------------------------------------------------------------- losses
def distillation_loss(logits: tf.Tensor, teacher_logits: tf.Tensor,
                      temperature: float = 2.0,
                      blocks: Optional[Sequence[Tuple[int, int]]] = None) -> tf.Tensor:
  """Knowledge distillation on the old classes (Hinton et al. 2015; Li & Hoiem, LwF).

      L_KD = T^2 * (1/B) sum_b sum_g KL(p_bg || q_bg),
      p_bg = softmax(teacher_logits[b, g] / T),  q_bg = softmax(logits[b, g] / T),

  g running over the column `blocks` (default one block, all teacher columns: the
  class-incremental case; one block per old task in the task-incremental case). With
  one block this equals the IDC reference's `KLDivLoss()(log q, p) * T^2 * n_old`
  (element-mean KL over B * n_old entries, times n_old).

  Args:
    logits: float [B, n] current logits (n >= the teacher's columns; extra = new).
    teacher_logits: float [B, n_old] the frozen previous model's logits.
    temperature: T.
    blocks: (start, end) column ranges inside [0, n_old).

  Returns:
    A float32 scalar.
  """
  t = float(temperature)
  logits = tf.cast(logits, tf.float32)
  teacher_logits = tf.cast(teacher_logits, tf.float32)
  n_old = int(teacher_logits.shape[-1])
  total = 0.0
  for start, end in (blocks or ((0, n_old),)):
    log_p = tf.nn.log_softmax(teacher_logits[:, start:end] / t, axis=-1)
    log_q = tf.nn.log_softmax(logits[:, start:end] / t, axis=-1)
    total += tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)
  return t * t * tf.reduce_mean(total)


def classification_loss(logits: tf.Tensor, y_a: tf.Tensor, y_b: tf.Tensor, lam,
                        column_groups: Optional[tf.Tensor] = None) -> tf.Tensor:
  """CutMix cross-entropy lam CE(y_a) + (1 - lam) CE(y_b), mean over the batch.

  With `column_groups` (int [n], the task of each column) each cross-entropy's
  softmax runs over its label's task block only (multi-head task-incremental).
  """
  from tfcondense.augment import mix  # pylint: disable=g-import-not-at-top
  logits = tf.cast(logits, tf.float32)
  if column_groups is None:
    return mix.cutmix_loss(logits, y_a, y_b, lam)

  def ce(y):
    y = tf.cast(y, tf.int32)
    own = tf.equal(column_groups[None, :], tf.gather(column_groups, y)[:, None])
    masked = tf.where(own, logits, tf.constant(-1e9, tf.float32))
    return tf.nn.sparse_softmax_cross_entropy_with_logits(y, masked)

  lam = tf.cast(lam, tf.float32)
  return tf.reduce_mean(lam * ce(y_a) + (1.0 - lam) * ce(y_b))


# --------------------------------------------------------------------- models
def grow_classifier(model, num_new: int, build: Callable[[int], Any]):
  """A copy of `model` whose classifier has `num_new` more outputs.

  Growth = a new Dense layer whose first columns are the old kernel and bias (the
  new columns keep `build`'s fresh initialisation), every other layer copied, so the
  old logits of any input are unchanged right after growth.

  Args:
    model: a Keras model from the models registry (final Dense named "classifier").
    num_new: outputs to add (>= 1).
    build: `fn(num_classes) -> model` building the same architecture.

  Returns:
    The grown model (the old one is left untouched, e.g. as the frozen teacher).
  """
  try:
    old_head = model.get_layer("classifier")
  except ValueError as e:
    raise InvalidConfigError(
        f"model {model.name!r} has no Dense layer named 'classifier' to grow") from e
  kernel, bias = old_head.get_weights()
  n_old = int(kernel.shape[1])
  grown = build(n_old + int(num_new))
  if len(grown.layers) != len(model.layers):
    raise InvalidConfigError("the grown model's architecture differs from the old one")
  for old, new in zip(model.layers, grown.layers):
    if type(old) is not type(new):
      raise InvalidConfigError(f"layer {old.name!r} ({type(old).__name__}) does not match "
                               f"{new.name!r} ({type(new).__name__}) in the grown model")
    if old.name == "classifier":
      nk, nb = new.get_weights()
      nk[:, :n_old] = kernel
      nb[:n_old] = bias
      new.set_weights([nk, nb])
    elif old.weights:
      new.set_weights(old.get_weights())
  return grown


class IncrementalTrainer(ev.Trainer):
  """`evaluate.Trainer` with the continual loss: CutMix CE (+ per-task heads) + KD.

  Everything but the loss is the evaluator's (batch order, augmentation policy,
  CutMix, `_sgd_update` with `_lr_at`'s milestones, the tf.function loop); `start`
  replaces `reset` so the model keeps its weights.

  Args:
    model, images, labels, mean, std, protocol, flip: as `evaluate.Trainer`.
    teacher: the frozen previous model (None at the first step).
    temperature, distill_weight: T and beta of `distillation_loss`.
    blocks: old column blocks for the distillation.
    column_groups: int [n] task of each column (multi-head), or None.
  """

  def __init__(self, model, images, labels, mean, std, protocol, flip=True, *,
               teacher=None, temperature: float = 2.0, distill_weight: float = 1.0,
               blocks: Sequence[Tuple[int, int]] = (),
               column_groups: Optional[Sequence[int]] = None):
    super().__init__(model, images, labels, mean, std, protocol, flip=flip)
    self._teacher = teacher if (teacher is not None and blocks and distill_weight > 0) \
        else None
    self._temperature = float(temperature)
    self._distill_weight = float(distill_weight)
    self._blocks = tuple((int(a), int(b)) for a, b in blocks)
    self._groups = (None if column_groups is None or len(set(column_groups)) < 2
                    else tf.constant(np.asarray(column_groups, np.int32)))

  def start(self, seed: int) -> None:
    """Zeroes the SGD momentum and sets the seed (the weights are kept)."""
    for b in self._buffers:
      b.assign(tf.zeros_like(b))
    self._seed.assign([int(seed), 0x5EED])

  def _step(self, step):
    p = self.protocol
    seed = tf.random.experimental.stateless_fold_in(self._seed, step)
    idx = self._batch_indices(step)
    x = self._policy(tf.gather(self._x, idx), tf.random.experimental.stateless_fold_in(seed, 2))
    x = (x - self._mean) / self._std
    y = tf.gather(self._y, idx)
    y_a, y_b, lam = y, y, tf.constant(1.0)
    if p.cutmix_prob > 0:
      x, y_a, y_b, lam = self._cutmix(x, y, tf.random.experimental.stateless_fold_in(seed, 3),
                                      prob=p.cutmix_prob)
    teacher_logits = None
    if self._teacher is not None:
      teacher_logits = tf.stop_gradient(tf.cast(self._teacher(x, training=False), tf.float32))
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = tf.cast(self.model(x, training=True), tf.float32)
      loss = classification_loss(logits, y_a, y_b, lam, self._groups)
      if teacher_logits is not None:
        loss += self._distill_weight * distillation_loss(logits, teacher_logits,
                                                         self._temperature, self._blocks)
    grads = tape.gradient(loss, variables)
    ev._sgd_update(variables, self._buffers, grads,  # pylint: disable=protected-access
                   ev._lr_at(step, self.total_steps, p),  # pylint: disable=protected-access
                   p.momentum, p.weight_decay)
    return loss


# -------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class ContinualResult:
  """Per-step results of one learner run.

  Attributes:
    setting: "class_incremental" or "task_incremental".
    strategy: the exemplar strategy.
    seed: the config seed.
    steps: one dict per finished step: step, name, classes (dataset class ids),
      columns, seen_classes, accuracy (class-incremental: % of the test images of
      all seen classes; task-incremental: mean over seen tasks of each task's
      accuracy with its own head), group_accuracy (per arrived group / task),
      memory (stored_images, stored_pixels, formed_images of the whole memory),
      train_images, train_steps, loss, memory_seconds, train_seconds.
  """

  setting: str
  strategy: str
  seed: int
  steps: Tuple[Dict[str, Any], ...]

  @property
  def accuracies(self) -> List[float]:
    return [float(s["accuracy"]) for s in self.steps]

  def as_dict(self) -> Dict[str, Any]:
    return dict(setting=self.setting, strategy=self.strategy, seed=self.seed,
                accuracies=self.accuracies, steps=list(self.steps))


@dataclasses.dataclass(frozen=True)
class _Plan:
  """One step of a scenario: which columns arrive, from which data."""

  name: str
  classes: Tuple[int, ...]     # dataset class ids (of the step's own dataset)
  columns: Tuple[int, ...]     # classifier columns of those classes, in the same order
  group: int                   # softmax group (task) of the columns
  train: int                   # training images available at the step
  test: int                    # test images


class _IncrementalLearner:
  """The loop shared by the class- and task-incremental learners."""

  setting = ""
  default_train_on = "memory"

  def __init__(self, plans: Sequence[_Plan], step_source: Callable[[int], SourceData],
               step_test: Callable[[int], Tuple[np.ndarray, np.ndarray]],
               config: ContinualConfig, *, image_shape, mean, std, flip: bool,
               sources_record: Dict[str, Any], run_dir: Optional[str],
               show_progress: bool):
    self.config = config
    self.plans = tuple(plans)
    self._step_source = step_source
    self._step_test = step_test
    self.image_shape = tuple(int(d) for d in image_shape)
    self.mean, self.std = tuple(mean), tuple(std)
    self.flip = bool(flip) if config.flip is None else bool(config.flip)
    self.train_on = config.train_on or self.default_train_on
    self.run_dir = run_dir
    self.show_progress = show_progress
    self.model = None
    self._memories: List[memory_lib.Exemplars] = []
    self._results: List[Dict[str, Any]] = []
    self.record = dict(setting=self.setting, config=config.record(),
                       train_on=self.train_on, flip=self.flip,
                       image_shape=list(self.image_shape), sources=sources_record,
                       steps=[dict(name=p.name, classes=list(p.classes),
                                   columns=list(p.columns), group=p.group, train=p.train,
                                   test=p.test) for p in self.plans])
    if run_dir:
      from tfcondense import engine  # pylint: disable=g-import-not-at-top
      engine.guard_config(run_dir, self.record)
      self._load_state()

  # ------------------------------------------------------------------ state
  def _step_dir(self, t: int) -> Optional[str]:
    return os.path.join(self.run_dir, f"step_{t:03d}") if self.run_dir else None

  def _load_state(self) -> None:
    path = os.path.join(self.run_dir, _STATE)
    if not fileio.exists(path):
      return
    try:
      results = fileio.read_json(path)["results"]
    except (OSError, ValueError, KeyError) as e:
      raise CorruptArtifactError(f"{path} is unreadable ({e}); remove {self.run_dir}") from e
    done = len(results)
    if done > len(self.plans):
      raise CorruptArtifactError(f"{path} lists {done} steps, the scenario has "
                                 f"{len(self.plans)}; remove {self.run_dir}")
    self._memories = [memory_lib.Exemplars.load(os.path.join(self._step_dir(t), "memory"))
                      for t in range(done)]
    if done:
      weights = os.path.join(self._step_dir(done - 1), "model.weights.h5")
      model = self._build(self._columns_until(done - 1), done - 1)
      try:
        model.load_weights(weights)
      except (OSError, ValueError) as e:
        raise CorruptArtifactError(
            f"cannot load {weights} ({e}); remove {self.run_dir} to start afresh") from e
      self.model = model
    self._results = list(results)

  def _save_step(self, t: int, result: Dict[str, Any]) -> None:
    d = self._step_dir(t)
    fileio.makedirs(d)
    with atomic.replacing(os.path.join(d, "model.weights.h5"), ".weights.h5") as tmp:
      self.model.save_weights(tmp, overwrite=True)
    atomic.write_json(os.path.join(d, "result.json"), result)
    atomic.write_json(os.path.join(self.run_dir, _STATE),
                       dict(results=self._results + [result]))

  # ------------------------------------------------------------------ pieces
  @property
  def finished_steps(self) -> int:
    return len(self._results)

  @property
  def results(self) -> ContinualResult:
    return ContinualResult(self.setting, self.config.strategy.lower(), int(self.config.seed),
                           tuple(self._results))

  @property
  def memory(self) -> Tuple[memory_lib.Exemplars, ...]:
    """The exemplars of every finished (or started) step, labels = classifier columns."""
    return tuple(self._memories)

  def _seed(self, salt: int, t: int) -> int:
    from tfcondense.methods.base import fresh_seed  # pylint: disable=g-import-not-at-top
    return fresh_seed(int(self.config.seed), salt, t)

  def _columns_until(self, t: int) -> int:
    return sum(len(p.columns) for p in self.plans[:t + 1])

  def _build(self, num_classes: int, t: int):
    cfg = self.config
    return ev.build_with_precision(cfg.protocol.precision, cfg.model, self.image_shape,
                                   num_classes, seed=self._seed(_SALT_MODEL, t),
                                   **dict(cfg.model_options))

  def _column_groups(self, t: int) -> List[int]:
    return [p.group for p in self.plans[:t + 1] for _ in p.columns]

  def _old_blocks(self, t: int) -> List[Tuple[int, int]]:
    """Column ranges of the old classes, one per softmax group."""
    blocks: Dict[int, List[int]] = {}
    for p in self.plans[:t]:
      blocks.setdefault(p.group, []).extend(p.columns)
    return [(min(c), max(c) + 1) for c in blocks.values()]

  def _make_memory(self, t: int, source: SourceData) -> Tuple[memory_lib.Exemplars, float]:
    """Step t's exemplars: from disk if already built, else from `source` only."""
    plan = self.plans[t]
    d = self._step_dir(t)
    path = os.path.join(d, "memory") if d else None
    if path and fileio.exists(os.path.join(path, "meta.json")):
      return memory_lib.Exemplars.load(path), 0.0
    t0 = time.perf_counter()
    ex = memory_lib.build_exemplars(
        self.config.strategy, source, self.config.memory_ipc, self._seed(_SALT_MEMORY, t),
        self.config.exemplars, workdir=os.path.join(d, "condense") if d else None)
    seconds = time.perf_counter() - t0
    ex = ex.relabel(plan.columns)
    ex = dataclasses.replace(ex, meta=dict(ex.meta, step=t, classes=list(plan.classes),
                                           columns=list(plan.columns),
                                           seconds=round(seconds, 2)))
    if path:
      ex.save(path, dict(source=source.name))
    return ex, seconds

  def _training_set(self, t: int, source: SourceData) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(m.formed() for m in self._memories[:t + 1]))
    xs, ys = list(xs), list(ys)
    if self.train_on == "memory+current":
      xs[t] = np.asarray(source.train_images, np.float32)
      ys[t] = np.asarray(self.plans[t].columns, np.int32)[source.train_labels]
    return np.concatenate(xs), np.concatenate(ys).astype(np.int32)

  def _evaluate(self, t: int) -> Tuple[float, List[float]]:
    mean = tf.constant(self.mean, tf.float32)
    std = tf.constant(self.std, tf.float32)
    model = self.model
    logits_fn = tf.function(lambda x: tf.cast(model((x - mean) / std, training=False),
                                              tf.float32), reduce_retracing=True)
    per_group, correct_total, count_total = [], 0, 0
    for s in range(t + 1):
      x, local = self._step_test(s)
      y = np.asarray(self.plans[s].columns, np.int32)[local]
      block = [c for c, g in enumerate(self._column_groups(t)) if g == self.plans[s].group]
      correct = 0
      for i in range(0, len(x), 1000):
        z = logits_fn(tf.constant(x[i:i + 1000])).numpy()
        if self.setting == "task_incremental":
          pred = np.asarray(block)[np.argmax(z[:, block], axis=1)]
        else:
          pred = np.argmax(z, axis=1)
        correct += int((pred == y[i:i + 1000]).sum())
      per_group.append(100.0 * correct / max(1, len(x)))
      correct_total += correct
      count_total += len(x)
    if self.setting == "task_incremental":
      return float(np.mean(per_group)), per_group
    return 100.0 * correct_total / max(1, count_total), per_group

  # -------------------------------------------------------------------- run
  def run(self, until: Optional[int] = None,
          on_step: Optional[Callable[[Dict[str, Any]], None]] = None) -> ContinualResult:
    """Runs the steps after the last finished one, up to `until` (exclusive; None = all).

    Args:
      until: stop after this many steps in total (e.g. 2 runs steps 0 and 1).
      on_step: called with each finished step's result dict (apps print it).

    Returns:
      The ContinualResult of every finished step (resumed ones included).
    """
    cfg = self.config
    stop = len(self.plans) if until is None else min(int(until), len(self.plans))
    for t in range(self.finished_steps, stop):
      plan = self.plans[t]
      source = self._step_source(t)  # this step's data only
      ex, memory_seconds = self._make_memory(t, source)
      self._memories = self._memories[:t] + [ex]
      teacher = self.model
      columns = self._columns_until(t)
      if teacher is None:
        model = self._build(columns, t)
      else:
        model = grow_classifier(teacher, len(plan.columns), lambda n, t=t: self._build(n, t))
      x, y = self._training_set(t, source)
      trainer = IncrementalTrainer(
          model, x, y, self.mean, self.std, cfg.protocol, flip=self.flip, teacher=teacher,
          temperature=cfg.temperature, distill_weight=cfg.distill_weight,
          blocks=self._old_blocks(t), column_groups=self._column_groups(t))
      trainer.start(self._seed(_SALT_TRAIN, t))
      t0 = time.perf_counter()
      total = trainer.total_steps
      bounds = sorted({round(total * (k + 1) / 20) for k in range(20)} - {0})
      done, loss = 0, float("nan")
      with progress_lib.progress(total, f"{cfg.strategy} step {t + 1}/{len(self.plans)}",
                                 enabled=self.show_progress, unit="step") as bar:
        for b in bounds:
          loss = trainer.train(done, b - done)
          bar.update(b - done)
          done = b
      train_seconds = time.perf_counter() - t0
      self.model = model
      accuracy, per_group = self._evaluate(t)
      storage = [m.storage() for m in self._memories]
      result = dict(
          step=t, name=plan.name, classes=list(plan.classes), columns=list(plan.columns),
          seen_classes=columns, accuracy=accuracy, group_accuracy=per_group,
          memory={k: int(sum(s[k] for s in storage)) for k in storage[0]},
          train_images=int(len(x)), train_steps=int(trainer.total_steps), loss=float(loss),
          memory_seconds=round(memory_seconds, 2), train_seconds=round(train_seconds, 2),
          protocol=cfg.protocol.name, strategy=cfg.strategy.lower())
      if self.run_dir:
        self._save_step(t, result)
      self._results.append(result)
      if on_step is not None:
        on_step(result)
    return self.results


class ClassIncrementalLearner(_IncrementalLearner):
  """Class-incremental learning on one source (IDC Fig. 7: CIFAR-100, 5 x 20 classes).

  Args:
    source: the SourceData.
    config: ContinualConfig (train_on defaults to "memory").
    steps: number of class groups; must divide the number of classes.
    class_order: explicit order of all classes; default
      `make_class_order(n, order_seed)`.
    order_seed: seed of the default order.
    run_dir: directory for resume (None: in memory only).
    show_progress: progress bars.

  Raises (before anything trains):
    InvalidConfigError: steps not dividing the classes, a bad order, a memory that
      cannot hold one image per class or is larger than a class, a bad condensation
      setting, or a run_dir holding a run with other settings.
    UnknownNameError: unknown strategy or model.
  """

  setting = "class_incremental"
  default_train_on = "memory"

  def __init__(self, source: SourceData, config: ContinualConfig = ContinualConfig(), *,
               steps: int = 5, class_order: Optional[Sequence[int]] = None,
               order_seed: int = 0, run_dir: Optional[str] = None,
               show_progress: bool = True):
    order = (tuple(int(c) for c in class_order) if class_order is not None
             else make_class_order(source.num_classes, order_seed))
    groups = split_classes(order, steps, source.num_classes)
    source.check_ipc(config.memory_ipc)
    memory_lib.check_strategy(config.strategy, source.name, config.memory_ipc,
                              config.exemplars)
    self.source = source
    self.class_order = order
    self.groups = groups
    counts = source.class_counts()
    test_counts = np.bincount(source.test_labels, minlength=source.num_classes)
    plans, start = [], 0
    for g in groups:
      plans.append(_Plan(name=",".join(source.class_names[c] for c in g), classes=g,
                         columns=tuple(range(start, start + len(g))), group=0,
                         train=int(counts[list(g)].min()),
                         test=int(test_counts[list(g)].sum())))
      start += len(g)
    def step_test(t):
      remap = np.full(source.num_classes, -1, np.int32)
      remap[list(groups[t])] = np.arange(len(groups[t]), dtype=np.int32)
      keep = remap[source.test_labels] >= 0
      return source.test_images[keep], remap[source.test_labels[keep]]

    flip = source.name not in ev.NO_FLIP_SOURCES
    super().__init__(plans, lambda t: source.subset(groups[t]), step_test, config,
                     image_shape=source.image_shape, mean=source.mean, std=source.std,
                     flip=flip, sources_record=dict(name=source.name,
                                                    train=int(len(source.train_labels)),
                                                    test=int(len(source.test_labels))),
                     run_dir=run_dir, show_progress=show_progress)


class TaskIncrementalLearner(_IncrementalLearner):
  """Task-incremental learning over a sequence of datasets (DC: SVHN -> MNIST -> USPS).

  One head per task (a shared classifier with per-task column blocks, see the module
  docstring); the task is known at test time. Tasks of different shapes are
  harmonised with `harmonize`.

  Args:
    tasks: SourceData per task (or names, loaded with `tfcondense.data.load_source`).
    config: ContinualConfig (train_on defaults to "memory+current").
    image_shape: common (H, W, C) (None: the largest of each dimension).
    run_dir, show_progress: as ClassIncrementalLearner.
  """

  setting = "task_incremental"
  default_train_on = "memory+current"

  def __init__(self, tasks: Sequence[Union[str, SourceData]],
               config: ContinualConfig = ContinualConfig(), *,
               image_shape: Optional[Sequence[int]] = None, run_dir: Optional[str] = None,
               show_progress: bool = True):
    tasks = task_sequence(tasks, image_shape)
    for s in tasks:
      s.check_ipc(config.memory_ipc)
      memory_lib.check_strategy(config.strategy, s.name, config.memory_ipc,
                                config.exemplars)
    self.tasks = tasks
    plans, start = [], 0
    for i, s in enumerate(tasks):
      k = s.num_classes
      plans.append(_Plan(name=f"{i}:{s.name}", classes=tuple(range(k)),
                         columns=tuple(range(start, start + k)), group=i,
                         train=int(s.class_counts().min()), test=int(len(s.test_labels))))
      start += k
    mean = tuple(float(v) for v in np.mean([s.mean for s in tasks], axis=0))
    std = tuple(float(v) for v in np.mean([s.std for s in tasks], axis=0))
    flip = all(s.name not in ev.NO_FLIP_SOURCES for s in tasks)
    super().__init__(plans, lambda t: tasks[t],
                     lambda t: (tasks[t].test_images, tasks[t].test_labels), config,
                     image_shape=tasks[0].image_shape,
                     mean=mean, std=std, flip=flip,
                     sources_record=[dict(name=s.name, train=int(len(s.train_labels)),
                                          test=int(len(s.test_labels)))
                                     for s in tasks],
                     run_dir=run_dir, show_progress=show_progress)


# ---------------------------------------------------------------- comparisons
def compare(scenario: Callable[[ContinualConfig, Optional[str]], "_IncrementalLearner"],
            config: ContinualConfig, strategies: Sequence[str], seeds: Sequence[int] = (0,),
            run_root: Optional[str] = None,
            on_step: Optional[Callable[[str, int, Dict[str, Any]], None]] = None,
            on_start: Optional[Callable[[str, int, int], None]] = None
            ) -> List[ContinualResult]:
  """Runs one scenario for every (strategy, seed), each resumable in its own run dir.

  All learners are built (so every setting is checked) before any of them trains.

  Args:
    scenario: `fn(config, run_dir) -> learner`, e.g.
      `lambda c, d: ClassIncrementalLearner(source, c, steps=5, run_dir=d)`.
    config: the shared ContinualConfig (its strategy and seed are replaced).
    strategies: exemplar strategies.
    seeds: config seeds (training, exemplars and initialisation; the class order is
      the scenario's).
    run_root: parent of the run dirs `<strategy>_seed<seed>` (None: no resume).
    on_step: `fn(strategy, seed, step_result)` after every step.
    on_start: `fn(strategy, seed, finished_steps)` before each learner runs.

  Returns:
    One ContinualResult per (strategy, seed), strategies outermost.
  """
  configs = [dataclasses.replace(config, strategy=strategy, seed=int(seed))
             for strategy in strategies for seed in seeds]  # checks every strategy
  learners = []
  for cfg in configs:
    strategy, seed = cfg.strategy.lower(), int(cfg.seed)
    run_dir = os.path.join(run_root, f"{strategy}_seed{seed}") if run_root else None
    learners.append((strategy, seed, scenario(cfg, run_dir)))
  results = []
  for strategy, seed, learner in learners:
    if on_start is not None:
      on_start(strategy, seed, learner.finished_steps)
    hook = None if on_step is None else (lambda r, s=strategy, k=seed: on_step(s, k, r))
    results.append(learner.run(on_step=hook))
  return results


def summarize(results: Sequence[Union[ContinualResult, Dict[str, Any]]]
              ) -> Dict[str, Dict[str, List[float]]]:
  """Per strategy: mean and std over seeds of the accuracy after each step."""
  rows = [r.as_dict() if isinstance(r, ContinualResult) else r for r in results]
  out: Dict[str, Dict[str, List[float]]] = {}
  for strategy in dict.fromkeys(r["strategy"] for r in rows):
    runs = [r["accuracies"] for r in rows if r["strategy"] == strategy]
    n = min(len(a) for a in runs)
    acc = np.array([a[:n] for a in runs], np.float64).reshape(len(runs), n)
    out[strategy] = dict(mean=acc.mean(0).round(2).tolist(), std=acc.std(0).round(2).tolist(),
                         seeds=len(runs))
  return out


def format_table(results: Sequence[Union[ContinualResult, Dict[str, Any]]]) -> str:
  """A Markdown table: one row per strategy, accuracy after each step (mean +- std)."""
  summary = summarize(results)
  steps = max((len(v["mean"]) for v in summary.values()), default=0)
  lines = ["| strategy | seeds | " + " | ".join(f"step {i + 1}" for i in range(steps)) + " |",
           "|---|---|" + "---|" * steps]
  for strategy, v in summary.items():
    cells = [f"{m:.2f} +- {s:.2f}" for m, s in zip(v["mean"], v["std"])]
    cells += [""] * (steps - len(cells))
    lines.append(f"| {strategy} | {v['seeds']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


# ---------------------------------------------------------------------- plots
def plot_accuracy(results: Sequence[Union[ContinualResult, Dict[str, Any]]], path: str,
                  title: Optional[str] = None) -> str:
  """Test accuracy vs. step, one line per strategy (mean +- std over seeds).

  The shape of IDC's Figure 7: x = number of classes seen (class-incremental) or
  number of tasks (task-incremental), y = accuracy (%). Written atomically.

  Returns:
    The absolute path of the PNG.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = [r.as_dict() if isinstance(r, ContinualResult) else r for r in results]
  by_strategy: Dict[str, List[Dict[str, Any]]] = {}
  for r in rows:
    by_strategy.setdefault(r["strategy"], []).append(r)
  fig, ax = plt.subplots(figsize=(5.5, 4.0))
  task = any(r["setting"] == "task_incremental" for r in rows)
  for strategy, runs in by_strategy.items():
    n = min(len(r["steps"]) for r in runs)
    if n == 0:
      continue
    acc = np.array([[s["accuracy"] for s in r["steps"][:n]] for r in runs])
    xs = ([i + 1 for i in range(n)] if task
          else [runs[0]["steps"][i]["seen_classes"] for i in range(n)])
    mean, std = acc.mean(0), acc.std(0)
    ax.plot(xs, mean, marker="o", label=f"{strategy} ({len(runs)} seed"
            f"{'s' if len(runs) > 1 else ''})")
    if len(runs) > 1:
      ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.set_xticks(xs)
  ax.set_xlabel("number of tasks" if task else "number of classes")
  ax.set_ylabel("test accuracy (%)")
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  return atomic.save_figure(fig, path, dpi=120)
