"""Exceptions whose messages say how to fix the problem."""


class TfcondenseError(Exception):
  """Base class of the library's errors."""


class SourceUnavailableError(TfcondenseError):
  """A data source cannot be read (missing files, offline download, bad layout)."""


class InvalidConfigError(TfcondenseError, ValueError):
  """A configuration value is out of range (IPC larger than a class, bad protocol...)."""


class CorruptArtifactError(TfcondenseError):
  """A condensed-set artifact directory is incomplete or inconsistent."""


class NonFiniteLossError(TfcondenseError, FloatingPointError):
  """A loss became NaN or infinite during training."""


def check_choice(what: str, value, options) -> str:
  """Returns `value` lower-cased if it is one of `options`, else raises naming them."""
  key = str(value).lower()
  if key not in options:
    raise InvalidConfigError(f"unknown {what} {value!r}; expected one of {', '.join(options)}")
  return key
