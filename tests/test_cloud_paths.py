"""Artifacts, checkpoints, results and reports on non-local paths (issue 42).

TensorFlow's in-memory filesystem (`ram://`) stands in for a cloud bucket: everything
written there went through `tf.io.gfile`, and anything that used `os` calls instead
would show up as a local folder named `ram:` in the working directory.
"""
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from test_faults import TINY
from tfcondense import artifact, atomic, engine, experiment, fileio
from tfcondense import condensation as condense_lib
from tfcondense.bench.store import CellStore
from tfcondense.errors import WorkdirError
from tfcondense.methods import idc

gfile = tf.io.gfile


@pytest.fixture
def ram(tmp_path, monkeypatch):
  """A fresh `ram://` folder; the test runs in an empty local folder, checked at the
  end to have stayed empty (no `ram:` or `gs:` folder made by an `os` call)."""
  monkeypatch.chdir(tmp_path)
  root = f"ram://tfc-{uuid.uuid4().hex[:8]}"
  yield root
  assert os.listdir(tmp_path) == [], "a URL was written as a local folder"


def _images(n=4):
  return np.random.default_rng(0).uniform(size=(n, 8, 8, 1)).astype(np.float32)


def test_an_artifact_round_trips_in_memory(ram):
  d = f"{ram}/sets/art"
  weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
  artifact.save_artifact(d, _images(), np.arange(4), dict(source="toy", method="random",
                                                          ipc=1), weights=weights)
  assert sorted(gfile.listdir(d)) == ["formation.npz", "images.npy", "labels.npy",
                                      "meta.json"]
  art = artifact.load_artifact(d)
  np.testing.assert_array_equal(art.images, _images())
  np.testing.assert_array_equal(art.weights["w"], weights["w"])
  assert art.meta["source"] == "toy"
  artifact.save_artifact(d, _images(2), np.arange(2), dict(source="toy", method="x", ipc=1))
  again = artifact.load_artifact(d)  # replaced whole: the old weights are gone
  assert len(again.images) == 2 and again.weights == {}
  assert gfile.listdir(f"{ram}/sets") == ["art"]  # no temporary folder left


def test_atomic_writes_in_memory(ram):
  atomic.write_json(f"{ram}/r/x.json", {"b": 1, "a": 2})
  atomic.write_text(f"{ram}/r/t.md", "é")
  assert fileio.read_json(f"{ram}/r/x.json") == {"a": 2, "b": 1}
  with gfile.GFile(f"{ram}/r/t.md", "rb") as f:
    assert f.read().decode("utf-8") == "é"
  with pytest.raises(TypeError):
    atomic.write_json(f"{ram}/r/x.json", {"bad": object()})
  assert fileio.read_json(f"{ram}/r/x.json") == {"a": 2, "b": 1}
  assert sorted(gfile.listdir(f"{ram}/r")) == ["t.md", "x.json"]


def test_results_and_cells_in_memory(ram):
  path = f"{ram}/rows.json"
  experiment.write_rows(path, [{"key": "a"}], {"h": 1})
  assert experiment.read_rows(path) == [{"key": "a"}]
  store = CellStore(f"{ram}/bench")
  store.put("toy", "suite", "k", {"x": 1}, {"acc": 0.5})
  assert store.get("toy", "suite", "k", {"x": 1})["result"] == {"acc": 0.5}
  assert [c["key"] for c in store.cells()] == ["k"] and store.sources() == ["toy"]


def _opts(workdir, **kw):
  return engine.RunOptions(workdir=workdir, show_progress=False, checkpoint_seconds=0, **kw)


@pytest.mark.heavy
def test_a_tiny_condensation_resumes_in_memory(ram):
  w = f"{ram}/run"
  src = quadrant_source()
  first = condense_lib.condense("idc_i", src, 1, options=_opts(w, max_steps=1), **TINY)
  assert first.run.steps == 1 and gfile.exists(f"{w}/config.json")
  res = condense_lib.condense("idc_i", src, 1, options=_opts(w), **TINY)
  assert (res.run.resumed_from, res.run.steps) == (1, 4)
  art = artifact.load_artifact(f"{w}/artifact")
  np.testing.assert_array_equal(art.images, res.artifact.images)
  assert gfile.exists(f"{w}/artifact/stored.png")


def _method():
  return idc.IDC(quadrant_source(), idc.IDCConfig(ipc=1, factor=1, **TINY))


@pytest.mark.heavy
def test_a_corrupt_checkpoint_and_leftovers_are_handled_in_memory(ram):
  w = f"{ram}/run"
  engine.run(_method(), _opts(w, max_steps=2, keep_checkpoints=3))
  gfile.makedirs(f"{w}/checkpoints/ckpt-9_temp")
  with gfile.GFile(f"{w}/checkpoints/ckpt-9_temp/part", "w") as f:
    f.write("x")
  with gfile.GFile(f"{w}/.tmp-abc.json", "w") as f:
    f.write("{")
  with gfile.GFile(f"{w}/checkpoints/ckpt-2.index", "wb") as f:
    f.write(b"\x00garbage" * 8)
  r = engine.run(_method(), _opts(w, max_steps=3))
  assert (r.resumed_from, r.steps) == (1, 3)
  assert gfile.glob(f"{w}/checkpoints/corrupt/ckpt-2.index.*")
  assert not gfile.exists(f"{w}/.tmp-abc.json")
  assert not gfile.glob(f"{w}/checkpoints/ckpt-9_temp*")


def test_the_embedding_cache_in_memory(ram, monkeypatch):
  from tfcondense.methods import selection  # pylint: disable=g-import-not-at-top
  feats = np.ones((80, 3), np.float32)
  monkeypatch.setattr(selection, "_train_and_embed", lambda *a: feats)
  monkeypatch.setattr(selection, "_EMBED_CACHE", {})
  selection.embeddings(quadrant_source(), cache_dir=f"{ram}/cache")
  assert len(gfile.glob(f"{ram}/cache/embed-*.npy")) == 1
  monkeypatch.setattr(selection, "_EMBED_CACHE", {})
  monkeypatch.setattr(selection, "_train_and_embed", lambda *a: 1 / 0)  # read, not made
  np.testing.assert_array_equal(
      selection.embeddings(quadrant_source(), cache_dir=f"{ram}/cache"), feats)


@pytest.mark.parametrize("url", ["gs://tfcondense-no-such-bucket-42/x", "s3://b/x"])
def test_a_cloud_path_is_never_a_local_folder(tmp_path, monkeypatch, url):
  """Offline (or without the filesystem), a clear one-line error; online, a write to
  the bucket; never a local `gs:` folder."""
  monkeypatch.chdir(tmp_path)
  try:
    artifact.save_artifact(url, _images(), np.arange(4),
                           dict(source="toy", method="random", ipc=1))
  except WorkdirError as e:
    assert url in str(e) and "\n" not in str(e)
  with pytest.raises(WorkdirError, match=r"cannot write in (gs|s3)://"):
    engine.run(_method(), _opts(url + "/run"))
  engine.check_writable(url)  # a local check only: says nothing about a URL
  assert os.listdir(tmp_path) == []
