"""The absl apps, run as a user would (`python -m apps.<app>`, forked from a process
with TensorFlow loaded: tests/apprun.py; a fresh interpreter where start-up matters)."""
import json
import os

import pytest

from tests import apprun

ROOT = apprun.ROOT
FASHION = "/usr/share/datasets/fashion-mnist"


def run_app(*args, timeout=300, fresh=False):
  """`python -m args...` with progress bars off; `fresh`: in a new interpreter."""
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  run = apprun.launch if fresh else apprun.run_module
  return run(*args, cwd=ROOT, env=env, timeout=timeout)


def test_evaluate_help_explains_every_flag():
  out = run_app("apps.evaluate", "--help")
  assert out.returncode in (0, 1), out.stderr  # absl's --help exits with status 1
  assert "python -m apps.evaluate --source fashion_mnist" in out.stdout  # the docstring
  for flag in ("--source", "--method", "--artifact", "--ipc", "--model", "--augmentation",
               "--protocol", "--repetitions", "--seed", "--output"):
    assert flag in out.stdout, flag


def test_evaluate_bad_input_is_one_clear_line():
  out = run_app("apps.evaluate", "--source", "cifar11", "--verbosity", "0", fresh=True)
  assert out.returncode == 2
  assert "error: unknown source 'cifar11'" in out.stderr and "cifar10" in out.stderr
  assert "oneDNN" not in out.stderr  # refused before TensorFlow loads (even when verbose)
  assert "Traceback" not in out.stderr


@pytest.mark.heavy
@pytest.mark.skipif(not os.path.isdir(FASHION), reason="dataset-fashion-mnist not installed")
def test_evaluate_end_to_end_writes_rows_and_artifacts_and_resumes(tmp_path):
  # Digits: the same code path as Fashion-MNIST with a 360-image test split (the test
  # accuracies over Fashion-MNIST's 10,000 were most of this test's time).
  out_json = tmp_path / "rows.json"
  args = ["apps.evaluate", "--source", "digits", "--method", "random,full",
          "--ipc", "2", "--limit_per_class", "20", "--protocol", "smoke",
          "--repetitions", "1", "--output", str(out_json), "--save_artifacts",
          str(tmp_path / "arts")]
  out = run_app(*args)
  assert out.returncode == 0, out.stderr
  rows = json.loads(out_json.read_text())["rows"]
  assert [r["method"] for r in rows] == ["random", "full"]
  assert rows[0]["num_images"] == 20 and rows[1]["num_images"] == 200
  assert "| random | 2 |" in out.stdout
  art = tmp_path / "arts" / "digits_random_ipc2"
  assert sorted(os.listdir(art)) == ["evaluation.json", "images.npy", "labels.npy",
                                     "meta.json", "stored.png"]
  reported = json.loads((art / "evaluation.json").read_text())
  assert reported["acc_mean"] == rows[0]["acc_mean"] and reported["seed"] == 0
  # A second run skips finished cells and evaluates the saved artifact.
  out = run_app(*args[:-4], "--output", str(out_json), "--method", "random",
                "--artifact", str(art))
  assert out.returncode == 0, out.stderr
  assert "skip random@2" in out.stdout
  rows = json.loads(out_json.read_text())["rows"]
  assert len(rows) == 3 and rows[-1]["key"].startswith("artifact:")
  bad = run_app("apps.evaluate", "--source", "fashion_mnist", "--ipc", "7000",
                "--method", "random")
  assert bad.returncode == 2 and "IPC 7000 exceeds the 6000 images" in bad.stderr


def test_condense_help_explains_the_main_flags():
  out = run_app("apps.condense", "--help")
  assert out.returncode in (0, 1), out.stderr
  assert "python -m apps.condense --source fashion_mnist --method idc" in out.stdout
  for flag in ("--method", "--ipc", "--factor", "--formation", "--init", "--workdir",
               "--minutes", "--evaluate", "--precision", "--lr_img"):
    assert flag in out.stdout, flag


@pytest.mark.heavy
def test_condense_bad_input_is_one_clear_line(tmp_path):
  out = run_app("apps.condense", "--source", "digits", "--ipc", "500", "--workdir",
                str(tmp_path))
  assert out.returncode == 2 and "IPC 500 exceeds" in out.stderr, out.stderr
  assert "Traceback" not in out.stderr
  out = run_app("apps.condense", "--source", "digits", "--formation", "zigzag",
                "--workdir", str(tmp_path / "z"))
  assert out.returncode == 2 and "unknown formation 'zigzag'" in out.stderr, out.stderr
  out = run_app("apps.condense", "--source", "digits", "--method", "dm", "--factor", "2",
                "--outer_iterations", "3", "--workdir", str(tmp_path / "d"))
  assert out.returncode == 2 and "dm has no setting(s) ['outer_iterations']" in out.stderr
  out = run_app("apps.condense", "--source", "digits", "--method", "dm", "--set", "nope",
                "--workdir", str(tmp_path / "e"))
  assert out.returncode == 2 and "--set expects key=value" in out.stderr


@pytest.mark.heavy
def test_condense_end_to_end_then_evaluate_artifact(tmp_path):
  work = tmp_path / "w"
  args = ["apps.condense", "--source", "digits", "--method", "idc", "--ipc", "1",
          "--outer_iterations", "1", "--inner_iterations", "2", "--workdir", str(work),
          "--set", "model='convnet'", "--set", "model_options=(('depth', 1), ('width', 8))",
          "--evaluate", "--protocol", "smoke", "--repetitions", "1"]
  out = run_app(*args)
  assert out.returncode == 0, out.stderr
  assert "2/2 iterations" in out.stdout
  table = [line for line in out.stdout.splitlines() if line.startswith("|")]
  assert table[0].startswith("| method | ipc | images |") and "| idc | 1 | 40 |" in table[2]
  assert "10 stored images" in out.stdout and "-> 40 formed images" in out.stdout
  art = work / "artifact"
  assert {"images.npy", "labels.npy", "meta.json", "stored.png", "formed.png",
          "evaluation.json"} <= set(os.listdir(art))
  # apps.evaluate trains on the formed images of the artifact (40, not the 10 stored).
  out = run_app("apps.evaluate", "--source", "digits", "--artifact", str(art), "--protocol",
                "smoke", "--repetitions", "1", "--output", str(tmp_path / "rows.json"))
  assert out.returncode == 0, out.stderr
  rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
  assert rows[0]["num_images"] == 40 and rows[0]["method"] == "idc"
  # The same table as apps.condense printed, and the same set of the same seed.
  again = [line for line in out.stdout.splitlines() if line.startswith("|")]
  assert again[:2] == table[:2]
  assert again[2].split("|")[1:7] == table[2].split("|")[1:7]


@pytest.mark.heavy
def test_condense_and_evaluate_take_every_kind_of_method(tmp_path):
  # A selection method through apps.condense: selected, written, evaluated.
  out = run_app("apps.condense", "--source", "digits", "--method", "random", "--ipc", "2",
                "--artifact_dir", str(tmp_path / "r"), "--evaluate", "--protocol", "smoke",
                "--repetitions", "1")
  assert out.returncode == 0, out.stderr
  assert "random digits ipc 2: selected 20 images" in out.stdout
  assert "| random | 2 | 20 |" in out.stdout
  assert (tmp_path / "r" / "evaluation.json").exists()
  # A synthesis method through apps.evaluate needs a budget, then condenses and evaluates;
  # a method of --imports is known to both.
  out = run_app("apps.evaluate", "--source", "digits", "--method", "dm", "--ipc", "1",
                "--protocol", "smoke")
  assert out.returncode == 2 and "needs a budget: --minutes or --max_steps" in out.stderr
  out = run_app("apps.evaluate", "--source", "digits", "--method", "dm,toy_first",
                "--ipc", "1", "--max_steps", "2", "--imports", "tests.toy_methods",
                "--protocol", "smoke", "--repetitions", "1", "--save_artifacts",
                str(tmp_path / "s"))
  assert out.returncode == 0, out.stderr
  assert "| dm | 1 | 10 |" in out.stdout and "| toy_first | 1 | 10 |" in out.stdout
  assert (tmp_path / "s" / "digits_dm_ipc1" / "artifact" / "images.npy").exists()


@pytest.mark.heavy
def test_condense_dm_with_set_flags(tmp_path):
  out = run_app("apps.condense", "--source", "digits", "--method", "dm", "--ipc", "2",
                "--iterations", "3", "--set", "real_per_class=32", "--set",
                "strategy='color_crop'", "--workdir", str(tmp_path))
  assert out.returncode == 0, out.stderr
  assert "3/3 iterations" in out.stdout
  meta = json.loads((tmp_path / "artifact" / "meta.json").read_text())
  assert meta["config"]["real_per_class"] == 32 and meta["config"]["strategy"] == "color_crop"
