"""One step's training: the evaluator's `Trainer` with the continual loss.

Training reuses the evaluator's pieces (`tfcondense.evaluation.Trainer`: the
per-sample augmentation policy, CutMix, the stateless batch order, PyTorch SGD with
the milestone schedule); only the loss of its `_step` is extended here
(`tfcondense.continual.losses`). The network is not re-initialised between steps (the
IDC reference, Kim et al., ICML 2022, continues training the same model); SGD momentum
restarts at every step (a new optimiser per step, as the reference).

This module is the only one of `tfcondense.continual` that reaches into the
evaluator's internals (`Trainer._step`'s body, `_sgd_update`, `_lr_at`), so that a
shared training layer can replace them here alone.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfcondense import evaluation as ev
from tfcondense import seeds
from tfcondense.continual.losses import classification_loss, distillation_loss

#: Second word of the trainer's stateless seed, [step seed, salt]: the evaluator's own
#: (the batch order is inherited from `evaluation.Trainer`, so it is one stream).
_SALT_STEP = seeds.salt("evaluation.trainer")


class IncrementalTrainer(ev.Trainer):
  """`evaluation.Trainer` with the continual loss: CutMix CE (+ per-task heads) + KD.

  Everything but the loss is the evaluator's (batch order, augmentation policy,
  CutMix, `_sgd_update` with `_lr_at`'s milestones, the tf.function loop); `start`
  replaces `reset` so the model keeps its weights.

  Args:
    model, images, labels, mean, std, protocol, flip: as `evaluation.Trainer`.
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
    self._seed.assign([int(seed), _SALT_STEP])

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
