"""The CIFAR "DenseNet-121" of DC-BENCH (Cui et al., 2022).

kuangliu/pytorch-cifar's DenseNet (Huang et al., CVPR 2017) with Bottleneck blocks
[6, 12, 24, 16], growth rate 12 and compression 0.5: a 3x3 stem conv to
2 * growth channels; each bottleneck is BN-ReLU-conv1x1(4g)-BN-ReLU-conv3x3(g),
concatenated in front of its input; transitions are BN-ReLU-conv1x1-avgpool2; the
head is BN-ReLU-global average pool-linear.
"""
from __future__ import annotations

import math

import keras

from tfcondense.errors import InvalidConfigError
from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import check_norm, normalization


def _norm_relu_conv(x, filters: int, kernel: int, norm: str, name: str):
  layer = normalization(norm, name=f"{name}_norm")
  if layer is not None:
    x = layer(x)
  x = keras.layers.ReLU(name=f"{name}_relu")(x)
  return keras.layers.Conv2D(filters, kernel, padding="same", use_bias=False,
                             name=f"{name}_conv")(x)


@MODELS.register("densenet121")
def densenet121(input_shape, num_classes, *, growth_rate: int = 12,
                blocks=(6, 12, 24, 16), reduction: float = 0.5,
                norm: str = "batch") -> keras.Model:
  """CIFAR DenseNet-121 (kuangliu layout), 1,000,618 parameters on CIFAR-10.

  Args:
    input_shape: (H, W, C); H and W must allow len(blocks) - 1 halvings.
    num_classes: number of logits.
    growth_rate: channels added per bottleneck.
    blocks: bottlenecks per dense block.
    reduction: transition compression.
    norm: "batch" (default), "instance", "layer" or "none".
  """
  norm = check_norm(norm)
  g = int(growth_rate)
  if min(input_shape[:2]) >> (len(blocks) - 1) < 1:
    raise InvalidConfigError(f"input {tuple(input_shape[:2])} is too small for "
                             f"{len(blocks) - 1} transitions")
  inputs = keras.Input(shape=input_shape, name="images")
  x = keras.layers.Conv2D(2 * g, 3, padding="same", use_bias=False,
                          name="stem_conv")(inputs)
  for b, count in enumerate(blocks):
    for i in range(count):
      name = f"dense{b + 1}_{i + 1}"
      y = _norm_relu_conv(x, 4 * g, 1, norm, f"{name}_a")
      y = _norm_relu_conv(y, g, 3, norm, f"{name}_b")
      x = keras.layers.Concatenate(name=f"{name}_cat")([y, x])
    if b < len(blocks) - 1:
      out = int(math.floor(int(x.shape[-1]) * reduction))
      x = _norm_relu_conv(x, out, 1, norm, f"trans{b + 1}")
      x = keras.layers.AveragePooling2D(2, name=f"trans{b + 1}_pool")(x)
  layer = normalization(norm, name="head_norm")
  if layer is not None:
    x = layer(x)
  x = keras.layers.ReLU(name="head_relu")(x)
  x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name="densenet121")
