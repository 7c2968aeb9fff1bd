"""Closed-form kernels of infinitely wide fully-connected ReLU networks (for KIP).

The NNGP kernel (Lee et al., ICLR 2018, "Deep Neural Networks as Gaussian
Processes") and the neural tangent kernel (Jacot et al., NeurIPS 2018, "Neural
Tangent Kernel") of a fully-connected ReLU network, by the arc-cosine recursion
(Cho & Saul, NeurIPS 2009, "Kernel Methods for Deep Learning"), in plain
differentiable TensorFlow (float32 or float64), as KIP (Nguyen, Chen & Lee, ICLR 2021,
"Dataset Meta-Learning from Kernel Ridge-Regression") uses them.

Conventions: neural-tangents' NTK parameterisation,

    stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std), Relu(), ...,
                Dense(W_std, b_std))      # `depth` Relu layers, readout included

with `W_std**2 = weight_var` and `b_std**2 = bias_var` for every Dense, inputs
flattened to [n, d]. The recursion, with k the NNGP and Theta the NTK:

    k_0(x, y)     = weight_var * <x, y> / d + bias_var,          Theta_0 = k_0
    theta_l       = arccos(k_l(x, y) / sqrt(k_l(x, x) k_l(y, y)))  (cos clipped to [-1, 1])
    k_{l+1}(x, y) = weight_var / (2 pi) * sqrt(k_l(x, x) k_l(y, y))
                    * (sin theta_l + (pi - theta_l) cos theta_l) + bias_var
    kdot_l        = weight_var / (2 pi) * (pi - theta_l)
    Theta_{l+1}   = k_{l+1} + Theta_l * kdot_l

and the returned kernels are k_depth and Theta_depth (the output of the readout
Dense). Each step is one neural-tangents `Relu` followed by a `Dense`. The diagonals
k_l(x, x) follow the cheaper closed form k_{l+1}(x, x) = weight_var / 2 * k_l(x, x) +
bias_var (theta = 0) and are computed for x1 and x2 separately, never as full self-
kernels. arccos has an infinite derivative at cos theta = 1 (identical inputs, e.g.
the diagonal of K(x, x)); `safe_arccos` keeps the exact value and caps the derivative,
so gradients stay finite.

Registry `KERNELS`: "ntk" and "nngp", each `fn(x1, x2, depth, weight_var, bias_var)
-> [n1, n2]`. (Convolutional kernels need the full pixel-pair covariances and are
not implemented here.)
"""
from __future__ import annotations

import math
from typing import Callable, Tuple

import tensorflow as tf

from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

KERNELS = Registry("kernel", hint="Known: ntk, nngp (tfcondense/kernels.py).")


@tf.custom_gradient
def safe_arccos(c):
  """arccos(clip(c, -1, 1)) whose derivative is capped near |c| = 1.

  The value is exact (theta = 0 for identical inputs); the derivative
  -1 / sqrt(1 - c**2) uses max(1 - c**2, eps) with eps = 1e-12 (float64) or 1e-7
  (float32), so it is finite everywhere.
  """
  clipped = tf.clip_by_value(c, tf.constant(-1.0, c.dtype), tf.constant(1.0, c.dtype))
  eps = 1e-12 if c.dtype == tf.float64 else 1e-7

  def grad(g):
    return -g * tf.math.rsqrt(tf.maximum(1.0 - tf.square(clipped), eps))

  return tf.math.acos(clipped), grad


def _flat(x) -> tf.Tensor:
  x = tf.convert_to_tensor(x)
  if not x.dtype.is_floating:
    x = tf.cast(x, tf.float32)
  return tf.reshape(x, [tf.shape(x)[0], -1])


def fc_relu_kernels(x1, x2, depth: int, weight_var: float = 2.0,
                    bias_var: float = 0.01) -> Tuple[tf.Tensor, tf.Tensor]:
  """The NNGP and NTK of an infinitely wide fully-connected ReLU network.

  The arc-cosine recursion of Cho & Saul (2009) for the NNGP (Lee et al. 2018) and
  the NTK (Jacot et al. 2018); see the module docstring for the exact convention
  (neural-tangents `stax` with `W_std**2 = weight_var`, `b_std**2 = bias_var`,
  `depth` Dense+Relu layers and the final Dense readout included).

  Args:
    x1: [n1, d] inputs (any rank >= 2: flattened after the batch axis).
    x2: [n2, d] inputs, same dtype.
    depth: number of hidden ReLU layers (0: the linear kernel of the readout alone).
    weight_var: weight variance sigma_w^2 (W_std**2); 2 keeps ReLU activations'
      scale (He).
    bias_var: bias variance sigma_b^2 (b_std**2).

  Returns:
    (nngp, ntk), each [n1, n2] in the inputs' dtype.
  """
  if depth < 0:
    raise InvalidConfigError(f"depth must be >= 0, got {depth}")
  x1, x2 = _flat(x1), _flat(x2)
  dtype = x1.dtype
  x2 = tf.cast(x2, dtype)
  wv = tf.constant(weight_var, dtype)
  bv = tf.constant(bias_var, dtype)
  d = tf.cast(tf.shape(x1)[1], dtype)
  tiny = tf.constant(1e-30, dtype)  # guards sqrt / division for zero inputs, bias_var 0
  nngp = wv * tf.matmul(x1, x2, transpose_b=True) / d + bv
  diag1 = wv * tf.reduce_sum(tf.square(x1), axis=1) / d + bv   # k_l(x1, x1), [n1]
  diag2 = wv * tf.reduce_sum(tf.square(x2), axis=1) / d + bv   # k_l(x2, x2), [n2]
  ntk = nngp
  inv_2pi = tf.constant(1.0 / (2.0 * math.pi), dtype)
  pi = tf.constant(math.pi, dtype)
  for _ in range(int(depth)):
    norms = tf.sqrt(tf.maximum(diag1[:, None] * diag2[None, :], tiny))
    cos = nngp / norms
    theta = safe_arccos(cos)
    cos = tf.clip_by_value(cos, tf.constant(-1.0, dtype), tf.constant(1.0, dtype))
    kdot = wv * inv_2pi * (pi - theta)
    nngp = wv * inv_2pi * norms * (tf.sin(theta) + (pi - theta) * cos) + bv
    ntk = nngp + ntk * kdot
    diag1 = wv / 2.0 * diag1 + bv
    diag2 = wv / 2.0 * diag2 + bv
  return nngp, ntk


@KERNELS.register("nngp")
def nngp_fc(x1, x2, depth: int = 1, weight_var: float = 2.0,
            bias_var: float = 0.01) -> tf.Tensor:
  """The NNGP kernel of `fc_relu_kernels`."""
  return fc_relu_kernels(x1, x2, depth, weight_var, bias_var)[0]


@KERNELS.register("ntk")
def ntk_fc(x1, x2, depth: int = 1, weight_var: float = 2.0,
           bias_var: float = 0.01) -> tf.Tensor:
  """The NTK of `fc_relu_kernels`."""
  return fc_relu_kernels(x1, x2, depth, weight_var, bias_var)[1]


def get_kernel(name: str) -> Callable[..., tf.Tensor]:
  """The kernel function registered as `name` (raises InvalidConfigError otherwise)."""
  if name not in KERNELS:
    raise InvalidConfigError(
        f"unknown kernel {name!r}; expected one of {', '.join(KERNELS.names())}")
  return KERNELS.get(name)
