"""Name -> factory registries (sources, models, methods, augmentation policies).

Modelled on big_vision / tensorflow-models registries: registering a name twice is an
error, and a failed lookup lists the known names so the caller can fix a typo.
"""
from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, TypeVar

from tfcondense.errors import InvalidConfigError

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
  """A registry lookup failed; the message lists the registered names."""

  def __str__(self) -> str:  # KeyError quotes its message otherwise.
    return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
  """A named collection of factories.

  Args:
    kind: what the registry holds ("source", "model", ...), used in messages.
    hint: where further entries come from, appended to lookup errors.
  """

  def __init__(self, kind: str, hint: str = ""):
    self.kind = kind
    self.hint = hint
    self._entries: Dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator that registers `fn` under `name` (lower case)."""
    key = name.lower()

    def decorator(fn: T) -> T:
      if key in self._entries:
        raise InvalidConfigError(f"{self.kind} {key!r} is registered twice")
      self._entries[key] = fn
      return fn

    return decorator

  def unregister(self, name: str) -> T:
    """Removes and returns the entry `name` (a notebook re-registering its own method,
    a test cleaning up).

    Raises:
      UnknownNameError: nothing of that name is registered.
    """
    entry = self.get(name)
    del self._entries[str(name).lower()]
    return entry

  def get(self, name: str) -> T:
    key = str(name).lower()
    if key not in self._entries:
      known = ", ".join(sorted(self._entries)) or "(none)"
      msg = f"unknown {self.kind} {name!r}; known {self.kind}s: {known}."
      if self.hint:
        msg += " " + self.hint
      raise UnknownNameError(msg)
    return self._entries[key]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return str(name).lower() in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())
