r"""Seconds and peak memory per iteration of every method at IPC 1 / 10 / 50 (Fashion-MNIST).

  python -m benchmarks.cost                                # every cell; an hour or more
  python -m benchmarks.cost --methods dm,idc --ipcs 10

DC-BENCH Table 8 is the model (CIFAR-10 on an A100, IPC 1 / 10 / 50: DC 0.16 / 3.31 /
15.74 s, DSA 0.22 / 4.47 / 20.13 s, DM 0.08 s, TM 0.36 / 0.40 / OOM; K-Center 0.0012 /
0.015 / 0.05 s per k-means iteration). "One iteration" is each method's unit of work:
DC / DSA one of the papers' K iterations (a fresh network, outer_loop matching steps and
the network training between them), DM / KIP / MTT one update of the images, IDC one
inner iteration (all classes' matching + the network update). Each cell runs in its own
process: after the method is built (data loaded, networks made) the resident set size
is the baseline; then `--warmup` untimed and `--steps` timed iterations; the peak RSS
(ru_maxrss) above the baseline is the method's memory. K-Center: seconds per k-means
iteration of scikit-learn's KMeans on the cached ConvNet-3 embedding, per class.
Writes benchmarks/results/cost.json (finished cells are kept and skipped). The
measurement itself is `tfcondense.bench.cost` (shared with `apps.bench --suite cost`,
whose `cpu` budget measures exactly these cells: with `--from_bench DIR` the rows are
read from that run's cells instead of measured again, which is what
scripts/run_benchmarks.sh does, so that the day-long DC-BENCH run and this benchmark
share the hour and a half the cells take).
"""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402
from tfcondense.bench import cost as cost_lib  # noqa: E402
from tfcondense.errors import TfcondenseError  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_METHODS = flags.DEFINE_list("methods", ["dm", "kip", "mtt", "idc", "idc_i", "dc", "dsa",
                                         "kcenter"], "Methods.")
_IPCS = flags.DEFINE_list("ipcs", ["1", "10", "50"], "IPCs.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed iterations (DC / DSA: until they add up "
                              "to a minute, so 1 from IPC 10 on).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed iterations first (tracing).")
_PRECISION = flags.DEFINE_string("precision", "float32", "Network precision.")
_FROM_BENCH = flags.DEFINE_string(
    "from_bench", None, "An apps.bench output directory (--out) whose `cost` cells to report "
    "instead of measuring them here.")
_OUT = "cost.json"


def _line(row) -> str:
  """One row as the line this script prints."""
  memory = ("memory not isolated" if row.get("memory_mb") is None else
            f"{row['memory_mb']:.0f} MB above baseline (peak {row['peak_rss_mb']:.0f} MB)")
  return (f"{row['method']}@{row['ipc']}: {row['seconds_per_iteration']:.3f} s per "
          f"{row['unit']}, {memory}")


def main(argv):
  del argv
  path = os.path.join(_util.RESULTS, _OUT)
  if _FROM_BENCH.value:
    rows = cost_lib.rows_from_bench(_FROM_BENCH.value)
    if not rows:
      raise app.UsageError(f"no cost cells under {_FROM_BENCH.value}; run apps.bench "
                           "--suite cost there first")
    _util.write_json(_OUT, dict(machine=_util.machine(), source="fashion_mnist", rows=rows,
                                command=f"python -m benchmarks.cost --from_bench "
                                        f"{_FROM_BENCH.value}"))
    for r in rows:
      print(_line(r))
    print(f"wrote {path} from {len(rows)} bench cells")
    return
  rows = json.load(open(path))["rows"] if os.path.exists(path) else []
  for ipc in [int(i) for i in _IPCS.value]:
    for method in _METHODS.value:
      if any(r["method"] == method and r["ipc"] == ipc for r in rows):
        print(f"skip {method}@{ipc}: done")
        continue
      t0 = time.time()
      try:  # each cell in its own process, so its peak memory is its own
        res = cost_lib.measure_isolated(
            "fashion_mnist", method, ipc, steps=_STEPS.value, warmup=_WARMUP.value,
            precision=_PRECISION.value, cache_dir=os.path.join(HERE, "cache", "cost"))
      except TfcondenseError as e:
        print(f"{method}@{ipc} failed:\n{e}")
        continue
      rows.append(dict(method=method, ipc=ipc, precision=_PRECISION.value,
                       cell_seconds=round(time.time() - t0, 1),
                       dcbench_a100_cifar10_seconds=cost_lib.dcbench_a100(method, ipc),
                       **res))
      _util.write_json(_OUT, dict(machine=_util.machine(), command="python -m benchmarks.cost",
                                  source="fashion_mnist", rows=rows))
      print(_line(rows[-1]))
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
