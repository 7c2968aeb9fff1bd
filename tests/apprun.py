"""Runs the absl apps for the tests as `python -m apps.<app> ...` would, from a process
that has TensorFlow loaded already.

Why: a fresh interpreter spends about 6 CPU-seconds importing TensorFlow, Keras, TFDS and
scikit-learn before an app does anything, and the suite launches apps about fifty times
(a third of its CPU time). Each pytest worker starts one server (`python apprun.py
--serve`) that imports those libraries once, without running a TensorFlow op (so no
thread pool exists yet and forking is safe; the library does not support forking after
its runtime starts), and forks a child per request. The child does what `python -m` does:
it takes the request's working directory, environment, `sys.argv` and `sys.path` (the
working directory, then PYTHONPATH), points file descriptors 0 / 1 / 2 at /dev/null and
two files, runs the module as `__main__` (`runpy`), runs the exit handlers and exits with
the status Python would give. Its start takes about 0.3 s instead of 6.

What it cannot show: anything TensorFlow does while it loads (its start-up notices, the
log level read at import). The tests of start-up output (`tests/test_app_output.py`,
"refused before TensorFlow loads") and of signals, installed commands and multi-process
runs launch real interpreters (`launch`).

Python's `multiprocessing` forkserver was not used: it runs a function, not a module
as `__main__` with its own argv, cwd and file descriptors.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the server imports before it forks (the apps import these first thing).
_PRELOAD = ("tensorflow", "tensorflow_datasets", "keras", "sklearn.cluster", "numpy",
            "absl.app", "absl.flags", "absl.logging", "tqdm", "PIL.Image",
            "matplotlib", "tfcondense", "tfcondense.api", "tfcondense.evaluation",
            "tfcondense.experiment", "tfcondense.methods", "tfcondense.bench.suites",
            "tfcondense.continual")

_server: subprocess.Popen | None = None


def launch(module: str, *args: str, cwd: str = ROOT, env: dict | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m module args...` in a fresh interpreter (output captured, text)."""
  return _fresh([sys.executable, "-m", module, *args], cwd, env, timeout)


def _fresh(argv, cwd, env, timeout) -> subprocess.CompletedProcess:
  """Runs `argv` in a fresh process, stdin at /dev/null as in a forked run."""
  env = dict(os.environ if env is None else env)
  return subprocess.run(argv, cwd=cwd, env=env, text=True, capture_output=True,
                        timeout=timeout, stdin=subprocess.DEVNULL)


def run_module(module: str, *args: str, cwd: str = ROOT, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m module args...` forked from the preloaded server: the same result as
  `launch` (return code, stdout, stderr as text), about 6 CPU-seconds sooner.
  TFCONDENSE_TEST_FORK=0 launches fresh interpreters instead.

  Raises:
    subprocess.TimeoutExpired: the run took longer than `timeout` seconds (it is killed).
  """
  env = dict(os.environ if env is None else env)
  if os.environ.get("TFCONDENSE_TEST_FORK", "1") == "0":
    return launch(module, *args, cwd=cwd, env=env, timeout=timeout)
  return _request([sys.executable, "-m", module, *args], dict(module=module), args, cwd,
                  env, timeout)


def run_script(path: str, *args: str, cwd: str = ROOT, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
  """`python path args...` forked from the preloaded server (as `run_module`)."""
  env = dict(os.environ if env is None else env)
  argv = [sys.executable, path, *args]
  if os.environ.get("TFCONDENSE_TEST_FORK", "1") == "0":
    return _fresh(argv, cwd, env, timeout)
  return _request(argv, dict(path=os.path.abspath(path)), args, cwd, env, timeout)


def _request(argv, target, args, cwd, env, timeout) -> subprocess.CompletedProcess:
  """Sends one run to this worker's server (started on first use); its result."""
  global _server
  if _server is None or _server.poll() is not None:
    _server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
  with tempfile.TemporaryDirectory(prefix="apprun-") as tmp:
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    request = dict(target, args=list(args), cwd=os.path.abspath(cwd), env=env,
                   timeout=timeout, stdout=out, stderr=err)
    _server.stdin.write(json.dumps(request) + "\n")
    _server.stdin.flush()
    line = _server.stdout.readline()
    if not line:
      raise RuntimeError(f"the app server ended (status {_server.wait()})")
    reply = json.loads(line)
    with open(out, encoding="utf-8", errors="replace") as f:
      stdout = f.read()
    with open(err, encoding="utf-8", errors="replace") as f:
      stderr = f.read()
  if reply["timed_out"]:
    raise subprocess.TimeoutExpired(argv, timeout, output=stdout, stderr=stderr)
  return subprocess.CompletedProcess(argv, reply["returncode"], stdout, stderr)


# -- the server ---------------------------------------------------------------------------

def _child(request: dict, base_path: list[str]) -> None:
  """In the forked child: become `python -m module args` (or `python path args`) and
  exit (never returns)."""
  import atexit  # pylint: disable=g-import-not-at-top
  import runpy  # pylint: disable=g-import-not-at-top
  code = 1
  try:
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    script = request.get("path")
    first = os.path.dirname(script) if script else request["cwd"]  # as Python does
    sys.path[:] = [first, *extra, *base_path]
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
      f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
      os.dup2(f, fd)
      os.close(f)
    sys.argv = [script or request["module"], *request["args"]]  # -m: runpy sets the file
    try:
      if script:
        runpy.run_path(script, run_name="__main__")
      else:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
      code = 0
    except SystemExit as e:
      if e.code is None:
        code = 0
      elif isinstance(e.code, int):
        code = e.code
      else:
        print(e.code, file=sys.stderr)
        code = 1
    except BaseException:  # pylint: disable=broad-except
      import traceback  # pylint: disable=g-import-not-at-top
      traceback.print_exc()
      code = 1
    atexit._run_exitfuncs()  # pylint: disable=protected-access
  finally:
    try:
      sys.stdout.flush()
      sys.stderr.flush()
    finally:
      os._exit(code & 0xFF)  # pylint: disable=protected-access


def _serve() -> None:
  """Imports the libraries, then forks one child per request line on stdin."""
  import importlib  # pylint: disable=g-import-not-at-top
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  saved = os.dup(2)  # the libraries' load-time notices go to /dev/null (apps do the same)
  with open(os.devnull, "w") as null:
    os.dup2(null.fileno(), 2)
  try:
    for name in _PRELOAD:
      importlib.import_module(name)
  finally:
    os.dup2(saved, 2)
    os.close(saved)
  base_path = sys.path[1:]  # without the script's own folder
  replies = sys.stdout
  for line in sys.stdin:
    request = json.loads(line)
    replies.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      _child(request, base_path)
    deadline = time.monotonic() + request["timeout"]
    timed_out = False
    while True:
      done, status = os.waitpid(pid, os.WNOHANG)
      if done:
        break
      if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        timed_out = True
        break
      time.sleep(0.02)
    returncode = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
                  else -os.WTERMSIG(status))
    replies.write(json.dumps(dict(returncode=returncode, timed_out=timed_out)) + "\n")
    replies.flush()


if __name__ == "__main__":
  if sys.argv[1:] != ["--serve"]:
    sys.exit("usage: python tests/apprun.py --serve  (started by tests/apprun.run_module)")
  _serve()
