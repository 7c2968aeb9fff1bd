"""One step's training: the library's `Trainer` with the continual loss.

Training is `tfcondense.training.Trainer` (the per-sample augmentation policy, CutMix,
the stateless batch order, PyTorch SGD with the milestone schedule); only its loss
hook is replaced here (`tfcondense.continual.losses`). The network is not
re-initialised between steps (the IDC reference, Kim et al., ICML 2022, continues
training the same model); SGD momentum restarts at every step (a new optimiser per
step, as the reference).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfcondense import training
from tfcondense.continual.losses import classification_loss, distillation_loss


class IncrementalTrainer(training.Trainer):
  """`training.Trainer` with the continual loss: CutMix CE (+ per-task heads) + KD.

  Everything but the loss is the library trainer's (batch order, augmentation policy,
  CutMix, `sgd_step` at `milestone_lr`, the tf.function loop); `start` replaces
  `reset` so the model keeps its weights.

  Args:
    model, images, labels, mean, std, protocol, flip: as `training.Trainer`.
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
    self.prepare(seed)

  def loss(self, logits, batch: training.Batch) -> tf.Tensor:
    """CutMix cross-entropy (per task head with column groups) plus, with a teacher,
    `distill_weight` x the distillation of its old columns on the same inputs."""
    loss = classification_loss(logits, batch.y_a, batch.y_b, batch.lam, self._groups)
    if self._teacher is not None:
      teacher_logits = tf.stop_gradient(
          tf.cast(self._teacher(batch.x, training=False), tf.float32))
      loss += self._distill_weight * distillation_loss(logits, teacher_logits,
                                                       self._temperature, self._blocks)
    return loss
