"""Files written all-or-nothing: a temporary sibling renamed into place.

Every JSON record, checkpoint side file and picture tfcondense writes goes through
here, so a reader (a resumed run, the benchmark report, a TFDS build) never sees half
a file, whatever stops the writer. `os.replace` is atomic on POSIX within a folder,
which is why the temporary file is created beside its target.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from typing import Any, Iterator


def umask_mode(mode: int = 0o666) -> int:
  """`mode` as the process umask leaves it: what `open` gives a new file
  (`tempfile.mkstemp` files are 0600 otherwise)."""
  mask = os.umask(0)
  os.umask(mask)
  return mode & ~mask


@contextlib.contextmanager
def replacing(path: str, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` if the block ends
  normally, and removes it otherwise. Creates the parent folder."""
  path = os.path.abspath(path)
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
  os.close(fd)
  try:
    yield tmp
    os.chmod(tmp, umask_mode())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def replacing_dir(path: str) -> Iterator[str]:
  """Yields a temporary folder beside `path` to fill; if the block ends normally it
  takes `path`'s place (a folder already there is swapped out, then removed), and is
  removed otherwise. Creates the parent folder, and removes the temporary folders a
  killed writer of the same `path` left beside it."""
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  base = os.path.basename(path)
  # What a killed writer of the same target left behind (a half-filled temporary
  # folder, or the old version of an interrupted swap) is removed first.
  for stale in (glob.glob(os.path.join(parent, glob.escape(f".tmp-{base}-") + "*"))
                + glob.glob(os.path.join(parent, glob.escape(f"{base}.old-.tmp-") + "*"))):
    shutil.rmtree(stale, ignore_errors=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-" + base + "-", dir=parent)
  try:
    os.chmod(tmp, umask_mode(0o777))  # mkdtemp's 0700 would hide it from others
    yield tmp
    if os.path.exists(path):
      old = path + ".old-" + os.path.basename(tmp)
      os.rename(path, old)
      os.rename(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def write_json(path: str, obj: Any, sort_keys: bool = True) -> str:
  """Writes `obj` as indented JSON to `path`; returns the absolute path."""
  with replacing(path, ".json") as tmp:
    with open(tmp, "w") as f:
      json.dump(obj, f, indent=2, sort_keys=sort_keys)
  return os.path.abspath(path)


def write_text(path: str, text: str) -> str:
  """Writes `text` (UTF-8) to `path`; returns the absolute path."""
  with replacing(path, os.path.splitext(path)[1]) as tmp:
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text)
  return os.path.abspath(path)


def save_figure(fig, path: str, dpi: int = 100) -> str:
  """Saves a matplotlib figure as PNG at `path` and closes it; returns the path."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  try:
    with replacing(path, ".png") as tmp:
      fig.savefig(tmp, dpi=dpi)
  finally:
    plt.close(fig)
  return os.path.abspath(path)
