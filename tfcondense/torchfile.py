"""`torch.save` files read and written without PyTorch and without running their code.

The field's condensed sets (DC / DSA / DM, MTT, DATM, IDC) and NAS-Bench-201's results
are PyTorch pickles. `load` reads them with a restricted unpickler: only plain
containers, numbers, strings, numpy scalars and the globals that rebuild a tensor
(`torch._utils._rebuild_tensor[_v2]`, `_rebuild_parameter`, the typed storage classes)
are accepted, and a tensor comes back as a numpy array (or as None with
`tensors="skip"`, when only the metadata matters). Anything else (`os.system`, a model
class, ...) raises `UnsafePickleError` before it is called: a file from the internet is
data, never code.

Both serialisations of `torch.save` are understood (PyTorch's `torch/serialization.py`
documents them):

* the zip archive of torch >= 1.6: `<name>/data.pkl` (pickle protocol 2, storages as
  persistent ids `('storage', <type>, <key>, <location>, <numel>)`), the raw bytes of
  storage `<key>` in `<name>/data/<key>`, `<name>/version` and `<name>/byteorder`;
* the legacy stream: pickled magic number, protocol version and system info, the
  object, the list of storage keys, then per storage an int64 element count and its
  bytes.

`save` writes the zip layout (protocol 2, records aligned to 64 bytes as torch's own
writer does), with numpy arrays as tensors, which `torch.load(path)` (also with
`weights_only=True`) reads back as tensors.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, BinaryIO, Dict, Optional

import numpy as np

from tfcondense import fileio
from tfcondense.errors import InvalidConfigError, SourceUnavailableError, UnsafePickleError

TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL_VERSION = 1001
#: The zip layout's `version` record that torch >= 1.6 writes and reads.
ZIP_VERSION = b"3\n"
#: torch's writer aligns every record's data to this many bytes (for mmap loading).
ALIGNMENT = 64

#: torch's typed storage classes (module `torch`) -> numpy dtype of their elements;
#: "bfloat16" has no numpy dtype and is widened to float32 on reading.
STORAGE_DTYPES: Dict[str, str] = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
_NUMPY_TO_STORAGE = {v: k for k, v in STORAGE_DTYPES.items() if v != "bfloat16"}

#: Non-torch globals a results file may hold (containers and numpy scalars / arrays).
SAFE_GLOBALS = frozenset({
    ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "range"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
})
#: The tensor-rebuild functions of `torch._utils` (what a tensor pickles as).
REBUILD_FUNCTIONS = frozenset({"_rebuild_tensor", "_rebuild_tensor_v2",
                               "_rebuild_parameter"})


class _StorageType:
  """Stands for a `torch.<T>Storage` class: the element dtype of a storage."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = STORAGE_DTYPES[name]


class _Storage:
  """A storage met in the pickle; its bytes are attached once read."""

  def __init__(self, key: str, storage_type: _StorageType):
    self.key = key
    self.type = storage_type
    self.array: Optional[np.ndarray] = None  # flat, set by _attach


class _Pending:
  """A tensor whose storage bytes may not have been read yet (legacy layout)."""

  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset = storage, int(offset)
    self.size = tuple(int(s) for s in size)
    self.stride = tuple(int(s) for s in stride)

  def materialise(self, where: str) -> np.ndarray:
    flat = self.storage.array
    if flat is None:
      raise SourceUnavailableError(f"{where}: the bytes of storage {self.storage.key} are "
                                   "missing; the file is truncated")
    if any(s < 0 for s in self.size + self.stride) or len(self.size) != len(self.stride):
      raise SourceUnavailableError(f"{where}: a tensor has an invalid size {self.size} / "
                                   f"stride {self.stride}")
    count = int(np.prod(self.size)) if self.size else 1
    if count == 0:
      return np.zeros(self.size, flat.dtype)
    end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
    if self.offset < 0 or end > len(flat):
      raise SourceUnavailableError(
          f"{where}: a tensor reads elements up to {end} of a storage of {len(flat)}; the "
          "file is truncated or corrupt")
    if not self.size:  # a 0-d tensor (as_strided reads shape () as "keep the shape")
      return np.array(flat[self.offset])
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], shape=self.size,
        strides=tuple(s * flat.itemsize for s in self.stride), writeable=False)
    return np.array(view)  # a contiguous copy


def _skip(*args, **kwargs):
  del args, kwargs
  return None


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
  """`torch._utils._rebuild_tensor[_v2]`: a tensor viewing `storage` (resolved later)."""
  if not isinstance(storage, _Storage):
    raise UnsafePickleError("a tensor was rebuilt from something other than a storage")
  return _Pending(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  """`torch._utils._rebuild_parameter`: a parameter is its data."""
  return data


class _Unpickler(pickle.Unpickler):
  """Unpickles containers, numbers, numpy scalars and tensors; refuses anything else.

  Args:
    file: the pickle stream.
    where: the file name, for messages.
    keep_tensors: rebuild tensors (else they become None and no bytes are read).
    storages: persistent-id storages by key, filled while unpickling.
  """

  def __init__(self, file, where: str, keep_tensors: bool, storages: Dict[str, _Storage]):
    super().__init__(file, encoding="utf-8")
    self.where = where
    self.keep_tensors = keep_tensors
    self.storages = storages

  def find_class(self, module, name):
    if (module, name) in SAFE_GLOBALS:
      return super().find_class(module, name)
    if module == "torch._utils" and name in REBUILD_FUNCTIONS:
      if not self.keep_tensors:
        return _skip
      return _rebuild_parameter if name == "_rebuild_parameter" else _rebuild_tensor
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    if module == "torch" and name == "Size":
      return tuple
    raise UnsafePickleError(
        f"refusing to load {module}.{name} from {self.where}: only containers, numbers, "
        "strings and tensors are read from a torch.save file (it may run code; load it "
        "with PyTorch only if you trust it)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise UnsafePickleError(f"{self.where}: unexpected persistent id {pid!r:.80}")
    key = str(pid[2])
    if key not in self.storages:
      self.storages[key] = _Storage(key, pid[1])
    storage = self.storages[key]
    view = pid[5] if len(pid) > 5 else None
    if view is not None:  # legacy storage view: (view key, offset, size)
      raise SourceUnavailableError(f"{self.where}: storage views of torch < 0.4 files "
                                   "are not supported")
    return storage


def _as_numpy_dtype(name: str) -> np.dtype:
  return np.dtype("uint16" if name == "bfloat16" else name)


def _attach(storage: _Storage, data: bytes, byteorder: str, where: str) -> None:
  dtype = _as_numpy_dtype(storage.type.dtype).newbyteorder("<" if byteorder == "little"
                                                           else ">")
  if len(data) % dtype.itemsize:
    raise SourceUnavailableError(f"{where}: storage {storage.key} has {len(data)} bytes, "
                                 f"not a whole number of {storage.type.dtype} elements")
  flat = np.frombuffer(data, dtype).astype(dtype.newbyteorder("="))
  if storage.type.dtype == "bfloat16":  # the high half of a float32
    flat = (flat.astype(np.uint32) << 16).view(np.float32)
  storage.array = flat


def _resolve(obj: Any, where: str) -> Any:
  """Replaces every pending tensor in plain containers by its numpy array."""
  if isinstance(obj, _Pending):
    return obj.materialise(where)
  if isinstance(obj, collections.OrderedDict):
    return collections.OrderedDict((k, _resolve(v, where)) for k, v in obj.items())
  if isinstance(obj, dict):
    return {k: _resolve(v, where) for k, v in obj.items()}
  if isinstance(obj, list):
    return [_resolve(v, where) for v in obj]
  if isinstance(obj, tuple):
    return tuple(_resolve(v, where) for v in obj)
  return obj


def _load_zip(z: zipfile.ZipFile, where: str, keep_tensors: bool) -> Any:
  names = z.namelist()
  pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
  if not pickles:
    raise SourceUnavailableError(f"{where} is a zip file without data.pkl; not a "
                                 "torch.save file")
  prefix = pickles[0][:-len("data.pkl")]
  byteorder = "little"
  if f"{prefix}byteorder" in names:
    byteorder = z.read(f"{prefix}byteorder").decode().strip() or "little"
  storages: Dict[str, _Storage] = {}
  obj = _Unpickler(io.BytesIO(z.read(pickles[0])), where, keep_tensors, storages).load()
  if not keep_tensors:
    return obj
  for key, storage in storages.items():
    record = f"{prefix}data/{key}"
    if record not in names:
      raise SourceUnavailableError(f"{where}: record {record} of a tensor is missing")
    _attach(storage, z.read(record), byteorder, where)
  return _resolve(obj, where)


def _load_legacy(f: BinaryIO, where: str, keep_tensors: bool) -> Any:
  def header():
    try:
      return _Unpickler(f, where, False, {}).load()
    except UnsafePickleError:
      raise
    except Exception as e:  # junk raises anything from UnpicklingError to KeyError
      raise SourceUnavailableError(f"{where} is not a torch.save file ({e!r})") from e

  if header() != TORCH_MAGIC_NUMBER:
    raise SourceUnavailableError(f"{where}: invalid magic number; not a torch.save file")
  version = header()
  if version != TORCH_PROTOCOL_VERSION:
    raise SourceUnavailableError(f"{where}: unsupported torch protocol {version}")
  info = header()
  little = not isinstance(info, dict) or info.get("little_endian", True)
  storages: Dict[str, _Storage] = {}
  obj = _Unpickler(f, where, keep_tensors, storages).load()
  if not keep_tensors:
    return obj
  keys = _Unpickler(f, where, False, {}).load()
  for key in keys:
    storage = storages.get(str(key))
    if storage is None:
      raise SourceUnavailableError(f"{where}: storage {key} is listed but never used")
    head = f.read(8)
    if len(head) != 8:
      raise SourceUnavailableError(f"{where}: truncated before storage {key}")
    count = struct.unpack("<q" if little else ">q", head)[0]
    size = count * _as_numpy_dtype(storage.type.dtype).itemsize
    data = f.read(size)
    if count < 0 or len(data) != size:
      raise SourceUnavailableError(f"{where}: storage {key} is truncated")
    _attach(storage, data, "little" if little else "big", where)
  return _resolve(obj, where)


def loads(data: bytes, where: str = "<bytes>", tensors: str = "numpy") -> Any:
  """The object of a torch.save file's bytes; see `load`."""
  if tensors not in ("numpy", "skip"):
    raise InvalidConfigError(f"tensors must be 'numpy' or 'skip', got {tensors!r}")
  keep = tensors == "numpy"
  buf = io.BytesIO(data)
  try:
    if zipfile.is_zipfile(buf):
      with zipfile.ZipFile(buf) as z:
        return _load_zip(z, where, keep)
    buf.seek(0)
    return _load_legacy(buf, where, keep)
  except (UnsafePickleError, SourceUnavailableError):
    raise
  except Exception as e:  # a malformed pickle raises anything from TypeError to KeyError
    raise SourceUnavailableError(f"{where}: not a readable torch.save file ({e!r})") from e


def load(path: str, tensors: str = "numpy") -> Any:
  """Reads a `torch.save` file without PyTorch.

  Args:
    path: the file (local or any `tf.io.gfile` URL).
    tensors: "numpy" to return tensors as numpy arrays (NCHW stays NCHW), "skip" to
      return them as None without reading their bytes.

  Returns:
    The saved object, with plain dicts, lists, tuples, numbers and strings.

  Raises:
    UnsafePickleError: the pickle calls anything outside the allowed globals.
    SourceUnavailableError: the file is missing, not a torch.save file, or truncated.
  """
  if not fileio.exists(path):
    raise SourceUnavailableError(f"{path} not found")
  return loads(fileio.read_bytes(path), path, tensors)


# -- writing -----------------------------------------------------------------------------

class _Writer:
  """Protocol-2 pickle opcodes for plain objects and tensors (what torch.save emits)."""

  def __init__(self):
    self.out = io.BytesIO()
    self.storages: list = []  # contiguous little-endian bytes per key

  def op(self, data: bytes):
    self.out.write(data)

  def glob(self, module: str, name: str):
    self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

  def save(self, obj: Any):  # pylint: disable=too-many-branches
    if obj is None:
      self.op(b"N")
    elif obj is True or obj is False:
      self.op(b"\x88" if obj else b"\x89")
    elif isinstance(obj, (int, np.integer)):
      value = int(obj)
      if -2**31 <= value < 2**31:
        self.op(b"J" + struct.pack("<i", value))
      else:
        raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        self.op(b"\x8a" + bytes([len(raw)]) + raw)
    elif isinstance(obj, (float, np.floating)):
      self.op(b"G" + struct.pack(">d", float(obj)))
    elif isinstance(obj, str):
      raw = obj.encode("utf-8")
      self.op(b"X" + struct.pack("<I", len(raw)) + raw)
    elif isinstance(obj, np.ndarray):
      self.tensor(obj)
    elif isinstance(obj, dict):
      self.op(b"}")
      if obj:
        self.op(b"(")
        for k, v in obj.items():
          self.save(k)
          self.save(v)
        self.op(b"u")
    elif isinstance(obj, list):
      self.op(b"]")
      if obj:
        self.op(b"(")
        for v in obj:
          self.save(v)
        self.op(b"e")
    elif isinstance(obj, tuple):
      self.op(b"(")
      for v in obj:
        self.save(v)
      self.op(b"t")
    else:
      raise TypeError(f"cannot write a {type(obj).__name__} to a torch.save file (numpy "
                      "arrays, dicts, lists, tuples, str, int, float, bool, None)")

  def tensor(self, array: np.ndarray):
    dtype = "bool" if array.dtype == np.bool_ else array.dtype.name
    if dtype not in _NUMPY_TO_STORAGE:
      raise TypeError(f"no torch storage for numpy dtype {array.dtype}")
    array = np.array(array, array.dtype.newbyteorder("<"), order="C")  # keeps 0-d
    key = str(len(self.storages))
    self.storages.append(array.tobytes())
    shape = tuple(int(s) for s in array.shape)
    stride, step = [], 1
    for n in reversed(shape):
      stride.insert(0, step)
      step *= max(n, 1)
    self.glob("torch._utils", "_rebuild_tensor_v2")
    self.op(b"(")  # args
    self.op(b"(")  # persistent id
    self.save("storage")
    self.glob("torch", _NUMPY_TO_STORAGE[dtype])
    self.save(key)
    self.save("cpu")
    self.save(int(array.size))
    self.op(b"tQ")
    self.save(0)  # storage offset
    self.save(shape)
    self.save(tuple(stride))
    self.save(False)  # requires_grad
    self.glob("collections", "OrderedDict")
    self.op(b")R")  # OrderedDict(): no backward hooks
    self.op(b"tR")

  def pickle(self, obj: Any) -> bytes:
    self.op(b"\x80\x02")
    self.save(obj)
    self.op(b".")
    return self.out.getvalue()


def _write_aligned(z: zipfile.ZipFile, name: str, data: bytes) -> None:
  """Adds a stored record whose data start on an `ALIGNMENT`-byte boundary, padding the
  local header's extra field as torch's writer does."""
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  info.compress_type = zipfile.ZIP_STORED
  offset = z.fp.tell() + 30 + len(name.encode())
  pad = (-(offset + 4)) % ALIGNMENT
  info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # id "FB", as torch
  z.writestr(info, data)


def dumps(obj: Any, name: str = "archive") -> bytes:
  """The bytes of `torch.save(obj)` in the zip layout, numpy arrays as tensors.

  Args:
    obj: numpy arrays (become CPU tensors of the same dtype and shape; bfloat16 has no
      numpy dtype), dicts, lists, tuples, str, int, float, bool, None.
    name: the archive's top folder (torch uses the file name without extension).
  """
  writer = _Writer()
  data = writer.pickle(obj)
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
    _write_aligned(z, f"{name}/data.pkl", data)
    _write_aligned(z, f"{name}/byteorder", b"little")
    for key, raw in enumerate(writer.storages):
      _write_aligned(z, f"{name}/data/{key}", raw)
    _write_aligned(z, f"{name}/version", ZIP_VERSION)
  return buf.getvalue()


def save(path: str, obj: Any) -> str:
  """Writes `obj` as a torch.save zip file atomically (`tfcondense.atomic`); returns the
  path. See `dumps`."""
  from tfcondense import atomic  # pylint: disable=g-import-not-at-top
  stem = fileio.basename(path).rsplit(".", 1)[0] or "archive"
  return atomic.write_bytes(path, dumps(obj, stem))
