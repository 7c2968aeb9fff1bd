"""Paths of artifacts, checkpoints, results and reports, local or not.

Every file tfcondense writes or reads back goes through `tf.io.gfile`, so a workdir or
an artifact may be a local folder, a cloud path (`gs://bucket/run`) or TensorFlow's
in-memory filesystem (`ram://run`, for tests), and a cloud path is never mistaken for a
local folder named `gs:`. TensorFlow's errors (`tf.errors.OpError`) come out as the
matching `OSError` (`FileNotFoundError`, `PermissionError`, `NotADirectoryError`, ...),
with the reason on one line, so that callers handle a local and a remote failure alike.

TensorFlow is imported on first use, which keeps importing this module cheap.
"""
from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import posixpath
from typing import Any, Iterator, List

import numpy as np

from tfcondense.errors import WorkdirError

_SCHEME = "://"
_FILE = "file://"


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def is_local(path: str) -> bool:
  """Whether `path` names a local file (a plain path or a `file://` URL)."""
  path = os.fspath(path)
  return _SCHEME not in path or path.startswith(_FILE)


def local_path(path: str) -> str:
  """`path` as the operating system names it (`file://` stripped); local paths only."""
  path = os.fspath(path)
  return path[len(_FILE):] if path.startswith(_FILE) else path


def abspath(path: str) -> str:
  """An absolute local path, or `path` itself where it is a URL (gs://, ram://)."""
  path = os.fspath(path)
  return os.path.abspath(local_path(path)) if is_local(path) else path


def parent(path: str) -> str:
  """The folder holding `path`; for a URL never above its root (`gs://bucket/a` ->
  `gs://bucket`, `ram://a` -> `ram://`), where `os.path.dirname` would give `gs:`."""
  path = os.fspath(path)
  if is_local(path):
    return os.path.dirname(path)
  scheme, rest = path.split(_SCHEME, 1)
  return scheme + _SCHEME + posixpath.dirname(rest.rstrip("/"))


def basename(path: str) -> str:
  return posixpath.basename(os.fspath(path).rstrip("/"))


def _reason(error) -> str:
  """TensorFlow's message without the path it starts with, on one line."""
  text = " ".join(str(getattr(error, "message", error)).split())
  return text.split("; ", 1)[1] if "; " in text else text


def _as_os_error(error, path: str) -> OSError:
  """The `OSError` matching a `tf.errors.OpError` met on `path`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  reason = _reason(error)
  if isinstance(error, tf.errors.NotFoundError):
    return FileNotFoundError(errno.ENOENT, reason, path)
  if isinstance(error, tf.errors.AlreadyExistsError):
    return FileExistsError(errno.EEXIST, reason, path)
  if isinstance(error, tf.errors.PermissionDeniedError):
    return PermissionError(errno.EACCES, reason, path)
  if isinstance(error, tf.errors.ResourceExhaustedError):
    return OSError(errno.ENOSPC, reason, path)
  if reason.endswith("is not a directory"):
    return NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
  return OSError(errno.EIO, reason, path)


def workdir_error(path: str, error: OSError) -> WorkdirError:
  """A one-line `WorkdirError` for an OS error met while writing under `path`."""
  if isinstance(error, (FileExistsError, NotADirectoryError)):
    return WorkdirError(f"cannot use {path}: {error.filename or path} is a file, not a "
                        "folder; give another path")
  reason = error.strerror or str(error).splitlines()[0]
  return WorkdirError(f"cannot write in {path}: {reason}"
                      + (f" ({error.filename})" if error.filename else ""))


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
  """Turns TensorFlow's file errors raised in the block into `OSError`s on `path`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    yield
  except tf.errors.OpError as e:
    raise _as_os_error(e, path) from e


def _call(name: str, path: str, *args, **kwargs):
  with os_errors(path):
    return getattr(_gfile(), name)(path, *args, **kwargs)


def exists(path: str) -> bool:
  return _call("exists", path)


def isdir(path: str) -> bool:
  return _call("isdir", path)


def makedirs(path: str) -> None:
  """Creates `path` and its parents (nothing for the root of a URL, such as `ram://`)."""
  if path and not path.endswith(_SCHEME):
    _call("makedirs", path)


def listdir(path: str) -> List[str]:
  return [name.rstrip("/") for name in _call("listdir", path)]


def glob(pattern: str) -> List[str]:
  return _call("glob", pattern)


def remove(path: str) -> None:
  _call("remove", path)


def rmtree(path: str, ignore_errors: bool = False) -> None:
  try:
    _call("rmtree", path)
  except OSError:
    if not ignore_errors:
      raise


def rename(src: str, dst: str, overwrite: bool = False) -> None:
  """Renames `src` to `dst` (atomically on a local or POSIX-like filesystem; on an
  object store such as GCS a rename is a copy followed by a delete)."""
  _call("rename", src, dst, overwrite=overwrite)


def mtime(path: str) -> float:
  """Seconds since the epoch of `path`'s last change (0 where the filesystem keeps none)."""
  return _call("stat", path).mtime_nsec / 1e9


def walk_files(folder: str) -> List[str]:
  """The paths of the files under `folder`, relative to it, sorted."""
  out = []
  with os_errors(folder):
    for root, _, files in _gfile().walk(folder):
      rel = root[len(folder):].lstrip("/")
      out += [posixpath.join(rel, f) if rel else f for f in files]
  return sorted(out)


@contextlib.contextmanager
def open(path: str, mode: str = "r") -> Iterator[Any]:  # pylint: disable=redefined-builtin
  """`tf.io.gfile.GFile(path, mode)`, its errors as `OSError`s."""
  with os_errors(path):
    with _gfile().GFile(path, mode) as f:
      yield f


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def read_bytes(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` as it stands (not atomically: see `tfcondense.atomic`)."""
  with open(path, "wb") as f:
    f.write(data)


def npy_bytes(array: np.ndarray) -> bytes:
  """`array` in `.npy` format, as `np.save` writes it."""
  buf = io.BytesIO()
  np.save(buf, np.asarray(array), allow_pickle=False)
  return buf.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
  """`arrays` in `.npz` format, as `np.savez` writes them."""
  buf = io.BytesIO()
  np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
  return buf.getvalue()


def load_npy(path: str) -> np.ndarray:
  """The array of an `.npy` file (no pickles)."""
  return np.load(io.BytesIO(read_bytes(path)), allow_pickle=False)


def load_npz(path: str) -> dict:
  """The arrays of an `.npz` file by name (no pickles)."""
  with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as z:
    return {k: z[k] for k in z.files}

