"""Condensation and selection methods behind one registry.

Every method is a function ``fn(source, ipc, seed, **options) -> (images, labels, meta)``
registered with ``@METHODS.register(name)``; :func:`select` wraps it into an
:class:`~tfcondense.artifact.Artifact` with the standard metadata.
"""
from __future__ import annotations

import inspect
import time

from tfcondense import hardware
from tfcondense.artifact import Artifact
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

METHODS = Registry("method", hint="Selection methods live in tfcondense.methods.")

# Registration happens on import of each method module.
from tfcondense.methods import selection  # noqa: E402,F401  pylint: disable=g-import-not-at-top


def method_names():
  return METHODS.names()


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
  fn = METHODS.get(name)
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
