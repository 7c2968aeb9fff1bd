"""Seconds and peak memory per iteration of a condensation method.

DC-BENCH (Cui et al. 2022, Table 8) reports the cost of one iteration per method
(CIFAR-10 on an A100, IPC 1 / 10 / 50: DC 0.16 / 3.31 / 15.74 s, DSA 0.22 / 4.47 /
20.13 s, DM 0.08 s, TM 0.36 / 0.40 / OOM; K-Center 0.0012 / 0.015 / 0.05 s per k-means
iteration). "One iteration" is each method's unit of work: DC / DSA one of the papers'
K iterations (a fresh network, its matching steps and the network training between
them), DM / KIP / MTT one update of the images, IDC one inner iteration (all classes'
matching + the network update); K-Center one k-means iteration of scikit-learn's KMeans
on the ConvNet-3 embedding, per class.

`measure` times `warmup` untimed then `steps` timed iterations in this process, after
the method is built (the resident set size then is the baseline; peak RSS above it is
the method's memory, meaningful only in a fresh process). `measure_isolated` runs
`measure` in a child process (`python -m tfcondense.bench.cost '<json>'`) so that each
cell's memory is its own. Used by the `cost` suite and `benchmarks/cost.py`.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

from tfcondense.errors import TfcondenseError

#: DC-BENCH Table 8 (CIFAR-10, A100), seconds per iteration at IPC 1 / 10 / 50.
DCBENCH_A100 = {"dc": (0.16, 3.31, 15.74), "dsa": (0.22, 4.47, 20.13),
                "dm": (0.08, 0.08, 0.08), "mtt": (0.36, 0.40, None),
                "kcenter": (0.0012, 0.015, 0.05)}


#: DC / DSA time iterations only until they add up to this many seconds (see `measure`).
_LONG_SECONDS = 60.0


def dcbench_a100(method: str, ipc: int) -> Optional[float]:
  vals = DCBENCH_A100.get(method)
  return None if vals is None or ipc not in (1, 10, 50) else vals[(1, 10, 50).index(ipc)]


def rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_iterations(step, warmup: int, steps: int,
                    stop_after: Optional[float] = None) -> List[float]:
  """Calls `step(i)` for i = 0, 1, ...: `warmup` untimed, then up to `steps` timed.

  Args:
    step: one iteration of the method, given its index.
    warmup: untimed calls first (tracing).
    steps: timed calls at most.
    stop_after: stop once the timed calls add up to this many seconds (None: never);
      at least one is always timed.

  Returns:
    The seconds of each timed call.
  """
  for i in range(int(warmup)):
    step(i)
  times = []
  for i in range(int(warmup), int(warmup) + max(1, int(steps))):
    t0 = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - t0)
    if stop_after is not None and sum(times) >= stop_after:
      break
  return times


def measure(source, method: str, ipc: int, *, steps: int = 5, warmup: int = 1,
            precision: str = "float32", cache_dir: Optional[str] = None,
            overrides: Optional[Dict[str, Any]] = None, show_progress: bool = False,
            mtt_experts: tuple = (1, 3, 20)) -> Dict[str, Any]:
  """Times one method at one IPC in this process.

  Args:
    source: the SourceData.
    method: kcenter or a synthesis method name.
    ipc: stored images per class.
    steps: timed iterations. DC / DSA stop early once their timed iterations add up
      to `_LONG_SECONDS` (one of theirs takes 2.5-15 minutes from IPC 10 on; at IPC 1,
      seconds, where a single sample would be noise).
    warmup: untimed iterations first (tracing).
    precision: network precision of methods that have one.
    cache_dir: embedding cache (kcenter, kcenter init) and MTT experts.
    overrides: extra config fields of the synthesis method.
    show_progress: progress bars of the embedding network / experts.
    mtt_experts: (experts, epochs, steps per epoch) trained for MTT if none exist.

  Returns:
    dict(seconds_per_iteration (median), all_seconds, unit, peak_rss_mb,
    baseline_rss_mb, memory_mb, config).
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  source.check_ipc(ipc)
  if method == "kcenter":
    from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
    from tfcondense.methods import selection  # pylint: disable=g-import-not-at-top
    feats = selection.embeddings(source, seed=0, cache_dir=cache_dir,
                                 show_progress=show_progress)
    base_rss = rss_mb()
    per_iter = []
    for c in range(source.num_classes):
      f = feats[source.class_indices(c)]
      t0 = time.perf_counter()
      km = KMeans(n_clusters=ipc, n_init=1, max_iter=300, random_state=0).fit(f)
      per_iter.append((time.perf_counter() - t0) / max(1, km.n_iter_))
    return dict(seconds_per_iteration=float(np.median(per_iter)), all_seconds=per_iter,
                unit="k-means iteration", peak_rss_mb=peak_mb(), baseline_rss_mb=base_rss,
                memory_mb=max(0.0, peak_mb() - base_rss), config=dict(max_iter=300))
  spec = condense_lib.SYNTHESIS.get(method)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  values = dict(overrides or {})
  if "precision" in fields:
    values.setdefault("precision", precision)
  if method == "mtt" and "experts_dir" not in values:
    from tfcondense.methods import mtt  # pylint: disable=g-import-not-at-top
    experts = os.path.join(cache_dir or ".", "mtt_experts")
    n, epochs, per_epoch = mtt_experts
    mtt.train_experts(source, experts, num_experts=n, epochs=epochs,
                      steps_per_epoch=per_epoch, show_progress=show_progress)
    values.update(experts_dir=experts, max_start_epoch=1)
  cfg = condense_lib.make_config(method, source.name, ipc, **values)
  obj = spec.build(source, cfg, {"cache_dir": cache_dir} if cache_dir else None)
  base_rss = rss_mb()
  times = time_iterations(obj.step, warmup, steps,
                          _LONG_SECONDS if method in ("dc", "dsa") else None)
  return dict(seconds_per_iteration=float(np.median(times)), all_seconds=times,
              unit="iteration", peak_rss_mb=peak_mb(), baseline_rss_mb=base_rss,
              memory_mb=max(0.0, peak_mb() - base_rss), config=cfg.as_dict())


#: Row order of `rows_from_bench`: selection first, then by cost as DC-BENCH Table 8.
_ORDER = ("kcenter", "dc", "dsa", "dm", "mtt", "kip", "idc", "idc_i")


def rows_from_bench(out_dir: str, source: str = "fashion_mnist") -> List[Dict[str, Any]]:
  """`benchmarks/cost.py`'s rows from the `cost` cells of an `apps.bench` run.

  Args:
    out_dir: the run's `--out` directory (cells under `cells/<source>/cost/`).
    source: the source whose cells to read.

  Returns:
    One flat dict per cell (method, ipc, precision, steps, warmup, isolated,
    cell_seconds, dcbench_a100_cifar10_seconds, bench_cell and the measurement),
    ordered by IPC, then method.
  """
  from tfcondense.bench.store import CellStore  # pylint: disable=g-import-not-at-top
  rows = []
  for cell in CellStore(out_dir).cells(source, "cost"):
    spec, res = cell["spec"], dict(cell["result"])
    for k in ("method", "ipc", "isolated", "dcbench_a100_cifar10_seconds"):
      res.pop(k, None)
    rows.append(dict(method=spec["method"], ipc=spec["ipc"], precision=spec["precision"],
                     steps=spec["steps"], warmup=spec["warmup"], isolated=spec["isolated"],
                     cell_seconds=cell.get("cell_seconds"),
                     dcbench_a100_cifar10_seconds=dcbench_a100(spec["method"], spec["ipc"]),
                     bench_cell=cell["key"], **res))
  rank = {m: i for i, m in enumerate(_ORDER)}
  return sorted(rows, key=lambda r: (r["ipc"], rank.get(r["method"], len(rank)), r["method"]))


def measure_isolated(source_name: str, method: str, ipc: int, *,
                     source_view: Optional[Dict[str, Any]] = None,
                     timeout: Optional[float] = None, **kwargs) -> Dict[str, Any]:
  """`measure` in a fresh Python process (so peak memory is the method's own).

  Args:
    source_name: source registry name.
    method, ipc: what to measure.
    source_view: options of `tfcondense.bench.context.source_view` (train_per_class,
      test_per_class and the source's own options).
    timeout: seconds before the child is killed.
    **kwargs: arguments of `measure` (JSON-serialisable).

  Raises:
    TfcondenseError: the child failed (its stderr tail is in the message).
  """
  payload = json.dumps(dict(source=source_name, view=source_view or {}, method=method,
                            ipc=int(ipc), kwargs=kwargs))
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  out = subprocess.run([sys.executable, "-m", "tfcondense.bench.cost", payload],
                       capture_output=True, text=True, env=env, timeout=timeout)
  line = next((s for s in out.stdout.splitlines() if s.startswith("RESULT ")), None)
  if out.returncode != 0 or line is None:
    raise TfcondenseError(f"cost of {method}@{ipc} failed in its process:\n"
                          f"{out.stderr[-2000:]}")
  return json.loads(line[len("RESULT "):])


def _child(payload: str) -> Dict[str, Any]:
  from tfcondense.bench.context import source_view  # pylint: disable=g-import-not-at-top
  spec = json.loads(payload)
  source = source_view(spec["source"], **spec["view"])
  return measure(source, spec["method"], spec["ipc"], **spec["kwargs"])


if __name__ == "__main__":
  print("RESULT " + json.dumps(_child(sys.argv[1])))
