"""Every method of the library, selection and synthesis, registered on import.

A selection method is a function ``fn(source, ipc, seed, **options) -> (images, labels,
meta)`` registered with ``@SELECTION.register(name)`` (`tfcondense.methods.base`);
:func:`select` wraps it into an :class:`~tfcondense.artifact.Artifact` with the
standard metadata. A synthesis method registers a `SynthesisSpec` with
`tfcondense.methods.base.register` and runs through `tfcondense.condensation.condense`.
Each registers in its own module; importing this package imports the library's own
method modules, so every name is known once `tfcondense.methods` is imported.
"""
from __future__ import annotations

import inspect
import time

from tfcondense import hardware
from tfcondense.artifact import Artifact
from tfcondense.errors import InvalidConfigError
from tfcondense.methods.base import SELECTION, SYNTHESIS
from tfcondense.registry import UnknownNameError

#: The selection registry under its older name.
METHODS = SELECTION

# The library's own methods: importing each module registers it.
from tfcondense.methods import selection  # noqa: E402,F401,I001  pylint: disable=g-import-not-at-top
from tfcondense.methods import dc, dm, idc, kip, mtt  # noqa: E402,F401  pylint: disable=g-import-not-at-top


def method_names():
  """Names of the selection methods."""
  return SELECTION.names()


def all_method_names():
  """Names of every method, selection and synthesis, sorted."""
  return sorted(set(SELECTION.names()) | set(SYNTHESIS.names()))


def kind(name: str) -> str:
  """"selection" or "synthesis" for a registered method.

  Raises:
    UnknownNameError: no method of either kind has that name (the message lists all).
  """
  if name.lower() in SELECTION:
    return "selection"
  if name.lower() in SYNTHESIS:
    return "synthesis"
  raise UnknownNameError(f"unknown method {name!r}; known: {', '.join(all_method_names())}")


def select(name: str, source, ipc: int, seed: int = 0, **options) -> Artifact:
  """Runs method `name` on `source` and returns the condensed set.

  Args:
    name: registered method name (random, herding, kcenter, ...).
    source: a SourceData.
    ipc: images per class to keep.
    seed: the method's seed.
    **options: method options (e.g. `cache_dir` for the embedding of herding/kcenter).

  Returns:
    An Artifact whose meta records source, method, ipc, factor (1), seed, budget and
    machine (`tfcondense.hardware.machine()`).

  Raises:
    UnknownNameError: unknown method.
    InvalidConfigError: IPC larger than a class, or an option the method does not take.
  """
  fn = SELECTION.get(name)
  known = [p for p in inspect.signature(fn).parameters if p not in ("source", "ipc", "seed")]
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise InvalidConfigError(
        f"selection method {name!r} takes no option {', '.join(map(repr, unknown))}; "
        f"its options: {', '.join(known) or 'none'}")
  source.check_ipc(ipc)
  t0 = time.perf_counter()
  images, labels, extra = fn(source, ipc, seed, **options)
  meta = dict(source=source.name, method=name.lower(), ipc=int(ipc), factor=1,
              formation="identity", seed=int(seed),
              budget={"seconds": round(time.perf_counter() - t0, 2)},
              machine=hardware.machine())
  meta.update(extra)
  return Artifact(images, labels, meta)
