r"""IDC (factor 2) and IDC-I on Fashion-MNIST at IPC 1 / 10 / 50 under a stated budget.

  python -m benchmarks.idc_fashion                       # all cells; hours, resumable
  python -m benchmarks.idc_fashion --cells idc@10,idc_i@10
  python -m benchmarks.idc_fashion --paper_cells idc@10  # + the 1000-epoch protocol once

Each cell condenses with `tfcondense.condense(...)` in a workdir under
benchmarks/cache/idc_fashion/ (checkpointed every 2 minutes: kill it at any time and
run the same command again), for a budget of `--outer` outer iterations x 100 inner
iterations (the paper: 2000 x 100), matching network in mixed bfloat16; then trains
ConvNet-3 on the formed images with the `cpu` protocol (1000 SGD steps, mixed bfloat16,
3 repetitions), the protocol of benchmarks/baselines.py, whose Random and K-Center rows
at the same IPC are copied beside (same protocol and seeds). The artifacts go to
benchmarks/artifacts/fashion_mnist_<method>_ipc<ipc>/ so others can re-evaluate them.
Finished rows are kept in benchmarks/results/idc_fashion_mnist.json and skipped.
"""
from __future__ import annotations

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_CELLS = flags.DEFINE_list("cells", ["idc@10", "idc_i@10", "idc@1", "idc_i@1", "idc@50",
                                     "idc_i@50"], "method@ipc cells, run in this order.")
_OUTER = flags.DEFINE_integer("outer", 10, "Outer iterations per cell (x 100 inner).")
_PRECISION = flags.DEFINE_string("precision", "mixed_bfloat16", "Matching network precision.")
_MINUTES = flags.DEFINE_float(
    "minutes", None, "Cap on each cell's condensation minutes (summed over sessions); a cell "
    "stopped by it records the inner iterations it reached.")
_PROTOCOL = flags.DEFINE_string("protocol", "cpu", "Evaluation protocol.")
_EVAL_PRECISION = flags.DEFINE_string("eval_precision", "mixed_bfloat16", "Evaluation precision.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Evaluation repetitions.")
_PAPER = flags.DEFINE_list("paper_cells", [],
                           "Cells also evaluated with the paper's 1000-epoch protocol.")
_PAPER_REPS = flags.DEFINE_integer("paper_repetitions", 1, "Repetitions of the paper protocol.")
_OUT = "idc_fashion_mnist.json"
PAPER = {("idc", 1): 81.0, ("idc", 10): 86.0, ("idc", 50): 86.2,
         ("idc_i", 1): 70.7, ("idc_i", 10): 85.3, ("idc_i", 50): 89.1}


def _load(path):
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {"rows": []}


def _baselines():
  path = os.path.join(_util.RESULTS, "baselines_fashion_mnist.json")
  rows = []
  for r in _load(path)["rows"]:
    if r["method"] in ("random", "kcenter"):
      rows.append(dict(method=r["method"], ipc=r["ipc"], factor=1, budget_minutes=None,
                       protocol=r["protocol"], precision=r.get("precision"),
                       acc_mean=r["acc_mean"], acc_std=r["acc_std"],
                       from_file="benchmarks/results/baselines_fashion_mnist.json"))
  return rows


def main(argv):
  del argv
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  from tfcondense import data, engine, synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  out_path = os.path.join(_util.RESULTS, _OUT)
  state = _load(out_path)
  rows = state["rows"]

  def save():
    _util.write_json(_OUT, dict(
        machine=_util.machine(), command="python -m benchmarks.idc_fashion",
        budget=(f"{_OUTER.value} outer x 100 inner iterations per cell"
                + (f", at most {_MINUTES.value:g} minutes" if _MINUTES.value else "")),
        condensation_precision=_PRECISION.value, rows=rows, baselines=_baselines(),
        paper_table10=[dict(method=m, ipc=i, acc=a) for (m, i), a in PAPER.items()]))

  for cell in _CELLS.value:
    method, ipc = cell.split("@")
    ipc = int(ipc)
    name = f"fashion_mnist_{method}_ipc{ipc}"
    workdir = os.path.join(HERE, "cache", "idc_fashion", name)
    art_dir = os.path.join(HERE, "artifacts", name)
    protocols = [(_PROTOCOL.value, _REPS.value)]
    if cell in _PAPER.value:
      protocols.append(("paper", _PAPER_REPS.value))
    todo = [(p, r) for p, r in protocols
            if not any(x["method"] == method and x["ipc"] == ipc and x["protocol"] == p
                       and x["outer_iterations"] == _OUTER.value for x in rows)]
    if not todo:
      print(f"skip {cell}: already in {out_path}")
      continue
    t0 = time.time()
    res = api.condense(
        method, source, ipc, outer_iterations=_OUTER.value, inner_iterations=100,
        precision=_PRECISION.value,
        options=engine.RunOptions(workdir=workdir, minutes=_MINUTES.value, checkpoint_seconds=120,
                                 desc=cell),
        artifact_dir=art_dir)
    print(f"{cell}: condensed {res.run.steps} inner iterations, {res.run.seconds / 60:.1f} min "
          f"of work in all (this session {(time.time() - t0) / 60:.1f} min), "
          f"last loss {res.run.last_loss}")
    fx, fy = synthetic.formed_from_artifact(res.artifact, res.artifact.weights)
    for protocol_name, reps in todo:
      protocol = ev.get_protocol(protocol_name, precision=_EVAL_PRECISION.value)
      result = ev.evaluate(fx, fy, source, protocol=protocol, repetitions=reps, seed=0,
                           desc=f"eval {cell} {protocol_name}")
      row = dict(method=method, ipc=ipc, factor=res.artifact.factor,
                 outer_iterations=_OUTER.value, inner_iterations=100,
                 steps=res.run.steps, stopped=res.run.stopped,
                 budget_minutes=round(res.run.seconds / 60, 1),
                 condensation_precision=_PRECISION.value, protocol=protocol_name,
                 precision=protocol.precision, repetitions=reps,
                 acc_mean=result.best_mean, acc_std=result.best_std,
                 last_mean=result.last_mean, last_std=result.last_std,
                 eval_seconds=round(result.seconds, 1), formed_images=len(fx),
                 paper=PAPER.get((method, ipc)),
                 artifact=os.path.relpath(art_dir, os.path.dirname(HERE)),
                 machine=_util.machine())  # cells may run on different machines
      rows.append(row)
      save()
      if protocol_name == _PROTOCOL.value:  # what the TFDS metadata reports
        _util.write_json_to(os.path.join(art_dir, "evaluation.json"),
                            dict(result.as_dict(), seed=0, source=source.name))
      print(f"{cell} [{protocol_name}]: {result}  (paper {PAPER.get((method, ipc))})")
  save()
  print(f"wrote {out_path}")


if __name__ == "__main__":
  app.run(main)
