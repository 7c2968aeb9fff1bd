"""EfficientNet-B0 (Tan & Le, ICML 2019) from `keras.applications`, as in DC-BENCH.

The Keras application starts with `Rescaling(1/255)` and an (un-adapted, identity)
`Normalization`; our inputs are already normalised, so both are replaced by
identities. Keras refuses inputs smaller than 32x32, so smaller images (e.g. 28x28
MNIST) are bilinearly resized up to 32 inside the model. Any channel count works
with `weights=None`. The MBConv blocks keep Keras' stochastic depth (drop-connect
rate 0.2, scaled per block).

BatchNorm takes PyTorch's defaults (momentum 0.1, i.e. Keras 0.9; eps 1e-5), as the
PyTorch EfficientNet DC-BENCH trains does, instead of Keras' momentum 0.99 / eps 1e-3:
with 0.99 the moving statistics of a few hundred steps (the `quick` protocol: 300) lag
so far behind the batch statistics through 16 MBConv blocks that the network in
inference mode predicts one class (10% on Fashion-MNIST, although it fits the
training batches).
"""
from __future__ import annotations

import keras

from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import BN_EPSILON, BN_MOMENTUM

MIN_SIZE = 32


def _clone_layer(layer):
  """Drops the preprocessing layers and gives BatchNorm PyTorch's defaults."""
  if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
    return keras.layers.Identity(name=layer.name)
  config = layer.get_config()
  if isinstance(layer, keras.layers.BatchNormalization):
    config.update(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
  return layer.__class__.from_config(config)


@MODELS.register("efficientnet_b0")
def efficientnet_b0(input_shape, num_classes, *, dropout: float = 0.2) -> keras.Model:
  """EfficientNet-B0 without preprocessing; global average pool -> embedding.

  Args:
    input_shape: (H, W, C); H or W below 32 are resized up to 32.
    num_classes: number of logits.
    dropout: dropout before the embedding (Keras' top dropout).
  """
  h, w, c = input_shape
  inputs = keras.Input(shape=input_shape, name="images")
  x = inputs
  size = (max(h, MIN_SIZE), max(w, MIN_SIZE))
  if size != (h, w):
    x = keras.layers.Resizing(*size, interpolation="bilinear", name="resize")(x)
  backbone = keras.applications.EfficientNetB0(
      include_top=False, weights=None, input_shape=(*size, c), pooling="avg")
  backbone = keras.models.clone_model(backbone, clone_function=_clone_layer)
  x = backbone(x)
  if dropout > 0:
    x = keras.layers.Dropout(dropout, name="top_dropout")(x)
  x = keras.layers.Activation("linear", name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name="efficientnet_b0")
