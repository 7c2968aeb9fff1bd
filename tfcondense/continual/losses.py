"""The continual loss: CutMix cross-entropy (per-task heads) and distillation.

    L = CE_cutmix(z, y) + beta * L_KD,
    L_KD = T^2 * (1/B) sum_b KL( softmax(z_prev[b, :n_old] / T) || softmax(z[b, :n_old] / T) ),

T = 2, beta = 1, where z are the current logits and z_prev the frozen previous model's
on the same (augmented, CutMixed) batch. The IDC reference (Kim et al., ICML 2022)
writes it as `KLDivLoss()(log_softmax(z_old / T), softmax(z_prev / T)) * T * T * beta *
n_old`; its `KLDivLoss()` averages over the B * n_old elements, so the `* n_old` turns
that into the per-sample sum over classes: exactly the batch-mean KL above
(REFERENCE.md, Sec. 1, "Continual learning"; checked against `continual-learning/utils/
incremental_train_and_eval.py` of snu-mllab/Efficient-Dataset-Condensation).

Task-incremental (DC, Zhao et al., ICLR 2021): one head per task as column blocks of
one classifier; each softmax (cross-entropy and distillation) runs over its block.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf

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
