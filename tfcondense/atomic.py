"""Files written all-or-nothing: a temporary sibling renamed into place.

Every JSON record, checkpoint side file, artifact and picture tfcondense writes goes
through here, so a reader (a resumed run, the benchmark report, a TFDS build) never
sees half a file, whatever stops the writer. Paths may be local or URLs (`gs://...`,
`ram://...`): files are written with `tf.io.gfile` (`tfcondense.fileio`) and renamed
with `tf.io.gfile.rename(..., overwrite=True)`.

Atomic where the filesystem allows: a local (POSIX) rename is atomic within a folder,
which is why the temporary file is created beside its target. On an object store such
as Google Cloud Storage a rename is a copy followed by a delete and a folder is only a
name prefix: each file still appears whole (an object is written in one piece), but a
folder (`replacing_dir`) is replaced file by file, see there.
"""
from __future__ import annotations

import contextlib
import glob as glob_lib
import json
import os
import uuid
from typing import Any, Iterator, Sequence

from tfcondense import fileio


def umask_mode(mode: int = 0o666) -> int:
  """`mode` as the process umask leaves it: what `open` gives a new file."""
  mask = os.umask(0)
  os.umask(mask)
  return mode & ~mask


def _unique(folder: str, prefix: str, suffix: str = "") -> str:
  """A new name in `folder` (tf.io.gfile has no mkstemp: a random part makes it unique)."""
  return os.path.join(folder, f"{prefix}{uuid.uuid4().hex[:12]}{suffix}")


@contextlib.contextmanager
def replacing(path: str, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path` to write (with `tfcondense.fileio.open` or
  `tf.io.gfile.GFile`; any writer for a local path); renames it onto `path` if the
  block ends normally, and removes it otherwise. Creates the parent folder."""
  path = fileio.abspath(path)
  directory = fileio.parent(path)
  fileio.makedirs(directory)
  tmp = _unique(directory, ".tmp-", suffix)
  try:
    yield tmp
    fileio.rename(tmp, path, overwrite=True)
  except BaseException:
    with contextlib.suppress(OSError):  # the first error is the one to report
      if fileio.exists(tmp):
        fileio.remove(tmp)
    raise


def _stale(parent: str, base: str) -> list:
  """What a killed writer of `<parent>/<base>` left: a half-filled temporary folder or
  the old version of an interrupted swap."""
  return (fileio.glob(os.path.join(parent, glob_lib.escape(f".tmp-{base}-") + "*"))
          + fileio.glob(os.path.join(parent, glob_lib.escape(f"{base}.old-.tmp-") + "*")))


def _swap(tmp: str, path: str) -> None:
  """Puts the folder `tmp` in the place of `path` by renaming folders (local paths)."""
  if fileio.exists(path):
    old = path + ".old-" + fileio.basename(tmp)
    fileio.rename(path, old)
    fileio.rename(tmp, path)
    fileio.rmtree(old, ignore_errors=True)
  else:
    fileio.rename(tmp, path)


def _move_files(tmp: str, path: str, last: Sequence[str]) -> None:
  """Puts the files of folder `tmp` in the place of folder `path` one by one (for
  object stores, where a folder is a name prefix that cannot be renamed at once): the
  old folder is removed first and the files named in `last` go last, so that a reader
  sees either no folder, one without those files, or the whole new one."""
  if fileio.exists(path):
    fileio.rmtree(path)
  fileio.makedirs(path)
  names = fileio.walk_files(tmp)
  for name in sorted(names, key=lambda n: (n in last, n)):
    fileio.makedirs(fileio.parent(os.path.join(path, name)))
    fileio.rename(os.path.join(tmp, name), os.path.join(path, name), overwrite=True)
  fileio.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def replacing_dir(path: str, last: Sequence[str] = ()) -> Iterator[str]:
  """Yields a temporary folder beside `path` to fill; if the block ends normally it
  takes `path`'s place, and is removed otherwise. Creates the parent folder, and
  removes the temporary folders a killed writer of the same `path` left beside it.

  On a local filesystem the swap is atomic (the folder already there is renamed
  aside, the new one renamed into place, then the old one removed). On any other
  (object stores such as GCS, where a rename is a copy) the old folder is removed and
  the new files are moved in one by one, those named in `last` (e.g. `meta.json`)
  last: a reader may find the folder missing or incomplete for that moment, never a
  mix of old and new files.

  Args:
    path: the folder to write.
    last: file names (relative to the folder) to move in last on a non-local path.
  """
  path = fileio.abspath(path)
  parent = fileio.parent(path)
  fileio.makedirs(parent)
  base = fileio.basename(path)
  for stale in _stale(parent, base):
    fileio.rmtree(stale, ignore_errors=True)
  tmp = _unique(parent, f".tmp-{base}-")
  fileio.makedirs(tmp)
  try:
    if fileio.is_local(tmp):
      os.chmod(fileio.local_path(tmp), umask_mode(0o777))  # as any new folder
    yield tmp
    if fileio.is_local(path):
      _swap(tmp, path)
    else:
      _move_files(tmp, path, last)
  except BaseException:
    fileio.rmtree(tmp, ignore_errors=True)
    raise


def write_json(path: str, obj: Any, sort_keys: bool = True) -> str:
  """Writes `obj` as indented JSON to `path`; returns the absolute path (or URL)."""
  with replacing(path, ".json") as tmp:
    text = json.dumps(obj, indent=2, sort_keys=sort_keys)  # fails before any write
    with fileio.open(tmp, "w") as f:
      f.write(text)
  return fileio.abspath(path)


def write_json_keeping(path: str, obj: dict, keep: Sequence[str],
                       sort_keys: bool = True) -> str:
  """`write_json(path, obj)`, carrying over the keys `keep` of the file already at `path`
  (where `obj` does not set them), e.g. a results file's `superseded_rows`."""
  if fileio.exists(path):
    old = fileio.read_json(path)
    obj = dict(obj, **{k: old[k] for k in keep if k in old and k not in obj})
  return write_json(path, obj, sort_keys=sort_keys)


def write_text(path: str, text: str) -> str:
  """Writes `text` (UTF-8) to `path`; returns the absolute path (or URL)."""
  with replacing(path, os.path.splitext(path)[1]) as tmp:
    with fileio.open(tmp, "wb") as f:
      f.write(text.encode("utf-8"))
  return fileio.abspath(path)


def write_bytes(path: str, data: bytes) -> str:
  """Writes `data` to `path`; returns the absolute path (or URL)."""
  with replacing(path, os.path.splitext(path)[1]) as tmp:
    fileio.write_bytes(tmp, data)
  return fileio.abspath(path)


def save_figure(fig, path: str, dpi: int = 100) -> str:
  """Saves a matplotlib figure as PNG at `path` and closes it; returns the path."""
  import io  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  try:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
  finally:
    plt.close(fig)
  return write_bytes(path, buf.getvalue())
