"""The wheel (issue 42): everything inside the `tfcondense` namespace, one command per
app, help texts that make sense without the repository."""
import configparser
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from apps import _common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "tfcondense", "apps",
            "datasets_builders")
_TOP_LEVEL_IMPORT = re.compile(r"^\s*(from|import)\s+(apps|datasets_builders)\b", re.M)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
  """A wheel built from a copy of the sources (the checkout's build/ stays untouched);
  without build isolation, so that it needs no network."""
  tmp = tmp_path_factory.mktemp("wheel")
  src = tmp / "src"
  for name in _SOURCES:
    path = os.path.join(ROOT, name)
    if not os.path.exists(path):
      continue
    if os.path.isdir(path):
      shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    else:
      os.makedirs(src, exist_ok=True)
      shutil.copy(path, src / name)
  out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp / "dist"), str(src)],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr
  (path,) = (tmp / "dist").iterdir()
  return str(path)


@pytest.mark.heavy
def test_the_wheel_installs_only_the_tfcondense_namespace(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"tfcondense", "tfcondense-0.1.0.dist-info"}, top
    for module in ("apps/_common.py", "apps/condense.py", "datasets_builders/_condensed.py",
                   "datasets_builders/condensed_fashion_mnist/"
                   "condensed_fashion_mnist_dataset_builder.py",
                   "datasets_builders/condensed_fashion_mnist/README.md"):
      assert f"tfcondense/{module}" in names, module
    assert any(n.startswith("tfcondense/datasets_builders/condensed_fashion_mnist/"
                            "artifacts/") for n in names)  # the shipped sets
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert z.read(top_level).decode().split() == ["tfcondense"]
    # No module of the wheel imports a top-level `apps` or `datasets_builders`.
    for name in names:
      if name.endswith(".py"):
        found = _TOP_LEVEL_IMPORT.search(z.read(name).decode("utf-8"))
        assert found is None, (name, found)


def test_the_wheel_has_one_command_per_app(wheel):
  with zipfile.ZipFile(wheel) as z:
    (path,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
    entry = configparser.ConfigParser()
    entry.read_string(z.read(path).decode())
  scripts = dict(entry["console_scripts"])
  assert scripts == {command: f"tfcondense.apps.{app}:run"
                     for app, command in _common.SCRIPTS.items()}
  assert {f"{app}.py" for app in _common.SCRIPTS} <= set(os.listdir(os.path.join(ROOT,
                                                                                  "apps")))


def test_the_wheel_requires_only_what_is_used(wheel):
  with zipfile.ZipFile(wheel) as z:
    (path,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
    required = [s.split()[1] for s in z.read(path).decode().splitlines()
                if s.startswith("Requires-Dist:") and "extra ==" not in s]
  names = {re.split(r"[<>=!;]", r)[0].lower() for r in required}
  assert not names & {"tensorflow-probability", "tf-keras"}  # nothing imported them
  assert {"tensorflow", "keras", "tensorflow-datasets", "numpy", "absl-py"} <= names


def test_installed_apps_run_and_their_help_names_the_commands(wheel, tmp_path):
  target = tmp_path / "site"
  out = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                        "--target", str(target), wheel], capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr
  env = dict(os.environ, PYTHONPATH=str(target))
  for command in ([str(target / "bin" / "tfcondense-condense")],
                  [sys.executable, "-m", "tfcondense.apps.condense"]):
    helped = subprocess.run([*command, "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode in (0, 1), helped.stderr  # absl's --help exits with 1
    assert "tfcondense-condense --source fashion_mnist --method idc" in helped.stdout
    assert "python -m apps." not in helped.stdout
    for flag in ("--lr_img", "--allow_change", "--collective_timeout"):  # not in
      assert flag in helped.stdout, (command, flag)  # the docstring: the flags' list
  assert str(target) in subprocess.run(  # the installed copy, not the checkout
      [sys.executable, "-c", "import tfcondense.apps._common as c; print(c.__file__)"],
      cwd=tmp_path, env=env, capture_output=True, text=True).stdout


def test_help_texts_read_as_the_layout_they_run_in():
  doc = "  python -m apps.condense --ipc 1\n  python -m apps.make_speech --out x\n"
  assert _common.usage(doc, "apps") == doc  # a repository checkout
  assert _common.usage(doc, "tfcondense.apps") == (
      "  tfcondense-condense --ipc 1\n  tfcondense-make-speech --out x\n")
  repository_only = re.compile(r"scripts/\w|(?<!project's )BENCHMARKS\.md|"
                               r"(?<!project's )README(?!\.txt)")
  for name in [*_common.SCRIPTS, "_common"]:  # no pointer to a file a pip user lacks
    with open(os.path.join(ROOT, "apps", f"{name}.py"), encoding="utf-8") as f:
      assert not repository_only.search(f.read()), name
