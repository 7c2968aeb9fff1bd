"""Which network precision is fastest on this machine.

Mixed bfloat16 (bfloat16 compute, float32 variables) pays only where the hardware
multiplies bfloat16 natively: on CPUs with AVX512-BF16 or AMX it made the matching step
1.3-1.4x faster here (BENCHMARKS.md, `benchmarks/idc_step.py` on an AMD EPYC), while on
a CPU without them TensorFlow emulates it and the same step ran 2.9x *slower* (an Intel
Xeon with AVX-512F only). GPUs from compute capability 8.0 (Ampere) have bfloat16 tensor
cores. `resolve_precision("auto")` picks accordingly, so that a benchmark run on one
machine does not inherit a choice measured on another.

`machine()` says where something was made (CPU model, cores, GPUs, TensorFlow): the
condensed artifacts' meta.json and the benchmark results record it, since a set from
4.6 H100 minutes and one from 74 CPU minutes look alike otherwise.
"""
from __future__ import annotations

import functools
import os
import platform
from typing import Iterable, Optional

from tfcondense.errors import InvalidConfigError

PRECISIONS = ("float32", "mixed_bfloat16")
#: What `resolve_precision` accepts besides PRECISIONS.
AUTO = "auto"
#: /proc/cpuinfo flags of native bfloat16 arithmetic (AVX512-BF16, AMX-BF16).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
  """The CPU feature flags listed in `cpuinfo` (empty where it cannot be read)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith("flags"):
          return frozenset(line.split(":", 1)[1].split())
  except OSError:
    pass
  return frozenset()


def cpu_has_fast_bfloat16(flags: Optional[Iterable[str]] = None) -> bool:
  """Whether the CPU multiplies bfloat16 natively (`flags`: default /proc/cpuinfo's)."""
  return bool(BF16_CPU_FLAGS & frozenset(cpu_flags() if flags is None else flags))


def gpu_has_fast_bfloat16(gpus: Optional[list] = None) -> bool:
  """Whether the first GPU has compute capability 8.0 or higher (False: none).

  Args:
    gpus: physical GPU devices; default the visible ones.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if gpus is None:
    gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    return False
  capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
  return bool(capability) and tuple(capability) >= (8, 0)


def fastest_cpu_precision(flags: Optional[Iterable[str]] = None) -> str:
  """mixed_bfloat16 where the CPU has native bfloat16, else float32 (no TensorFlow)."""
  return "mixed_bfloat16" if cpu_has_fast_bfloat16(flags) else "float32"


def resolve_precision(precision: str, *, consider_gpu: bool = True) -> str:
  """`precision` itself, or for "auto" the faster one on this machine.

  Args:
    precision: "float32", "mixed_bfloat16" or "auto".
    consider_gpu: where a GPU is visible, decide by it (its compute capability)
      rather than by the CPU.

  Returns:
    "float32" or "mixed_bfloat16".

  Raises:
    InvalidConfigError: for any other value.
  """
  if precision in PRECISIONS:
    return precision
  if precision != AUTO:
    raise InvalidConfigError(
        f"precision must be one of {PRECISIONS + (AUTO,)}, got {precision!r}")
  if consider_gpu:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
      return "mixed_bfloat16" if gpu_has_fast_bfloat16(gpus) else "float32"
  return fastest_cpu_precision()


def available_memory_bytes(meminfo: str = "/proc/meminfo") -> Optional[int]:
  """Host memory available to a new allocation (MemAvailable), None where unknown.

  Read from `meminfo` rather than psutil, which the project does not depend on.
  """
  try:
    with open(meminfo) as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024  # kB
  except (OSError, ValueError, IndexError):
    pass
  return None


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name in `cpuinfo` (Python's `platform` name where it is missing)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def gpu_names(gpus: Optional[list] = None) -> list:
  """The names of the GPUs TensorFlow sees (`gpus`: physical devices; default all)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if gpus is None:
    gpus = tf.config.list_physical_devices("GPU")
  return [tf.config.experimental.get_device_details(d).get("device_name", d.name)
          for d in gpus]


@functools.lru_cache(maxsize=None)
def _this_machine() -> dict:
  return _describe("/proc/cpuinfo", None)


def _describe(cpuinfo: str, gpus: Optional[list]) -> dict:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return {"cpu": cpu_model(cpuinfo), "cores": os.cpu_count(), "gpus": gpu_names(gpus),
          "tensorflow": tf.__version__}


def machine(cpuinfo: Optional[str] = None, gpus: Optional[list] = None) -> dict:
  """Where this process runs, as recorded in meta.json and benchmark results.

  Args:
    cpuinfo: the file to read the CPU model from (default /proc/cpuinfo).
    gpus: physical GPU devices to name (default the visible ones).

  Returns:
    {"cpu": model name, "cores": logical cores (os.cpu_count()), "gpus": [names],
    "tensorflow": version}; this machine's is looked up once per process.
  """
  if cpuinfo is None and gpus is None:
    here = _this_machine()
    return dict(here, gpus=list(here["gpus"]))  # a copy: the cached one stays as it is
  return _describe(cpuinfo or "/proc/cpuinfo", gpus)
