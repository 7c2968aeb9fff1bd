"""The absl apps, run as a user would (subprocesses)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"


def run_app(*args, timeout=300):
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                        capture_output=True, timeout=timeout)


def test_evaluate_help_explains_every_flag():
  out = run_app("apps.evaluate", "--help")
  assert out.returncode in (0, 1), out.stderr  # absl's --help exits with status 1
  assert "python -m apps.evaluate --source fashion_mnist" in out.stdout  # the docstring
  for flag in ("--source", "--method", "--artifact", "--ipc", "--model", "--augmentation",
               "--protocol", "--repetitions", "--seed", "--output"):
    assert flag in out.stdout, flag


def test_evaluate_bad_input_is_one_clear_line():
  out = run_app("apps.evaluate", "--source", "cifar11")
  assert out.returncode == 2
  assert "error: unknown source 'cifar11'" in out.stderr and "cifar10" in out.stderr
  assert "Traceback" not in out.stderr


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="dataset-fashion-mnist not installed")
def test_evaluate_end_to_end_writes_rows_and_artifacts_and_resumes(tmp_path):
  out_json = tmp_path / "rows.json"
  args = ["apps.evaluate", "--source", "fashion_mnist", "--method", "random,full",
          "--ipc", "2", "--limit_per_class", "20", "--protocol", "smoke",
          "--repetitions", "1", "--output", str(out_json), "--save_artifacts",
          str(tmp_path / "arts")]
  out = run_app(*args)
  assert out.returncode == 0, out.stderr
  rows = json.loads(out_json.read_text())["rows"]
  assert [r["method"] for r in rows] == ["random", "full"]
  assert rows[0]["num_images"] == 20 and rows[1]["num_images"] == 200
  assert "| random | 2 |" in out.stdout
  art = tmp_path / "arts" / "fashion_mnist_random_ipc2"
  assert sorted(os.listdir(art)) == ["evaluation.json", "images.npy", "labels.npy",
                                     "meta.json"]
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


def test_condense_end_to_end_then_evaluate_artifact(tmp_path):
  work = tmp_path / "w"
  args = ["apps.condense", "--source", "digits", "--method", "idc", "--ipc", "1",
          "--outer_iterations", "1", "--inner_iterations", "2", "--workdir", str(work),
          "--evaluate", "--protocol", "smoke", "--repetitions", "1"]
  out = run_app(*args)
  assert out.returncode == 0, out.stderr
  assert "2/2 iterations" in out.stdout and "evaluation:" in out.stdout
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


def test_condense_dm_with_set_flags(tmp_path):
  out = run_app("apps.condense", "--source", "digits", "--method", "dm", "--ipc", "2",
                "--iterations", "3", "--set", "real_per_class=32", "--set",
                "strategy='color_crop'", "--workdir", str(tmp_path))
  assert out.returncode == 0, out.stderr
  assert "3/3 iterations" in out.stdout
  meta = json.loads((tmp_path / "artifact" / "meta.json").read_text())
  assert meta["config"]["real_per_class"] == 32 and meta["config"]["strategy"] == "color_crop"
