"""Registry, artifact round trip and the SourceData store."""
import json
import os

import numpy as np
import pytest

from tests.fixtures import quadrant_source
from tfcondense import artifact
from tfcondense.errors import CorruptArtifactError, InvalidConfigError
from tfcondense.registry import Registry, UnknownNameError


def test_registry_lists_known_names_and_rejects_duplicates():
  reg = Registry("widget", hint="Import my.widgets.")
  reg.register("b")(1)
  reg.register("A")(2)
  assert reg.get("a") == 2 and reg.names() == ["a", "b"]
  with pytest.raises(UnknownNameError, match=r"unknown widget 'c'; known widgets: a, b"):
    reg.get("c")
  with pytest.raises(ValueError, match="twice"):
    reg.register("b")(3)


def test_artifact_round_trip_readable_with_numpy_only(tmp_path):
  images = np.random.default_rng(0).uniform(size=(6, 4, 4, 1)).astype(np.float32)
  labels = np.array([0, 0, 1, 1, 2, 2])
  d = tmp_path / "art"
  artifact.save_artifact(str(d), images, labels, {"source": "toy", "method": "random",
                                                  "ipc": 2, "seed": 3})
  assert sorted(os.listdir(d)) == ["images.npy", "labels.npy", "meta.json"]
  np.testing.assert_array_equal(np.load(d / "images.npy"), images)
  meta = json.loads((d / "meta.json").read_text())
  assert meta["ipc"] == 2 and meta["seed"] == 3 and "version" in meta
  art = artifact.load_artifact(str(d))
  np.testing.assert_array_equal(art.labels, labels)
  # Overwriting replaces atomically and leaves no temporary siblings.
  artifact.save_artifact(str(d), images[:2], labels[:2], {"source": "toy", "method": "x",
                                                         "ipc": 1})
  assert len(artifact.load_artifact(str(d)).images) == 2
  assert os.listdir(tmp_path) == ["art"]


def test_artifact_errors(tmp_path):
  with pytest.raises(CorruptArtifactError, match="missing images.npy"):
    artifact.load_artifact(str(tmp_path))
  d = tmp_path / "a"
  artifact.save_artifact(str(d), np.zeros((2, 4, 4, 1)), [0, 1],
                         {"source": "toy", "method": "r", "ipc": 1})
  (d / "images.npy").write_bytes(b"garbage")
  with pytest.raises(CorruptArtifactError, match="cannot read"):
    artifact.load_artifact(str(d))
  with pytest.raises(CorruptArtifactError, match="lacks ipc"):
    artifact.save_artifact(str(tmp_path / "b"), np.zeros((2, 4, 4, 1)), [0, 1],
                           {"source": "toy", "method": "r"})
  with pytest.raises(CorruptArtifactError, match="NaN"):
    artifact.save_artifact(str(tmp_path / "c"), np.full((2, 4, 4, 1), np.nan), [0, 1],
                           {"source": "toy", "method": "r", "ipc": 1})
  assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_store_per_class_indices_and_ipc_check():
  src = quadrant_source(n_per_class=5)
  for c in range(4):
    assert np.all(src.train_labels[src.class_indices(c)] == c)
    x = src.sample_class(c, 3, np.random.default_rng(0))
    h = 8
    r, q = divmod(c, 2)
    assert np.all(x[:, r * h:(r + 1) * h, q * h:(q + 1) * h].mean((1, 2, 3)) > 0.5)
  with pytest.raises(InvalidConfigError, match=r"IPC 6 exceeds the 5 images of class 0"):
    src.check_ipc(6)
