r"""Continual learning with every exemplar strategy, 3 seeds, under one memory budget.

  python -m benchmarks.continual                       # hours; resumable
  python -m benchmarks.continual --scenarios class --strategies idc,herding --seeds 0

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
1000 epochs). Every (scenario, strategy, seed) cell runs in its own resumable
directory under --run_root (default benchmarks/cache/continual); the JSON
(default benchmarks/results/continual.json) and one PNG per scenario next to it are
rewritten after every finished cell, and a finished cell is not recomputed.

Runtime: not measured here (estimate: 10-40 minutes per cell on the 2-core CPU
machine, about 18 hours for the whole grid). Smoke: `--limit_per_class 20 --protocol
smoke --condense_steps 1 --inner_iterations 1 --seeds 0 --output /tmp/c.json
--run_root /tmp/c_runs` took 11 minutes here (2 cores shared with another job).
"""
from __future__ import annotations

import dataclasses
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
_OUTPUT = flags.DEFINE_string("output", os.path.join(_util.RESULTS, "continual.json"),
                              "JSON results (PNGs are written next to it).")
_RUN_ROOT = flags.DEFINE_string("run_root", os.path.join(HERE, "cache", "continual"),
                                "Resumable run directories.")
_CACHE = flags.DEFINE_string("cache_dir", None, "Herding / k-center embedding cache.")


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
  exemplars = continual.ExemplarConfig(steps=_CONDENSE_STEPS.value,
                                       inner_iterations=_INNER.value, cache_dir=_CACHE.value)
  base = continual.ContinualConfig(memory_ipc=_MEMORY.value, strategy=_STRATEGIES.value[0],
                                   exemplars=exemplars, protocol=protocol)
  seeds = [int(s) for s in _SEEDS.value]
  scenarios = {}
  if "class" in _SCENARIOS.value:
    fashion = data.load_source("fashion_mnist", **limit)
    scenarios["class"] = dict(
        label="class-incremental Fashion-MNIST, 5 steps of 2 classes",
        make=lambda cfg, d: continual.ClassIncrementalLearner(
            fashion, cfg, steps=5, order_seed=0, run_dir=d))
  if "task" in _SCENARIOS.value:
    tasks = continual.task_sequence(["digits", "fashion_mnist"], **limit)
    scenarios["task"] = dict(
        label="task-incremental digits -> Fashion-MNIST (28x28x1)",
        make=lambda cfg, d: continual.TaskIncrementalLearner(tasks, cfg, run_dir=d))
  for strategy in _STRATEGIES.value:  # every strategy is checked before anything trains
    dataclasses.replace(base, strategy=strategy)
  output = os.path.abspath(_OUTPUT.value)
  stem = os.path.splitext(output)[0]
  results = {name: [] for name in scenarios}

  def save():
    payload = dict(
        machine=_util.machine(), command="python -m benchmarks.continual",
        memory_ipc=_MEMORY.value, protocol=protocol.describe(),
        condensation=dict(steps=_CONDENSE_STEPS.value, inner_iterations=_INNER.value,
                          reference="IDC 2000 x 100 inner iterations, DM 20,000"),
        limit_per_class=_LIMIT.value,
        scenarios={name: dict(label=scenarios[name]["label"],
                              summary=continual.summarize(rs),
                              results=[r.as_dict() for r in rs])
                   for name, rs in results.items()})
    _util.write_json_to(output, payload)
    for name, rs in results.items():
      if rs:
        continual.plot_accuracy(rs, f"{stem}_{name}.png", title=scenarios[name]["label"])

  for name, sc in scenarios.items():
    for strategy in _STRATEGIES.value:
      for seed in seeds:
        def on_step(s, k, r, name=name):
          print(f"[{name}] {s} seed {k} step {r['step'] + 1}: acc {r['accuracy']:.2f}% "
                f"({r['memory']['stored_images']} stored / {r['memory']['formed_images']} "
                f"formed; {r['memory_seconds']:.0f} + {r['train_seconds']:.0f} s)", flush=True)
        res = continual.compare(sc["make"], base, [strategy], [seed],
                                run_root=os.path.join(_RUN_ROOT.value, name), on_step=on_step)
        results[name].extend(res)
        save()
    print(f"## {sc['label']}")
    print(continual.format_table(results[name]))
  print(f"written {output}")


if __name__ == "__main__":
  app.run(main)
