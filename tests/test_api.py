"""`tfc.condense`: one call for every method, and the README's way of adding one."""
import importlib
import json
import sys

import numpy as np
import pytest

import tfcondense as tfc
from tests.fixtures import quadrant_source
from tfcondense.errors import InvalidConfigError
from tfcondense.methods.base import SELECTION, SYNTHESIS
from tfcondense.registry import UnknownNameError


@pytest.fixture
def toy_methods():
  """Imports tests/toy_methods.py (which registers its methods), unregisters them after."""
  module = importlib.import_module("tests.toy_methods")
  yield module
  SELECTION.unregister("toy_first")
  SYNTHESIS.unregister("toy_means")
  sys.modules.pop("tests.toy_methods", None)


@pytest.fixture(scope="module")
def source():
  return quadrant_source(n_per_class=12, n_test=6, size=8)


@pytest.mark.heavy
def test_a_toy_selection_method_registered_the_documented_way(toy_methods, source, tmp_path):
  assert "toy_first" in tfc.method_names() and tfc.api.kind("toy_first") == "selection"
  res = tfc.condense("toy_first", source, ipc=2, artifact_dir=str(tmp_path / "a"),
                     evaluate="smoke", repetitions=1)
  assert res.run is None and res.artifact.meta["toy"] is True
  idx = np.concatenate([np.flatnonzero(source.train_labels == c)[:2] for c in range(4)])
  np.testing.assert_array_equal(res.artifact.images, source.train_images[idx])
  assert res.evaluation.num_images == 8 and res.evaluation.protocol == "smoke"
  written = json.loads((tmp_path / "a" / "evaluation.json").read_text())
  assert written["acc_mean"] == res.evaluation.as_dict()["acc_mean"]
  assert (tmp_path / "a" / "stored.png").exists()
  with pytest.raises(InvalidConfigError, match="takes no option 'factor'"):
    tfc.condense("toy_first", source, ipc=1, factor=2)


@pytest.mark.heavy
def test_a_toy_synthesis_method_registered_the_documented_way(toy_methods, source, tmp_path):
  assert tfc.api.kind("toy_means") == "synthesis"
  opts = tfc.RunOptions(workdir=str(tmp_path / "w"), show_progress=False)
  res = tfc.condense("toy_means", source, ipc=1, options=opts, iterations=3, seed=5)
  assert res.run.steps == 3 and res.artifact.meta["config"]["seed"] == 5
  means = np.stack([source.train_images[source.train_labels == c].mean(0) for c in range(4)])
  # 3 steps of rate 0.5 leave 1/8 of the initial distance to the class mean.
  start = tfc.condense("toy_means", source, ipc=1, iterations=3, seed=5,
                       options=tfc.RunOptions(max_steps=0, show_progress=False))
  np.testing.assert_allclose(res.artifact.images - means,
                             (start.artifact.images - means) / 8, atol=1e-5)
  # A rerun of the same workdir resumes (nothing left to do) and rewrites the artifact.
  again = tfc.condense("toy_means", source, ipc=1, options=opts, iterations=3, seed=5,
                       evaluate="smoke", repetitions=1)
  assert again.run.steps == 3 and again.run.resumed_from == 3
  np.testing.assert_array_equal(again.artifact.images, res.artifact.images)
  assert again.evaluation is not None
  assert (tmp_path / "w" / "artifact" / "evaluation.json").exists()
  with pytest.raises(InvalidConfigError, match="no setting"):
    tfc.condense("toy_means", source, ipc=1, outer_iterations=2)


def test_unknown_method_names_every_method(source):
  with pytest.raises(UnknownNameError, match="unknown method 'idcc'.*idc_i.*kcenter"):
    tfc.condense("idcc", source, ipc=1)
  with pytest.raises(Exception, match="unknown protocol"):
    tfc.condense("random", source, ipc=1, evaluate="fast")


def test_selection_through_condense_equals_select(source):
  a = tfc.condense("random", source, ipc=3, seed=4).artifact
  b = tfc.select("random", source, ipc=3, seed=4)
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)


def test_a_cell_key_does_not_depend_on_the_order_of_its_config():
  from tfcondense import experiment
  a = experiment.Cell("dm", 1, max_steps=2, config=(("real_per_class", 8), ("lr_img", 1.0)))
  b = experiment.Cell("dm", 1, max_steps=2, config={"lr_img": 1.0, "real_per_class": 8})
  assert a == b and a.key == b.key == "dm@1/2steps/lr_img=1.0/real_per_class=8"
  with pytest.raises(InvalidConfigError, match="each field once"):
    experiment.Cell("dm", 1, config=(("lr_img", 1.0), ("lr_img", 2.0)))
  with pytest.raises(InvalidConfigError, match="pairs or a dict"):
    experiment.Cell("dm", 1, config=("lr_img",))


@pytest.mark.heavy
def test_compare_runs_a_synthesis_cell_with_a_budget(source, tmp_path):
  from tfcondense import experiment
  with pytest.raises(InvalidConfigError, match="needs a budget"):
    experiment.compare(source, [experiment.Cell("dm", 1)], protocol="smoke", repetitions=1)
  cell = experiment.Cell("dm", 1, max_steps=2, config=(("real_per_class", 8),))
  rows = experiment.compare(source, [cell], protocol="smoke", repetitions=1,
                            artifacts_root=str(tmp_path), show_progress=False)
  assert rows[0]["method"] == "dm" and rows[0]["key"] == "dm@1/2steps/real_per_class=8"
  assert (tmp_path / "toy_dm_ipc1" / "artifact" / "evaluation.json").exists()
