"""The source registry, `load_source` and its in-process cache."""
from __future__ import annotations

import collections
import inspect
import os
import threading
from typing import Any, Callable, Hashable, Optional

from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

SOURCES: Registry[Callable[..., SourceData]] = Registry(
    "source",
    hint=("Sources are registered in tfcondense/data/ (fashion_mnist.py, digits.py, "
          "tfds_sources.py, tiny_imagenet.py, imagenet_subset.py, speech.py); call "
          "tfcondense.data.source_names() to list them."))

# Environment variables that sources read when an option is left at None; they are part
# of the cache key so that changing one between two loads is honoured.
ENV_VARS = ("TFCONDENSE_FASHION_MNIST_DIR", "TFCONDENSE_TINY_IMAGENET_DIR",
            "TFCONDENSE_IMAGENET_DIR", "TFCONDENSE_SPEECH_DIR", "TFDS_DATA_DIR")

CACHE_SIZE = 4
_cache: "collections.OrderedDict[Hashable, SourceData]" = collections.OrderedDict()
_lock = threading.Lock()


class UnknownOptionError(InvalidConfigError, TypeError):
  """`load_source` got an option the source does not take."""


def source_names() -> list[str]:
  """The registered source names, sorted."""
  return SOURCES.names()


def clear_cache() -> None:
  """Forgets every source loaded so far in this process."""
  with _lock:
    _cache.clear()


def load_source(name: str, *, cache: bool = True, **options: Any) -> SourceData:
  """Loads the data source registered as `name`.

  Args:
    name: a registered source name (see `source_names()`), case-insensitive.
    cache: reuse a store loaded earlier in this process with the same options (the
      last `CACHE_SIZE` loads are kept). The returned arrays are read-only either way,
      so a shared store cannot be modified by accident.
    **options: the source's keyword options, e.g. `path=`, `data_dir=`,
      `limit_per_class=`; see each source function's docstring.

  Returns:
    The SourceData.

  Raises:
    UnknownNameError: no source has that name (the message lists the known ones).
    UnknownOptionError: an option the source does not accept (a TypeError and an
      InvalidConfigError).
    SourceUnavailableError: the files are missing, corrupt or not prepared.
    InvalidConfigError: an option value is out of range.
  """
  fn = SOURCES.get(name)
  key_name = str(name).lower()
  bound = _bind(key_name, fn, options)
  key = _cache_key(key_name, bound) if cache else None
  if key is not None:
    with _lock:
      if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
  data = fn(**options)
  if not isinstance(data, SourceData):
    raise TypeError(f"source {key_name!r} returned {type(data).__name__}, not SourceData")
  for arr in (data.train_images, data.train_labels, data.test_images, data.test_labels):
    arr.setflags(write=False)
  if key is not None:
    with _lock:
      _cache[key] = data
      while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
  return data


def _bind(name: str, fn: Callable[..., SourceData], options: dict) -> dict:
  """The options with defaults filled in; unknown options raise UnknownOptionError."""
  params = inspect.signature(fn).parameters
  unknown = sorted(set(options) - set(params))
  if unknown:
    accepted = ", ".join(params) or "(none)"
    raise UnknownOptionError(
        f"source {name!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
        f"it accepts: {accepted}.")
  bound = inspect.signature(fn).bind(**options)
  bound.apply_defaults()
  return dict(bound.arguments)


def _freeze(value: Any) -> Any:
  if isinstance(value, (list, tuple)):
    return tuple(_freeze(v) for v in value)
  if isinstance(value, os.PathLike):
    return os.fspath(value)
  return value


def _cache_key(name: str, bound: dict) -> Optional[Hashable]:
  key = (name, tuple(sorted((k, _freeze(v)) for k, v in bound.items())),
         tuple(os.environ.get(v) for v in ENV_VARS))
  try:
    hash(key)
  except TypeError:
    return None
  return key


def data_dir_kwargs(name: str, directory: str) -> dict:
  """Maps one `--data_dir` flag onto the option the source uses for its location.

  `fashion_mnist` calls it `path`, the TFDS sources `data_dir`, the folder sources
  `root`.
  """
  params = inspect.signature(SOURCES.get(name)).parameters
  for option in ("data_dir", "path", "root"):
    if option in params:
      return {option: directory}
  raise InvalidConfigError(f"source {name!r} does not read files from a directory")
