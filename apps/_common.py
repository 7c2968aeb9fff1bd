"""Start-up shared by the absl apps: quiet TensorFlow the proper way, turn library
errors into one-line messages with a non-zero exit status, and the tf.distribute flags."""
from __future__ import annotations

import functools
import os
import sys

# Must happen before TensorFlow is imported anywhere.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def quiet_tensorflow():
  """Silences TF / TFDS start-up noise (never by disabling oneDNN, which costs 1.3-1.8x)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel("ERROR")
  tfds.disable_progress_bar()


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
      "or GPU, the cluster in TF_CONFIG). See README 'Scaling out with tf.distribute'.")
  flags.DEFINE_list("devices", [], "mirrored: devices to mirror over, e.g. /gpu:0,/gpu:1 "
                    "(default: every GPU, else the CPU).")
  flags.DEFINE_integer("logical_cpus", 0, "mirrored: split the CPU into N logical devices "
                       "(to try the strategy on a CPU machine).")
  flags.DEFINE_float("collective_timeout", None,
                     "multi_worker: seconds a collective may wait for the other workers "
                     "before the run stops (default none: a dead worker is still noticed "
                     "by the strategy's health check within about a minute).")


def make_cluster():
  """The `tfcondense.distribute.Cluster` the strategy flags ask for; call it before any
  other TensorFlow work (logical devices and collectives must come first)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tfcondense import distribute  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  return distribute.make_cluster(f.strategy, distribute.StrategyOptions(
      devices=tuple(f.devices), logical_cpus=f.logical_cpus,
      timeout_seconds=f.collective_timeout))
