"""The test harness that forks apps from a preloaded server (tests/apprun.py) behaves as
a fresh `python` would: argv, working directory, environment, sys.path, output streams,
exit status, uncaught errors, timeouts."""
import os
import subprocess
import sys

import pytest

from tests import apprun

pytestmark = pytest.mark.heavy  # the server's start imports TensorFlow (about 6 s)

SCRIPT = '''
import json, os, sys
print(json.dumps(dict(argv=sys.argv[1:], cwd=os.getcwd(), var=os.environ.get("APPRUN_VAR"),
                      first=sys.path[0], extra=os.environ.get("PYTHONPATH", "") in sys.path,
                      stdin=sys.stdin.read())))
print("to stderr", file=sys.stderr)
if sys.argv[1:] == ["raise"]:
  raise ValueError("boom")
sys.exit(int(sys.argv[1]) if sys.argv[1:] and sys.argv[1].isdigit() else 0)
'''


@pytest.fixture
def script(tmp_path):
  path = tmp_path / "prog" / "show.py"
  path.parent.mkdir()
  path.write_text(SCRIPT)
  (tmp_path / "elsewhere").mkdir()
  return str(path)


@pytest.mark.parametrize("args", [(), ("3",), ("raise",), ("a b", "--flag=1")])
def test_a_forked_run_is_what_a_fresh_interpreter_gives(script, tmp_path, args):
  env = dict(os.environ, APPRUN_VAR="x y", PYTHONPATH=str(tmp_path / "lib"))
  cwd = str(tmp_path / "elsewhere")
  forked = apprun.run_script(script, *args, cwd=cwd, env=env, timeout=60)
  fresh = apprun._fresh([sys.executable, script, *args], cwd, env, 60)  # pylint: disable=protected-access
  assert forked.returncode == fresh.returncode
  assert forked.stdout == fresh.stdout
  if args == ("raise",):  # the same traceback's last line
    assert forked.stderr.strip().splitlines()[-1] == "ValueError: boom"
    assert fresh.stderr.strip().splitlines()[-1] == "ValueError: boom"
  else:
    assert forked.stderr == fresh.stderr == "to stderr\n"


def test_a_forked_module_runs_as_python_dash_m():
  forked = apprun.run_module("calendar", "2026", "12")
  fresh = apprun.launch("calendar", "2026", "12")
  assert forked.returncode == fresh.returncode == 0
  assert forked.stdout == fresh.stdout and "December 2026" in forked.stdout


def test_a_forked_run_past_its_timeout_is_killed(script, tmp_path):
  slow = tmp_path / "slow.py"
  slow.write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
  with pytest.raises(subprocess.TimeoutExpired) as e:
    apprun.run_script(str(slow), timeout=1)
  assert e.value.output == "started\n"
  assert apprun.run_script(script, "0").returncode == 0  # the server goes on
