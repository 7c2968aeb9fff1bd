r"""How the evaluation recipe moves the numbers (issue 40): IPC 50 under the paper's
1,000 epochs beside the CPU protocols, the light protocol, and IDC's `mix` resize.

  python -m benchmarks.eval_protocol                      # every part, resumable
  python -m benchmarks.eval_protocol --parts init,cpu     # the cheap parts first

Every repetition of every cell is one run, written to
benchmarks/results/eval_protocol.json as soon as it ends (a rerun skips the runs there,
so the script can be stopped at any time and a later session adds the rest). The
`rows` of the file aggregate the runs per cell: `method`, `ipc`, `protocol`, `steps`,
`augmentation` (the exact recipe string), `acc_mean`, `acc_std` (best test accuracy
over the repetitions done), `reps`, `last_mean`.

Parts, in the order they run (the 2-core AMD EPYC, mixed bfloat16, ConvNet-3 at batch
64: about 0.1 s a step, so 1,000 steps take under 2 minutes):
* init: IDC's IPC 10 initial set (0 iterations, factor 2, 400 formed images) with the
  tiles downsampled by PyTorch-style nearest neighbour (the reference) and by
  antialiased bilinear (ours until now), `cpu` recipe, 1,000 steps (about 10 min);
* cpu: the shipped IPC 50 sets of IDC, IDC-I, Random and K-Center under the `cpu`
  recipe at 1,000 steps (the old fixed length), and IDC's 2,000 formed images also at
  3,200 steps (100 epochs) (about 40 min);
* paper: the same four under the `paper` protocol (1,000 epochs: 8,000 steps for the
  500-image sets, about 15 min each, then 32,000 for IDC's 2,000 formed images, about
  55 min on its own); repetition 0 of every set first, then 1 and 2;
* light: the four under the `light` protocol (random crop and flip, no CutMix; about
  20 min);
* length: what a longer `cpu` run gives the sets whose length a growing rule would
  change: Random, K-Center and IDC-I at IPC 50 at 3,200 steps (IDC's 3,200 is in `cpu`)
  and IDC's 400 formed IPC 10 images at 1,000 and 2,800 steps (about 50 min at 2
  repetitions); then K-Center and IDC at IPC 10 under the `paper` protocol.
All use the evaluation recipe of protocol version 2 (DSA without cutout under CutMix).
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHIPPED = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
OUT = "eval_protocol.json"

_PARTS = flags.DEFINE_list("parts", ["init", "cpu", "length", "paper", "light"],
                           "Parts to run, in order.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Repetitions per cell.")
_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"],
                               "Evaluation precision.")
_SETS = ("idc", "idc_i", "random", "kcenter")


def _cells(part: str, reps: int):
  """(cell, repetitions) of a part, in the order they run. Cells give their step count
  where it is not the protocol's own, so a cell's key never changes meaning."""
  if part == "init":
    return [(dict(method="idc_init", init_resize=r, ipc=10, protocol="cpu", steps=1000),
             range(reps)) for r in ("nearest", "antialias")]
  if part == "cpu":  # 1,000 steps (the old fixed length), and 100 epochs for IDC's 2,000
    out = [(dict(method=m, ipc=50, protocol="cpu", steps=1000), range(reps)) for m in _SETS]
    out.append((dict(method="idc", ipc=50, protocol="cpu", steps=3200), range(reps)))
    return out
  if part == "paper":  # one repetition of every set before the next round, IDC's
    # 32,000 steps last: the three 8,000-step sets fit in what is left of a session
    return [(dict(method=m, ipc=50, protocol="paper"), [r]) for r in range(reps)
            for m in ("random", "kcenter", "idc_i", "idc")]
  if part == "length":
    out = [(dict(method=m, ipc=50, protocol="cpu", steps=3200), range(reps))
           for m in ("random", "kcenter", "idc_i")]
    out += [(dict(method="idc", ipc=10, protocol="cpu", steps=s), range(reps))
            for s in (1000, 2800)]
    # ... and the paper's 1,000 epochs at IPC 10 (7,000 steps for IDC's 400 formed
    # images, 2,000 for 100 real ones), one repetition each first.
    return out + [(dict(method=m, ipc=10, protocol="paper"), [r]) for r in range(reps)
                  for m in ("kcenter", "idc")]
  if part == "light":
    return [(dict(method=m, ipc=50, protocol="light", steps=1000), range(reps))
            for m in _SETS]
  raise app.UsageError(f"unknown part {part!r}; known: init, cpu, length, paper, light")


def _training_set(cell, source):
  """(images, labels) a cell trains on."""
  from tfcondense import artifact, formation, synthetic  # pylint: disable=g-import-not-at-top
  if cell["method"] == "idc_init":
    form = formation.make_formation("uniform", 2)
    syn = synthetic.SyntheticSet.initialize(source, cell["ipc"], form, init="mix", seed=0,
                                            resize=cell["init_resize"])
    return form.form_numpy(*syn.numpy())
  art = artifact.load_artifact(os.path.join(SHIPPED, f"{cell['method']}_ipc{cell['ipc']}"))
  return synthetic.formed_from_artifact(art, art.weights)


def _key(cell) -> str:
  return json.dumps(cell, sort_keys=True)


def _aggregate(runs):
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups = {}
  for run in runs:
    groups.setdefault(_key(run["cell"]), []).append(run)
  rows = []
  for group in groups.values():
    cell = group[0]["cell"]
    best = [g["best"] for g in sorted(group, key=lambda g: g["rep"])]
    rows.append(dict(
        method=cell["method"], ipc=cell["ipc"], protocol=cell["protocol"],
        **({"init_resize": cell["init_resize"]} if "init_resize" in cell else {}),
        steps=group[0]["steps"], augmentation=group[0]["augmentation"],
        num_images=group[0]["num_images"], acc_mean=round(float(np.mean(best)), 2),
        acc_std=round(float(np.std(best)), 2), reps=len(best),
        last_mean=round(float(np.mean([g["last"] for g in group])), 2)))
  return rows


def main(argv):
  del argv
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  path = os.path.join(_util.RESULTS, OUT)
  runs = []
  if os.path.exists(path):
    with open(path) as f:
      runs = json.load(f).get("runs", [])
  done = {(_key(r["cell"]), r["rep"]) for r in runs}
  source = data.load_source("fashion_mnist")
  machine = _util.machine()
  for part in _PARTS.value:
    for cell, reps in _cells(part, _REPS.value):
      todo = [r for r in reps if (_key(cell), r) not in done]
      if not todo:
        continue
      x, y = _training_set(cell, source)
      overrides = dict(precision=_PRECISION.value)
      if "steps" in cell:
        overrides.update(steps=cell["steps"], epochs=None)
      protocol = ev.get_protocol(cell["protocol"], **overrides)
      for rep in todo:
        res = ev.evaluate(x, y, source, protocol=protocol, repetitions=1, seed=rep,
                          desc=f"{cell['method']} {cell['protocol']} rep {rep}")
        runs.append(dict(cell=cell, rep=rep, best=res.best[0], last=res.last[0],
                         steps=res.steps, augmentation=res.augmentation_spec,
                         protocol_version=res.protocol_version,
                         num_images=res.num_images, precision=res.precision,
                         seconds=round(res.seconds, 1), machine=machine))
        done.add((_key(cell), rep))
        _util.write_json(OUT, dict(rows=_aggregate(runs), runs=runs))
        print(f"{cell} rep {rep}: {res.best[0]:.2f} (last {res.last[0]:.2f}), "
              f"{res.steps} steps, {res.augmentation_spec}, {res.seconds / 60:.1f} min",
              flush=True)
  print("\n| method | ipc | protocol | steps | augmentation | acc | reps |")
  print("|---|---|---|---|---|---|---|")
  for row in _aggregate(runs):
    name = row["method"] + (f" ({row['init_resize']})" if "init_resize" in row else "")
    print(f"| {name} | {row['ipc']} | {row['protocol']} | {row['steps']} | "
          f"{row['augmentation']} | {row['acc_mean']:.2f} +- {row['acc_std']:.2f} | "
          f"{row['reps']} |")


if __name__ == "__main__":
  app.run(main)
