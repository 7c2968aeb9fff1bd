"""Exceptions whose messages say how to fix the problem."""
import pickle


class TfcondenseError(Exception):
  """Base class of the library's errors."""


class SourceUnavailableError(TfcondenseError):
  """A data source cannot be read (missing files, offline download, bad layout)."""


class InvalidConfigError(TfcondenseError, ValueError):
  """A configuration value is out of range (IPC larger than a class, bad protocol...)."""


class BadFileError(TfcondenseError, ValueError):
  """A file's contents are not in the format expected (a truncated or foreign WAV...)."""


class CorruptArtifactError(TfcondenseError):
  """A condensed-set artifact directory is incomplete or inconsistent."""


class NonFiniteLossError(TfcondenseError, FloatingPointError):
  """A loss became NaN or infinite during training."""


class WorkdirError(TfcondenseError, OSError):
  """A workdir or output path cannot be written (read-only, full, a file in the way)."""


class RunInterruptedError(TfcondenseError):
  """A run stopped on SIGINT / SIGTERM after saving a checkpoint; rerun to resume."""


class DistributedError(TfcondenseError):
  """A tf.distribute run cannot go on (workers disagree, a method cannot be split)."""


class WorkerLostError(DistributedError):
  """A worker of a multi-worker run died or stopped answering; restart all to resume."""


def check_choice(what: str, value, options) -> str:
  """Returns `value` lower-cased if it is one of `options`, else raises naming them."""
  key = str(value).lower()
  if key not in options:
    raise InvalidConfigError(f"unknown {what} {value!r}; expected one of {', '.join(options)}")
  return key


class UnsafePickleError(TfcondenseError, pickle.UnpicklingError):
  """A pickle (a torch.save file) calls something outside the tensor-rebuild globals."""
