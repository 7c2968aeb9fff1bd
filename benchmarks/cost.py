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
Writes benchmarks/results/cost.json (finished cells are kept and skipped).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_METHODS = flags.DEFINE_list("methods", ["dm", "kip", "mtt", "idc", "idc_i", "dc", "dsa",
                                         "kcenter"], "Methods.")
_IPCS = flags.DEFINE_list("ipcs", ["1", "10", "50"], "IPCs.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed iterations (DC / DSA: 1).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed iterations first (tracing).")
_PRECISION = flags.DEFINE_string("precision", "float32", "Network precision.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run one method@ipc cell and print JSON.")
_OUT = "cost.json"
DCBENCH_A100 = {"dc": (0.16, 3.31, 15.74), "dsa": (0.22, 4.47, 20.13), "dm": (0.08, 0.08, 0.08),
                "mtt": (0.36, 0.40, None), "kcenter": (0.0012, 0.015, 0.05)}


def _rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(cell: str) -> dict:
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfcondense import condense as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  method, ipc = cell.split("@")
  ipc = int(ipc)
  source = data.load_source("fashion_mnist")
  cache = os.path.join(HERE, "cache", "cost")
  if method == "kcenter":
    from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
    from tfcondense.methods import selection  # pylint: disable=g-import-not-at-top
    feats = selection.embeddings(source, seed=0, cache_dir=cache, show_progress=False)
    base_rss = _rss_mb()
    per_iter = []
    for c in range(source.num_classes):
      f = feats[source.class_indices(c)]
      t0 = time.perf_counter()
      km = KMeans(n_clusters=ipc, n_init=1, max_iter=300, random_state=0).fit(f)
      per_iter.append((time.perf_counter() - t0) / max(1, km.n_iter_))
    return dict(seconds_per_iteration=float(np.median(per_iter)), unit="k-means iteration",
                peak_rss_mb=_peak_mb(), baseline_rss_mb=base_rss,
                memory_mb=max(0.0, _peak_mb() - base_rss))
  spec = condense_lib.SYNTHESIS.get(method)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  overrides = {}
  if "precision" in fields:
    overrides["precision"] = _PRECISION.value
  if method == "mtt":
    from tfcondense.methods import mtt  # pylint: disable=g-import-not-at-top
    experts = os.path.join(cache, "mtt_experts")
    mtt.train_experts(source, experts, num_experts=1, epochs=3, steps_per_epoch=20)
    overrides.update(experts_dir=experts, max_start_epoch=1)
  cfg = condense_lib.make_config(method, source.name, ipc, **overrides)
  obj = spec.build(source, cfg, None)
  base_rss = _rss_mb()
  steps = 1 if method in ("dc", "dsa") else _STEPS.value
  for s in range(_WARMUP.value):
    obj.step(s)
  times = []
  for s in range(_WARMUP.value, _WARMUP.value + steps):
    t0 = time.perf_counter()
    obj.step(s)
    times.append(time.perf_counter() - t0)
  return dict(seconds_per_iteration=float(np.median(times)), all_seconds=times,
              unit="iteration", peak_rss_mb=_peak_mb(), baseline_rss_mb=base_rss,
              memory_mb=max(0.0, _peak_mb() - base_rss), config=cfg.as_dict())


def main(argv):
  del argv
  if _CHILD.value:
    print("RESULT " + json.dumps(_child(_CHILD.value)))
    return
  path = os.path.join(_util.RESULTS, _OUT)
  rows = json.load(open(path))["rows"] if os.path.exists(path) else []
  for ipc in [int(i) for i in _IPCS.value]:
    for method in _METHODS.value:
      if any(r["method"] == method and r["ipc"] == ipc for r in rows):
        print(f"skip {method}@{ipc}: done")
        continue
      cmd = [sys.executable, "-m", "benchmarks.cost", f"--child={method}@{ipc}",
             f"--steps={_STEPS.value}", f"--warmup={_WARMUP.value}",
             f"--precision={_PRECISION.value}"]
      t0 = time.time()
      out = subprocess.run(cmd, capture_output=True, text=True,
                           cwd=os.path.dirname(HERE), env=dict(os.environ, TFCONDENSE_PROGRESS="0"))
      line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
      if out.returncode != 0 or line is None:
        print(f"{method}@{ipc} failed:\n{out.stderr[-2000:]}")
        continue
      res = json.loads(line[len("RESULT "):])
      a100 = DCBENCH_A100.get(method)
      rows.append(dict(method=method, ipc=ipc, precision=_PRECISION.value,
                       cell_seconds=round(time.time() - t0, 1),
                       dcbench_a100_cifar10_seconds=None if a100 is None
                       else a100[(1, 10, 50).index(ipc)] if ipc in (1, 10, 50) else None,
                       **res))
      _util.write_json(_OUT, dict(machine=_util.machine(), command="python -m benchmarks.cost",
                                  source="fashion_mnist", rows=rows))
      print(f"{method}@{ipc}: {res['seconds_per_iteration']:.3f} s per {res['unit']}, "
            f"{res['memory_mb']:.0f} MB above baseline (peak {res['peak_rss_mb']:.0f} MB)")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
