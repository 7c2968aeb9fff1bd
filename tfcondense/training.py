"""The training layer: SGD, its schedule, networks under a precision, and the Trainer.

One implementation of each piece, shared by the evaluator (`tfcondense.evaluation`),
the methods (their networks and every SGD update: synthetic images, matching networks,
model pools, MTT experts), selection's embedding network, soft-label teachers
(`tfcondense.relabel`) and continual learning (`tfcondense.continual.training`):

* `sgd_step`: PyTorch's `torch.optim.SGD` update (the reference code of IDC, Kim et al.,
  ICML 2022, DC-BENCH, Cui et al., 2022, and every method here uses it):
  d = g + wd * w; buf = m * buf + d; w -= lr * buf. Written by hand because Keras 3's
  `keras.optimizers.SGD` applies weight decay as a decoupled shrink
  (w -= lr * wd * w, outside the momentum buffer), not PyTorch's coupled form, and
  keeps its buffers inside the optimiser where a resumable run cannot checkpoint them
  beside its own variables.
* `milestone_lr`: the step schedule (lr x gamma at each fraction of training).
* `build_with_precision`: a registry network under a Keras dtype policy.
* `make_augmentation`: the per-sample augmentation policy of a protocol.
* `Trainer`: one network trained on one in-memory set (stateless batch order,
  augmentation, CutMix, `sgd_step` with `milestone_lr`), its whole loop in one
  `tf.function`; subclasses change only the loss (`Trainer.loss`, the loss hook).

The trainer reads its recipe from a protocol object: an `evaluation.Protocol` (the
evaluator names them) or anything with its fields (batch_size, total_steps(n),
augmentation, dsa_strategy(), cutmix_prob, lr, milestones, gamma, momentum,
weight_decay, num_evals).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from tfcondense import seeds
from tfcondense import soft_labels as soft_lib
from tfcondense.errors import InvalidConfigError, NonFiniteLossError

#: How `sgd_step` treats a variable whose gradient is None.
MISSING_GRADIENTS = ("skip", "zero")


def sgd_step(variables: Sequence[tf.Variable], buffers: Sequence[tf.Variable], grads, lr,
             momentum: float, weight_decay: float = 0.0, *, missing: str = "skip") -> None:
  """One PyTorch SGD step: d = g + wd * w; buf = m * buf + d; w -= lr * buf.

  Args:
    variables: the variables to update.
    buffers: their momentum buffers (same shapes; `zeros_like_all(variables)`).
    grads: one gradient per variable (a tensor, IndexedSlices or None).
    lr: one learning rate (a float or a tensor broadcasting against every variable),
      or a list with one per variable.
    momentum: m (0: plain SGD, the buffer is the last step's direction).
    weight_decay: wd, coupled as PyTorch's (added to the gradient).
    missing: a None gradient is "skip"ped (variable and buffer untouched, as PyTorch
      does for a parameter without .grad), or taken as "zero" (the buffer still decays
      and moves the variable: IDC's synthetic images, where the reference keeps every
      class in one tensor under one optimiser, so each class's step moves every
      class's buffer).

  Raises:
    InvalidConfigError: `missing` is not one of MISSING_GRADIENTS.
  """
  if missing not in MISSING_GRADIENTS:
    raise InvalidConfigError(f"missing must be one of {MISSING_GRADIENTS}, got {missing!r}")
  lrs = list(lr) if isinstance(lr, (list, tuple)) else [lr] * len(variables)
  for v, b, g, step_lr in zip(variables, buffers, grads, lrs):
    if g is None:
      if missing == "skip":
        continue
      g = tf.zeros_like(v)
    d = tf.convert_to_tensor(g)
    if weight_decay:
      d = d + weight_decay * v
    b.assign(momentum * b + d)
    v.assign_sub(step_lr * b)


def zeros_like_all(variables) -> list:
  """One non-trainable zero variable per variable (e.g. SGD momentum buffers)."""
  return [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]


def reset_all(buffers) -> None:
  """Zeroes every buffer in place (a fresh optimiser)."""
  for b in buffers:
    b.assign(tf.zeros_like(b))


def milestone_lr(step, total, lr: float, milestones: Sequence[float], gamma: float) -> tf.Tensor:
  """The learning rate at `step` of `total`: `lr` times `gamma` per milestone passed.

  A milestone is a fraction of training (IDC's evaluation: 2/3 and 5/6, gamma 0.2, as
  `torch.optim.lr_scheduler.MultiStepLR` at those epochs).
  """
  out = tf.constant(lr, tf.float32)
  frac = tf.cast(step, tf.float32) / tf.cast(total, tf.float32)
  for m in milestones:
    out = tf.where(frac >= m, out * gamma, out)
  return out


def build_with_precision(precision: str, *args, **kwargs):
  """`models.build_model(*args, **kwargs)` under the Keras dtype policy `precision`
  ("float32" or "mixed_bfloat16"); the global policy is restored afterwards."""
  import keras  # pylint: disable=g-import-not-at-top
  from tfcondense.models import build_model  # pylint: disable=g-import-not-at-top
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(precision)
  try:
    return build_model(*args, **kwargs)
  finally:
    keras.config.set_dtype_policy(previous)


def make_augmentation(protocol, image_shape: Sequence[int], mean: Sequence[float],
                      std: Sequence[float], flip: bool = True):
  """The per-sample augmentation policy `protocol` trains with (before CutMix):
  `policy(x, seed) -> x` on [0, 1] NHWC images; DSA gets `protocol.dsa_strategy()`."""
  from tfcondense.augment import policies  # pylint: disable=g-import-not-at-top
  options = {"strategy": protocol.dsa_strategy()} if protocol.augmentation == "dsa" else {}
  return policies.make_policy(protocol.augmentation, image_shape=image_shape, mean=mean,
                              std=std, flip=flip, **options)


class Batch(NamedTuple):
  """One training step's batch, as the loss hook sees it.

  Attributes:
    x: the network's input (augmented, normalised, CutMixed).
    y: the sampled labels (int [B]) before CutMix.
    y_a, y_b, lam: CutMix's label pair and area ratio (y, y, 1.0 without CutMix).
    targets: mixed soft-label distributions [B, classes], or None for hard labels.
  """
  x: tf.Tensor
  y: tf.Tensor
  y_a: tf.Tensor
  y_b: tf.Tensor
  lam: tf.Tensor
  targets: Optional[tf.Tensor]


#: The root of a Trainer's draws, [seed, salt] (tfcondense/seeds.py), and the salt of
#: its epoch permutations folded into it.
_TRAINER_SALT = seeds.salt("training.trainer")
_EPOCH_ORDER_SALT = seeds.salt("training.epoch_order")


class Trainer:
  """Trains one model on one in-memory set with a protocol's recipe.

  Each step samples a batch (a stateless permutation per epoch), augments it per
  sample, normalises it, applies CutMix, computes `loss(logits, batch)` and takes one
  `sgd_step` at `milestone_lr`. `reset(seed)` re-initialises the model and the
  optimiser, so one Trainer (one traced graph) serves many repetitions.

  The loss hook: a subclass overrides `loss` (e.g. the continual learner's
  cross-entropy + distillation); `prepare` may set the seed without re-initialising.

  Args:
    model: a Keras model mapping normalised NHWC images to logits.
    images: float32 [N, H, W, C] in [0, 1].
    labels: int [N].
    mean, std: per-channel normalisation statistics.
    protocol: the recipe (see the module docstring).
    flip: whether horizontal flips are allowed in the augmentation.
    soft_labels: a `tfcondense.soft_labels.SoftLabels` with one row per image: train on
      its distributions (CutMix mixes them by its area ratio) with its loss; None:
      hard labels.
    swappable: hold the set in variables so that `load` can replace it (the evaluator's
      kept Trainers); False holds it as constants.
  """

  def __init__(self, model, images, labels, mean, std, protocol, flip: bool = True,
               soft_labels: Optional[soft_lib.SoftLabels] = None, swappable: bool = False):
    from tfcondense.augment import mix  # pylint: disable=g-import-not-at-top
    self.model = model
    self.protocol = protocol
    self.n = int(len(images))
    self.batch = min(protocol.batch_size, self.n)
    self.steps_per_epoch = math.ceil(self.n / self.batch)
    self.total_steps = protocol.total_steps(self.n)
    # Swappable: variables, so `load` can swap in another set of the same size without
    # retracing (the graph reads them); else constants (no second copy of a large set).
    self._swappable = swappable
    hold = ((lambda t: tf.Variable(t, trainable=False)) if swappable
            else (lambda t: t))
    self._x = hold(tf.convert_to_tensor(images, tf.float32))
    self._y = hold(tf.convert_to_tensor(labels, tf.int32))
    self._soft = soft_labels
    self._p = (None if soft_labels is None
               else hold(tf.constant(soft_labels.probabilities(), tf.float32)))
    self._mean = tf.constant(mean, tf.float32)
    self._std = tf.constant(std, tf.float32)
    self._policy = make_augmentation(protocol, images.shape[1:], mean, std, flip)
    self._cutmix = mix.cutmix
    self._cutmix_loss = mix.cutmix_loss
    self._buffers = zeros_like_all(model.trainable_variables)
    self._seed = tf.Variable([0, 0], dtype=tf.int64, trainable=False)
    # AutoGraph converts only the step loop: the step itself (and the Keras and
    # augmentation code it calls) has no tensor-dependent Python control flow, and
    # converting it again at every trace was a quarter of the trace time. Anything
    # that needed conversion would fail to trace, not compute something else.
    self._step_body = untraced_by_autograph(self._step)
    self._train = tf.function(self._train_steps)
    self._accuracy = tf.function(self._accuracy_impl, autograph=False)

  def load(self, images, labels, soft_labels: Optional[soft_lib.SoftLabels] = None) -> None:
    """Trains on another set of the same size from now on, without retracing.

    Args:
      images, labels, soft_labels: as for the constructor; the same number of images,
        and soft labels exactly when the Trainer was built with them, with the same
        loss and temperature (both are part of the traced graph).

    Raises:
      InvalidConfigError: the Trainer is not swappable, or the set does not fit its
        traced graph.
    """
    if not self._swappable:
      raise InvalidConfigError("load: this Trainer was built with swappable=False")
    n = int(len(images))
    same_soft = (soft_labels is None) == (self._soft is None) and (
        soft_labels is None or (soft_labels.loss, soft_labels.temperature) ==
        (self._soft.loss, self._soft.temperature))
    if n != self.n or tuple(np.shape(images)[1:]) != tuple(self._x.shape[1:]) or not same_soft:
      raise InvalidConfigError(
          f"load: this Trainer was traced for {self.n} images of shape "
          f"{tuple(self._x.shape[1:])}{'' if self._soft is None else ' with soft labels'}; "
          f"got {n} of shape {tuple(np.shape(images)[1:])}")
    self._x.assign(tf.convert_to_tensor(images, tf.float32))
    self._y.assign(tf.convert_to_tensor(labels, tf.int32))
    if soft_labels is not None:
      self._soft = soft_labels
      self._p.assign(tf.constant(soft_labels.probabilities(), tf.float32))

  def reset(self, seed: int) -> None:
    """Re-initialises the model (`models.initialize(model, seed)`) and the optimiser,
    and seeds the batch order and augmentation."""
    from tfcondense.models import initialize  # pylint: disable=g-import-not-at-top
    initialize(self.model, seed)
    self.prepare(seed)

  def prepare(self, seed: int) -> None:
    """Zeroes the SGD momentum and seeds the draws; the model keeps its weights."""
    reset_all(self._buffers)
    self._seed.assign([int(seed), _TRAINER_SALT])

  def _batch_indices(self, step):
    epoch = step // self.steps_per_epoch
    pos = step % self.steps_per_epoch
    perm_seed = tf.random.experimental.stateless_fold_in(
        tf.random.experimental.stateless_fold_in(self._seed, _EPOCH_ORDER_SALT), epoch)
    perm = tf.argsort(tf.random.stateless_uniform([self.n], perm_seed))
    idx = (pos * self.batch + tf.range(self.batch, dtype=step.dtype)) % self.n
    return tf.gather(perm, idx)

  def sample(self, step) -> Batch:
    """Step `step`'s batch: sampled, augmented, normalised, CutMixed."""
    p = self.protocol
    seed = tf.random.experimental.stateless_fold_in(self._seed, step)
    idx = self._batch_indices(step)
    x = self._policy(tf.gather(self._x, idx),
                     tf.random.experimental.stateless_fold_in(seed, 2))
    x = (x - self._mean) / self._std
    y = tf.gather(self._y, idx)
    y_a, y_b, lam = y, y, tf.constant(1.0)
    targets = None if self._p is None else tf.gather(self._p, idx)
    if p.cutmix_prob > 0 and targets is not None:
      # The same draw as with hard labels; CutMix returns batch positions to mix by.
      x, pa, pb, lam = self._cutmix(x, tf.range(tf.shape(y)[0]),
                                    tf.random.experimental.stateless_fold_in(seed, 3),
                                    prob=p.cutmix_prob)
      targets = lam * tf.gather(targets, pa) + (1.0 - lam) * tf.gather(targets, pb)
    elif p.cutmix_prob > 0:
      x, y_a, y_b, lam = self._cutmix(x, y, tf.random.experimental.stateless_fold_in(seed, 3),
                                      prob=p.cutmix_prob)
    return Batch(x, y, y_a, y_b, lam, targets)

  def loss(self, logits, batch: Batch) -> tf.Tensor:
    """The loss hook: float32 `logits` of `batch.x` -> a scalar loss.

    Default: the soft-label loss on `batch.targets` when training on soft labels,
    else CutMix's mixed cross-entropy (plain cross-entropy without CutMix).
    """
    if batch.targets is not None:
      return soft_lib.soft_loss(logits, batch.targets, self._soft.temperature,
                                self._soft.loss)
    if self.protocol.cutmix_prob > 0:
      return self._cutmix_loss(logits, batch.y_a, batch.y_b, batch.lam)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch.y, logits))

  def _step(self, step):
    """One SGD step: sample a batch, forward, `loss`, backward, update."""
    p = self.protocol
    batch = self.sample(step)
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      logits = tf.cast(self.model(batch.x, training=True), tf.float32)
      loss = self.loss(logits, batch)
    grads = tape.gradient(loss, variables)
    sgd_step(variables, self._buffers, grads,
             milestone_lr(step, self.total_steps, p.lr, p.milestones, p.gamma),
             p.momentum, p.weight_decay)
    return loss

  def _train_steps(self, start, count):
    loss = tf.constant(0.0)
    for i in tf.range(count):
      loss = self._step_body(start + tf.cast(i, tf.int64))
    return loss

  def _accuracy_impl(self, x, y):
    logits = self.model((x - self._mean) / self._std, training=False)
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y),
                                 tf.int32))

  def train(self, start: int, count: int) -> float:
    """Steps start .. start + count - 1; returns the last step's loss.

    Raises:
      NonFiniteLossError: the loss became NaN or infinite.
    """
    loss = float(self._train(tf.constant(start, tf.int64), tf.constant(count, tf.int64)))
    if not math.isfinite(loss):
      raise NonFiniteLossError(
          f"training loss became {loss} at step {start + count}; lower the lr "
          "or check the images for NaN/inf values")
    return loss

  def run(self, bar=None, test=None) -> list:
    """Trains for the whole protocol from step 0, in chunks that advance `bar`.

    Args:
      bar: a progress bar to update (optional).
      test: called at each of the protocol's `num_evals` test points; returns a number.

    Returns:
      What `test` returned at each test point (empty without `test`).
    """
    bounds, evals = schedule(self.total_steps, self.protocol.num_evals)
    done, results = 0, []
    for b in bounds:
      self.train(done, b - done)
      if bar is not None:
        bar.update(b - done)
      done = b
      if test is not None and b in evals:
        results.append(test())
    return results

  def accuracy(self, images, labels, batch_size: int = 1000) -> float:
    """Top-1 accuracy (%) of the model on (images, labels), in batches."""
    correct = 0
    for i in range(0, len(images), batch_size):
      correct += int(self._accuracy(tf.constant(images[i:i + batch_size]),
                                    tf.constant(labels[i:i + batch_size], tf.int32)))
    return 100.0 * correct / len(images)


def untraced_by_autograph(fn):
  """`fn` as AutoGraph leaves it: called as plain Python inside a `tf.function`.

  For the bodies of the library's traced loops (a training step, a class's matching):
  their Python control flow is over Python values only, and AutoGraph's conversion of
  them and of everything they call (Keras layers, augmentations) is repeated at every
  trace (about a quarter of the evaluator's trace time here, AMD EPYC, 2 cores). A body
  that did branch on a tensor fails to trace instead of computing something else.
  """
  return tf.autograph.experimental.do_not_convert(fn)


def schedule(total: int, num_evals: int, granularity: int = 20):
  """Step boundaries of `Trainer.run`: `num_evals` test points plus progress points;
  returns (sorted boundaries, the set of test points)."""
  evals = {round(total * (k + 1) / num_evals) for k in range(num_evals)}
  marks = {round(total * (k + 1) / granularity) for k in range(granularity)}
  return sorted(b for b in evals | marks if b > 0), evals


__all__ = ["Batch", "MISSING_GRADIENTS", "Trainer", "build_with_precision",
           "make_augmentation", "milestone_lr", "reset_all", "schedule", "sgd_step",
           "untraced_by_autograph", "zeros_like_all"]
