"""tfcondense.atomic: a failed write leaves the old file and no temporary behind."""
from __future__ import annotations

import json
import os

import pytest

from tfcondense import atomic


def test_write_json_replaces_whole_file_with_umask_mode(tmp_path):
  path = tmp_path / "sub" / "x.json"
  atomic.write_json(str(path), {"b": 1, "a": [1, 2]})
  assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
  assert list(path.read_text().splitlines())[1].strip().startswith('"a"')  # sorted keys
  assert (os.stat(path).st_mode & 0o777) == atomic.umask_mode()
  atomic.write_json(str(path), {"z": 0, "y": 1}, sort_keys=False)
  assert list(json.loads(path.read_text())) == ["z", "y"]
  assert os.listdir(path.parent) == ["x.json"]


def test_failed_write_keeps_old_file_and_cleans_up(tmp_path):
  path = tmp_path / "x.json"
  atomic.write_json(str(path), {"ok": True})
  with pytest.raises(TypeError):
    atomic.write_json(str(path), {"bad": object()})  # not JSON-serialisable mid-write
  assert json.loads(path.read_text()) == {"ok": True}
  assert os.listdir(tmp_path) == ["x.json"]


def test_save_figure_writes_png_and_closes_figure(tmp_path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  out = atomic.save_figure(fig, str(tmp_path / "p.png"), dpi=50)
  with open(out, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert not plt.fignum_exists(fig.number)
  assert os.listdir(tmp_path) == ["p.png"]


def test_artifact_directory_is_readable_like_any_new_directory(tmp_path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfcondense import artifact  # pylint: disable=g-import-not-at-top
  d = tmp_path / "art"
  artifact.save_artifact(str(d), np.zeros((2, 4, 4, 1), np.float32), np.array([0, 1]),
                         dict(method="random", ipc=1, source="x"))
  assert (os.stat(d).st_mode & 0o777) == atomic.umask_mode(0o777)
  assert (os.stat(d / "meta.json").st_mode & 0o777) == atomic.umask_mode()


def test_write_text_and_replacing_keep_the_suffix_for_writers_that_need_it(tmp_path):
  atomic.write_text(str(tmp_path / "r" / "index.html"), "<p>é</p>")
  assert (tmp_path / "r" / "index.html").read_text(encoding="utf-8") == "<p>é</p>"
  with atomic.replacing(str(tmp_path / "m.weights.h5"), ".weights.h5") as tmp:
    assert tmp.endswith(".weights.h5")  # Keras refuses other names
    with open(tmp, "w") as f:
      f.write("x")
  with pytest.raises(RuntimeError):
    with atomic.replacing(str(tmp_path / "m.weights.h5"), ".weights.h5") as tmp:
      raise RuntimeError("writer died")
  assert (tmp_path / "m.weights.h5").read_text() == "x"
  assert sorted(os.listdir(tmp_path)) == ["m.weights.h5", "r"]


def test_replacing_dir_swaps_whole_folders_and_keeps_the_old_one_on_failure(tmp_path):
  d = tmp_path / "art"
  with atomic.replacing_dir(str(d)) as tmp:
    assert not d.exists()  # nothing appears before the block ends
    open(os.path.join(tmp, "a"), "w").write("1")
  assert os.listdir(d) == ["a"] and (os.stat(d).st_mode & 0o777) == atomic.umask_mode(0o777)
  with pytest.raises(RuntimeError):
    with atomic.replacing_dir(str(d)) as tmp:
      open(os.path.join(tmp, "b"), "w").write("2")
      raise RuntimeError("writer died")
  assert os.listdir(d) == ["a"]
  with atomic.replacing_dir(str(d)) as tmp:
    open(os.path.join(tmp, "b"), "w").write("2")
  assert os.listdir(d) == ["b"] and os.listdir(tmp_path) == ["art"]
