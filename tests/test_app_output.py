"""What the apps print (issue 42): their own lines, not TensorFlow's start-up noise."""
import os
import re
import subprocess
import sys

import pytest

from test_apps import ROOT
from test_faults import DIGITS_IDC

#: TensorFlow's start-up noise on a CPU machine: the notices its libraries write while
#: loading, and its C++ log lines (`E0000 00:00:... cuda_platform.cc:52] failed call to
#: cuInit`).
NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cuda drivers|cuInit|"
                   r"^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def _run(*args, timeout=600):
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user
  env["TFCONDENSE_PROGRESS"] = "0"
  return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                        capture_output=True, timeout=timeout)


@pytest.mark.heavy
def test_a_tiny_condensation_prints_no_tensorflow_noise(tmp_path):
  out = _run("apps.condense", *DIGITS_IDC, "--workdir", str(tmp_path / "w"))
  assert out.returncode == 0, out.stderr
  assert "artifact:" in out.stdout
  assert not NOISE.search(out.stderr), out.stderr


@pytest.mark.heavy
def test_an_error_is_the_only_line_and_verbosity_brings_the_noise_back():
  bad = ("apps.evaluate", "--source", "digits", "--method", "kcentre")  # after TF loaded
  out = _run(*bad)
  assert out.returncode == 2
  assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
  assert out.stderr.startswith("error: unknown method 'kcentre'") and "kcenter" in out.stderr
  loud = _run(*bad, "--verbosity", "0")
  assert loud.returncode == 2 and NOISE.search(loud.stderr), loud.stderr
