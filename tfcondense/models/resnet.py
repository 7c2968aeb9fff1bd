"""ResNets used in dataset-condensation evaluation.

* `resnet10`: the narrow CIFAR ResNet-10 (widths 32-256, one BasicBlock per stage,
  3x3 stem), BatchNorm.
* `resnet18`: torchvision's ResNet-18 layout (He et al., CVPR 2016: 7x7 stride-2
  stem, 3x3 stride-2 max pool, [2, 2, 2, 2] BasicBlocks of widths 64-512),
  BatchNorm.
* `resnet152`: the DC / DC-BENCH ResNet-152 (3x3 stride-1 CIFAR stem, Bottleneck
  blocks [3, 8, 36, 3]), instance normalisation.
* `resnet_ap10`: IDC's ResNetAP-10 (Kim et al., "Dataset Condensation via Efficient
  Synthetic-Data Parameterization", ICML 2022): strided convolutions replaced by
  stride-1 convolutions followed by 2x2 average pooling, instance normalisation.

Padding follows PyTorch (symmetric k // 2): strided convolutions pad explicitly,
since Keras' "same" pads asymmetrically when the stride is 2.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import keras

from tfcondense.errors import InvalidConfigError
from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import check_norm, normalization


def conv(x, filters: int, kernel: int, stride: int, name: str, bias: bool = False):
  """A k x k convolution with PyTorch padding k // 2."""
  if stride > 1 and kernel > 1:
    x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    padding = "valid"
  else:
    padding = "same"
  return keras.layers.Conv2D(filters, kernel, strides=stride, padding=padding,
                             use_bias=bias, name=name)(x)


def conv_norm(x, filters: int, kernel: int, stride: int, norm: str, name: str,
              relu: bool = True):
  """conv (bias only without norm) -> norm -> optional ReLU."""
  x = conv(x, filters, kernel, stride, f"{name}_conv", bias=norm == "none")
  layer = normalization(norm, name=f"{name}_norm")
  if layer is not None:
    x = layer(x)
  if relu:
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
  return x


def _avg_pool(x, stride: int, name: str):
  return keras.layers.AveragePooling2D(stride, name=name)(x)


def basic_block(x, planes: int, stride: int, norm: str, name: str,
                avg_pool: bool = False):
  """BasicBlock (expansion 1); `avg_pool` selects IDC's ResNetAP downsampling."""
  inplanes = int(x.shape[-1])
  if avg_pool:
    out = conv_norm(x, planes, 3, 1, norm, f"{name}_1")
    if stride > 1:
      out = _avg_pool(out, stride, f"{name}_1_pool")
  else:
    out = conv_norm(x, planes, 3, stride, norm, f"{name}_1")
  out = conv_norm(out, planes, 3, 1, norm, f"{name}_2", relu=False)
  shortcut = _shortcut(x, inplanes, planes, stride, norm, name, avg_pool)
  out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
  return keras.layers.ReLU(name=f"{name}_out")(out)


def bottleneck_block(x, planes: int, stride: int, norm: str, name: str,
                     avg_pool: bool = False):
  """Bottleneck block (expansion 4), stride on the 3x3 convolution."""
  inplanes = int(x.shape[-1])
  out = conv_norm(x, planes, 1, 1, norm, f"{name}_1")
  if avg_pool:
    out = conv_norm(out, planes, 3, 1, norm, f"{name}_2")
    if stride > 1:
      out = _avg_pool(out, stride, f"{name}_2_pool")
  else:
    out = conv_norm(out, planes, 3, stride, norm, f"{name}_2")
  out = conv_norm(out, 4 * planes, 1, 1, norm, f"{name}_3", relu=False)
  shortcut = _shortcut(x, inplanes, 4 * planes, stride, norm, name, avg_pool)
  out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
  return keras.layers.ReLU(name=f"{name}_out")(out)


def _shortcut(x, inplanes: int, planes: int, stride: int, norm: str, name: str,
              avg_pool: bool):
  if stride == 1 and inplanes == planes:
    return x
  if avg_pool:
    # IDC applies conv1x1 -> avgpool -> norm; both are linear, so pooling first
    # gives the same function at a quarter of the cost.
    if stride > 1:
      x = _avg_pool(x, stride, f"{name}_short_pool")
    return conv_norm(x, planes, 1, 1, norm, f"{name}_short", relu=False)
  return conv_norm(x, planes, 1, stride, norm, f"{name}_short", relu=False)


def build_resnet(input_shape: Tuple[int, int, int], num_classes: int, *, stem: str,
                 block: str, layers: Sequence[int], widths: Sequence[int],
                 norm: str, avg_pool: bool = False, name: str = "resnet") -> keras.Model:
  """Assembles a ResNet.

  Args:
    input_shape: (H, W, C).
    num_classes: number of logits.
    stem: "cifar:<filters>" (3x3 stride-1 conv), "imagenet:<filters>" (7x7
      stride-2 conv + 3x3 stride-2 max pool), or "idc:<filters>" (IDC's
      size-dependent stem: 3x3 conv up to 64 px, 3x3 conv + 2x2 avg pool up to
      128 px, 7x7 conv + 4x4 avg pool beyond).
    block: "basic" or "bottleneck".
    layers: blocks per stage.
    widths: planes per stage (first stage stride 1, then stride 2).
    norm: "instance", "batch", "layer" or "none".
    avg_pool: downsample with stride-1 convs + average pooling (ResNetAP).
    name: model name.
  """
  norm = check_norm(norm)
  kind, filters = stem.split(":")
  filters = int(filters)
  inputs = keras.Input(shape=input_shape, name="images")
  if kind == "cifar":
    x = conv_norm(inputs, filters, 3, 1, norm, "stem")
  elif kind == "imagenet":
    x = conv_norm(inputs, filters, 7, 2, norm, "stem")
    # Zero padding before the max pool equals PyTorch's -inf padding after ReLU.
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
  elif kind == "idc":
    size = max(input_shape[:2])
    if size <= 64:
      x = conv_norm(inputs, filters, 3, 1, norm, "stem")
    elif size <= 128:
      x = conv_norm(inputs, filters, 3, 1, norm, "stem")
      x = _avg_pool(x, 2, "stem_pool")
    else:
      x = conv_norm(inputs, filters, 7, 1, norm, "stem")
      x = _avg_pool(x, 4, "stem_pool")
  else:
    raise InvalidConfigError(f"unknown stem {stem!r}")
  make = basic_block if block == "basic" else bottleneck_block
  for stage, (count, planes) in enumerate(zip(layers, widths)):
    for i in range(count):
      stride = 2 if stage > 0 and i == 0 else 1
      if stride > 1 and min(x.shape[1:3]) < 2:
        raise InvalidConfigError(
            f"input {tuple(input_shape[:2])} is too small for {name}")
      x = make(x, planes, stride, norm, f"stage{stage + 1}_block{i + 1}",
               avg_pool=avg_pool)
  x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name=name)


@MODELS.register("resnet10")
def resnet10(input_shape, num_classes, *, norm: str = "batch") -> keras.Model:
  """Narrow CIFAR ResNet-10: 3x3 stem to 32, BasicBlocks [1, 1, 1, 1] of 32-256."""
  return build_resnet(input_shape, num_classes, stem="cifar:32", block="basic",
                      layers=(1, 1, 1, 1), widths=(32, 64, 128, 256), norm=norm,
                      name="resnet10")


@MODELS.register("resnet18")
def resnet18(input_shape, num_classes, *, norm: str = "batch") -> keras.Model:
  """torchvision ResNet-18: 7x7/2 stem + max pool, BasicBlocks [2, 2, 2, 2]."""
  return build_resnet(input_shape, num_classes, stem="imagenet:64", block="basic",
                      layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), norm=norm,
                      name="resnet18")


@MODELS.register("resnet152")
def resnet152(input_shape, num_classes, *, norm: str = "instance") -> keras.Model:
  """DC-BENCH ResNet-152: 3x3 stem, Bottlenecks [3, 8, 36, 3], instance norm."""
  return build_resnet(input_shape, num_classes, stem="cifar:64", block="bottleneck",
                      layers=(3, 8, 36, 3), widths=(64, 128, 256, 512), norm=norm,
                      name="resnet152")


@MODELS.register("resnet_ap10")
def resnet_ap10(input_shape, num_classes, *, norm: str = "instance") -> keras.Model:
  """IDC ResNetAP-10: BasicBlocks [1, 1, 1, 1] of 64-512, avg-pool downsampling."""
  return build_resnet(input_shape, num_classes, stem="idc:64", block="basic",
                      layers=(1, 1, 1, 1), widths=(64, 128, 256, 512), norm=norm,
                      avg_pool=True, name="resnet_ap10")
