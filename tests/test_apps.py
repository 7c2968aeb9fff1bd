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
  assert sorted(os.listdir(art)) == ["images.npy", "labels.npy", "meta.json"]
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
