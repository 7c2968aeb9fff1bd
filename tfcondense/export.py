"""Condensed artifacts as TFDS datasets: `to_tfds(artifact_dir)` and `load(name)`.

The builders live in `datasets_builders/condensed_<source>/` (one per source, configs
`<method>_ipc<1|10|50>`, `..._nclass<10|100>` for imagenet_subset); importing
`datasets_builders` registers them with tfds. Three ways to get a config's data:

    # 1. an artifact shipped with the package (Fashion-MNIST), or 2. your own artifact
    #    copied to <manual_dir>/<config name>/ (images.npy, labels.npy, meta.json),
    #    which wins over a shipped one:
    ds = tfcondense.load("condensed_fashion_mnist/idc_ipc10", manual_dir="my_artifacts")
    model.fit(ds.shuffle(400).batch(64), epochs=10)

    # 3. an artifact directory exported into a TFDS data_dir (config picked from meta.json):
    builder = tfcondense.export.to_tfds("runs/idc/artifact", data_dir="~/tfds")
    ds = builder.as_dataset(split="train", as_supervised=True)
    # later, anywhere: import datasets_builders; tfds.load(builder.info.full_name, ...)

Splits: `train` holds the formed images (what IDC trains on), `stored` the stored ones;
images are float32 [H, W, C] in [0, 1], which `load` normalises with the source's mean
and std.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from tfcondense.data import fashion_mnist as _fashion_mnist
from tfcondense.data import folders as _folders
from tfcondense.data import tfds_sources as _tfds_sources
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

Stats = Tuple[Tuple[float, ...], Tuple[float, ...]]

#: source -> (per-channel mean, std) of its normalisation, read from the source modules'
#: constants so that the data need not be loaded. speech_commands has no fixed
#: statistics (they depend on the corpus, recorded or synthesised): pass
#: normalize=(source.mean, source.std) of the loaded `speech_commands` source, or False.
NORMALIZATION: Dict[str, Stats] = {
    "fashion_mnist": (_fashion_mnist.MEAN, _fashion_mnist.STD),
    "cifar10": tuple(_tfds_sources.SPECS["cifar10"][:2]),
    "cifar100": tuple(_tfds_sources.SPECS["cifar100"][:2]),
    "tiny_imagenet": (_folders.IMAGENET_MEAN, _folders.IMAGENET_STD),
    "imagenet_subset": (_folders.IMAGENET_MEAN, _folders.IMAGENET_STD),
}
PREFIX = "condensed_"


def _builders():
  """The `datasets_builders._condensed` module, after registering every builder."""
  import datasets_builders  # pylint: disable=g-import-not-at-top
  return datasets_builders._condensed  # pylint: disable=protected-access


def _read_meta(artifact_dir: str) -> Dict[str, Any]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.io.gfile.join(str(artifact_dir), "meta.json")
  if not tf.io.gfile.exists(path):
    raise CorruptArtifactError(
        f"{artifact_dir} is not a condensed-set artifact: no meta.json (expected "
        "images.npy, labels.npy, meta.json as written by tfcondense)")
  try:
    with tf.io.gfile.GFile(path, "r") as f:
      meta = json.loads(f.read())
  except (ValueError, tf.errors.OpError) as e:
    raise CorruptArtifactError(f"{path}: cannot read ({e})") from e
  missing = [k for k in ("source", "method", "ipc") if k not in meta]
  if missing:
    raise CorruptArtifactError(f"{path} lacks {', '.join(missing)}")
  return meta


def _num_classes(artifact_dir: str, meta: Dict[str, Any]) -> int:
  if meta.get("class_names"):
    return len(meta["class_names"])
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with tf.io.gfile.GFile(tf.io.gfile.join(str(artifact_dir), "labels.npy"), "rb") as f:
    labels = np.load(f, allow_pickle=False)
  return int(labels.max()) + 1 if len(labels) else 0


def dataset_name(artifact_dir: str) -> str:
  """The TFDS name serving an artifact, e.g. `condensed_fashion_mnist/idc_ipc10`.

  Args:
    artifact_dir: a tfcondense artifact directory (its meta.json is read).

  Raises:
    UnknownNameError: no condensed builder for the artifact's source (lists them).
    InvalidConfigError: its method or ipc is not in the builders' grid.
    CorruptArtifactError: no readable meta.json.
  """
  condensed = _builders()
  meta = _read_meta(artifact_dir)
  spec = condensed.SOURCES.get(str(meta["source"]))
  method = str(meta["method"]).lower()
  ipc = int(meta["ipc"])
  if method not in condensed.METHODS or ipc not in condensed.IPCS:
    raise InvalidConfigError(
        f"{artifact_dir}: {method} at ipc {ipc} has no condensed_{spec.name} config; the "
        f"grid is methods {', '.join(condensed.METHODS)} x ipc "
        f"{', '.join(map(str, condensed.IPCS))}")
  nclass = _num_classes(artifact_dir, meta) if spec.nclasses else None
  if nclass is not None and nclass not in spec.nclasses:
    raise InvalidConfigError(
        f"{artifact_dir}: {nclass} classes; condensed_{spec.name} has configs for "
        f"{', '.join(map(str, spec.nclasses))} classes")
  return f"{PREFIX}{spec.name}/{condensed.config_name(method, ipc, nclass)}"


def to_tfds(artifact_dir: str, data_dir: Optional[str] = None, name: Optional[str] = None):
  """Prepares the TFDS config matching an artifact directory from that directory.

  The config is `<method>_ipc<ipc>` of `condensed_<source>` (from meta.json); the
  builder reads this artifact instead of a shipped one or the manual dir, and a version
  of that config already prepared under `data_dir` is replaced. Afterwards
  `tfds.load(name, data_dir=data_dir)` reads it offline (after `import datasets_builders`).

  Args:
    artifact_dir: a tfcondense artifact directory (images.npy, labels.npy, meta.json).
    data_dir: the TFDS data directory (None: $TFDS_DATA_DIR or ~/tensorflow_datasets).
    name: the config to build, `condensed_<source>/<config>` or only `<config>`
      (default: `dataset_name(artifact_dir)`); it must match the artifact.

  Returns:
    The prepared `tfds.core.DatasetBuilder` (`.info` holds the splits and the metadata:
    method, ipc, factor, formation, budget, storage, accuracy when evaluated).

  Raises:
    ArtifactMismatchError: the artifact's source, method, ipc, factor, shape or class
      counts do not fit the config.
    CorruptArtifactError: the artifact is incomplete or unreadable.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  artifact_dir = str(artifact_dir)
  default = dataset_name(artifact_dir)
  if name is None:
    name = default
  elif "/" not in name:
    name = f"{default.split('/')[0]}/{name}"
  builder_name, config = name.split("/", 1)
  cls = tfds.builder_cls(builder_name)

  def make():
    return cls(config=config, data_dir=data_dir, artifact_dir=artifact_dir)

  builder = make()
  if tf.io.gfile.exists(str(builder.data_path)):
    tf.io.gfile.rmtree(str(builder.data_path))  # restored info (label names) goes too
    builder = make()
  builder.download_and_prepare()
  return builder


def normalization(source: str) -> Stats:
  """(mean, std) per channel that `load` uses for `source`.

  Raises:
    InvalidConfigError: the source has no normalisation constants.
  """
  if source not in NORMALIZATION:
    raise InvalidConfigError(
        f"no normalisation constants for {source!r} (known: {', '.join(NORMALIZATION)}); "
        "pass normalize=False, or normalize=(mean, std) with one value per channel")
  return NORMALIZATION[source]


def _source_of(name: str) -> str:
  builder_name = str(name).split("/", 1)[0].split(":", 1)[0]
  if not builder_name.startswith(PREFIX):
    raise InvalidConfigError(
        f"{name!r} is not a condensed dataset; expected condensed_<source>/<config>, e.g. "
        "condensed_fashion_mnist/idc_ipc10")
  return builder_name[len(PREFIX):]


def _drop_stale(name: str, data_dir: Optional[str], manual_dir: str,
                builder_kwargs: Optional[Dict[str, Any]]) -> None:
  """Deletes the version of `name` prepared under `data_dir` unless it was made from the
  artifact `manual_dir` holds for it, so that `tfds.load` prepares it from that one
  (tfds reuses whatever was prepared: a shipped artifact, or an older copy of yours)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  condensed = _builders()
  builder_kwargs = dict(builder_kwargs or {})
  if builder_kwargs.get("artifact_dir") is not None:  # the builder reads that one
    return
  builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs)
  path = condensed.manual_artifact(manual_dir, builder.builder_config.name)
  if path is None or not tf.io.gfile.exists(str(builder.data_path)):
    return
  if builder.info.metadata.get("fingerprint") != condensed.artifact_fingerprint(path):
    tf.io.gfile.rmtree(str(builder.data_path))


def load(name: str, split: Union[str, Sequence[str], None] = "train",
         data_dir: Optional[str] = None,
         normalize: Union[bool, Stats] = True, *, manual_dir: Optional[str] = None,
         **kwargs):
  """`tfds.load(name, as_supervised=True, ...)` of a condensed dataset, normalised.

  Args:
    name: `condensed_<source>/<config>`, e.g. `condensed_fashion_mnist/idc_ipc10`.
    split: `train` (formed images), `stored`, a list of them, or any tfds split spec.
    data_dir: the TFDS data directory (prepared there on first use, offline).
    normalize: True applies (x - mean) / std with the source's constants
      (`NORMALIZATION`), False keeps [0, 1], or a (mean, std) pair of per-channel values.
    manual_dir: where your artifacts are (`<manual_dir>/<config>/meta.json`, or a
      meta.json in `manual_dir` itself); shortcut for `download_and_prepare_kwargs=
      {"download_config": tfds.download.DownloadConfig(manual_dir=...)}`. Your artifact
      wins over a shipped one of the same config, and a version of the config prepared
      under `data_dir` from another artifact (or an older copy of yours) is prepared
      again from yours.
    **kwargs: passed to `tfds.load` (batch_size, shuffle_files, with_info, ...).

  Returns:
    What `tfds.load` returns: (image, label) datasets ready for `model.fit`
    (with_info=True: (datasets, info)).

  Raises:
    InvalidConfigError: not a condensed dataset, no normalisation for its source, or
      `manual_dir` is not an existing directory.
    ArtifactNotFoundError: the config's artifact is missing (the message names the
      command that makes it).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = _source_of(name)
  if normalize is True:
    mean, std = normalization(source)
  elif normalize:
    mean, std = normalize
  _builders()
  if manual_dir is not None:
    manual_dir = str(manual_dir)
    if not tf.io.gfile.isdir(manual_dir):
      raise InvalidConfigError(
          f"manual_dir {manual_dir} does not exist or is not a directory; put your "
          "artifact at <manual_dir>/<config name>/ (images.npy, labels.npy, meta.json) or "
          "leave manual_dir out")
    prepare = dict(kwargs.pop("download_and_prepare_kwargs", None) or {})
    prepare["download_config"] = tfds.download.DownloadConfig(manual_dir=manual_dir)
    kwargs["download_and_prepare_kwargs"] = prepare
    if kwargs.get("download", True):  # download=False must not delete what it would read
      _drop_stale(name, data_dir, manual_dir, kwargs.get("builder_kwargs"))
  kwargs.setdefault("as_supervised", True)
  out = tfds.load(name, split=split, data_dir=data_dir, **kwargs)
  if not normalize:
    return out
  mean = tf.constant(mean, tf.float32)
  std = tf.constant(std, tf.float32)

  def norm(ds):
    if not isinstance(ds, tf.data.Dataset):  # batch_size=-1: the tensors themselves
      if kwargs["as_supervised"]:
        return ((ds[0] - mean) / std, ds[1])
      return dict(ds, image=(ds["image"] - mean) / std)
    if kwargs["as_supervised"]:
      return ds.map(lambda x, y: ((x - mean) / std, y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda ex: dict(ex, image=(ex["image"] - mean) / std),
                  num_parallel_calls=tf.data.AUTOTUNE)

  def apply(result):
    if isinstance(result, list):  # a list of splits
      return [norm(r) for r in result]
    if isinstance(result, dict) and result and all(
        isinstance(v, tf.data.Dataset) for v in result.values()):  # split=None
      return {k: norm(v) for k, v in result.items()}
    return norm(result)

  if kwargs.get("with_info"):
    datasets, info = out
    return apply(datasets), info
  return apply(out)
