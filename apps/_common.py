"""Start-up shared by the absl apps: quiet TensorFlow the proper way, turn library
errors into one-line messages with a non-zero exit status, the tf.distribute flags, and
`run`, the entry point of each app's command (`tfcondense-condense`, ...).

Every app imports this module before anything that imports TensorFlow, and calls
`quiet_tensorflow()` first thing in its `main`. TensorFlow's start-up noise is then
silenced: its C++ log lines (the `cuInit` error line without a GPU) by
`TF_CPP_MIN_LOG_LEVEL=3`, and the notices its libraries write while they load, before
any log level applies (`All log messages before absl::InitializeLog() ...`, oneDNN's
notice, `Could not find cuda drivers`), by sending file descriptor 2 to /dev/null for
the `import tensorflow`. absl's `--verbosity 0` (or higher) brings all of it back; a
`TF_CPP_MIN_LOG_LEVEL` set in the environment is left as it is.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import sys

#: Whether the app chooses TensorFlow's C++ log level (the user did not set one).
_OWN_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
# Must happen before TensorFlow is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The command of each app in an installed package (setup.cfg's console_scripts).
SCRIPTS = {"condense": "tfcondense-condense", "evaluate": "tfcondense-evaluate",
           "bench": "tfcondense-bench", "continual": "tfcondense-continual",
           "listen": "tfcondense-listen", "make_speech": "tfcondense-make-speech",
           "export": "tfcondense-export"}


def _verbose() -> bool:
  """Whether absl's --verbosity was given, asking for INFO logs or more (absl's app
  sets 0 where it is not given, so only a given one counts)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  return (f.is_parsed() and "verbosity" in f and bool(f["verbosity"].present)
          and f.verbosity >= 0)


@contextlib.contextmanager
def _silenced_stderr():
  """Sends file descriptor 2 to /dev/null for the block (C++ code writes there
  directly); Python's own errors are printed after the block, as usual."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as null:
      os.dup2(null.fileno(), 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)


def quiet_tensorflow():
  """Imports TensorFlow and TFDS with their start-up noise silenced (see above; never by
  disabling oneDNN, which costs 1.3-1.8x), unless --verbosity is 0 or more."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  verbose = _verbose()
  first = "tensorflow" not in sys.modules
  if verbose and first and _OWN_LOG_LEVEL:
    del os.environ["TF_CPP_MIN_LOG_LEVEL"]  # TensorFlow's default: everything
  silence = first and not verbose
  with _silenced_stderr() if silence else contextlib.nullcontext():
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if not verbose:
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
  tfds.disable_progress_bar()


def usage(doc: str, package: str) -> str:
  """An app's docstring as its --help text: in an installed package (`package`
  tfcondense.apps) its `python -m apps.<app>` examples read as the app's command."""
  if not doc or package == "apps":
    return doc
  return re.sub(r"python -m apps\.(\w+)",
                lambda m: SCRIPTS.get(m.group(1), f"python -m {package}.{m.group(1)}"), doc)


def run(main):
  """Runs an app's absl `main` (its command's entry point, and `python -m`'s).

  absl's --help shows the `__main__` module's docstring and the flags of the program
  (`sys.argv[0]`); a command's `__main__` is a stub that defines none, so the app's
  docstring and flags are put there.
  """
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  module = sys.modules[main.__module__]
  sys.modules["__main__"].__doc__ = usage(module.__doc__, module.__package__)
  if module.__name__ != "__main__":
    for flag in flags.FLAGS.get_key_flags_for_module(module):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)


def friendly_errors(main):
  """Wraps an absl `main` so known errors (library errors, OS errors on the paths given)
  print one line and exit with status 2, and an interrupt prints one line and exits
  with 130.

  In a multi-worker run any failure ends the process at once (`os._exit`), so its
  collective server goes down with it and the other workers stop within seconds
  instead of waiting for it in a collective.
  """

  @functools.wraps(main)
  def wrapped(argv):
    from tfcondense.errors import TfcondenseError  # pylint: disable=g-import-not-at-top
    from tfcondense.registry import UnknownNameError  # pylint: disable=g-import-not-at-top
    from tfcondense.errors import RunInterruptedError  # pylint: disable=g-import-not-at-top
    try:
      return main(argv)
    except RunInterruptedError as e:  # a checkpoint was saved; 130 is the shell's Ctrl-C
      print(f"interrupted: {e}", file=sys.stderr)
      _exit(130)
    except KeyboardInterrupt:
      print("interrupted: nothing saved now (a rerun resumes from the last checkpoint, "
            "if any)", file=sys.stderr)
      _exit(130)
    except (TfcondenseError, UnknownNameError) as e:
      print(f"error: {e}", file=sys.stderr)
      _exit(2)
    except OSError as e:  # a file or folder the user named: the message names it
      print(f"error: {e}", file=sys.stderr)
      _exit(2)
    except Exception:  # pylint: disable=broad-except
      if not _multi_worker():
        raise
      import traceback  # pylint: disable=g-import-not-at-top
      traceback.print_exc()
      _exit(1)

  return wrapped


def _multi_worker() -> bool:
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  return "strategy" in f and f.is_parsed() and str(f.strategy).lower() == "multi_worker"


def _exit(code: int) -> None:
  if _multi_worker():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # pylint: disable=protected-access
  sys.exit(code)


def define_strategy_flags() -> None:
  """Defines --strategy, --devices, --logical_cpus and --collective_timeout.

  The flags belong to the app module that calls this, so that its `--help` lists them.
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  # absl credits a flag to the module calling DEFINE_*; disclaiming this one credits the
  # flags below to our caller (the app), whose key flags `--help` lists.
  flags.disclaim_key_flags()
  flags.DEFINE_string(
      "strategy", "default",
      "tf.distribute strategy: default (this process, one device), mirrored (every GPU of "
      "this machine, or --devices / --logical_cpus), multi_worker (one process per machine "
      "or GPU, the cluster in TF_CONFIG). See the project's README, 'Scaling out with "
      "tf.distribute'.")
  flags.DEFINE_list("devices", [], "mirrored: devices to mirror over, e.g. /gpu:0,/gpu:1 "
                    "(default: every GPU, else the CPU).")
  flags.DEFINE_integer("logical_cpus", 0, "mirrored: split the CPU into N logical devices "
                       "(to try the strategy on a CPU machine).")
  flags.DEFINE_float("collective_timeout", None,
                     "multi_worker: seconds a collective may wait for the other workers "
                     "before the run stops (default none: a dead worker is still noticed "
                     "by the strategy's health check within about a minute).")


def check_source(name: str) -> None:
  """Raises UnknownNameError unless `name` is a registered source; cheap (the source
  registry loads without TensorFlow), so a misspelt --source fails in a second."""
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  data.SOURCES.get(name)


def define_imports_flag() -> None:
  """Defines --imports (modules to import first: they register their own methods)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.disclaim_key_flags()
  flags.DEFINE_list("imports", [],
                    "Python modules to import before anything else, e.g. my_methods: a "
                    "module that registers a method of its own (the project's README, "
                    "'Adding a method') makes it known to --method.")


def import_modules() -> None:
  """Imports the --imports modules; one that cannot be imported is a one-line error."""
  import importlib  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  for name in flags.FLAGS.imports:
    try:
      importlib.import_module(name)
    except ImportError as e:
      raise InvalidConfigError(f"--imports {name}: cannot import it ({e})") from e


def make_cluster():
  """The `tfcondense.cluster.Cluster` the strategy flags ask for; call it before any
  other TensorFlow work (logical devices and collectives must come first)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tfcondense import cluster  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  return cluster.make_cluster(f.strategy, cluster.StrategyOptions(
      devices=tuple(f.devices), logical_cpus=f.logical_cpus,
      timeout_seconds=f.collective_timeout))
