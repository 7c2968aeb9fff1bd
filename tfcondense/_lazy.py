"""Module-level `__getattr__` that imports names and submodules on first use (PEP 562),
so that importing a package stays cheap (no TensorFlow until something needs it)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Sequence


def module_getattr(package: str, names: Dict[str, str],
                   submodules: Sequence[str]) -> Callable[[str], Any]:
  """A `__getattr__` for `package`: `names` maps an attribute to the module defining it;
  `submodules` are reachable as attributes (`package.<name>`)."""

  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name in names:
      return getattr(importlib.import_module(names[name]), name)
    if name in submodules:
      return importlib.import_module(f"{package}.{name}")
    raise AttributeError(f"module {package!r} has no attribute {name!r}")

  return __getattr__
