"""The condensed-set artifact: one directory, readable without this library.

Layout (STYLE.md habit 8)::

    <dir>/images.npy   float32 [N, H, W, C] stored images, unnormalised, in [0, 1]
    <dir>/labels.npy   int32 [N] class labels (class-major order)
    <dir>/meta.json    source, method, ipc, factor, formation, seed, budget, version, ...
    <dir>/formation.npz  (only for a learnable formation) its weights, which count in
                       the storage budget

Any numpy user can read it: ``np.load(dir + "/images.npy")``. The directory may be a
local folder or a URL that `tf.io.gfile` knows (`gs://bucket/set`, `ram://set`). Writes
are atomic on a local filesystem: the files go to a temporary sibling directory which
is renamed into place, so a crash never leaves a half-written artifact; on an object
store, where a rename is a copy, they are moved in one by one with meta.json last, so a
reader finds a complete artifact or one that `load_artifact` reports as incomplete
(`tfcondense.atomic.replacing_dir`).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from tfcondense import atomic
from tfcondense import fileio
from tfcondense.errors import CorruptArtifactError, WorkdirError

IMAGES, LABELS, META = "images.npy", "labels.npy", "meta.json"
WEIGHTS = "formation.npz"
#: The evaluation of the set by whoever made it (tfcondense.evaluate.Result.as_dict()
#: plus seed and source); the TFDS builders report it as the set's accuracy.
EVALUATION = "evaluation.json"
_REQUIRED_META = ("source", "method", "ipc")


@dataclasses.dataclass(frozen=True, eq=False)
class Artifact:
  """A condensed set in memory.

  Attributes:
    images: float32 [N, H, W, C] stored images in [0, 1].
    labels: int32 [N].
    meta: JSON-serialisable metadata; at least source, method, ipc.
    weights: learnable formation weights by name (empty for other formations).
  """

  images: np.ndarray
  labels: np.ndarray
  meta: Dict[str, Any]
  weights: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  @property
  def ipc(self) -> int:
    return int(self.meta["ipc"])

  @property
  def factor(self) -> int:
    return int(self.meta.get("factor", 1))


def _check(images: np.ndarray, labels: np.ndarray, meta: Dict[str, Any], where: str):
  if images.ndim != 4:
    raise CorruptArtifactError(f"{where}: images must be NHWC, got shape {images.shape}")
  if labels.ndim != 1 or len(labels) != len(images):
    raise CorruptArtifactError(
        f"{where}: {len(images)} images but labels of shape {labels.shape}")
  missing = [k for k in _REQUIRED_META if k not in meta]
  if missing:
    raise CorruptArtifactError(f"{where}: meta.json lacks {', '.join(missing)}")
  if not np.all(np.isfinite(images)):
    raise CorruptArtifactError(f"{where}: images contain NaN or infinite values")


def save_artifact(directory: str, images, labels, meta: Dict[str, Any],
                  weights: Optional[Dict[str, np.ndarray]] = None) -> Artifact:
  """Writes an artifact directory atomically (replacing an existing one).

  Args:
    directory: target directory.
    images: [N, H, W, C] array in [0, 1].
    labels: [N] integer class labels.
    meta: metadata; `version` and `created` are added.
    weights: learnable formation weights, written to formation.npz.

  Returns:
    The Artifact that was written.
  """
  from tfcondense import __version__  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32)
  labels = np.asarray(labels, np.int32)
  meta = dict(meta)
  meta.setdefault("version", __version__)
  meta.setdefault("created", datetime.datetime.now(datetime.timezone.utc).isoformat(
      timespec="seconds"))
  meta.setdefault("num_images", int(len(images)))
  meta.setdefault("image_shape", list(images.shape[1:]))
  _check(images, labels, meta, directory)
  text = json.dumps(meta, indent=2, sort_keys=True)
  try:
    with atomic.replacing_dir(directory, last=(META,)) as tmp:
      fileio.write_bytes(os.path.join(tmp, IMAGES), fileio.npy_bytes(images))
      fileio.write_bytes(os.path.join(tmp, LABELS), fileio.npy_bytes(labels))
      if weights:
        fileio.write_bytes(os.path.join(tmp, WEIGHTS), fileio.npz_bytes(**weights))
      with fileio.open(os.path.join(tmp, META), "w") as f:
        f.write(text)
  except WorkdirError:
    raise
  except OSError as e:
    raise fileio.workdir_error(directory, e) from e
  return Artifact(images, labels, meta, dict(weights or {}))


def load_artifact(directory: str) -> Artifact:
  """Reads an artifact directory, checking it is complete and consistent.

  Raises:
    CorruptArtifactError: a file is missing, unreadable or inconsistent.
  """
  paths = [os.path.join(directory, n) for n in (IMAGES, LABELS, META)]
  missing = [os.path.basename(p) for p in paths if not fileio.exists(p)]
  if missing:
    raise CorruptArtifactError(
        f"{directory} is not a condensed-set artifact: missing {', '.join(missing)} "
        "(expected images.npy, labels.npy, meta.json as written by tfcondense)")
  try:
    images = fileio.load_npy(paths[0])
    labels = fileio.load_npy(paths[1])
    meta = fileio.read_json(paths[2])
  except (ValueError, OSError, EOFError) as e:
    raise CorruptArtifactError(f"{directory}: cannot read artifact ({e})") from e
  _check(images, labels, meta, directory)
  weights = {}
  path = os.path.join(directory, WEIGHTS)
  if fileio.exists(path):
    try:
      weights = fileio.load_npz(path)
    except (ValueError, OSError, EOFError) as e:
      raise CorruptArtifactError(f"{path}: cannot read formation weights ({e})") from e
  return Artifact(images.astype(np.float32), labels.astype(np.int32), meta, weights)
