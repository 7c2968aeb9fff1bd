r"""Continual learning with every exemplar strategy, 3 seeds, under one memory budget.

  python -m benchmarks.continual                       # hours; resumable
  python -m benchmarks.continual --scenarios class --strategies idc,herding --seeds 0
  python -m benchmarks.continual --scenarios class --strategies idc_i,idc --idc_arm pool

Scenarios (IDC, Kim et al., ICML 2022, Sec. 5.4 / Fig. 7, at CPU scale):

* class: class-incremental Fashion-MNIST, 5 steps of 2 classes (fixed order, seed 0);
  the network trains only on the memory of the seen classes (CE with CutMix + T^2 KL
  distillation, T = 2) and is tested on all seen classes after each step;
* task: task-incremental digits (sklearn 8x8 digits at 16 px) -> Fashion-MNIST,
  brought to 28x28x1, one head per task, training on the current task's data plus
  the memory of the earlier task; accuracy per task with its own head.

Strategies: random, herding, kcenter (selection) and dm, idc_i, idc (condensation),
all with --memory_ipc stored images per class (IDC trains on 4x as many formed
images at the same stored pixels). Budgets (stated in the JSON): condensation
--condense_steps per class group (IDC inner iterations with a fresh network every
--inner_iterations; DM iterations), versus 200,000 / 20,000 in the reference; training
--protocol per step (cpu: 500 SGD steps, lr x0.2 at 60% / 80%; the reference trains
1000 epochs). Cells run seed by seed (every scenario and strategy at seed 0 first). The
JSON (default benchmarks/results/continual.json) and one PNG per scenario next to it are
rewritten after every finished cell; a re-run keeps the cells it finds there (when its
settings match) and computes only the others. A cell interrupted half-way resumes at its
last finished step from its run directory under --run_root (default
benchmarks/cache/continual), as long as that scratch directory is still there.

With --idc_arm (issue 39's fast recipes, e.g. `pool`) IDC and IDC-I keep the same
--condense_steps and --inner_iterations and change only the recipe; a `pool` arm trains
one model pool per arriving class group on that group's data (5 ConvNet-3s, 2 epochs),
shared by the seeds, and its minutes count in the first cell's memory seconds.

Runtime (measured 2026-11-23 on the 2-core CPU machine, nothing else running): a
class-incremental cell takes 6 (random, k-center) to 15 (IDC) minutes of memory making
and training, a task-incremental one 3 to 11; one seed of the whole grid took 1 h 35 min
of wall clock (tracing and data loading included), so the grid is about 5 hours over two
or three sessions. Smoke: `--limit_per_class 20 --protocol smoke --condense_steps 1
--inner_iterations 1 --seeds 0 --strategies random,idc --output /tmp/c.json --run_root
/tmp/c_runs` takes 2.6 minutes here.
"""
from __future__ import annotations

import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STRATEGIES = ["random", "herding", "kcenter", "dm", "idc_i", "idc"]
_SCENARIOS = flags.DEFINE_list("scenarios", ["class", "task"], "class and/or task.")
_STRATEGIES = flags.DEFINE_list("strategies", STRATEGIES, "Exemplar strategies.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per strategy.")
_MEMORY = flags.DEFINE_integer("memory_ipc", 10, "Stored images per class.")
_PROTOCOL = flags.DEFINE_enum("protocol", "cpu", ["paper", "cpu", "smoke"],
                              "Training protocol per step.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", None, "Override the SGD steps per step.")
_CONDENSE_STEPS = flags.DEFINE_integer("condense_steps", 50,
                                       "Condensation budget per class group.")
_INNER = flags.DEFINE_integer("inner_iterations", 10, "IDC inner iterations per network.")
_LIMIT = flags.DEFINE_integer("limit_per_class", None, "Training images per class (smoke).")
_OUTPUT = flags.DEFINE_string("output", None,
                              "JSON results (PNGs are written next to it; default "
                              "benchmarks/results/continual.json, continual_<arm>.json "
                              "with --idc_arm).")
_RUN_ROOT = flags.DEFINE_string("run_root", os.path.join(HERE, "cache", "continual"),
                                "Resumable run directories.")
_CACHE = flags.DEFINE_string("cache_dir", None, "Herding / k-center embedding cache.")
_IDC_ARM = flags.DEFINE_string(
    "idc_arm", "plain",
    "IDC / IDC-I arm (tfcondense.methods.idc.ARMS; issue 39's fast recipes). Not plain: "
    "the strategies must be IDC's or selections, the results go to continual_<arm>.json "
    "unless --output says otherwise, and model pools (one per class group) are built "
    "under $TFCONDENSE_POOL_DIR, default benchmarks/cache/pools.")


def _minutes(rows) -> dict:
  """Per strategy: mean minutes per cell spent making the memory and training."""
  out = {}
  for strategy in dict.fromkeys(r["strategy"] for r in rows):
    cells = [sum(st["memory_seconds"] + st["train_seconds"] for st in r["steps"]) / 60
             for r in rows if r["strategy"] == strategy]
    out[strategy] = round(sum(cells) / len(cells), 1)
  return out


def _margins(summary: dict, of: str = "idc") -> dict:
  """IDC's lead over each other strategy, in points: the mean over steps of the accuracy
  after each step (the paper's "on average" in Sec. 5.4) and the accuracy after the last
  step, each first averaged over that strategy's seeds."""
  if of not in summary:
    return {}
  mine = summary[of]["mean"]
  out = {}
  for strategy, v in summary.items():
    if strategy != of and len(v["mean"]) == len(mine):
      out[strategy] = dict(
          mean_over_steps=round(sum(mine) / len(mine) - sum(v["mean"]) / len(v["mean"]), 2),
          last_step=round(mine[-1] - v["mean"][-1], 2))
  return out


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcondense import continual, data  # pylint: disable=g-import-not-at-top

  tf.get_logger().setLevel("ERROR")  # per-step tf.function retracing warnings
  unknown = sorted(set(_SCENARIOS.value) - {"class", "task"})
  if unknown:
    raise SystemExit(f"unknown scenario(s) {unknown}; use class and/or task")
  limit = {"limit_per_class": _LIMIT.value} if _LIMIT.value else {}
  overrides = {"steps": _TRAIN_STEPS.value, "epochs": None} if _TRAIN_STEPS.value else {}
  protocol = continual.get_protocol(_PROTOCOL.value, **overrides)
  arm = _IDC_ARM.value.lower()
  from tfcondense.methods import idc as idc_lib  # pylint: disable=g-import-not-at-top
  from tfcondense.registry import UnknownNameError  # pylint: disable=g-import-not-at-top
  try:
    idc_lib.ARMS.get(arm)
  except UnknownNameError as e:  # one line that lists the arms, not a traceback
    raise app.UsageError(str(e)) from None
  idc_overrides = ()
  if arm != "plain":
    other = sorted(set(_STRATEGIES.value) & {"dm"})
    if other:
      raise app.UsageError(f"--idc_arm applies to idc / idc_i; leave out {other}")
    idc_overrides = (("arm", arm),)
    os.environ.setdefault("TFCONDENSE_POOL_DIR", os.path.join(HERE, "cache", "pools"))
  exemplars = continual.ExemplarConfig(steps=_CONDENSE_STEPS.value,
                                       inner_iterations=_INNER.value, cache_dir=_CACHE.value,
                                       condense_overrides=idc_overrides)
  base = continual.ContinualConfig(memory_ipc=_MEMORY.value, strategy=_STRATEGIES.value[0],
                                   exemplars=exemplars, protocol=protocol)
  seeds = [int(s) for s in _SEEDS.value]
  scenarios = {}
  if "class" in _SCENARIOS.value:
    fashion = data.load_source("fashion_mnist", **limit)
    scenarios["class"] = dict(
        label="class-incremental Fashion-MNIST, 5 steps of 2 classes", steps=5,
        make=lambda cfg, d: continual.ClassIncrementalLearner(
            fashion, cfg, steps=5, order_seed=0, run_dir=d))
  if "task" in _SCENARIOS.value:
    tasks = continual.task_sequence(["digits", "fashion_mnist"], **limit)
    scenarios["task"] = dict(
        label="task-incremental digits -> Fashion-MNIST (28x28x1)", steps=2,
        make=lambda cfg, d: continual.TaskIncrementalLearner(tasks, cfg, run_dir=d))
  for strategy in _STRATEGIES.value:  # every strategy is checked before anything trains
    dataclasses.replace(base, strategy=strategy)
  output = os.path.abspath(_OUTPUT.value or os.path.join(
      _util.RESULTS, "continual.json" if arm == "plain"
      else f"continual_{arm.replace('+', '_')}.json"))
  stem = os.path.splitext(output)[0]
  settings = dict(memory_ipc=_MEMORY.value, protocol=protocol.describe(),
                  condensation=dict(steps=_CONDENSE_STEPS.value, inner_iterations=_INNER.value,
                                    reference="IDC 2000 x 100 inner iterations, DM 20,000",
                                    **({} if arm == "plain" else dict(idc_arm=arm))),
                  limit_per_class=_LIMIT.value)
  settings = json.loads(json.dumps(settings))  # as the JSON will hold them (lists, not tuples)
  results = {name: [] for name in scenarios}
  # Finished cells live in the JSON (the run dirs under --run_root are a scratch cache that
  # a later session may not have): a re-run keeps them and computes only the others.
  kept = {}
  if os.path.exists(output):
    with open(output) as f:
      old = json.load(f)
    if any(old.get(k) != v for k, v in settings.items()):
      raise SystemExit(f"{output} holds results measured with other settings; pass another "
                       "--output, or move it away to start again")
    kept = {name: sc["results"] for name, sc in old.get("scenarios", {}).items()}

  def save():
    done = {}
    for name, rs in results.items():
      if rs:
        summary = continual.summarize(rs)
        done[name] = dict(label=scenarios[name]["label"], summary=summary,
                          idc_lead=_margins(summary), minutes_per_cell=_minutes(rs), results=rs)
    payload = dict(machine=_util.machine(), command="python -m benchmarks.continual",
                   **settings, scenarios=done)
    _util.write_json_to(output, payload)
    for name, rs in results.items():
      if rs:
        continual.plot_accuracy(rs, f"{stem}_{name}.png", title=scenarios[name]["label"])

  # Seeds outermost: one seed of every (scenario, strategy) comes before the next seed.
  for seed in seeds:
    for name, sc in scenarios.items():
      for strategy in _STRATEGIES.value:
        done = [r for r in kept.get(name, ())
                if r["strategy"] == strategy and r["seed"] == seed
                and len(r["steps"]) == sc["steps"]]
        if done:
          print(f"[{name}] {strategy} seed {seed}: done in {output}, kept", flush=True)
          results[name].append(done[0])
          continue

        def on_step(s, k, r, name=name):
          print(f"[{name}] {s} seed {k} step {r['step'] + 1}: acc {r['accuracy']:.2f}% "
                f"({r['memory']['stored_images']} stored / {r['memory']['formed_images']} "
                f"formed; {r['memory_seconds']:.0f} + {r['train_seconds']:.0f} s)", flush=True)
        res = continual.compare(sc["make"], base, [strategy], [seed],
                                run_root=os.path.join(_RUN_ROOT.value, name), on_step=on_step)
        # Cells run over several sessions: each says when and on what CPU it ran.
        results[name].extend(dict(r.as_dict(), machine=_util.machine()) for r in res)
        save()
  save()
  for name, sc in scenarios.items():
    print(f"## {sc['label']}")
    print(continual.format_table(results[name]))
    print("IDC's lead in points (mean over steps / after the last step):",
          {k: (v["mean_over_steps"], v["last_step"])
           for k, v in _margins(continual.summarize(results[name])).items()})
    print("minutes per cell (condensation / selection + training):", _minutes(results[name]))
  print(f"written {output}")


if __name__ == "__main__":
  app.run(main)
