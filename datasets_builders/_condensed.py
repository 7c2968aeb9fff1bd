"""Shared code of the `condensed_<source>` TFDS builders: configs, artifact reading, base.

Every builder serves the condensed sets of one source dataset, one BuilderConfig per
(method, images per class) cell of the benchmark grid (`make_configs`), e.g.
`condensed_fashion_mnist/idc_ipc10`. A config's data come from a tfcondense artifact
directory (images.npy, labels.npy, meta.json, optional formation.npz and
evaluation.json; see tfcondense/artifact.py), looked up in this order:

1. `artifact_dir=` given to the builder (what `tfcondense.export.to_tfds` passes);
2. the manual dir: `<manual_dir>/<config name>/` (or `<manual_dir>` itself when it holds
   a meta.json), with `tfds.download.DownloadConfig(manual_dir=...)`; the default
   manual dir is `<data_dir>/downloads/manual`. Your artifact wins over a shipped one
   of the same config;
3. the artifact shipped with the package, `<builder folder>/artifacts/<config name>/`.

A config whose artifact is found nowhere fails at once with the command that makes it.
Splits: `train` holds the formed images (what a network trains on: the stored images
decoded by the artifact's formation, `tfcondense.synthetic.formed_from_artifact`),
`stored` the stored images themselves.

Features: `image` is float32 [H, W, C] in [0, 1], unnormalised and bit for bit what the
artifact holds (what `tfds.load(..., as_supervised=True)` returns);
`tfcondense.export.load` returns `(image - mean) / std` with the source's per-channel
mean and std. `image_uint8` is the same image for display, `round(255 * clip(image, 0,
1))` as uint8 (a `tfds.features.Image`, which `tfds.show_examples` and
`tfds.as_dataframe` draw). `label` is the class. `soft_label` is float32
[num_classes]: the image's label distribution when the artifact carries soft labels
(`tfcondense.soft_labels`; logits become softmax(logits / T)), else the one-hot of
`label`; `info.metadata["recipe"]["soft_labels"]` says which, with the kind,
temperature and loss to train on them.

Metadata (`info.metadata`), one dict per topic: `dataset` (source, method, ipc, factor,
counts, class names), `recipe` (formation, seed, the method's config, budget, storage),
`normalization` (mean, std and the conversions above), `machine` (where the set was
made, from meta.json; empty for older artifacts), `evaluation` (the reported accuracy,
DD-Ranking's HLR / IOR / LRS / ARS where evaluation.json carries them, and the full
evaluation record, empty when not evaluated) and `provenance` (artifact origin,
fingerprint, tfcondense version, creation time). No local path is recorded.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from tfcondense import soft_labels as soft_lib
from tfcondense.bench import ddranking
from tfcondense.errors import (CorruptArtifactError, InvalidConfigError,
                               SourceUnavailableError)
from tfcondense.export import NORMALIZATION
from tfcondense.registry import Registry

#: Methods of the config grid, in benchmark order: selection baselines, then synthesis.
METHODS = ("random", "kcenter", "herding", "dc", "dsa", "dm", "dm_mf", "mtt", "kip",
           "idc_i", "idc")
#: Methods made by `apps.evaluate --save_artifacts` rather than `apps.condense`.
SELECTION_METHODS = ("random", "kcenter", "herding")
IPCS = (1, 10, 50)
VERSION = tfds.core.Version("1.2.0")
RELEASE_NOTES = {
    "1.0.0": "Initial release: stored and formed images of tfcondense artifacts, with "
             "method, budget, storage and reported accuracy in the metadata.",
    "1.1.0": "Adds `image_uint8` (the images as uint8 for tfds.show_examples and "
             "tfds.as_dataframe); metadata nested by topic (dataset, recipe, "
             "normalization with mean / std, machine, evaluation, provenance).",
    "1.2.0": "Adds `soft_label` (the label distribution of soft-label sets, one-hot "
             "otherwise; recipe.soft_labels describes it) and DD-Ranking's scores in "
             "evaluation.ddranking.",
}
METHOD_TITLES = {
    "random": "random real images",
    "kcenter": "k-center greedy selection of real images",
    "herding": "herding selection of real images",
    "dc": "DC (Zhao et al. 2021), gradient matching",
    "dsa": "DSA (Zhao & Bilen 2021), gradient matching with siamese augmentation",
    "dm": "DM (Zhao & Bilen 2023), distribution matching",
    "dm_mf": "DM through IDC's multi-formation",
    "mtt": "MTT (Cazenavette et al. 2022), trajectory matching",
    "kip": "KIP (Nguyen et al. 2021), kernel inducing points",
    "idc_i": "IDC-I (Kim et al. 2022), IDC without multi-formation",
    "idc": "IDC (Kim et al. 2022), gradient matching through multi-formation",
}
IMAGES, LABELS, META = "images.npy", "labels.npy", "meta.json"
WEIGHTS, EVALUATION = "formation.npz", "evaluation.json"
PREBUILT_SUBDIR = "artifacts"

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Nothing is downloaded. Put a tfcondense artifact directory (images.npy, labels.npy,
meta.json as written by `python -m apps.condense` under <workdir>/artifact, or by
`python -m apps.evaluate --save_artifacts DIR` for selection methods) at
`<manual_dir>/<config name>/`, e.g. `<manual_dir>/idc_ipc10/meta.json`, and pass
`download_config=tfds.download.DownloadConfig(manual_dir=<manual_dir>)` (default
manual dir: `<data_dir>/downloads/manual`). Or call
`tfcondense.export.to_tfds(<artifact dir>, data_dir=...)`.
"""


class ArtifactNotFoundError(SourceUnavailableError, FileNotFoundError):
  """No artifact exists for a builder config (the message gives the command making it)."""


class ArtifactMismatchError(InvalidConfigError):
  """An artifact's meta.json does not describe the config it was given for."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """What a condensed builder needs to know about its source dataset.

  Attributes:
    name: the tfcondense source name (`meta.json` "source").
    title: human name, e.g. "Fashion-MNIST".
    image_shape: (H, W, C) of a stored and of a formed image.
    class_names: class names in label order; None where the source reads them from
      its files (folder sources): the label then has `num_classes` classes named by
      the artifact's meta.json "class_names" when it has them.
    num_classes: the class count (default `len(class_names)`).
    nclasses: class counts with one config each (`<config>_nclass<n>` names); empty
      for a fixed class count (`len(class_names)`).
    idc_factor: IDC's multi-formation factor for this source.
    formation: the formation flag IDC uses on this source (None: the default uniform).
    homepage: the source dataset's page.
    registered_source: False where tfcondense has no loader for the source yet.
  """

  name: str
  title: str
  image_shape: Tuple[int, int, int]
  class_names: Optional[Tuple[str, ...]] = None
  num_classes: Optional[int] = None
  nclasses: Tuple[int, ...] = ()
  idc_factor: int = 2
  formation: Optional[str] = None
  homepage: Optional[str] = None
  registered_source: bool = True

  def __post_init__(self):
    if self.num_classes is None and self.class_names is not None:
      object.__setattr__(self, "num_classes", len(self.class_names))
    if not (self.num_classes or self.nclasses):
      raise ValueError(f"{self.name}: give class_names, num_classes or nclasses")

  @classmethod
  def from_info(cls, name: str, **fields) -> "SourceSpec":
    """The spec of source `name` with its title and image shape (and class count, unless
    `fields` name the classes) from its registered `tfcondense.data.SourceInfo`."""
    from tfcondense import data  # pylint: disable=g-import-not-at-top
    info = data.source_info(name)
    if not {"class_names", "num_classes", "nclasses"} & fields.keys():
      fields["num_classes"] = info.num_classes
    return cls(name=name, title=info.title, image_shape=info.image_shape, **fields)

  def factor(self, method: str) -> int:
    """The multi-formation factor that is part of `method` (1 without formation)."""
    if method == "idc":
      return self.idc_factor
    return 2 if method == "dm_mf" else 1


SOURCES: Registry[SourceSpec] = Registry(
    "condensed source",
    hint="Builders live in datasets_builders/condensed_<source>/; `import "
         "datasets_builders` registers them all.")


def register_source(spec: SourceSpec) -> SourceSpec:
  """Adds `spec` to SOURCES and returns the registered spec.

  The folder form of `tfds build` (`tfds build datasets_builders/condensed_<source>`)
  imports a builder file a second time under another module name: registering a spec
  equal to the registered one returns that one. Another spec under a taken name is an
  error.

  Raises:
    ValueError: a different spec is registered under `spec.name`.
  """
  if spec.name in SOURCES and SOURCES.get(spec.name) == spec:
    return SOURCES.get(spec.name)
  SOURCES.register(spec.name)(spec)
  return spec


def builder_name(source: str) -> str:
  return f"condensed_{source}"


def config_name(method: str, ipc: int, nclass: Optional[int] = None) -> str:
  """`<method>_ipc<ipc>`, with `_nclass<n>` for sources with several class counts."""
  name = f"{method}_ipc{int(ipc)}"
  return name if nclass is None else f"{name}_nclass{int(nclass)}"


@dataclasses.dataclass(eq=False, kw_only=True)
class CondensedConfig(tfds.core.BuilderConfig):
  """One cell of the grid: a method at `ipc` stored images per class.

  Attributes:
    source: the tfcondense source name.
    method: the condensation method (meta.json "method").
    ipc: stored images per class.
    factor: the method's multi-formation factor (1: formed == stored).
    num_classes: number of classes of the source (or of the subset).
  """

  source: str = ""
  method: str = ""
  ipc: int = 1
  factor: int = 1
  num_classes: int = 0


def make_configs(spec: SourceSpec, methods: Sequence[str] = METHODS,
                 ipcs: Sequence[int] = IPCS) -> list[CondensedConfig]:
  """The config grid methods x ipcs (x nclasses) of a source, as `cifar10_corrupted` does.

  Args:
    spec: the source.
    methods: method names (each with its factor from `spec.factor`).
    ipcs: stored images per class.

  Returns:
    Configs named `<method>_ipc<ipc>` (`..._nclass<n>` when `spec.nclasses`).
  """
  configs = []
  for method in methods:
    factor = spec.factor(method)
    for ipc in ipcs:
      for nclass in spec.nclasses or (None,):
        num_classes = nclass or spec.num_classes
        formed = factor * factor if factor > 1 else 1
        subset = f" ({num_classes} classes)" if nclass else ""
        form = f" (factor {factor})" if factor > 1 else ""
        images = "image" if ipc == 1 else "images"
        configs.append(CondensedConfig(
            name=config_name(method, ipc, nclass),
            version=VERSION,
            release_notes=RELEASE_NOTES,
            description=(
                f"{METHOD_TITLES.get(method, method)}{form}: {ipc} stored {images} per "
                f"class of {spec.title}{subset}"
                + (f", up to {ipc * formed} formed training images per class"
                   if factor > 1 else "")),
            source=spec.name, method=method, ipc=int(ipc), factor=factor,
            num_classes=int(num_classes)))
  return configs


def make_command(spec: SourceSpec, method: str, ipc: int, nclass: Optional[int] = None,
                 workdir: Optional[str] = None) -> Tuple[str, str]:
  """(shell command that makes the artifact of a config, the artifact dir it writes)."""
  data = ""
  if spec.name in ("tiny_imagenet", "imagenet_subset"):
    data = " --data_dir <the source's root directory>"
  if method in SELECTION_METHODS:
    root = workdir or "runs/artifacts"
    cmd = (f"python -m apps.evaluate --source {spec.name}{data} --method {method} "
           f"--ipc {ipc} --save_artifacts {root}")
    return cmd, posixpath.join(root, f"{spec.name}_{method}_ipc{ipc}")
  workdir = workdir or f"runs/{spec.name}_{config_name(method, ipc, nclass)}"
  factor = spec.factor(method)
  extra = f" --factor {factor}" if factor > 1 else ""
  if spec.formation and factor > 1:
    extra += f" --formation {spec.formation}"
  cmd = (f"python -m apps.condense --source {spec.name}{data} --method {method} "
         f"--ipc {ipc}{extra} --workdir {workdir}")
  return cmd, posixpath.join(workdir, "artifact")


def missing_artifact_message(spec: SourceSpec, config: CondensedConfig,
                             looked_in: Sequence[str]) -> str:
  """The ArtifactNotFoundError message: where we looked, the command, where to put it."""
  nclass = config.num_classes if spec.nclasses else None
  cmd, out = make_command(spec, config.method, config.ipc, nclass)
  notes = []
  if nclass:
    notes.append(f"with the source option nclass={nclass}")
  if not spec.registered_source:
    notes.append(f"once tfcondense has a {spec.name} source")
  note = f"(that is, {'; '.join(notes)}) " if notes else ""
  return (
      f"{builder_name(spec.name)}/{config.name}: no artifact found (looked in "
      f"{'; '.join(looked_in)}). Make it with\n  {cmd}\n{note}then either copy {out} to "
      f"<manual_dir>/{config.name}/ and pass download_and_prepare_kwargs="
      "{'download_config': tfds.download.DownloadConfig(manual_dir=<manual_dir>)} to "
      "tfds.load or manual_dir=<manual_dir> to tfcondense.load (default manual dir: "
      "<data_dir>/downloads/manual), or run "
      f"tfcondense.export.to_tfds({out!r}, data_dir=...).")


def manual_artifact(manual_dir: str, config: str) -> Optional[str]:
  """The artifact directory a manual dir holds for `config`, or None.

  Args:
    manual_dir: the manual dir.
    config: the config name, e.g. `idc_ipc10`.

  Returns:
    `<manual_dir>/<config>` if it holds a meta.json, else `manual_dir` if it holds one
    itself, else None.
  """
  for path in (tf.io.gfile.join(manual_dir, config), manual_dir):
    if tf.io.gfile.exists(tf.io.gfile.join(path, META)):
      return path
  return None


def artifact_fingerprint(path: str) -> str:
  """SHA-256 of the files of an artifact directory that a prepared config is made of.

  A prepared config records it (metadata "fingerprint"), so that a changed or another
  artifact can be told from the one it was prepared from.
  """
  digest = hashlib.sha256()
  for name in (IMAGES, LABELS, META, WEIGHTS, EVALUATION):
    file = tf.io.gfile.join(path, name)
    if not tf.io.gfile.exists(file):
      continue
    digest.update(name.encode() + b"\0")
    with tf.io.gfile.GFile(file, "rb") as f:
      while chunk := f.read(1 << 22):
        digest.update(chunk)
  return digest.hexdigest()


def read_artifact(path: str):
  """Reads an artifact directory through tf.io.gfile (no pickle).

  Args:
    path: the artifact directory.

  Returns:
    (tfcondense.artifact.Artifact, evaluation dict or None).

  Raises:
    CorruptArtifactError: a file is missing, unreadable or inconsistent.
  """
  from tfcondense.artifact import Artifact  # pylint: disable=g-import-not-at-top
  join = lambda name: tf.io.gfile.join(path, name)  # noqa: E731
  missing = [n for n in (IMAGES, LABELS, META) if not tf.io.gfile.exists(join(n))]
  if missing:
    raise CorruptArtifactError(
        f"{path} is not a condensed-set artifact: missing {', '.join(missing)} (expected "
        "images.npy, labels.npy, meta.json as written by tfcondense)")
  try:
    images = _load_npy(join(IMAGES))
    labels = _load_npy(join(LABELS))
    meta = _load_json(join(META))
    weights = {}
    if tf.io.gfile.exists(join(WEIGHTS)):
      with tf.io.gfile.GFile(join(WEIGHTS), "rb") as f:
        with np.load(io.BytesIO(f.read()), allow_pickle=False) as z:
          weights = {k: z[k] for k in z.files}
    evaluation = _load_json(join(EVALUATION)) if tf.io.gfile.exists(join(EVALUATION)) \
        else None
  except (ValueError, OSError, EOFError, tf.errors.OpError) as e:
    raise CorruptArtifactError(f"{path}: cannot read artifact ({e})") from e
  if not isinstance(meta, dict):
    raise CorruptArtifactError(f"{join(META)} is not a JSON object")
  if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
    raise CorruptArtifactError(
        f"{path}: images {images.shape} and labels {labels.shape} are not [N, H, W, C] "
        "and [N]")
  if not np.all(np.isfinite(images)):
    raise CorruptArtifactError(f"{path}: images contain NaN or infinite values")
  from tfcondense.artifact import read_soft_labels  # pylint: disable=g-import-not-at-top
  soft = read_soft_labels(path, meta, len(images), tf.io.gfile.exists, _load_npy)
  art = Artifact(images.astype(np.float32), labels.astype(np.int32), meta, weights, soft)
  return art, evaluation


def _load_npy(path: str) -> np.ndarray:
  with tf.io.gfile.GFile(path, "rb") as f:
    return np.load(f, allow_pickle=False)


def _load_json(path: str) -> Any:
  with tf.io.gfile.GFile(path, "r") as f:
    return json.loads(f.read())


def check_artifact(art, spec: SourceSpec, config: CondensedConfig, where: str) -> None:
  """Raises ArtifactMismatchError unless the artifact is the one `config` describes.

  Checked: source, method, ipc, factor, the image shape, the class count and that every
  class has exactly ipc stored images.
  """
  meta = art.meta
  prefix = f"{where} cannot serve {builder_name(spec.name)}/{config.name}"
  wanted = dict(source=config.source, method=config.method, ipc=config.ipc,
                factor=config.factor)
  got = dict(source=meta.get("source"), method=str(meta.get("method", "")).lower(),
             ipc=_as_int(meta.get("ipc")), factor=_as_int(meta.get("factor", 1)))
  wrong = [f"{k} {got[k]!r} (config: {v!r})" for k, v in wanted.items() if got[k] != v]
  if wrong:
    hint = ""
    method, ipc, factor = got["method"], got["ipc"], got["factor"]
    if got["source"] == config.source and method in METHODS:
      if factor != spec.factor(method):
        hint = (f"; {method} configs have factor {spec.factor(method)}"
                + (" (DM with multi-formation is dm_mf)" if method == "dm" else ""))
      elif ipc in IPCS:
        right = config_name(method, ipc, config.num_classes if spec.nclasses else None)
        hint = f"; its config is {builder_name(spec.name)}/{right}"
    raise ArtifactMismatchError(f"{prefix}: meta.json has {', '.join(wrong)}{hint}.")
  shape = tuple(int(d) for d in art.images.shape[1:])
  if shape != tuple(spec.image_shape):
    raise ArtifactMismatchError(
        f"{prefix}: images are {shape}, the config expects {tuple(spec.image_shape)} "
        f"({spec.title} at its reference size)")
  names = meta.get("class_names")
  num_classes = len(names) if names else int(art.labels.max()) + 1 if len(art.labels) else 0
  if num_classes != config.num_classes:
    raise ArtifactMismatchError(
        f"{prefix}: the artifact has {num_classes} classes, the config "
        f"{config.num_classes}")
  if len(art.labels) and (art.labels.min() < 0 or art.labels.max() >= config.num_classes):
    raise ArtifactMismatchError(
        f"{prefix}: labels must lie in 0..{config.num_classes - 1}, got "
        f"{int(art.labels.min())}..{int(art.labels.max())}")
  counts = np.bincount(art.labels, minlength=config.num_classes)
  if np.any(counts != config.ipc):
    raise ArtifactMismatchError(
        f"{prefix}: expected {config.ipc} stored image(s) for each of the "
        f"{config.num_classes} classes, got per-class counts {counts.tolist()}")


def _as_int(value) -> Optional[int]:
  try:
    return int(value)
  except (TypeError, ValueError):
    return None


def to_uint8(images: np.ndarray) -> np.ndarray:
  """The `image_uint8` feature of `images` in [0, 1]: round(255 * clip(x, 0, 1))."""
  return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def normalization_metadata(source: str, meta: Optional[Dict[str, Any]] = None
                           ) -> Dict[str, Any]:
  """The `normalization` metadata: per-channel mean / std and how the features relate.

  Args:
    source: the tfcondense source name.
    meta: the artifact's meta.json; its "normalization" {"mean", "std"}, where present,
      wins over the source's constants (`tfcondense.export.NORMALIZATION`).

  Returns:
    {"mean", "std", "image", "image_uint8", "tfcondense_load"}; mean and std are None
    where neither gives them (speech_commands: they depend on the corpus).
  """
  mean, std = NORMALIZATION.get(source, (None, None))
  given = (meta or {}).get("normalization")
  if isinstance(given, dict):
    mean, std = given.get("mean", mean), given.get("std", std)
  return dict(
      mean=None if mean is None else [float(m) for m in mean],
      std=None if std is None else [float(s) for s in std],
      image="float32 in [0, 1], unnormalised (what tfds.load returns)",
      image_uint8="uint8 round(255 * clip(image, 0, 1)), for display",
      tfcondense_load="(image - mean) / std per channel (tfcondense.load)")


def config_metadata(config: CondensedConfig) -> Dict[str, Any]:
  """The metadata of a config before it is prepared (what its name says)."""
  return dict(
      dataset=dict(source=config.source, method=config.method, ipc=config.ipc,
                   factor=config.factor, num_classes=config.num_classes),
      normalization=normalization_metadata(config.source))


def _accuracy(evaluation: Any) -> Dict[str, Any]:
  if not isinstance(evaluation, dict) or "acc_mean" not in evaluation:
    return {}
  keys = ("acc_mean", "acc_std", "last_mean", "last_std", "model", "protocol",
          "augmentation")
  return {k: evaluation[k] for k in keys if k in evaluation}


def _machine(meta: Dict[str, Any]) -> Dict[str, Any]:
  machine = meta.get("machine")
  if machine is None:
    return {}
  return dict(machine) if isinstance(machine, dict) else {"description": str(machine)}


def summary_metadata(art, evaluation: Optional[dict], origin: str,
                     num_formed: int, fingerprint: Optional[str] = None) -> Dict[str, Any]:
  """The JSON metadata a prepared config records, one dict per topic (no local paths).

  Args:
    art: the artifact (its meta.json gives source, recipe, machine, ...).
    evaluation: evaluation.json, or None; meta.json's "evaluation" wins.
    origin: where the artifact was found ("artifact_dir", "manual_dir", "prebuilt").
    num_formed: the number of formed (train) images.
    fingerprint: `artifact_fingerprint` of the artifact directory.

  Returns:
    {"dataset", "recipe", "normalization", "machine", "evaluation", "provenance"}; see
    the module docstring. Every value is a dict (TFDS's visualisers iterate them).
  """
  meta = art.meta
  evaluation = meta.get("evaluation") or evaluation
  names = meta.get("class_names")
  return dict(
      dataset=dict(source=meta.get("source"), method=meta.get("method"),
                   ipc=int(meta["ipc"]), factor=int(meta.get("factor", 1)),
                   num_classes=len(names) if names else int(art.labels.max()) + 1,
                   class_names=names, num_stored=int(len(art.images)),
                   num_formed=int(num_formed)),
      recipe=dict(formation=meta.get("formation"), seed=meta.get("seed"),
                  config=meta.get("config"), budget=meta.get("budget"),
                  storage=meta.get("storage"), soft_labels=meta.get("soft_labels")),
      normalization=normalization_metadata(str(meta.get("source")), meta),
      machine=_machine(meta),
      evaluation=dict(accuracy=_accuracy(evaluation),
                      ddranking=ddranking.read(evaluation or {}),
                      report=evaluation if isinstance(evaluation, dict) else {}),
      provenance=dict(artifact=origin, fingerprint=fingerprint,
                      tfcondense_version=meta.get("version"), created=meta.get("created")))


class CondensedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the `condensed_<source>` builders; a subclass sets SOURCE and BUILDER_CONFIGS.

  Args:
    artifact_dir: read this artifact directory instead of searching the shipped
      artifacts and the manual dir (what `tfcondense.export.to_tfds` passes; through
      `tfds.load`, give `builder_kwargs={"artifact_dir": ...}`).
    **kwargs: `tfds.core.DatasetBuilder` arguments (data_dir, config, version).
  """

  SOURCE: SourceSpec
  VERSION = VERSION
  RELEASE_NOTES = RELEASE_NOTES
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  #: Whether to look for artifacts shipped in `<builder folder>/artifacts/` (tests
  #: that must read dummy_data turn it off).
  PREBUILT_ARTIFACTS = True

  def __init__(self, *, artifact_dir: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self._artifact_dir = None if artifact_dir is None else str(artifact_dir)
    self._original_state["artifact_dir"] = self._artifact_dir  # for pickling

  def _info(self) -> tfds.core.DatasetInfo:
    config: CondensedConfig = self.builder_config
    spec = self.SOURCE
    if spec.class_names is not None:
      label = tfds.features.ClassLabel(names=list(spec.class_names))
    else:  # names come from the artifact in _split_generators
      label = tfds.features.ClassLabel(num_classes=config.num_classes)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=tuple(spec.image_shape), dtype=np.float32),
            "image_uint8": tfds.features.Image(shape=tuple(spec.image_shape),
                                               dtype=np.uint8),
            "label": label,
            "soft_label": tfds.features.Tensor(shape=(config.num_classes,),
                                               dtype=np.float32),
        }),
        supervised_keys=("image", "label"),
        # Keep the artifact's (class-major) order: `stored` is images.npy row for row.
        disable_shuffling=True,
        homepage=spec.homepage,
        metadata=tfds.core.MetadataDict(**config_metadata(config)),
    )

  @classmethod
  def prebuilt_dir(cls) -> str:
    """Where artifacts shipped with the package live: `<builder folder>/artifacts`."""
    return str(cls.code_path.parent / PREBUILT_SUBDIR)

  def _locate_artifact(self, dl_manager) -> Tuple[str, str]:
    """(artifact directory, origin) for this config; see the module docstring."""
    config = self.builder_config
    if self._artifact_dir is not None:
      if not tf.io.gfile.exists(tf.io.gfile.join(self._artifact_dir, META)):
        raise ArtifactNotFoundError(
            f"artifact_dir {self._artifact_dir} holds no meta.json; pass a tfcondense "
            "artifact directory (images.npy, labels.npy, meta.json)")
      return self._artifact_dir, "artifact_dir"
    looked_in = []
    try:
      manual = str(dl_manager.manual_dir)
    except (AssertionError, ValueError):  # not given, missing or empty
      manual = None
      looked_in.append(
          f"the manual dir ({getattr(dl_manager, '_manual_dir', None) or 'not set'}: "
          "missing or empty)")
    if manual is not None:  # the user's artifact wins over a shipped one
      path = manual_artifact(manual, config.name)
      if path is not None:
        return path, "manual_dir"
      looked_in.append(f"the manual dir ({manual}: no {config.name}/meta.json)")
    if self.PREBUILT_ARTIFACTS:
      path = tf.io.gfile.join(self.prebuilt_dir(), config.name)
      if tf.io.gfile.exists(tf.io.gfile.join(path, META)):
        return path, "prebuilt"
      looked_in.append(f"the shipped artifacts ({path}: none)")
    raise ArtifactNotFoundError(missing_artifact_message(self.SOURCE, config, looked_in))

  def _split_generators(self, dl_manager):
    config = self.builder_config
    path, origin = self._locate_artifact(dl_manager)
    art, evaluation = read_artifact(path)
    check_artifact(art, self.SOURCE, config, where=f"artifact {path}")
    label = self.info.features["label"]
    names = art.meta.get("class_names")
    if self.SOURCE.class_names is None and names:
      label.names = [str(n) for n in names]
    from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
    formed_x, formed_y = synthetic.formed_from_artifact(art, art.weights)
    self.info.metadata.update(summary_metadata(art, evaluation, origin, len(formed_x),
                                               artifact_fingerprint(path)))
    formed_soft, stored_soft = soft_distributions(art, len(formed_x), config.num_classes,
                                                  np.asarray(formed_y))
    return {
        "train": self._generate_examples(np.asarray(formed_x, np.float32),
                                         np.asarray(formed_y), formed_soft),
        "stored": self._generate_examples(art.images, art.labels, stored_soft),
    }

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray, soft: np.ndarray):
    for i, (x, x8, y, p) in enumerate(zip(images, to_uint8(images), labels, soft)):
      yield i, {"image": x, "image_uint8": x8, "label": int(y), "soft_label": p}


def soft_distributions(art, num_formed: int, num_classes: int, formed_labels: np.ndarray
                       ) -> Tuple[np.ndarray, np.ndarray]:
  """The `soft_label` feature of the formed (train) and stored images.

  The artifact's soft labels as distributions where it has them (rows per stored image
  repeat for the images each forms; rows per formed image leave the stored split
  one-hot), else the one-hot of the hard labels.
  """
  eye = np.eye(num_classes, dtype=np.float32)
  formed, stored = eye[formed_labels], eye[art.labels]
  soft = art.soft_labels
  if soft is not None:
    if soft.num_classes != num_classes:
      raise CorruptArtifactError(f"soft labels of {soft.num_classes} classes for a config "
                                 f"of {num_classes}")
    formed = soft_lib.for_training(soft, len(art.images), num_formed).probabilities()
    if soft.per == "stored":
      stored = soft.probabilities()
  return formed.astype(np.float32), stored.astype(np.float32)
