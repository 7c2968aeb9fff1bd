"""Bad inputs end in one clear line before any work (issue 44): the apps print
`error: ...` and exit with status 2, without a traceback, before loading data or
writing a file; `tfcondense.load` serves the user's artifact, never a stale one."""
from __future__ import annotations

import numpy as np
import pytest

from tests.test_apps import run_app

# digits loads in a second and trains in seconds: the quickest source for the apps.
EVAL = ("apps.evaluate", "--source", "digits", "--method", "random", "--ipc", "1",
        "--protocol", "smoke", "--repetitions", "1")


def _one_line_error(out, *needles):
  """Asserts `out` is a clean failure: status 2, one `error:` line naming `needles`."""
  assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
  assert "Traceback" not in out.stderr, out.stderr
  errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, out.stderr
  for needle in needles:
    assert needle in errors[0], (needle, errors[0])


@pytest.mark.parametrize("flag,value", [("--steps", "0"), ("--steps", "-3"),
                                        ("--epochs", "-1"), ("--repetitions", "0"),
                                        ("--limit_per_class", "-5")])
def test_evaluate_rejects_non_positive_counts(tmp_path, flag, value):
  out = run_app(*EVAL, flag, value, "--output", str(tmp_path / "rows.json"),
                "--save_artifacts", str(tmp_path / "arts"))
  _one_line_error(out, flag, value)
  assert not list(tmp_path.iterdir())  # nothing evaluated, nothing written
  assert "source digits" not in out.stdout  # rejected before the data were loaded


@pytest.mark.parametrize("output,reason", [("rows.txt", ".json"),
                                           ("folder.json", "directory"),
                                           ("file/rows.json", "not a directory")])
def test_evaluate_rejects_unwritable_output(tmp_path, output, reason):
  (tmp_path / "folder.json").mkdir()
  (tmp_path / "file").write_text("a file, not a folder")
  out = run_app(*EVAL, "--output", str(tmp_path / output))
  _one_line_error(out, "--output", reason)
  assert "source digits" not in out.stdout
  assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.json"]
  assert not list((tmp_path / "folder.json").iterdir())


@pytest.mark.parametrize("ipc", ["abc", "0", "-1", "1,x"])
def test_evaluate_rejects_bad_ipc(ipc):
  out = run_app(*EVAL[:-6], "--ipc", ipc, *EVAL[-4:])
  bad = ipc.split(",")[-1]
  _one_line_error(out, "--ipc", repr(bad))
  assert "source digits" not in out.stdout


@pytest.mark.heavy
@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_bench_report_without_cells_says_how_to_make_them(tmp_path, folder):
  (tmp_path / "empty").mkdir()
  out = run_app("apps.bench", "report", "--out", str(tmp_path / folder))
  _one_line_error(out, "no benchmark cells under", str(tmp_path / folder),
                  "python -m apps.bench --suite")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no report written
  assert not list((tmp_path / "empty").iterdir())


@pytest.mark.parametrize("app", ["apps.condense", "apps.evaluate"])
def test_help_lists_the_strategy_flags(app):
  out = run_app(app, "--help")
  assert out.returncode in (0, 1), out.stderr  # absl's --help exits with status 1
  for flag in ("--strategy", "--devices", "--logical_cpus", "--collective_timeout"):
    assert flag in out.stdout, flag
  assert "multi_worker" in out.stdout  # the help text comes along


def _constant_artifact(directory, value):
  """A fashion_mnist-shaped idc_ipc10 artifact whose images are all `value`."""
  from tfcondense import artifact  # pylint: disable=g-import-not-at-top
  from tfcondense.data import fashion_mnist  # pylint: disable=g-import-not-at-top
  images = np.full((100, 28, 28, 1), value, np.float32)
  labels = np.repeat(np.arange(10), 10).astype(np.int32)
  meta = dict(source="fashion_mnist", method="idc", ipc=10, factor=2,
              formation={"name": "uniform", "factor": 2}, seed=0,
              class_names=list(fashion_mnist.CLASS_NAMES))
  artifact.save_artifact(str(directory), images, labels, meta)


@pytest.mark.heavy
def test_load_manual_dir_wins_over_the_shipped_artifact(tmp_path):
  import tfcondense  # pylint: disable=g-import-not-at-top
  name = "condensed_fashion_mnist/idc_ipc10"
  data_dir = str(tmp_path / "tfds")
  # The shipped artifact, prepared into data_dir first (as an earlier session would).
  shipped = np.concatenate([x for x, _ in tfcondense.load(
      name, split="stored", data_dir=data_dir, normalize=False).as_numpy_iterator()])
  assert not np.all(shipped == 0.25)
  _constant_artifact(tmp_path / "mine" / "idc_ipc10", 0.25)
  for _ in range(2):  # a rebuild, then reuse of what was rebuilt
    ds = tfcondense.load(name, split="stored", data_dir=data_dir, normalize=False,
                         manual_dir=str(tmp_path / "mine"))
    x = np.stack([x for x, _ in ds.as_numpy_iterator()])
    assert x.shape == (100, 28, 28, 1) and np.all(x == 0.25)
  # A changed artifact in the same manual dir is picked up too.
  _constant_artifact(tmp_path / "mine" / "idc_ipc10", 0.5)
  ds = tfcondense.load(name, split="stored", data_dir=data_dir, normalize=False,
                       manual_dir=str(tmp_path / "mine"))
  assert np.all(np.stack([x for x, _ in ds.as_numpy_iterator()]) == 0.5)


def test_load_rejects_a_missing_manual_dir(tmp_path):
  import tfcondense  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  missing = str(tmp_path / "no_such_folder")
  with pytest.raises(InvalidConfigError, match="no_such_folder"):
    tfcondense.load("condensed_fashion_mnist/idc_ipc10", data_dir=str(tmp_path / "tfds"),
                    manual_dir=missing)
  assert not (tmp_path / "tfds").exists()
