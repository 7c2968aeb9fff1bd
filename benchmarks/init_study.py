r"""Initialisation study: synthesis from random / K-Center / noise init, accuracy vs iterations.

  python -m benchmarks.init_study                         # DM, IPC 10; about 1.5 hours
  python -m benchmarks.init_study --methods dm,idc --ipc 10

DC-BENCH (Cui et al. 2022) saw K-Center initialisation reach the accuracy of random
initialisation with about 30% of the compute (DM, CIFAR-10). For each method and init,
condenses Fashion-MNIST (resumable workdir under benchmarks/cache/init_study/),
snapshots the synthetic set at the `--marks` iterations (0 = the initialisation
itself), and trains ConvNet-3 on every snapshot with the `quick` protocol (300 SGD
steps, `--repetitions` runs; networks in `--precision`, default auto: the faster on
this machine, see tfcondense/hardware.py). Writes
benchmarks/results/init_study.json and the curves to benchmarks/results/init_study.png.
The snapshots and the chart come from `tfcondense.bench` (shared with
`apps.bench --suite init`, whose `cpu` budget runs exactly this study: with
`--from_bench DIR` the rows are read from that run's cells instead of computed again).
The two kinds of rows live side by side in the JSON: `--from_bench` replaces only the
rows that came from bench cells (they carry `bench_cell`), a computed run appends its
own, and `commands` lists every command that contributed.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_METHODS = flags.DEFINE_list("methods", ["dm"], "Synthesis methods.")
_INITS = flags.DEFINE_list("inits", ["random", "kcenter", "noise"], "Initialisations.")
_IPC = flags.DEFINE_integer("ipc", 10, "Stored images per class.")
_MARKS = flags.DEFINE_list("marks", ["0", "50", "100", "200", "400", "800", "1500"],
                           "Iterations at which the set is evaluated (DM: iterations; IDC: "
                           "inner iterations).")
_REPS = flags.DEFINE_integer("repetitions", 2, "Evaluation repetitions per snapshot.")
_PRECISION = flags.DEFINE_enum("precision", "auto", ["auto", "float32", "mixed_bfloat16"],
                               "Network precision of condensation and evaluation.")
_FROM_BENCH = flags.DEFINE_string(
    "from_bench", None, "An apps.bench output directory (--out) whose `init` cells to report "
    "instead of computing the study here.")
_OUT = "init_study.json"


def _existing(path):
  """(rows, commands) of the JSON at `path` (empty when there is none)."""
  if not os.path.exists(path):
    return [], []
  with open(path) as f:
    old = json.load(f)
  commands = old.get("commands") or ([old["command"]] if old.get("command") else [])
  return old.get("rows", []), commands


def _payload(rows, commands, command):
  commands = list(commands) + ([command] if command not in commands else [])
  return dict(machine=_util.machine(), commands=commands, rows=rows)


def _rows_from_bench(out_dir):
  """This study's rows from the `init` cells of an apps.bench run."""
  from tfcondense.bench.store import CellStore  # pylint: disable=g-import-not-at-top
  rows = []
  for cell in CellStore(out_dir).cells("fashion_mnist", "init"):
    res, spec = cell["result"], cell["spec"]
    rows.append(dict(method=spec["set"]["method"], init=spec["set"]["init"],
                     ipc=spec["set"]["ipc"], iteration=spec["set"]["iteration"],
                     acc_mean=res["acc_mean"], acc_std=res["acc_std"],
                     protocol=spec["protocol"]["name"], precision=spec["protocol"]["precision"],
                     repetitions=spec["repetitions"], bench_cell=cell["key"]))
  return sorted(rows, key=lambda r: (r["method"], r["init"], r["iteration"]))


def _plot(rows, path):
  from tfcondense.bench import plots  # pylint: disable=g-import-not-at-top
  curves = {}
  for r in rows:
    curves.setdefault(r["method"], {}).setdefault(r["init"], []).append(
        (r["iteration"], r["acc_mean"], r["acc_std"]))
  plots.init_curves(curves, path, f"Fashion-MNIST IPC {rows[0]['ipc']}, ConvNet-3 "
                    "(quick protocol)")


def main(argv):
  del argv
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense.bench import init_study  # pylint: disable=g-import-not-at-top

  path = os.path.join(_util.RESULTS, _OUT)
  png = os.path.join(_util.RESULTS, "init_study.png")
  if _FROM_BENCH.value:
    bench_rows = _rows_from_bench(_FROM_BENCH.value)
    if not bench_rows:
      raise app.UsageError(f"no init cells under {_FROM_BENCH.value}; run apps.bench "
                           "--suite init there first")
    old_rows, commands = _existing(path)
    rows = [r for r in old_rows if "bench_cell" not in r] + bench_rows
    _util.write_json(_OUT, _payload(
        rows, commands, f"python -m benchmarks.init_study --from_bench {_FROM_BENCH.value}"))
    _plot(rows, png)
    print(f"wrote {path} and {png} from {len(bench_rows)} bench cells "
          f"and {len(rows) - len(bench_rows)} rows computed here")
    return
  source = data.load_source("fashion_mnist")
  rows, commands = _existing(path)
  command = ("python -m benchmarks.init_study --methods " + ",".join(_METHODS.value)
             + " --inits " + ",".join(_INITS.value) + f" --ipc {_IPC.value} --marks "
             + ",".join(_MARKS.value) + f" --repetitions {_REPS.value} --precision "
             + _PRECISION.value)
  marks = sorted(int(m) for m in _MARKS.value)
  protocol = ev.get_protocol("quick", precision=_PRECISION.value)
  for method in _METHODS.value:
    condense_lib.SYNTHESIS.get(method)  # fail early on a typo
    for init in _INITS.value:
      done = {r["iteration"] for r in rows
              if (r["method"], r["init"], r["ipc"]) == (method, init, _IPC.value)}
      if set(marks) <= done:
        print(f"skip {method}/{init}: done")
        continue
      snaps = init_study.snapshots(
          source, method, init, _IPC.value, marks,
          workdir=os.path.join(HERE, "cache", "init_study", f"{method}_{init}_ipc{_IPC.value}"),
          overrides={"precision": protocol.precision},
          init_options={"cache_dir": os.path.join(HERE, "cache", "init_study")})
      for m in marks:
        if m in done:
          continue
        if m not in snaps:
          print(f"{method}/{init}: no snapshot at {m} (the run resumed past it); skipped")
          continue
        images, labels = init_study.load_snapshot(snaps[m])
        res = ev.evaluate(images, labels, source, protocol=protocol,
                          repetitions=_REPS.value, desc=f"eval {method}/{init}@{m}")
        rows.append(dict(method=method, init=init, ipc=_IPC.value, iteration=m,
                         acc_mean=res.best_mean, acc_std=res.best_std, protocol="quick",
                         precision=protocol.precision, repetitions=_REPS.value))
        _util.write_json(_OUT, _payload(rows, commands, command))
        print(f"{method}/{init} @ {m}: {res}")
  if rows:
    _plot(rows, png)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
  app.run(main)
