"""Start-up shared by the absl apps: quiet TensorFlow the proper way, and turn
library errors into one-line messages with a non-zero exit status."""
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
  """Wraps an absl `main` so known errors print one line and exit with status 2."""

  @functools.wraps(main)
  def wrapped(argv):
    from tfcondense.errors import TfcondenseError  # pylint: disable=g-import-not-at-top
    from tfcondense.registry import UnknownNameError  # pylint: disable=g-import-not-at-top
    try:
      return main(argv)
    except (TfcondenseError, UnknownNameError) as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped
