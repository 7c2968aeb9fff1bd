"""Test accuracy of a continual model on everything seen so far.

After each step the model is tested on the test images of all classes seen so far
(IDC, Kim et al., ICML 2022, Fig. 7). Class-incremental: one softmax over all seen
classes, accuracy over all those test images. Task-incremental (DC, Zhao et al., ICLR
2021): the task is known at test time, so each task predicts with its own head (its
column block) and the accuracy is the mean over the seen tasks.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

import numpy as np
import tensorflow as tf


def seen_accuracy(model, mean: Sequence[float], std: Sequence[float],
                  groups: Iterable[Tuple[np.ndarray, np.ndarray, Sequence[int]]],
                  own_head: bool, batch: int = 1000) -> Tuple[float, List[float]]:
  """Accuracy (%) overall and per arrived group (class group or task).

  Args:
    model: the Keras model; it sees `(images - mean) / std`.
    mean, std: per-channel normalisation.
    groups: per arrived group, in order: float [N, H, W, C] test images in [0, 1],
      int [N] labels as classifier columns, and the columns of the group's head.
      Read one group at a time (a generator keeps one group's images in memory).
    own_head: predict with the group's own head (task-incremental; the result is the
      mean over groups) instead of over all columns (class-incremental; the result is
      over all test images).
    batch: test images per forward pass.

  Returns:
    (accuracy, per-group accuracies).
  """
  mean = tf.constant(mean, tf.float32)
  std = tf.constant(std, tf.float32)
  logits_fn = tf.function(lambda x: tf.cast(model((x - mean) / std, training=False),
                                            tf.float32), reduce_retracing=True)
  per_group, correct_total, count_total = [], 0, 0
  for x, y, block in groups:
    correct = 0
    for i in range(0, len(x), batch):
      z = logits_fn(tf.constant(x[i:i + batch])).numpy()
      if own_head:
        pred = np.asarray(block)[np.argmax(z[:, block], axis=1)]
      else:
        pred = np.argmax(z, axis=1)
      correct += int((pred == y[i:i + batch]).sum())
    per_group.append(100.0 * correct / max(1, len(x)))
    correct_total += correct
    count_total += len(x)
  if own_head:
    return float(np.mean(per_group)), per_group
  return 100.0 * correct_total / max(1, count_total), per_group
