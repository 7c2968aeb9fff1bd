"""The model registry, `build_model` and `embedding_model`.

A model factory is registered as

    @MODELS.register("name")
    def name(input_shape, num_classes, *, option=default, ...) -> keras.Model

and returns a functional `keras.Model` from float32 normalised NHWC images to
logits, with a layer named "embedding" whose output feeds the final classifier.
"""
from __future__ import annotations

import inspect
from typing import Sequence, Tuple

import keras

from tfcondense.errors import InvalidConfigError
from tfcondense.models.init import check_scheme, initialize
from tfcondense.registry import Registry

MODELS = Registry(
    "model",
    hint="Register new architectures with "
         "@tfcondense.models.MODELS.register(name).")

EMBEDDING = "embedding"


def _check_input_shape(input_shape: Sequence[int]) -> Tuple[int, int, int]:
  try:
    shape = tuple(int(d) for d in input_shape)
  except (TypeError, ValueError):
    shape = ()
  if len(shape) != 3 or min(shape) < 1:
    raise InvalidConfigError(
        f"input_shape must be (height, width, channels) with positive sizes, "
        f"got {input_shape!r}")
  return shape


def _check_kwargs(name: str, factory, kwargs) -> None:
  params = inspect.signature(factory).parameters
  accepted = [p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY]
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise InvalidConfigError(
        f"model {name!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
        f"it accepts: {', '.join(accepted) or '(none)'}")


def build_model(name: str, input_shape: Sequence[int], num_classes: int, *,
                seed: int = 0, init: str = "pytorch", **kwargs) -> keras.Model:
  """Builds registered model `name` and initialises it with `initialize`.

  Args:
    name: a registered model name (`MODELS.names()`), case-insensitive.
    input_shape: (H, W, C) of the NHWC float32 normalised images.
    num_classes: number of logits.
    seed: initialisation seed (see `initialize`).
    init: initialisation scheme, "pytorch" (default, parity with the PyTorch
      reference code) or "keras".
    **kwargs: architecture options of the factory (e.g. `norm`, `width`, `depth`,
      `pooling` for "convnet"); unknown options raise `InvalidConfigError`.

  Returns:
    A functional `keras.Model` returning logits (no softmax), with a layer named
    "embedding" (see `embedding_model`).
  """
  factory = MODELS.get(name)
  shape = _check_input_shape(input_shape)
  if int(num_classes) < 1:
    raise InvalidConfigError(f"num_classes must be positive, got {num_classes!r}")
  scheme = check_scheme(init)
  _check_kwargs(str(name).lower(), factory, kwargs)
  model = factory(shape, int(num_classes), **kwargs)
  initialize(model, seed, scheme)
  return model


def embedding_model(model: keras.Model) -> keras.Model:
  """Returns a model from `model`'s inputs to its "embedding" layer's output.

  The result shares its weights with `model` (it is a view of the same graph), as
  needed by distribution matching (DM, Zhao & Bilen, WACV 2023), which matches
  mean embeddings of real and synthetic images.
  """
  try:
    layer = model.get_layer(EMBEDDING)
  except ValueError as e:
    raise InvalidConfigError(
        f"model {model.name!r} has no layer named {EMBEDDING!r}") from e
  inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
  return keras.Model(inputs, layer.output, name=f"{model.name}_embedding")
