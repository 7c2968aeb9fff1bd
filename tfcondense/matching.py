"""Gradient matching: the loss of DC / DSA (Zhao et al., ICLR 2021) and IDC.

The synthetic set is learnt so that the gradient of the training loss w.r.t. the
network parameters on synthetic data matches the gradient on real data of the same
class. IDC (Kim et al., ICML 2022, Sec. 3 and its reference code) matches only the
convolution / dense kernels of rank > 2 by default (biases, normalisation parameters
and the classifier weight are skipped) and sums a distance over those layers.

Distances (sums, not means, as the reference):

* ``l1``:  sum |a - b|
* ``mse``: sum (a - b)^2
* ``cos``: per output channel, 1 - cos(a_o, b_o), summed over channels (DC's
  "ours" distance). Keras kernels keep output channels LAST ([kh, kw, in, out],
  [in, out]), so a kernel is reshaped to [-1, out] and the cosine runs over axis 0.
"""
from __future__ import annotations

from typing import Callable, List, Sequence

import tensorflow as tf

from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

DISTANCES = Registry("matching distance")

Distance = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


@DISTANCES.register("l1")
def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """sum |a - b|."""
  return tf.reduce_sum(tf.abs(a - b))


@DISTANCES.register("mse")
def mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """sum (a - b)^2 (the reference's "mse" is a sum)."""
  return tf.reduce_sum(tf.square(a - b))


@DISTANCES.register("cos")
def cos(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """sum over output channels of 1 - cos(a_o, b_o); output channels are the last axis.

  The DC reference adds 1e-6 to each norm product; kept for parity.
  """
  out = a.shape[-1]
  a = tf.reshape(a, [-1, out])
  b = tf.reshape(b, [-1, out])
  dot = tf.reduce_sum(a * b, axis=0)
  norms = tf.norm(a, axis=0) * tf.norm(b, axis=0) + 1e-6
  return tf.reduce_sum(1.0 - dot / norms)


def matched_variables(model, layers: str = "kernels") -> List[tf.Variable]:
  """The parameters whose gradients are matched.

  Args:
    model: a Keras model.
    layers: "kernels" (default, IDC: trainable variables of rank > 2, i.e. conv
      kernels; dense and classifier weights are rank 2 and skipped) or "all"
      (every trainable variable, as DC / DSA; biases and other rank-1 variables are
      then matched too, except that the "cos" distance of DC ignores them).

  Returns:
    The list of variables, in `model.trainable_variables` order.
  """
  variables = list(model.trainable_variables)
  if layers == "kernels":
    chosen = [v for v in variables if len(v.shape) > 2]
  elif layers == "all":
    chosen = variables
  else:
    raise InvalidConfigError(f"layers must be 'kernels' or 'all', got {layers!r}")
  if not chosen:
    raise InvalidConfigError(
        f"model {model.name!r} has no variables to match with layers={layers!r}")
  return chosen


def match_loss(grads_real: Sequence[tf.Tensor], grads_syn: Sequence[tf.Tensor],
               metric: str = "l1") -> tf.Tensor:
  """Sum over layers of `DISTANCES[metric](g_real, g_syn)` (float32).

  For "cos", rank-1 gradients (biases) contribute 0, as in the DC reference.
  """
  dist: Distance = DISTANCES.get(metric)
  total = tf.constant(0.0, tf.float32)
  for gr, gs in zip(grads_real, grads_syn):
    if metric == "cos" and len(gr.shape) < 2:
      continue
    total += dist(tf.cast(tf.stop_gradient(gr), tf.float32), tf.cast(gs, tf.float32))
  return total


def gradient_match(model, matched: Sequence[tf.Variable], real: tf.Tensor, y_real: tf.Tensor,
                   syn: tf.Tensor, y_syn: tf.Tensor, metric: str = "l1",
                   cross_entropy=None) -> tf.Tensor:
  """The matching loss of one class: distance between the gradients on `real` and `syn`.

  Call it inside a `tf.GradientTape` that watches what `syn` was computed from (the
  stored images): the synthetic gradient is taken with a nested tape, so the returned
  loss is differentiable w.r.t. `syn` (second order); the real gradient is constant.

  Args:
    model: the network (called with training=True).
    matched: the variables whose gradients are matched (`matched_variables`).
    real, y_real: the (augmented, normalised) real batch and its labels.
    syn, y_syn: the synthetic batch, augmented with the same draw, and its labels.
    metric: a name in DISTANCES.
    cross_entropy: loss(logits, labels) (default: mean sparse softmax CE in float32).

  Returns:
    The float32 scalar loss.
  """
  ce = cross_entropy or _cross_entropy
  with tf.GradientTape() as tape:
    loss_real = ce(model(real, training=True), y_real)
  g_real = tape.gradient(loss_real, matched)
  with tf.GradientTape() as inner:
    loss_syn = ce(model(syn, training=True), y_syn)
  g_syn = inner.gradient(loss_syn, matched)
  return match_loss(g_real, g_syn, metric)


def feature_mean_distance(feat_real: tf.Tensor, feat_syn: tf.Tensor,
                          metric: str = "l1") -> tf.Tensor:
  """DREAM+'s extra term: the distance between the mean features of two batches.

  Liu et al., "DREAM+: Efficient Dataset Distillation by Bidirectional Representative
  Matching" (arXiv 2310.15052) add to IDC's gradient matching the distance between the
  mean penultimate features of the real and of the synthetic batch of a class, with the
  matching distance. The two means are compared as one column ([D, 1]), so "cos" is
  1 - the cosine of the two mean vectors (our per-output-channel cosine of a [D] vector
  would compare single numbers).

  Args:
    feat_real: [n, ...] features of the real batch (constant: no gradient flows).
    feat_syn: [m, ...] features of the synthetic batch.
    metric: a name in DISTANCES.

  Returns:
    The float32 scalar distance.
  """
  real = tf.reduce_mean(tf.cast(tf.stop_gradient(feat_real), tf.float32), axis=0)
  syn = tf.reduce_mean(tf.cast(feat_syn, tf.float32), axis=0)
  return DISTANCES.get(metric)(tf.reshape(real, [-1, 1]), tf.reshape(syn, [-1, 1]))


def _cross_entropy(logits, labels):
  logits = tf.cast(logits, tf.float32)
  return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
      tf.cast(labels, tf.int32), logits))
