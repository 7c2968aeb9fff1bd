"""Deterministic, stateless (re)initialisation of a built Keras model.

The evaluator trains a freshly initialised network for every repetition but reuses
one model object (and one traced training graph), so initialisation is a function
of `(model, seed)` that assigns in place. Every weight is drawn with a stateless
TensorFlow random op whose seed is `[seed, 0]` folded with the weight's index in
`model.weights`, so the result depends only on the architecture and the seed, not
on global RNG state or on how often the function was called.

Schemes:

* "pytorch": PyTorch's default initialisation, for parity with the reference
  research code (DC / DSA / DM / IDC / MTT / DC-BENCH are written in PyTorch).
  Conv2D / Dense kernels use `kaiming_uniform_(a=sqrt(5))`, i.e.
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = prod(kernel.shape[:-1])
  (kh*kw for a depthwise kernel, as PyTorch's grouped convolution sees it); their
  biases are U(+-1/sqrt(fan_in)) of the same layer. Normalisation scales are 1 and
  shifts 0; BatchNorm moving mean 0 and moving variance 1. Attention projections
  (`EinsumDense`) are Xavier-uniform with zero biases, as `nn.MultiheadAttention`.
* "keras": Glorot-uniform kernels (Keras' fan convention) and zero biases.

Layers with other trainable weights can define
`tfc_initial_value(variable, scheme, seed) -> Tensor` (see `vit.py`); a trainable
weight no rule covers raises `TypeError`, so nothing is silently left as it was.
Non-trainable state other than BatchNorm statistics is left untouched.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Tuple

import keras
import numpy as np
import tensorflow as tf

from tfcondense.errors import check_choice
from tfcondense.models.layers import InstanceNorm, LayerNorm, TokenNorm

SCHEMES = ("pytorch", "keras")

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE_TYPES = (keras.layers.DepthwiseConv2D,)
_NORM_TYPES = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
               keras.layers.GroupNormalization, InstanceNorm, LayerNorm,
               TokenNorm)

# A rule maps (shape, seed tensor) -> initial value (float32).
Rule = Callable[[Tuple[int, ...], tf.Tensor], tf.Tensor]


def _uniform(bound: float) -> Rule:
  def draw(shape, seed):
    return tf.random.stateless_uniform(shape, seed=seed, minval=-bound,
                                       maxval=bound, dtype=tf.float32)
  return draw


def _constant(value: float) -> Rule:
  def draw(shape, seed):
    del seed
    return tf.fill(shape, tf.constant(value, tf.float32))
  return draw


# Moving statistics are reset even though they are not trainable.
_STAT_ZERO = _constant(0.0)
_STAT_ONE = _constant(1.0)


def _glorot(fan_in: int, fan_out: int) -> Rule:
  return _uniform(math.sqrt(6.0 / max(1, fan_in + fan_out)))


def _keras_fans(shape) -> Tuple[int, int]:
  """Keras' `compute_fans` (used by its GlorotUniform)."""
  shape = tuple(int(d) for d in shape)
  if len(shape) == 0:
    return 1, 1
  if len(shape) == 1:
    return shape[0], shape[0]
  if len(shape) == 2:
    return shape[0], shape[1]
  receptive = int(np.prod(shape[:-2]))
  return shape[-2] * receptive, shape[-1] * receptive


def _einsum_fans(layer) -> Tuple[int, int]:
  """Fans of an EinsumDense kernel: contracted dims are fan-in, the rest fan-out."""
  shape = tuple(int(d) for d in layer.kernel.shape)
  try:
    lhs = layer.equation.split("->")[0]
    inp, ker = lhs.split(",")
    fan_in = int(np.prod([d for c, d in zip(ker, shape) if c in inp]))
    fan_out = int(np.prod([d for c, d in zip(ker, shape) if c not in inp]))
    return max(fan_in, 1), max(fan_out, 1)
  except (AttributeError, ValueError):
    return _keras_fans(shape)


def _layer_rules(layer, scheme: str) -> Dict[int, Rule]:
  """Returns {id(variable): rule} for the variables `layer` itself owns."""
  rules: Dict[int, Rule] = {}

  def put(var, rule):
    if var is not None:
      rules[id(var)] = rule

  kernel = getattr(layer, "kernel", None)
  bias = getattr(layer, "bias", None)
  if isinstance(layer, _DEPTHWISE_TYPES) or isinstance(layer, _CONV_TYPES) or (
      isinstance(layer, keras.layers.Dense)):
    shape = tuple(int(d) for d in kernel.shape)
    if scheme == "pytorch":
      fan_in = (int(np.prod(shape[:-2])) if isinstance(layer, _DEPTHWISE_TYPES)
                else int(np.prod(shape[:-1])))
      bound = 1.0 / math.sqrt(max(fan_in, 1))
      put(kernel, _uniform(bound))
      put(bias, _uniform(bound))
    else:
      put(kernel, _glorot(*_keras_fans(shape)))
      put(bias, _constant(0.0))
  elif isinstance(layer, keras.layers.EinsumDense):
    fans = _einsum_fans(layer) if scheme == "pytorch" else _keras_fans(kernel.shape)
    put(kernel, _glorot(*fans))
    put(bias, _constant(0.0))
  elif isinstance(layer, _NORM_TYPES):
    put(getattr(layer, "gamma", None), _constant(1.0))
    put(getattr(layer, "beta", None), _constant(0.0))
    put(getattr(layer, "moving_mean", None), _STAT_ZERO)
    put(getattr(layer, "moving_variance", None), _STAT_ONE)
  return rules


def _plan(model: keras.Model, scheme: str) -> List[Tuple[int, keras.Variable, object]]:
  """Lists (fold index, variable, rule-or-layer) for every weight to (re)draw."""
  rules: Dict[int, object] = {}
  for layer in model._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
    if hasattr(layer, "tfc_initial_value"):
      for var in layer.weights:
        rules[id(var)] = layer
    else:
      rules.update(_layer_rules(layer, scheme))
  plan = []
  for index, var in enumerate(model.weights):
    rule = rules.get(id(var))
    if var.trainable:
      if rule is None:
        raise TypeError(
            f"initialize: no {scheme!r} rule for trainable weight {var.path!r} "
            f"{tuple(var.shape)}; give its layer a `tfc_initial_value` method.")
      plan.append((index, var, rule))
    elif rule is _STAT_ZERO or rule is _STAT_ONE:
      plan.append((index, var, rule))
  return plan


def resets_all_state(model: keras.Model, scheme: str = "pytorch") -> bool:
  """Whether `initialize(model, ...)` redraws every variable `model` holds, so that a
  re-initialised model behaves exactly as a freshly built one (False, e.g., with
  dropout seed generators or adapted `Normalization` layers)."""
  planned = {id(var) for _, var, _ in _plan(model, check_scheme(scheme))}
  return all(id(var) in planned for var in model.variables)


def check_scheme(scheme: str) -> str:
  return check_choice("init scheme", scheme, SCHEMES)


def initialize(model: keras.Model, seed, scheme: str = "pytorch") -> None:
  """(Re)draws every trainable weight of `model` in place from `seed`.

  Also resets BatchNorm moving statistics (mean 0, variance 1). Other non-trainable
  state (e.g. the un-adapted `Normalization` layers of Keras applications, dropout
  seed generators) is left as it is. Works eagerly and inside `tf.function` (pass
  `seed` as an int or a scalar integer tensor).

  Args:
    model: a built Keras model.
    seed: integer seed; the same seed gives bit-identical weights.
    scheme: "pytorch" (PyTorch default initialisation) or "keras" (Glorot-uniform
      kernels, zero biases); see the module docstring.
  """
  scheme = check_scheme(scheme)
  base = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
  for index, var, rule in _plan(model, scheme):
    var_seed = tf.random.experimental.stateless_fold_in(base, index)
    shape = tuple(int(d) for d in var.shape)
    if callable(getattr(rule, "tfc_initial_value", None)):
      value = rule.tfc_initial_value(var, scheme, var_seed)
    else:
      value = rule(shape, var_seed)
    var.assign(tf.cast(value, var.dtype))
