"""The README's Python example, run as written at a tiny size, so it cannot drift.

Only the sizes change: the source is a tiny in-memory one, `minutes=30` becomes one
step, the `cpu` protocol the 4-step `smoke` and 3 repetitions 1; every other line runs as printed.
"""
import pathlib
import re

import pytest

from tests.fixtures import quadrant_source

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: (README text, what the test runs instead); each must appear in the example.
SHRINK = (('minutes=30', 'max_steps=1'), ('"cpu"', '"smoke"'), ("repetitions=3", "repetitions=1"))


def readme_example() -> str:
  text = (ROOT / "README.md").read_text(encoding="utf-8")
  section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
  blocks = re.findall(r"```python\n(.*?)```", section, re.S)
  assert blocks, "README.md's Python section has no ```python block"
  return blocks[0]


@pytest.mark.heavy
def test_readme_python_example_runs(monkeypatch, tmp_path, capsys):
  from tfcondense import data
  code = readme_example()
  for old, new in SHRINK:
    assert old in code, f"the README example no longer has {old}; update SHRINK"
    code = code.replace(old, new)
  tiny = quadrant_source(n_per_class=12, n_test=6, size=16)
  monkeypatch.setattr(data, "load_source", lambda name, **kw: tiny)
  monkeypatch.setenv("TFCONDENSE_PROGRESS", "0")
  monkeypatch.chdir(tmp_path)  # its runs/ folders land here
  exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # pylint: disable=exec-used
  out = capsys.readouterr().out
  assert "smoke" in out and "idc" in out  # the evaluations and the method list printed
  assert (tmp_path / "runs" / "kcenter10" / "evaluation.json").exists()
  assert (tmp_path / "runs" / "idc10" / "artifact" / "meta.json").exists()


@pytest.mark.parametrize("name", ["condense", "evaluate", "evaluate_artifact", "method_names",
                                  "RunOptions", "formed_from_artifact", "load_source"])
def test_top_level_names_are_callables_not_modules(name):
  import tfcondense as tfc
  from tfcondense import condensation, evaluation  # noqa: F401  (imported: no shadowing)
  assert callable(getattr(tfc, name))
