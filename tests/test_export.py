"""Condensed artifacts as TFDS datasets: to_tfds, load, the builders' errors and grid.

Also collects the builders' own DatasetBuilderTestCases (datasets_builders/*/..._test.py,
on their dummy_data/), which `testpaths = tests` would otherwise not reach.
"""
from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import datasets_builders
from datasets_builders import _condensed
from datasets_builders.condensed_fashion_mnist import condensed_fashion_mnist_dataset_builder
# The builders' DatasetBuilderTestCases, collected here (about 15 s together).
from datasets_builders.condensed_cifar10.condensed_cifar10_dataset_builder_test import (  # noqa: F401,E501
    CondensedCifar10Test)
from datasets_builders.condensed_cifar100.condensed_cifar100_dataset_builder_test import (  # noqa: F401,E501
    CondensedCifar100Test)
from datasets_builders.condensed_fashion_mnist.condensed_fashion_mnist_dataset_builder_test import (  # noqa: F401,E501
    CondensedFashionMnistTest)
from datasets_builders.condensed_imagenet_subset.condensed_imagenet_subset_dataset_builder_test import (  # noqa: F401,E501
    CondensedImagenetSubsetTest)
from datasets_builders.condensed_speech_commands.condensed_speech_commands_dataset_builder_test import (  # noqa: F401,E501
    CondensedSpeechCommandsTest)
from datasets_builders.condensed_tiny_imagenet.condensed_tiny_imagenet_dataset_builder_test import (  # noqa: F401,E501
    CondensedTinyImagenetTest)
import tfcondense
from tfcondense import artifact as artifact_lib
from tfcondense import export
from tfcondense import synthetic
from tfcondense.data import fashion_mnist
from tfcondense.errors import InvalidConfigError, SourceUnavailableError

FMNIST = condensed_fashion_mnist_dataset_builder.Builder
NAME = "condensed_fashion_mnist/idc_ipc1"
EVALUATION = {"acc_mean": 71.5, "acc_std": 0.4, "last_mean": 70.9, "last_std": 0.6,
              "model": "convnet3", "protocol": "cpu", "augmentation": "dsa"}


def _write_artifact(directory, ipc=1, method="idc", factor=2, source="fashion_mnist",
                    seed=0, evaluation=None):
  """A fashion_mnist-shaped artifact: 10 classes x ipc random 28x28x1 stored images."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(0, 1, (10 * ipc, 28, 28, 1)).astype(np.float32)
  labels = np.repeat(np.arange(10), ipc).astype(np.int32)
  formation = {"name": "uniform", "factor": factor} if factor > 1 else \
      {"name": "identity", "factor": 1}
  meta = dict(source=source, method=method, ipc=ipc, factor=factor, formation=formation,
              seed=0, budget={"minutes": 1.5, "steps": 10},
              storage={"stored_images": 10 * ipc}, class_names=list(fashion_mnist.CLASS_NAMES))
  art = artifact_lib.save_artifact(str(directory), images, labels, meta)
  if evaluation is not None:
    (directory / "evaluation.json").write_text(json.dumps(evaluation))
  return art


def _as_numpy(ds):
  xs, ys = zip(*ds.as_numpy_iterator())
  return np.stack(xs), np.asarray(ys)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(artifact, artifact dir, data_dir, builder) after to_tfds of an IDC ipc-1 artifact."""
  root = tmp_path_factory.mktemp("export")
  art = _write_artifact(root / "artifact", evaluation=EVALUATION)
  data_dir = str(root / "tfds")
  builder = export.to_tfds(str(root / "artifact"), data_dir=data_dir)
  return art, root / "artifact", data_dir, builder


def test_to_tfds_prepares_formed_train_and_stored_splits(exported):
  art, _, data_dir, builder = exported
  assert builder.info.full_name == f"{NAME}/{_condensed.VERSION}"
  train = tfds.load(NAME, split="train", data_dir=data_dir)
  stored = tfds.load(NAME, split="stored", data_dir=data_dir)
  assert len(list(train)) == 40 and len(list(stored)) == 10
  sx, sy = _as_numpy(tfds.load(NAME, split="stored", data_dir=data_dir, as_supervised=True))
  np.testing.assert_array_equal(sx, art.images)  # the stored images, bit for bit
  np.testing.assert_array_equal(sy, art.labels)
  fx, fy = synthetic.formed_from_artifact(art, art.weights)
  tx, ty = _as_numpy(tfds.load(NAME, split="train", data_dir=data_dir, as_supervised=True))
  np.testing.assert_allclose(tx, fx, atol=1e-6)
  np.testing.assert_array_equal(ty, fy)
  info = tfds.builder(NAME, data_dir=data_dir).info  # reloaded from disk
  assert info.features["label"].names == list(fashion_mnist.CLASS_NAMES)
  assert info.features["image"].shape == (28, 28, 1)
  assert info.supervised_keys == ("image", "label")
  meta = info.metadata
  data = meta["dataset"]
  assert (data["method"], data["ipc"], data["factor"]) == ("idc", 1, 2)
  assert meta["recipe"]["formation"] == {"name": "uniform", "factor": 2}
  assert meta["recipe"]["budget"] == {"minutes": 1.5, "steps": 10}
  assert meta["evaluation"]["accuracy"]["acc_mean"] == 71.5
  assert meta["evaluation"]["report"] == EVALUATION
  assert meta["provenance"]["artifact"] == "artifact_dir"
  assert (data["num_stored"], data["num_formed"]) == (10, 40)
  assert meta["normalization"]["mean"] == list(fashion_mnist.MEAN)
  assert str(exported[1]) not in json.dumps(dict(meta))  # no local path recorded


def test_supervised_dataset_trains_a_keras_model(exported):
  _, _, data_dir, _ = exported
  ds = export.load(NAME, data_dir=data_dir).shuffle(40, seed=0).batch(8).repeat()
  model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(10)])
  model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  history = model.fit(ds, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
  assert np.isfinite(history.history["loss"][0])


def test_load_normalizes_with_the_source_constants(exported):
  art, _, data_dir, _ = exported
  x, y = _as_numpy(export.load(NAME, split="stored", data_dir=data_dir))
  mean, std = fashion_mnist.MEAN[0], fashion_mnist.STD[0]
  np.testing.assert_allclose(x, (art.images - mean) / std, rtol=1e-5, atol=1e-5)
  raw, _ = _as_numpy(export.load(NAME, split="stored", data_dir=data_dir, normalize=False))
  np.testing.assert_array_equal(raw, art.images)
  (ds,), info = export.load(NAME, split=["stored"], data_dir=data_dir,
                            normalize=((0.5,), (0.25,)), with_info=True)
  np.testing.assert_allclose(_as_numpy(ds)[0], (art.images - 0.5) / 0.25, atol=1e-5)
  assert info.splits["train"].num_examples == 40
  assert tfcondense.load is export.load


def test_load_rejects_non_condensed_names_and_unknown_normalisation():
  with pytest.raises(InvalidConfigError, match="condensed_<source>"):
    export.load("mnist", data_dir="/nonexistent")
  with pytest.raises(InvalidConfigError, match="normalize=False"):
    export.load("condensed_speech_commands/idc_ipc10", data_dir="/nonexistent")


def test_normalization_table_matches_the_sources():
  assert export.NORMALIZATION["cifar10"] == (
      (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
  try:
    src = tfcondense.load_source("fashion_mnist", limit_per_class=1)
  except SourceUnavailableError:
    pytest.skip("Fashion-MNIST files not installed")
  assert export.NORMALIZATION["fashion_mnist"] == (tuple(src.mean), tuple(src.std))


def test_manual_dir_holds_user_artifacts(tmp_path, monkeypatch):
  # Nothing shipped for this test (the package ships kcenter_ipc10 itself).
  monkeypatch.setattr(FMNIST, "prebuilt_dir", classmethod(lambda cls: str(tmp_path / "none")))
  _write_artifact(tmp_path / "manual" / "kcenter_ipc10", ipc=10, method="kcenter",
                  factor=1)
  ds = export.load("condensed_fashion_mnist/kcenter_ipc10", split="train",
                   data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "manual"))
  assert len(list(ds)) == 100
  meta = tfds.builder("condensed_fashion_mnist/kcenter_ipc10",
                      data_dir=str(tmp_path / "tfds")).info.metadata
  assert meta["provenance"]["artifact"] == "manual_dir" and meta["evaluation"]["accuracy"] == {}


def test_manual_dir_comes_before_the_shipped_artifact(tmp_path, monkeypatch):
  _write_artifact(tmp_path / "shipped" / "idc_ipc1", seed=1)
  _write_artifact(tmp_path / "manual" / "idc_ipc1", seed=2)
  _write_artifact(tmp_path / "other" / "kcenter_ipc1", method="kcenter", factor=1)
  monkeypatch.setattr(FMNIST, "prebuilt_dir", classmethod(lambda cls: str(tmp_path / "shipped")))
  for manual, origin in (("manual", "manual_dir"), ("other", "prebuilt")):
    builder = tfds.builder(NAME, data_dir=str(tmp_path / "tfds" / manual))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / manual)))
    assert builder.info.metadata["provenance"]["artifact"] == origin
    x, _ = _as_numpy(builder.as_dataset(split="stored", as_supervised=True))
    np.testing.assert_array_equal(
        x, np.load(tmp_path / ("shipped" if manual == "other" else manual) / "idc_ipc1" /
                   "images.npy"))


def test_missing_artifact_names_the_command(tmp_path):
  builder = tfds.builder("condensed_fashion_mnist/dm_mf_ipc10", data_dir=str(tmp_path))
  with pytest.raises(datasets_builders.ArtifactNotFoundError) as err:
    builder.download_and_prepare()
  msg = str(err.value)
  assert ("python -m apps.condense --source fashion_mnist --method dm_mf --ipc 10 "
          "--factor 2 --workdir runs/fashion_mnist_dm_mf_ipc10") in msg
  assert "<manual_dir>/dm_mf_ipc10/" in msg and "to_tfds(" in msg
  assert "artifacts/dm_mf_ipc10" in msg  # where shipped artifacts would be
  builder = tfds.builder("condensed_cifar10/herding_ipc50", data_dir=str(tmp_path))
  with pytest.raises(datasets_builders.ArtifactNotFoundError,
                     match="apps.evaluate --source cifar10 --method herding --ipc 50 "
                           "--save_artifacts runs/artifacts"):
    builder.download_and_prepare()


def test_meta_mismatch_raises(tmp_path, monkeypatch):
  monkeypatch.setattr(FMNIST, "prebuilt_dir", classmethod(lambda cls: str(tmp_path / "none")))
  _write_artifact(tmp_path / "manual" / "idc_ipc10", ipc=1)  # an ipc-1 set in the ipc-10 slot
  builder = tfds.builder("condensed_fashion_mnist/idc_ipc10", data_dir=str(tmp_path / "a"))
  config = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual"))
  with pytest.raises(datasets_builders.ArtifactMismatchError,
                     match=r"ipc 1 \(config: 10\).*condensed_fashion_mnist/idc_ipc1"):
    builder.download_and_prepare(download_config=config)
  _write_artifact(tmp_path / "dm2", method="dm", factor=2)
  with pytest.raises(datasets_builders.ArtifactMismatchError, match="dm_mf"):
    export.to_tfds(str(tmp_path / "dm2"), data_dir=str(tmp_path / "b"))
  _write_artifact(tmp_path / "idc", method="idc")
  with pytest.raises(datasets_builders.ArtifactMismatchError, match="method 'idc'"):
    export.to_tfds(str(tmp_path / "idc"), data_dir=str(tmp_path / "c"), name="dm_ipc1")
  _write_artifact(tmp_path / "c10", source="cifar10")
  with pytest.raises(datasets_builders.ArtifactMismatchError, match="source 'cifar10'"):
    export.to_tfds(str(tmp_path / "c10"), data_dir=str(tmp_path / "d"), name=NAME)


def test_to_tfds_replaces_an_earlier_export(tmp_path):
  _write_artifact(tmp_path / "one", seed=1)
  _write_artifact(tmp_path / "two", seed=2)
  export.to_tfds(str(tmp_path / "one"), data_dir=str(tmp_path / "tfds"))
  export.to_tfds(str(tmp_path / "two"), data_dir=str(tmp_path / "tfds"))
  x, _ = _as_numpy(tfds.load(NAME, split="stored", data_dir=str(tmp_path / "tfds"),
                             as_supervised=True))
  np.testing.assert_array_equal(x, np.load(tmp_path / "two" / "images.npy"))


def test_dataset_name_from_meta(tmp_path):
  _write_artifact(tmp_path / "a", ipc=1)
  assert export.dataset_name(str(tmp_path / "a")) == NAME
  shutil.copytree(tmp_path / "a", tmp_path / "img")
  meta = json.loads((tmp_path / "img" / "meta.json").read_text())
  meta.update(source="imagenet_subset", method="random", factor=1)
  (tmp_path / "img" / "meta.json").write_text(json.dumps(meta))
  assert export.dataset_name(str(tmp_path / "img")) == \
      "condensed_imagenet_subset/random_ipc1_nclass10"
  meta.update(source="svhn_cropped")
  (tmp_path / "img" / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(KeyError, match="condensed_fashion_mnist|fashion_mnist"):
    export.dataset_name(str(tmp_path / "img"))
  meta.update(source="fashion_mnist", ipc=7)
  (tmp_path / "img" / "meta.json").write_text(json.dumps(meta))
  with pytest.raises(InvalidConfigError, match="ipc 7"):
    export.dataset_name(str(tmp_path / "img"))


def test_config_grid():
  names = [c.name for c in FMNIST.BUILDER_CONFIGS]
  assert len(names) == 33 and {"idc_ipc10", "dm_ipc50", "random_ipc1"} <= set(names)
  by_name = {c.name: c for c in FMNIST.BUILDER_CONFIGS}
  assert (by_name["idc_ipc10"].factor, by_name["dm_mf_ipc1"].factor,
          by_name["dm_ipc1"].factor) == (2, 2, 1)
  assert all(c.version == _condensed.VERSION and c.release_notes and c.description
             for c in FMNIST.BUILDER_CONFIGS)
  imagenet = tfds.builder_cls("condensed_imagenet_subset")
  configs = {c.name: c for c in imagenet.BUILDER_CONFIGS}
  assert len(configs) == 66
  assert configs["idc_ipc10_nclass100"].factor == 3
  assert configs["idc_ipc10_nclass100"].num_classes == 100
  assert sorted(_condensed.SOURCES.names()) == [
      "cifar10", "cifar100", "fashion_mnist", "imagenet_subset", "speech_commands",
      "tiny_imagenet"]


def test_folder_sources_take_label_names_from_the_artifact(tmp_path):
  rng = np.random.default_rng(0)
  names = [f"n{i:08d}" for i in range(10)]
  artifact_lib.save_artifact(
      str(tmp_path / "art"), rng.uniform(0, 1, (10, 224, 224, 3)).astype(np.float32),
      np.arange(10), dict(source="imagenet_subset", method="random", ipc=1, factor=1,
                          class_names=names))
  builder = export.to_tfds(str(tmp_path / "art"), data_dir=str(tmp_path / "tfds"))
  assert builder.info.full_name == \
      f"condensed_imagenet_subset/random_ipc1_nclass10/{_condensed.VERSION}"
  reloaded = tfds.builder("condensed_imagenet_subset/random_ipc1_nclass10",
                          data_dir=str(tmp_path / "tfds"))
  assert reloaded.info.features["label"].names == names
  assert tf.io.gfile.exists(str(reloaded.data_path))


def _shipped():
  root = FMNIST.prebuilt_dir()
  return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "meta.json")))


def test_shipped_artifacts_match_their_configs_and_load(tmp_path):
  """Every prebuilt Fashion-MNIST artifact: meta.json fits its config name, evaluation.json
  carries the measured accuracy, and `tfds.load` serves the formed images with it."""
  shipped = _shipped()
  assert "idc_ipc10" in shipped and "random_ipc1" in shipped
  configs = {c.name: c for c in FMNIST.BUILDER_CONFIGS}
  for name in shipped:
    art_dir = os.path.join(FMNIST.prebuilt_dir(), name)
    meta = json.loads(open(os.path.join(art_dir, "meta.json")).read())
    config = configs[name]
    assert (meta["method"], meta["ipc"], meta.get("factor", 1)) == (
        config.method, config.ipc, config.factor), name
    labels = np.load(os.path.join(art_dir, "labels.npy"))
    assert np.bincount(labels, minlength=10).tolist() == [config.ipc] * 10, name
    reported = json.loads(open(os.path.join(art_dir, "evaluation.json")).read())
    assert 10.0 < reported["acc_mean"] <= 100.0 and reported["protocol"], name
  ds = tfds.load("condensed_fashion_mnist/idc_ipc10", split="train",
                 data_dir=str(tmp_path), as_supervised=True)
  x, y = _as_numpy(ds)
  assert x.shape == (400, 28, 28, 1) and np.bincount(y).tolist() == [40] * 10
  meta = tfds.builder("condensed_fashion_mnist/idc_ipc10", data_dir=str(tmp_path)).info.metadata
  assert meta["provenance"]["artifact"] == "prebuilt"
  assert meta["evaluation"]["accuracy"]["acc_mean"] > 70
