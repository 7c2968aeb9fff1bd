"""The MLP baseline of DC (Zhao et al., ICLR 2021) and DC-BENCH (Cui et al., 2022)."""
from __future__ import annotations

from typing import Tuple

import keras

from tfcondense.errors import InvalidConfigError
from tfcondense.models.core import EMBEDDING, MODELS


@MODELS.register("mlp")
def mlp(input_shape: Tuple[int, int, int], num_classes: int, *,
        width: int = 128) -> keras.Model:
  """The DC / DC-BENCH MLP: flatten -> 128 -> ReLU -> 128 -> ReLU -> classifier.

  The second hidden layer's output is the embedding.
  """
  width = int(width)
  if width < 1:
    raise InvalidConfigError(f"width must be positive, got {width}")
  inputs = keras.Input(shape=input_shape, name="images")
  x = keras.layers.Flatten(name="flatten")(inputs)
  x = keras.layers.Dense(width, activation="relu", name="fc1")(x)
  x = keras.layers.Dense(width, activation="relu", name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name="mlp")
