"""The field's condensed sets in and out: importers into artifacts, exporters for PyTorch.

The condensed sets of the literature are published by PyTorch projects, each in its own
layout; users ask again and again how to evaluate one they downloaded (DC-BENCH issue
3, DATM issue 17, MTT issues 11 and 29). `import_set` reads them into a tfcondense
artifact (`tfcondense.artifact`) WITHOUT PyTorch (`tfcondense.torchfile`: a pickle
that calls anything outside the tensor-rebuild globals is refused), and `export_set`
writes an artifact back in the MTT layout (a `.pt` file torch can load) or as plain
`.npz`, so that the field's PyTorch evaluators can check our sets.

Import formats (`IMPORT_FORMATS`; images NCHW and normalised with the source's mean /
std unless said otherwise):

* `vico`: DC / DSA / DM results of VICO-UoE/DatasetCondensation (Zhao et al., ICLR
  2021; Zhao & Bilen, ICML 2021 and WACV 2023), `res_<method>_<dataset>_<model>_
  <ipc>ipc.pt`: a dict whose `data` lists one `[images, labels]` per experiment
  (`ImportOptions.experiment` picks one) and `accs_all_exps` the reported accuracies.
* `mtt`: MTT (Cazenavette et al., CVPR 2022) and DATM (Guo et al., ICLR 2024): a folder
  with `images_best.pt`, `labels_best.pt` (int labels, or DATM's learned soft labels as
  float [N, C] logits), `lr_best.pt` (the learned lr) where present, and
  `soft_labels_best.pt` (what `export_set` writes for a set with soft labels).
* `idc`: IDC's `data.pt` (Kim et al., ICML 2022): `[stored images, targets]`,
  unnormalised in [0, 1]; the formed images are decoded with `ImportOptions.factor`
  (IDC's default 2) by the artifact's uniform formation.
* `kip`: KIP's `.npz` (Nguyen et al., ICLR / NeurIPS 2021): NHWC `images` (or
  `support_images`), one-hot (or learned) `labels`, standardised and possibly
  ZCA-whitened (`ImportOptions.zca`, recorded in meta.json).
* `npz`: what `export_set(..., "npz")` writes: NHWC `images` in [0, 1], int `labels`,
  optional `soft_labels` and the artifact's `meta` as JSON.

Every import un-normalises with the source's statistics (or the given ones), checks
shapes, label counts (equal per class, giving the IPC) and the pixel range, and
records in meta.json the origin (`import`: format, file name, SHA-256, experiment,
learned lr, reported accuracies, normalisation, ZCA). Float [N, C] labels become soft
labels (`tfcondense.soft_labels`): rows that are distributions as "probs", others as
"logits" with `ImportOptions.temperature`; the hard labels are their argmax.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from tfcondense import artifact as artifact_lib
from tfcondense import atomic
from tfcondense import fileio
from tfcondense import soft_labels as soft_lib
from tfcondense import torchfile
from tfcondense.errors import InvalidConfigError, SourceUnavailableError
from tfcondense.registry import Registry

Stats = Tuple[Tuple[float, ...], Tuple[float, ...]]

#: MTT's file names (Cazenavette et al.'s distill.py saves the best iterate so).
MTT_IMAGES, MTT_LABELS, MTT_LR = "images_best.pt", "labels_best.pt", "lr_best.pt"
MTT_SOFT = "soft_labels_best.pt"
#: The artifact's meta.json beside an exported MTT folder (read back on import).
EXPORT_META = "tfcondense_meta.json"
#: Un-normalised pixels outside this range mean wrong statistics (or none applied).
PIXEL_RANGE = (-1.0, 2.0)
_VICO_NAME = re.compile(r"res_(?P<method>[a-z_]+?)_(?P<dataset>[A-Za-z0-9]+)_"
                        r"(?P<model>[A-Za-z0-9]+)_(?P<ipc>\d+)ipc", re.IGNORECASE)


def source_statistics(source: str) -> Stats:
  """(mean, std) per channel that the field's loaders normalise `source` with.

  Raises:
    InvalidConfigError: no constants for the source (pass mean / std explicitly).
  """
  from tfcondense.data import tfds_sources  # pylint: disable=g-import-not-at-top
  from tfcondense.export import NORMALIZATION  # pylint: disable=g-import-not-at-top
  table = dict(NORMALIZATION)
  table.update({k: tuple(v[:2]) for k, v in tfds_sources.SPECS.items()})
  if source not in table:
    raise InvalidConfigError(
        f"no normalisation statistics for source {source!r} (known: "
        f"{', '.join(sorted(table))}); pass mean=... and std=... (ImportOptions, or "
        "--mean / --std)")
  mean, std = table[source]
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


@dataclasses.dataclass(frozen=True)
class ImportOptions:
  """How to read a released set.

  Attributes:
    source: the tfcondense source the set condenses (fashion_mnist, cifar10, ...).
    method: method name recorded in meta.json (default: the file's, else the format).
    ipc: expected images per class (checked; default: read off the labels).
    factor: IDC's multi-formation factor (idc only; default 2).
    normalized: whether the images are normalised (default: the format's).
    mean, std: normalisation statistics (default: `source_statistics(source)`).
    experiment: which experiment of a VICO results file.
    temperature: softmax temperature of logit soft labels.
    soft_loss: loss of soft labels: "ce" or "kl" (default: "kl" for logits at a
      temperature other than 1, else "ce").
    zca: the images are ZCA-whitened (KIP, MTT on CIFAR): kept as they are (never
      un-normalised) and recorded; evaluating them needs whitened test data.
    num_classes: class count (default: from soft labels, else the largest label + 1).
  """

  source: str
  method: Optional[str] = None
  ipc: Optional[int] = None
  factor: Optional[int] = None
  normalized: Optional[bool] = None
  mean: Optional[Tuple[float, ...]] = None
  std: Optional[Tuple[float, ...]] = None
  experiment: int = 0
  temperature: float = 1.0
  soft_loss: Optional[str] = None
  zca: bool = False
  num_classes: Optional[int] = None


@dataclasses.dataclass
class RawSet:
  """What a format reader found, before un-normalisation and checks.

  Attributes:
    images: [N, C, H, W] (layout "nchw") or [N, H, W, C] images.
    labels: [N] class labels, or [N, C] one-hot / soft labels.
    files: the files read (their names and hashes go to meta.json).
    info: format-specific provenance (method, dataset, model, reported accuracies).
    learned_lr: a learned learning rate (MTT / DATM), or None.
    soft: [N, C] soft labels given beside hard `labels`, or None.
    meta: a tfcondense meta.json found beside the files (round trips), or {}.
  """

  images: np.ndarray
  labels: np.ndarray
  files: Sequence[str]
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)
  learned_lr: Optional[float] = None
  soft: Optional[np.ndarray] = None
  meta: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImportFormat:
  """A released layout: its reader and conventions.

  Attributes:
    name: the `--format` name.
    read: (path, options) -> RawSet.
    layout: "nchw" (PyTorch) or "nhwc".
    normalized: whether its images are normalised by default.
    description: one line for help texts.
  """

  name: str
  read: Callable[[str, ImportOptions], RawSet]
  layout: str
  normalized: bool
  description: str


IMPORT_FORMATS: Registry[ImportFormat] = Registry(
    "import format", "Formats are registered in tfcondense/interop.py.")


def _register(fmt: ImportFormat) -> ImportFormat:
  IMPORT_FORMATS.register(fmt.name)(fmt)
  return fmt


def _array(value: Any, what: str, where: str) -> np.ndarray:
  if not isinstance(value, np.ndarray):
    raise SourceUnavailableError(f"{where}: expected a tensor for {what}, got "
                                 f"{type(value).__name__}")
  return value


def _scalar(value: Any) -> Optional[float]:
  if value is None:
    return None
  if isinstance(value, np.ndarray):
    return float(value.reshape(-1)[0]) if value.size == 1 else None
  return float(value) if isinstance(value, (int, float)) else None


def _read_mtt(path: str, options: ImportOptions) -> RawSet:
  folder = path if fileio.isdir(path) else fileio.parent(path)
  join = lambda name: os.path.join(folder, name)  # noqa: E731
  for name in (MTT_IMAGES, MTT_LABELS):
    if not fileio.exists(join(name)):
      raise SourceUnavailableError(
          f"{folder}: no {name}; an MTT / DATM set is a folder with {MTT_IMAGES} and "
          f"{MTT_LABELS} (and {MTT_LR} where the lr was learned)")
  files = [join(MTT_IMAGES), join(MTT_LABELS)]
  images = _array(torchfile.load(files[0]), "the images", files[0])
  labels = _array(torchfile.load(files[1]), "the labels", files[1])
  lr, soft, meta = None, None, {}
  if fileio.exists(join(MTT_LR)):
    files.append(join(MTT_LR))
    lr = _scalar(torchfile.load(join(MTT_LR)))
  if fileio.exists(join(MTT_SOFT)):
    files.append(join(MTT_SOFT))
    soft = _array(torchfile.load(join(MTT_SOFT)), "the soft labels", join(MTT_SOFT))
  if fileio.exists(join(EXPORT_META)):
    meta = fileio.read_json(join(EXPORT_META))
  return RawSet(images, labels, files, dict(method="mtt"), lr, soft, meta)


def _read_vico(path: str, options: ImportOptions) -> RawSet:
  obj = torchfile.load(path)
  if not isinstance(obj, dict) or "data" not in obj:
    raise SourceUnavailableError(
        f"{path}: not a DC / DSA / DM results file (expected a dict with 'data', a list "
        "of [images, labels] per experiment)")
  data = obj["data"]
  if not isinstance(data, (list, tuple)) or not data:
    raise SourceUnavailableError(f"{path}: 'data' holds no experiment")
  if not 0 <= options.experiment < len(data):
    raise InvalidConfigError(f"{path} holds {len(data)} experiment(s); experiment "
                             f"{options.experiment} does not exist")
  pair = data[options.experiment]
  if not isinstance(pair, (list, tuple)) or len(pair) < 2:
    raise SourceUnavailableError(f"{path}: experiment {options.experiment} is not an "
                                 "[images, labels] pair")
  info: Dict[str, Any] = dict(experiment=int(options.experiment), experiments=len(data))
  match = _VICO_NAME.search(fileio.basename(path))
  if match:
    info.update(method=match["method"].lower(), dataset=match["dataset"],
                model=match["model"], ipc=int(match["ipc"]))
  accs = obj.get("accs_all_exps")
  if isinstance(accs, dict):
    info["reported_accuracies"] = {
        str(k): [float(a) for a in (v if isinstance(v, (list, tuple)) else [v])
                 if _scalar(a) is not None] for k, v in accs.items()}
  return RawSet(_array(pair[0], "the images", path), _array(pair[1], "the labels", path),
                [path], info)


def _read_idc(path: str, options: ImportOptions) -> RawSet:
  obj = torchfile.load(path)
  if not isinstance(obj, (list, tuple)) or len(obj) < 2:
    raise SourceUnavailableError(
        f"{path}: not an IDC data.pt (expected [stored images, targets])")
  return RawSet(_array(obj[0], "the images", path), _array(obj[1], "the targets", path),
                [path], dict(method="idc"))


def _load_npz(path: str) -> Dict[str, np.ndarray]:
  try:
    with np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (ValueError, OSError, EOFError) as e:
    raise SourceUnavailableError(f"{path}: cannot read as .npz without pickle ({e})") from e


def _first(arrays: Dict[str, np.ndarray], keys: Sequence[str], path: str) -> np.ndarray:
  for key in keys:
    if key in arrays:
      return arrays[key]
  raise SourceUnavailableError(f"{path}: none of the arrays {', '.join(keys)} (has "
                               f"{', '.join(sorted(arrays)) or 'none'})")


def _read_kip(path: str, options: ImportOptions) -> RawSet:
  arrays = _load_npz(path)
  images = _first(arrays, ("images", "support_images", "x"), path)
  labels = _first(arrays, ("labels", "support_labels", "y"), path)
  return RawSet(images, labels, [path], dict(method="kip"))


def _read_npz(path: str, options: ImportOptions) -> RawSet:
  arrays = _load_npz(path)
  meta = json.loads(str(arrays["meta"])) if "meta" in arrays else {}
  return RawSet(_first(arrays, ("images",), path), _first(arrays, ("labels",), path),
                [path], {}, soft=arrays.get("soft_labels"), meta=meta)


for _fmt in (
    ImportFormat("vico", _read_vico, "nchw", True,
                 "DC / DSA / DM results file res_<method>_<dataset>_<model>_<ipc>ipc.pt"),
    ImportFormat("mtt", _read_mtt, "nchw", True,
                 "MTT / DATM folder: images_best.pt, labels_best.pt[, lr_best.pt]"),
    ImportFormat("idc", _read_idc, "nchw", False,
                 "IDC data.pt: [stored images in [0, 1], targets]; decoded by factor"),
    ImportFormat("kip", _read_kip, "nhwc", True,
                 "KIP .npz: NHWC images, one-hot or learned labels, maybe ZCA"),
    ImportFormat("npz", _read_npz, "nhwc", False,
                 "tfcondense's plain .npz export: images in [0, 1], labels, meta"),
):
  _register(_fmt)


def _is_one_hot(labels: np.ndarray) -> bool:
  """Whether every row is one value at its argmax and one other value elsewhere (KIP's
  one-hot labels, possibly shifted by -1 / C)."""
  top = labels.max(axis=1, keepdims=True)
  rest = np.where(labels == top, np.nan, labels)
  if np.any(np.sum(labels == top, axis=1) != 1):
    return False
  low = np.nanmin(rest, axis=1)
  return bool(np.all(np.nanmax(rest, axis=1) == low) and np.all(low == low[0])
              and np.allclose(top[:, 0] - low, 1.0))  # label smoothing stays soft


def _soft(values: np.ndarray, options: ImportOptions, info: Dict[str, Any]
          ) -> soft_lib.SoftLabels:
  values = np.asarray(values, np.float32)
  distributions = (values.min() >= 0
                   and np.abs(values.sum(axis=1) - 1).max() <= 1e-3)
  kind = "probs" if distributions else "logits"
  loss = options.soft_loss or ("kl" if kind == "logits" and options.temperature != 1
                               else "ce")
  return soft_lib.SoftLabels(values, kind=kind, temperature=options.temperature,
                             loss=loss, per="stored", info=info)


def _labels(raw: RawSet, options: ImportOptions, where: str
            ) -> Tuple[np.ndarray, Optional[soft_lib.SoftLabels]]:
  labels = np.asarray(raw.labels)
  info = dict(origin=f"imported from {fileio.basename(raw.files[0])}")
  soft = None
  if labels.ndim == 2:
    if _is_one_hot(labels.astype(np.float64)):
      labels = np.argmax(labels, axis=1)
    else:
      soft = _soft(labels, options, info)
      labels = soft.hard_labels()
  elif labels.ndim != 1:
    raise SourceUnavailableError(f"{where}: labels must be [N] or [N, classes], got "
                                 f"{labels.shape}")
  if labels.dtype.kind == "f":
    if not np.all(labels == np.round(labels)):
      raise SourceUnavailableError(f"{where}: [N] labels must be whole class numbers")
  labels = labels.astype(np.int64)
  if raw.soft is not None:
    spec = (raw.meta or {}).get("soft_labels") or {}
    soft = soft_lib.SoftLabels.from_meta(raw.soft, spec) if spec else \
        _soft(raw.soft, options, info)
  return labels, soft


def _images(raw: RawSet, fmt: ImportFormat, options: ImportOptions, stats: Stats,
            where: str) -> Tuple[np.ndarray, Dict[str, Any]]:
  images = np.asarray(raw.images)
  if images.ndim != 4:
    raise SourceUnavailableError(f"{where}: images must be 4-D ({fmt.layout.upper()}), "
                                 f"got shape {images.shape}")
  if images.dtype.kind not in "fiu":
    raise SourceUnavailableError(f"{where}: images of dtype {images.dtype}")
  if fmt.layout == "nchw":
    images = images.transpose(0, 2, 3, 1)
  images = images.astype(np.float64)
  mean, std = (np.asarray(s, np.float64) for s in stats)
  channels = images.shape[-1]
  if len(mean) != channels or len(std) != channels:
    raise InvalidConfigError(
        f"{where}: images have {channels} channel(s) but {options.source}'s statistics "
        f"{len(mean)}; is the layout right ({fmt.name} is {fmt.layout.upper()}) and the "
        "source the one the set condenses?")
  normalized = fmt.normalized if options.normalized is None else bool(options.normalized)
  record: Dict[str, Any] = dict(normalized=normalized, zca=bool(options.zca),
                                mean=[float(m) for m in mean], std=[float(s) for s in std])
  if not np.all(np.isfinite(images)):
    raise SourceUnavailableError(f"{where}: images contain NaN or infinite values")
  if options.zca:
    record["note"] = ("ZCA-whitened images are kept as they are; evaluating them needs "
                      "ZCA-whitened test data")
  else:
    if normalized:
      images = images * std + mean
    low, high = float(images.min()), float(images.max())
    if low < PIXEL_RANGE[0] or high > PIXEL_RANGE[1]:
      hint = ("pass normalized=True (--normalized)" if not normalized and high > 2 else
              "pass normalized=False (--nonormalized), zca=True, or the right mean / std")
      raise InvalidConfigError(
          f"{where}: un-normalised pixels span {low:.3g}..{high:.3g}, far outside [0, 1]; "
          f"{hint}")
    record["pixel_range"] = [low, high]
  return images.astype(np.float32), record


def _sha256(path: str) -> str:
  return hashlib.sha256(fileio.read_bytes(path)).hexdigest()


def read_set(path: str, fmt: str, options: ImportOptions) -> artifact_lib.Artifact:
  """Reads a released set into an in-memory Artifact (see the module docstring).

  Raises:
    UnknownNameError: an unknown format (lists the known ones).
    UnsafePickleError: a .pt file calls something outside the tensor-rebuild globals.
    SourceUnavailableError: a file is missing or not in the format's layout.
    InvalidConfigError: shapes, label counts or pixel ranges do not fit the options.
  """
  spec = IMPORT_FORMATS.get(fmt)
  raw = spec.read(path, options)
  where = f"{path} ({spec.name})"
  stats = ((tuple(options.mean), tuple(options.std)) if options.mean and options.std
           else _stats_from_meta(raw.meta) or source_statistics(options.source))
  images, pixels = _images(raw, spec, options, stats, where)
  labels, soft = _labels(raw, options, where)
  if len(labels) != len(images):
    raise SourceUnavailableError(f"{where}: {len(images)} images but {len(labels)} labels")
  num_classes = options.num_classes or (soft.num_classes if soft is not None
                                        else int(labels.max()) + 1)
  if labels.min() < 0 or labels.max() >= num_classes:
    raise InvalidConfigError(f"{where}: labels span {labels.min()}..{labels.max()}, "
                             f"outside the {num_classes} classes")
  order = np.argsort(labels, kind="stable")  # class-major, as tfcondense stores sets
  images, labels = images[order], labels[order]
  if soft is not None:
    soft = dataclasses.replace(soft, values=soft.values[order])
  counts = np.bincount(labels, minlength=num_classes)
  if np.any(counts != counts[0]):
    raise InvalidConfigError(f"{where}: classes hold different numbers of images "
                             f"{counts.tolist()}; a condensed set has ipc per class")
  ipc = int(counts[0])
  expected = options.ipc or raw.info.get("ipc") or raw.meta.get("ipc")
  if expected is not None and int(expected) != ipc:
    raise InvalidConfigError(f"{where}: {ipc} images per class, expected {expected} "
                             "(from the options or the file name)")
  factor = int(options.factor or (2 if spec.name == "idc" else
                                  raw.meta.get("factor", 1)))
  method = (options.method or raw.meta.get("method") or raw.info.get("method")
            or spec.name).lower()
  meta: Dict[str, Any] = {k: v for k, v in raw.meta.items()
                          if k not in ("version", "created", "storage", "soft_labels",
                                       "num_images", "image_shape", "import")}
  meta.update(source=options.source, method=method, ipc=ipc, factor=factor)
  if factor > 1:
    meta["formation"] = meta.get("formation") or {"name": "uniform", "factor": factor}
  elif spec.name != "npz" and not raw.meta:
    meta["formation"] = {"name": "identity", "factor": 1}
  pixel_bytes = int(np.prod(images.shape)) * 4
  meta["storage"] = dict(stored_images=int(len(images)), stored_bytes=pixel_bytes,
                         formed_images=int(len(images)) * (factor * factor))
  meta["import"] = dict(
      format=spec.name, files=[fileio.basename(f) for f in raw.files],
      sha256={fileio.basename(f): _sha256(f) for f in raw.files},
      learned_lr=raw.learned_lr, **pixels,
      **{k: v for k, v in raw.info.items() if k not in ("method", "ipc")})
  if raw.learned_lr is not None:
    meta["learned_lr"] = raw.learned_lr
  return artifact_lib.Artifact(images, labels.astype(np.int32), meta, {}, soft)


def _stats_from_meta(meta: Dict[str, Any]) -> Optional[Stats]:
  given = (meta or {}).get("normalization")
  if isinstance(given, dict) and given.get("mean") and given.get("std"):
    return tuple(given["mean"]), tuple(given["std"])
  return None


def import_set(path: str, fmt: str, source: str, out_dir: Optional[str] = None,
               **options: Any) -> artifact_lib.Artifact:
  """Imports a released condensed set, optionally writing it as an artifact directory.

    art = tfc.import_set("mtt_run/", "mtt", "cifar10", out_dir="artifacts/mtt_ipc10")
    tfc.evaluate(*tfc.soft_labels.training_set(art)[:2], source)

  Args:
    path: the file (or MTT folder).
    fmt: vico, mtt, idc, kip or npz (`IMPORT_FORMATS`).
    source: the tfcondense source it condenses.
    out_dir: where to write the artifact (None: only return it).
    **options: `ImportOptions` fields (method, ipc, factor, normalized, mean, std,
      experiment, temperature, soft_loss, zca, num_classes).

  Returns:
    The Artifact (as written, when out_dir is given).
  """
  art = read_set(path, fmt, ImportOptions(source=source, **options))
  if out_dir is None:
    return art
  return artifact_lib.save_artifact(out_dir, art.images, art.labels, art.meta,
                                    soft_labels=art.soft_labels)


# -- export ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ExportFormat:
  """A layout `export_set` writes: name, writer (artifact, out) -> path, description."""

  name: str
  write: Callable[[artifact_lib.Artifact, str], str]
  description: str


EXPORT_FORMATS: Registry[ExportFormat] = Registry(
    "export format", "Formats are registered in tfcondense/interop.py.")


def _export_stats(art: artifact_lib.Artifact) -> Stats:
  return _stats_from_meta(art.meta) or source_statistics(str(art.meta["source"]))


def _write_mtt(art: artifact_lib.Artifact, out: str) -> str:
  """MTT's folder: the formed images normalised NCHW, int64 labels, lr and soft labels."""
  images, labels, soft = soft_lib.training_set(art)
  mean, std = (np.asarray(s, np.float64) for s in _export_stats(art))
  normalised = ((images.astype(np.float64) - mean) / std).astype(np.float32)
  fileio.makedirs(out)
  torchfile.save(os.path.join(out, MTT_IMAGES),
                 np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))
  torchfile.save(os.path.join(out, MTT_LABELS), labels.astype(np.int64))
  lr = art.meta.get("learned_lr")
  if lr is not None:
    torchfile.save(os.path.join(out, MTT_LR), np.asarray(lr, np.float32))
  meta = dict(art.meta, factor=1, ipc=int(len(images)) // max(
      1, len(np.unique(labels))), formation={"name": "identity", "factor": 1},
              normalization=dict(mean=[float(m) for m in mean], std=[float(s) for s in std]),
              exported_from=dict(factor=art.factor, stored_images=int(len(art.images))))
  if soft is not None:
    torchfile.save(os.path.join(out, MTT_SOFT), soft.values)
    meta["soft_labels"] = soft.describe()
  atomic.write_json(os.path.join(out, EXPORT_META), meta)
  return out


def _write_npz(art: artifact_lib.Artifact, out: str) -> str:
  """One .npz: stored images NHWC in [0, 1], labels, soft labels, meta as JSON."""
  arrays = dict(images=art.images, labels=art.labels.astype(np.int64),
                meta=np.asarray(json.dumps(art.meta, sort_keys=True)))
  if art.soft_labels is not None:
    arrays["soft_labels"] = art.soft_labels.values
  path = out if out.lower().endswith(".npz") else out + ".npz"
  return atomic.write_bytes(path, fileio.npz_bytes(**arrays))


for _exp in (ExportFormat("pt", _write_mtt,
                          "MTT layout (images_best.pt, labels_best.pt, ...) for torch.load"),
             ExportFormat("npz", _write_npz, "plain .npz of the stored set and its meta")):
  EXPORT_FORMATS.register(_exp.name)(_exp)


def export_set(artifact_dir: str, out: str, fmt: str = "pt") -> str:
  """Writes an artifact in a PyTorch-readable layout, without PyTorch.

  Args:
    artifact_dir: a tfcondense artifact directory.
    out: the output folder (pt) or file (npz; `.npz` is appended when missing).
    fmt: "pt": MTT's layout: `images_best.pt` (the formed images a network trains on,
      normalised with the source's mean / std, float32 NCHW), `labels_best.pt` (int64),
      `lr_best.pt` (a learned lr, where the set has one), `soft_labels_best.pt` (soft
      labels per formed image) and `tfcondense_meta.json`; `torch.load` reads each
      (also with weights_only=True). "npz": one file with the stored images (NHWC, in
      [0, 1]), labels, soft labels and meta.json as a string; `np.load` reads it.

  Returns:
    The path written.
  """
  spec = EXPORT_FORMATS.get(fmt)
  return spec.write(artifact_lib.load_artifact(artifact_dir), out)
