"""The condensed-set artifact: one directory, readable without this library.

Layout (STYLE.md habit 8)::

    <dir>/images.npy   float32 [N, H, W, C] stored images, unnormalised, in [0, 1]
    <dir>/labels.npy   int32 [N] class labels (class-major order)
    <dir>/meta.json    source, method, ipc, factor, formation, seed, budget, version, ...
    <dir>/formation.npz  (only for a learnable formation) its weights, which count in
                       the storage budget
    <dir>/soft_labels.npy  (optional) float32 [N or formed, num_classes] label
                       distributions or logits, described by meta.json's "soft_labels"
                       (`tfcondense.soft_labels`); their bytes count in the storage

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
from tfcondense import soft_labels as soft_lib
from tfcondense.errors import CorruptArtifactError, InvalidConfigError, WorkdirError

IMAGES, LABELS, META = "images.npy", "labels.npy", "meta.json"
WEIGHTS = "formation.npz"
SOFT_LABELS = soft_lib.FILE
#: The evaluation of the set by whoever made it (tfcondense.evaluation.Result.as_dict()
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
    soft_labels: per-image label distributions or logits (`tfcondense.soft_labels`),
      or None for hard labels only.
  """

  images: np.ndarray
  labels: np.ndarray
  meta: Dict[str, Any]
  weights: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  soft_labels: Optional[soft_lib.SoftLabels] = None

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
                  weights: Optional[Dict[str, np.ndarray]] = None,
                  soft_labels: Optional[soft_lib.SoftLabels] = None) -> Artifact:
  """Writes an artifact directory atomically (replacing an existing one).

  Args:
    directory: target directory.
    images: [N, H, W, C] array in [0, 1].
    labels: [N] integer class labels.
    meta: metadata; `version` and `created` are added.
    weights: learnable formation weights, written to formation.npz.
    soft_labels: written to soft_labels.npy, described in meta["soft_labels"]; their
      bytes are added to meta["storage"] ("soft_label_bytes", and "stored_bytes"
      where the storage has it).

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
  if soft_labels is not None:
    _check_soft(soft_labels, len(images), directory)
    meta["soft_labels"] = soft_labels.describe()
    meta["storage"] = _with_soft_storage(meta.get("storage"), soft_labels)
  _check(images, labels, meta, directory)
  text = json.dumps(meta, indent=2, sort_keys=True)
  try:
    with atomic.replacing_dir(directory, last=(META,)) as tmp:
      fileio.write_bytes(os.path.join(tmp, IMAGES), fileio.npy_bytes(images))
      fileio.write_bytes(os.path.join(tmp, LABELS), fileio.npy_bytes(labels))
      if weights:
        fileio.write_bytes(os.path.join(tmp, WEIGHTS), fileio.npz_bytes(**weights))
      if soft_labels is not None:
        fileio.write_bytes(os.path.join(tmp, SOFT_LABELS),
                           fileio.npy_bytes(soft_labels.values))
      with fileio.open(os.path.join(tmp, META), "w") as f:
        f.write(text)
  except WorkdirError:
    raise
  except OSError as e:
    raise fileio.workdir_error(directory, e) from e
  return Artifact(images, labels, meta, dict(weights or {}), soft_labels)


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
  soft = read_soft_labels(directory, meta, len(images), fileio.exists, fileio.load_npy)
  return Artifact(images.astype(np.float32), labels.astype(np.int32), meta, weights, soft)


def _check_soft(soft: soft_lib.SoftLabels, num_stored: int, where: str) -> None:
  if soft.per == "stored" and len(soft.values) != num_stored:
    raise InvalidConfigError(f"{where}: {len(soft.values)} soft-label rows for "
                             f"{num_stored} stored images (per='stored')")


def _with_soft_storage(storage: Any, soft: soft_lib.SoftLabels) -> Dict[str, Any]:
  """meta["storage"] with the soft labels' bytes counted."""
  out = dict(storage) if isinstance(storage, dict) else {}
  extra = soft_lib.storage_bytes(soft)
  out["soft_label_bytes"] = extra
  if "stored_bytes" in out:
    out["stored_bytes_without_soft_labels"] = out.get(
        "stored_bytes_without_soft_labels", out["stored_bytes"])
    out["stored_bytes"] = int(out["stored_bytes_without_soft_labels"]) + extra
  return out


def read_soft_labels(directory: str, meta: Dict[str, Any], num_stored: int,
                     exists=fileio.exists, load_npy=fileio.load_npy
                     ) -> Optional[soft_lib.SoftLabels]:
  """The soft labels of an artifact directory, or None when it has none.

  Args:
    directory: the artifact directory.
    meta: its meta.json.
    num_stored: its stored image count (rows per stored image must match).
    exists, load_npy: file functions (the TFDS builders pass tf.io.gfile ones).

  Raises:
    CorruptArtifactError: meta.json names soft labels that are missing or malformed.
  """
  path = os.path.join(directory, SOFT_LABELS)
  spec = meta.get("soft_labels")
  if not spec and not exists(path):
    return None
  if not exists(path):
    raise CorruptArtifactError(f"{directory}: meta.json describes soft labels but "
                               f"{SOFT_LABELS} is missing")
  try:
    values = load_npy(path)
  except (ValueError, OSError, EOFError) as e:
    raise CorruptArtifactError(f"{path}: cannot read soft labels ({e})") from e
  soft = soft_lib.SoftLabels.from_meta(values, spec if isinstance(spec, dict) else {})
  try:
    _check_soft(soft, num_stored, directory)
  except InvalidConfigError as e:
    raise CorruptArtifactError(str(e)) from e
  return soft
