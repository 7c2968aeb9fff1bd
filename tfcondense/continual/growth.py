"""Growing a classifier by new classes while keeping the old rows.

The class-incremental network of IDC (Kim et al., ICML 2022, Sec. 5.4) is not
re-initialised between steps: its classifier gains the new classes' outputs and every
trained weight is carried over. The task-incremental multi-head network (DC, Zhao et
al., ICLR 2021) grows the same way, one column block per task.
"""
from __future__ import annotations

from typing import Any, Callable

from tfcondense.errors import InvalidConfigError

def grow_classifier(model, num_new: int, build: Callable[[int], Any]):
  """A copy of `model` whose classifier has `num_new` more outputs.

  Growth = a new Dense layer whose first columns are the old kernel and bias (the
  new columns keep `build`'s fresh initialisation), every other layer copied, so the
  old logits of any input are unchanged right after growth.

  Args:
    model: a Keras model from the models registry (final Dense named "classifier").
    num_new: outputs to add (>= 1).
    build: `fn(num_classes) -> model` building the same architecture.

  Returns:
    The grown model (the old one is left untouched, e.g. as the frozen teacher).
  """
  try:
    old_head = model.get_layer("classifier")
  except ValueError as e:
    raise InvalidConfigError(
        f"model {model.name!r} has no Dense layer named 'classifier' to grow") from e
  kernel, bias = old_head.get_weights()
  n_old = int(kernel.shape[1])
  grown = build(n_old + int(num_new))
  if len(grown.layers) != len(model.layers):
    raise InvalidConfigError("the grown model's architecture differs from the old one")
  for old, new in zip(model.layers, grown.layers):
    if type(old) is not type(new):
      raise InvalidConfigError(f"layer {old.name!r} ({type(old).__name__}) does not match "
                               f"{new.name!r} ({type(new).__name__}) in the grown model")
    if old.name == "classifier":
      nk, nb = new.get_weights()
      nk[:, :n_old] = kernel
      nb[:n_old] = bias
      new.set_weights([nk, nb])
    elif old.weights:
      new.set_weights(old.get_weights())
  return grown
