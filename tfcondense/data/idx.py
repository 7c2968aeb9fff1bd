"""Reader for the IDX format of (Fashion-)MNIST, with header and size checks."""
from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from tfcondense.errors import SourceUnavailableError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

_DTYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str, magic: int) -> np.ndarray:
  """Reads an IDX file, gzipped when its name ends in .gz.

  Args:
    path: the file.
    magic: the expected magic number, e.g. IMAGES_MAGIC.

  Returns:
    The array, shaped as the header says.

  Raises:
    SourceUnavailableError: the file cannot be read, is not gzip, has the wrong magic
      number, or is truncated / has trailing bytes. The message names the file.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError, zlib.error) as e:
    raise SourceUnavailableError(
        f"cannot read {path}: {e}. The file is corrupt or truncated; download it "
        "again.") from e
  return parse_idx(data, path, magic)


def parse_idx(data: bytes, name: str, magic: int) -> np.ndarray:
  """Parses IDX bytes; `name` is used in error messages."""

  def fail(why: str) -> SourceUnavailableError:
    return SourceUnavailableError(
        f"{name} is not a valid IDX file: {why}. The file is corrupt or truncated; "
        "download it again.")

  if len(data) < 4:
    raise fail(f"only {len(data)} bytes")
  found = struct.unpack(">I", data[:4])[0]
  if found != magic:
    raise fail(f"magic number 0x{found:08x}, expected 0x{magic:08x}")
  code, ndim = data[2], data[3]
  dtype = _DTYPES[code]  # the magic check above guarantees a known code
  header = 4 + 4 * ndim
  if len(data) < header:
    raise fail("header cut short")
  dims = struct.unpack(f">{ndim}I", data[4:header])
  count = int(np.prod(dims, dtype=np.int64))
  expected = header + count * dtype.itemsize
  if len(data) != expected:
    raise fail(f"{len(data)} bytes for dims {dims}, expected {expected}")
  return np.frombuffer(data, dtype, count=count, offset=header).reshape(dims)


def encode_idx(array: np.ndarray) -> bytes:
  """IDX bytes of a uint8 array (used to write test fixtures)."""
  array = np.ascontiguousarray(array, dtype=np.uint8)
  head = struct.pack(">I", 0x0800 | array.ndim)
  head += struct.pack(f">{array.ndim}I", *array.shape)
  return head + array.tobytes()
