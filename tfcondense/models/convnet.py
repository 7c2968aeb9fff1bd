"""The ConvNet of the dataset-condensation literature.

ConvNet-D (Gidaris & Komodakis, CVPR 2018; used by DC, Zhao et al., ICLR 2021, and
every method since): D blocks of [3x3 conv (width filters, with bias) -> norm ->
activation -> 2x2 pool], then flatten -> linear classifier. For 28x28 inputs the
reference pads the first convolution by 3, so the maps are 32x32 from there on.
"""
from __future__ import annotations

from typing import Tuple

import keras

from tfcondense.errors import InvalidConfigError, check_choice
from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import check_norm, normalization

POOLINGS = ("avg", "max", "none")
ACTIVATIONS = ("relu", "sigmoid", "leakyrelu")


def _activation(act: str, name: str) -> keras.layers.Layer:
  if act == "relu":
    return keras.layers.ReLU(name=name)
  if act == "sigmoid":
    return keras.layers.Activation("sigmoid", name=name)
  return keras.layers.LeakyReLU(negative_slope=0.01, name=name)  # PyTorch default.


@MODELS.register("convnet")
def convnet(input_shape: Tuple[int, int, int], num_classes: int, *, depth: int = 3,
            width: int = 128, norm: str = "instance", pooling: str = "avg",
            act: str = "relu") -> keras.Model:
  """ConvNet-`depth` as in the DC / DSA / DM / IDC reference code.

  Args:
    input_shape: (H, W, C).
    num_classes: number of logits.
    depth: number of conv blocks.
    width: filters of every conv.
    norm: "instance" (default), "batch", "layer" or "none".
    pooling: "avg" (default), "max" or "none".
    act: "relu" (default), "sigmoid" or "leakyrelu".
  """
  norm = check_norm(norm)
  pooling = check_choice("pooling", pooling, POOLINGS)
  act = check_choice("activation", act, ACTIVATIONS)
  depth, width = int(depth), int(width)
  if depth < 1 or width < 1:
    raise InvalidConfigError(f"depth and width must be positive, got {depth}, {width}")
  pad_first = tuple(input_shape[:2]) == (28, 28)
  h, w = (32, 32) if pad_first else input_shape[:2]
  if pooling != "none" and (h >> depth < 1 or w >> depth < 1):
    raise InvalidConfigError(
        f"input {input_shape[:2]} is too small for {depth} 2x2 poolings")

  inputs = keras.Input(shape=input_shape, name="images")
  x = inputs
  for d in range(depth):
    fuse_act = norm == "none" and act == "relu"
    if d == 0 and pad_first:
      x = keras.layers.ZeroPadding2D(3, name="pad0")(x)
      padding = "valid"
    else:
      padding = "same"
    x = keras.layers.Conv2D(width, 3, padding=padding,
                            activation="relu" if fuse_act else None,
                            name=f"conv{d}")(x)
    layer = normalization(norm, name=f"norm{d}")
    if layer is not None:
      x = layer(x)
    if not fuse_act:
      x = _activation(act, f"act{d}")(x)
    if pooling == "avg":
      x = keras.layers.AveragePooling2D(2, name=f"pool{d}")(x)
    elif pooling == "max":
      x = keras.layers.MaxPooling2D(2, name=f"pool{d}")(x)
  x = keras.layers.Flatten(name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name=f"convnet{depth}")


def _fixed_depth(depth: int):
  def factory(input_shape, num_classes, *, width: int = 128, norm: str = "instance",
              pooling: str = "avg", act: str = "relu") -> keras.Model:
    return convnet(input_shape, num_classes, depth=depth, width=width, norm=norm,
                   pooling=pooling, act=act)
  factory.__name__ = f"convnet{depth}"
  factory.__doc__ = f"ConvNet-{depth}: `convnet` with depth={depth}."
  return factory


convnet3 = MODELS.register("convnet3")(_fixed_depth(3))
convnet4 = MODELS.register("convnet4")(_fixed_depth(4))
