"""Condensed artifacts as TFDS datasets: `to_tfds(artifact_dir)`, `load(name)`, `load_test`.

The builders live in `datasets_builders/condensed_<source>/` (one per source, configs
`<method>_ipc<1|10|50>`, `..._nclass<10|100>` for imagenet_subset); importing
`datasets_builders` registers them with tfds. Three ways to get a config's data:

    # 1. an artifact shipped with the package (Fashion-MNIST), or 2. your own artifact
    #    copied to <manual_dir>/<config name>/ (images.npy, labels.npy, meta.json),
    #    which wins over a shipped one:
    ds = tfcondense.load("condensed_fashion_mnist/idc_ipc10", manual_dir="my_artifacts")
    model.fit(ds.shuffle(400).batch(64), epochs=10)

    # 3. an artifact directory exported into a TFDS data_dir (config picked from meta.json):
    builder = tfcondense.export.to_tfds("runs/idc/artifact", data_dir="tfds_data")
    ds = builder.as_dataset(split="train", as_supervised=True)
    # later, anywhere: import datasets_builders, then
    ds = tfds.load(tfcondense.export.dataset_name("runs/idc/artifact"), data_dir="tfds_data")
    # or, without the builders: tfds.builder_from_directory(builder.data_dir).as_dataset(...)

    # the real test split of the source, normalised the same way, for model.evaluate:
    train, test = tfcondense.load("condensed_fashion_mnist/idc_ipc10", split=["train", "test"])

Splits: `train` holds the formed images (what IDC trains on), `stored` the stored ones;
images are float32 [H, W, C] in [0, 1], which `load` normalises with the source's mean
and std (`tfds.load` of the same name gives them unnormalised; the mean and std are in
`info.metadata["normalization"]`). `test` is not a TFDS split: `load` and `load_test`
read it from the source (`tfcondense.load_source`).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from tfcondense.data import INFO as _SOURCE_INFO
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

Stats = Tuple[Tuple[float, ...], Tuple[float, ...]]

#: source -> (per-channel mean, std) of its normalisation, from the sources' registered
#: `SourceInfo` so that the data need not be loaded. Sources whose statistics depend on
#: the data (speech_commands: the recorded or synthesised corpus; digits: its size) have
#: none: pass normalize=(source.mean, source.std) of the loaded source, or False.
NORMALIZATION: Dict[str, Stats] = {
    name: (_SOURCE_INFO.get(name).mean, _SOURCE_INFO.get(name).std) for name in _SOURCE_INFO
    if _SOURCE_INFO.get(name).mean is not None}
PREFIX = "condensed_"
#: The split `load` reads from the source dataset rather than from TFDS.
TEST = "test"


def _expand(path: Optional[str]) -> Optional[str]:
  """`path` with a leading `~` expanded (tfds takes `~/x` for a folder named `~`)."""
  return None if path is None else os.path.expanduser(str(path))


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
    data_dir: the TFDS data directory (None: $TFDS_DATA_DIR or ~/tensorflow_datasets;
      a leading `~` is expanded).
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
  artifact_dir, data_dir = _expand(artifact_dir), _expand(data_dir)
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
  recorded = builder.info.metadata.get("provenance", {}).get("fingerprint")
  if recorded != condensed.artifact_fingerprint(path):
    tf.io.gfile.rmtree(str(builder.data_path))


def _stats(source: str, normalize: Union[bool, Stats]) -> Optional[Stats]:
  """The (mean, std) that `normalize` asks for on `source`, or None for [0, 1]."""
  if normalize is True:
    return normalization(source)
  return tuple(normalize) if normalize else None


def _normalized(result, stats: Stats, as_supervised: bool):
  """`result` of `tfds.load` (a dataset, a list or dict of them, or the tensors of
  batch_size=-1) with (image - mean) / std applied to every image."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mean = tf.constant(stats[0], tf.float32)
  std = tf.constant(stats[1], tf.float32)
  if as_supervised:
    fn = lambda x, y: ((x - mean) / std, y)  # noqa: E731
  else:
    fn = lambda ex: dict(ex, image=(ex["image"] - mean) / std)  # noqa: E731

  def one(ds):
    if isinstance(ds, tf.data.Dataset):
      return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
    return fn(*ds) if as_supervised else fn(ds)

  if isinstance(result, list):  # a list of splits
    return [one(r) for r in result]
  if isinstance(result, dict) and result and all(
      isinstance(v, tf.data.Dataset) for v in result.values()):  # split=None
    return {k: one(v) for k, v in result.items()}
  return one(result)


def _asks_for_test(split) -> bool:
  """Whether `split` is `test` or a list holding it (the source's test split).

  Raises:
    InvalidConfigError: `test` inside a split expression (slices, sums).
  """
  if isinstance(split, str):
    splits = [split]
  elif isinstance(split, (list, tuple)):
    splits = list(split)
  else:  # None (every TFDS split) or a tfds.core.ReadInstruction
    splits = []
  for s in splits:
    if isinstance(s, str) and s != TEST and re.search(rf"\b{TEST}\b", s):
      raise InvalidConfigError(
          f"split {s!r}: the test split is the source dataset's, not a TFDS split, and "
          f"takes no slices or sums; pass split='{TEST}' (or a list holding it) and cut "
          "the dataset with ds.take(n) / ds.skip(n)")
  return TEST in splits


def _test_source(name: str) -> Tuple[str, Dict[str, Any]]:
  """(source name, `load_source` options) behind a source or condensed dataset name."""
  name = str(name)
  if not name.startswith(PREFIX):
    return name, {}
  nclass = re.search(r"_nclass(\d+)", name.split("/", 1)[1] if "/" in name else "")
  return _source_of(name), ({"nclass": int(nclass.group(1))} if nclass else {})


def load_test(name: str, normalize: Union[bool, Stats] = True, *,
              source_options: Optional[Dict[str, Any]] = None,
              as_supervised: bool = True, batch_size: Optional[int] = None):
  """The real test split of a source, normalised as `load` normalises its condensed sets.

      train = tfcondense.load("condensed_fashion_mnist/idc_ipc10")
      model.fit(train.shuffle(400).batch(64), epochs=30)
      model.evaluate(tfcondense.load_test("fashion_mnist").batch(256))

  Args:
    name: a source, e.g. `fashion_mnist`, or a condensed dataset of it, e.g.
      `condensed_fashion_mnist/idc_ipc10` (an `..._nclass<n>` config takes the first n
      classes of imagenet_subset).
    normalize: True applies (x - mean) / std with the constants `load` uses
      (`NORMALIZATION`; for a source without them, such as speech_commands, the mean and
      std the loaded source reports), False keeps [0, 1], or a (mean, std) pair.
    source_options: options of `tfcondense.load_source` where the source's files are
      not in their default place: `{"path": ...}` for fashion_mnist, `{"data_dir": ...}`
      for the TFDS-backed cifar10 / cifar100, `{"root": ...}` for the folder sources.
    as_supervised: (image, label) pairs; False gives {"image", "label"} dicts.
    batch_size: batch the dataset; -1 returns the whole split as tensors (as tfds.load).

  Returns:
    A `tf.data.Dataset` of float32 [H, W, C] images and int64 labels (the dtypes `load`
    gives), in the source's order.

  Raises:
    UnknownNameError: no such source (the message lists them).
    SourceUnavailableError: the source's files are missing (the message says how to get
      them).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcondense.data import load_source  # pylint: disable=g-import-not-at-top
  source_name, options = _test_source(name)
  src = load_source(source_name, **{**options, **(source_options or {})})
  images = tf.constant(src.test_images, tf.float32)
  labels = tf.cast(src.test_labels, tf.int64)
  if normalize is True:
    stats = NORMALIZATION.get(source_name, (tuple(src.mean), tuple(src.std)))
  else:
    stats = tuple(normalize) if normalize else None
  if as_supervised:
    split = (images, labels)
  else:
    split = {"image": images, "label": labels}
  if batch_size == -1:
    return split if stats is None else _normalized(split, stats, as_supervised)
  ds = tf.data.Dataset.from_tensor_slices(split)
  if stats is not None:
    ds = _normalized(ds, stats, as_supervised)
  return ds.batch(batch_size) if batch_size else ds


def load(name: str, split: Union[str, Sequence[str], None] = "train",
         data_dir: Optional[str] = None,
         normalize: Union[bool, Stats] = True, *, manual_dir: Optional[str] = None,
         source_options: Optional[Dict[str, Any]] = None, **kwargs):
  """`tfds.load(name, as_supervised=True, ...)` of a condensed dataset, normalised.

  Args:
    name: `condensed_<source>/<config>`, e.g. `condensed_fashion_mnist/idc_ipc10`.
    split: `train` (formed images), `stored`, `test` (the source's real test split, see
      `load_test`), a list of them (`["train", "test"]` for model.fit and
      model.evaluate), or any tfds split spec of train / stored.
    data_dir: the TFDS data directory (prepared there on first use, offline; a leading
      `~` is expanded).
    normalize: True applies (x - mean) / std with the source's constants
      (`NORMALIZATION`, also in `info.metadata["normalization"]`), False keeps [0, 1]
      (what `tfds.load` of the same name gives), or a (mean, std) pair of per-channel
      values.
    manual_dir: where your artifacts are (`<manual_dir>/<config>/meta.json`, or a
      meta.json in `manual_dir` itself); shortcut for `download_and_prepare_kwargs=
      {"download_config": tfds.download.DownloadConfig(manual_dir=...)}`. Your artifact
      wins over a shipped one of the same config, and a version of the config prepared
      under `data_dir` from another artifact (or an older copy of yours) is prepared
      again from yours.
    source_options: `tfcondense.load_source` options for the `test` split (see
      `load_test`).
    **kwargs: passed to `tfds.load` (batch_size, shuffle_files, with_info, ...); the
      `test` split honours as_supervised, batch_size and with_info.

  Returns:
    What `tfds.load` returns: (image, label) datasets ready for `model.fit`
    (with_info=True: (datasets, info)).

  Raises:
    InvalidConfigError: not a condensed dataset, no normalisation for its source,
      `manual_dir` is not an existing directory, or `test` in a split expression.
    ArtifactNotFoundError: the config's artifact is missing (the message names the
      command that makes it).
    SourceUnavailableError: the `test` split's source files are missing.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  stats = _stats(_source_of(name), normalize)
  data_dir, manual_dir = _expand(data_dir), _expand(manual_dir)
  if _asks_for_test(split):
    return _load_with_test(name, split, data_dir, normalize, manual_dir, source_options,
                           kwargs)
  _builders()
  if manual_dir is not None:
    _use_manual_dir(name, data_dir, manual_dir, kwargs)
  kwargs.setdefault("as_supervised", True)
  out = tfds.load(name, split=split, data_dir=data_dir, **kwargs)
  if stats is None:
    return out
  if kwargs.get("with_info"):
    datasets, info = out
    return _normalized(datasets, stats, kwargs["as_supervised"]), info
  return _normalized(out, stats, kwargs["as_supervised"])


def _use_manual_dir(name: str, data_dir: Optional[str], manual_dir: str,
                    kwargs: Dict[str, Any]) -> None:
  """Points `kwargs` (of tfds.load) at `manual_dir`, dropping a stale prepared copy.

  Raises:
    InvalidConfigError: `manual_dir` is not an existing directory.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
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


def _load_with_test(name: str, split, data_dir: Optional[str],
                    normalize: Union[bool, Stats], manual_dir: Optional[str],
                    source_options: Optional[Dict[str, Any]], kwargs: Dict[str, Any]):
  """`load` of a split list holding `test` (or of `test` alone): each split in turn."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  kwargs = dict(kwargs)
  with_info = kwargs.pop("with_info", False)
  splits = [split] if isinstance(split, str) else list(split)
  out = [
      load_test(name, normalize, source_options=source_options,
                as_supervised=kwargs.get("as_supervised", True),
                batch_size=kwargs.get("batch_size"))
      if s == TEST else
      load(name, s, data_dir, normalize, manual_dir=manual_dir, **kwargs)
      for s in splits]
  out = out[0] if isinstance(split, str) else out
  if not with_info:
    return out
  _builders()
  builder = tfds.builder(name, data_dir=data_dir, **(kwargs.get("builder_kwargs") or {}))
  return out, builder.info
