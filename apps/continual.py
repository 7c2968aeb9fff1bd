r"""Continual learning with condensed vs. selected exemplar memories (IDC Figure 7).

Class-incremental (the default):

  python -m apps.continual --source fashion_mnist --steps 5 --memory_ipc 10 \
      --exemplars idc,herding,random --output runs/continual.json

splits the classes into --steps groups in a fixed seeded order (--order_seed); at
each step makes the arriving classes' exemplars from their data only (--memory_ipc
stored images per class; IDC's decode into memory_ipc * f^2 training images), grows
the classifier, trains on the memory of all seen classes (CE with CutMix + T^2 KL
distillation from the previous model) and tests on all seen classes. It prints one
line per step per strategy and seed (accuracy, memory, seconds), then a table of the
accuracy after each step (mean +- std over --seeds), writes every result to --output
and plots accuracy vs. number of classes to the PNG next to it (runs/continual.png).

Task-incremental (one head per task; the task's full data plus the memory of earlier
tasks): `--tasks digits,fashion_mnist` (a dataset sequence, brought to one image
shape), or `--setting task` to split --source into --steps tasks. CIFAR-100 in 5
steps of 20 classes: `--source cifar100 --steps 5 --memory_ipc 20` (with the tfds data
prepared; see tfcondense.data.tfds_sources).

Every (strategy, seed) runs in its own resumable directory under --run_dir (default:
next to --output): run the same command again after an interruption and it continues
after the last finished step; finished runs are not recomputed.

Runtime (an estimate, NOT measured: this command was not run to completion here): on
the 2-core CPU machine, with the default cpu protocol (500 SGD steps per step) and
--condense_steps 50, roughly 15 minutes per selection strategy and 30-40 minutes for
IDC per seed on Fashion-MNIST. Measured: `--protocol smoke --limit_per_class 20
--condense_steps 1 --inner_iterations 1 --memory_ipc 2` with the three default
strategies took 3.3 minutes (2 cores shared with another job); a second run of the
same command only reloads the finished runs (10 s).
"""
from __future__ import annotations

import os
import sys

from absl import flags

from . import _common
from tfcondense import atomic

_SOURCE = flags.DEFINE_string("source", "fashion_mnist",
                              "Data source (fashion_mnist, digits, mnist, cifar10, cifar100, "
                              "svhn_cropped, ...).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the source's files are.")
_LIMIT = flags.DEFINE_integer("limit_per_class", None,
                              "Use only the first N training images per class (smoke runs).")
_SETTING = flags.DEFINE_enum("setting", "class", ["class", "task"],
                             "class-incremental, or task-incremental (--tasks, or --source "
                             "split into --steps tasks).")
_TASKS = flags.DEFINE_list("tasks", [],
                           "Task-incremental dataset sequence, e.g. digits,fashion_mnist or "
                           "svhn_cropped,mnist (implies --setting task).")
_STEPS = flags.DEFINE_integer("steps", 5, "Class groups (must divide the classes).")
_MEMORY = flags.DEFINE_integer("memory_ipc", 10,
                               "Memory budget: stored full-size images per class.")
_EXEMPLARS = flags.DEFINE_list("exemplars", ["idc", "herding", "random"],
                               "Exemplar strategies: random, herding, kcenter, dm, idc_i, idc.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds (training, exemplars, initialisation).")
_ORDER_SEED = flags.DEFINE_integer("order_seed", 0, "Seed of the fixed class order.")
_PROTOCOL = flags.DEFINE_enum("protocol", "cpu", ["paper", "cpu", "smoke"],
                              "Training per step: paper = 1000 epochs (lr x0.2 at 60% and "
                              "80%); cpu = 500 SGD steps; smoke = 4 steps.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", None,
                                    "Override the protocol's SGD steps per step.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override with epochs per step instead.")
_PRECISION = flags.DEFINE_enum("precision", None, ["float32", "mixed_bfloat16"],
                               "Training precision (default: the protocol's, float32).")
_MODEL = flags.DEFINE_string("model", "convnet3", "Network (models registry name).")
_TEMPERATURE = flags.DEFINE_float("temperature", 2.0, "Distillation temperature T.")
_BETA = flags.DEFINE_float("distill_weight", 1.0, "Weight of the distillation loss (0 = off).")
_CONDENSE_STEPS = flags.DEFINE_integer(
    "condense_steps", 50, "Condensation budget per class group: IDC inner iterations / DM "
    "iterations (the reference: 200,000 / 20,000 on a GPU).")
_INNER = flags.DEFINE_integer("inner_iterations", 10,
                              "IDC inner iterations per fresh network.")
_CONDENSE_MINUTES = flags.DEFINE_float("condense_minutes", None,
                                       "Wall-clock cap per class group's condensation.")
_FACTOR = flags.DEFINE_integer("factor", None, "IDC multi-formation factor (default 2).")
_OUTPUT = flags.DEFINE_string("output", "runs/continual.json", "JSON results file.")
_RUN_DIR = flags.DEFINE_string("run_dir", None,
                               "Resumable run directories (default: <output stem>_runs).")
_CACHE = flags.DEFINE_string("cache_dir", None,
                             "Cache of the herding / k-center embedding networks.")


@_common.friendly_errors
def main(argv):
  del argv
  _common.quiet_tensorflow()
  from tfcondense import continual, data  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top

  if not _EXEMPLARS.value:
    raise InvalidConfigError("--exemplars is empty; name at least one strategy "
                             f"({', '.join(continual.strategy_names())})")

  overrides = dict(precision=_PRECISION.value)
  if _TRAIN_STEPS.value is not None:
    overrides.update(steps=_TRAIN_STEPS.value, epochs=None)
  elif _EPOCHS.value is not None:
    overrides.update(epochs=_EPOCHS.value, steps=None)
  protocol = continual.get_protocol(_PROTOCOL.value, **overrides)
  config = continual.ContinualConfig(
      memory_ipc=_MEMORY.value, strategy=_EXEMPLARS.value[0],
      exemplars=continual.ExemplarConfig(
          steps=_CONDENSE_STEPS.value, inner_iterations=_INNER.value,
          minutes=_CONDENSE_MINUTES.value, factor=_FACTOR.value, cache_dir=_CACHE.value,
          show_progress=True),
      protocol=protocol, model=_MODEL.value, temperature=_TEMPERATURE.value,
      distill_weight=_BETA.value)

  def load(name):
    kwargs = {"limit_per_class": _LIMIT.value} if _LIMIT.value else {}
    if _DATA_DIR.value:
      kwargs.update(data.data_dir_kwargs(name, _DATA_DIR.value))
    return data.load_source(name, **kwargs)

  task = bool(_TASKS.value) or _SETTING.value == "task"
  if _TASKS.value:
    tasks = continual.task_sequence([load(n) for n in _TASKS.value])
    label = " -> ".join(_TASKS.value)
  elif task:
    tasks = continual.split_source(load(_SOURCE.value), _STEPS.value, _ORDER_SEED.value)
    label = f"{_SOURCE.value} split into {_STEPS.value} tasks"
  else:
    source = load(_SOURCE.value)
    label = f"{source.name}, {_STEPS.value} steps of {source.num_classes // max(1, _STEPS.value)}"

  def scenario(cfg, run_dir):
    if task:
      return continual.TaskIncrementalLearner(tasks, cfg, run_dir=run_dir)
    return continual.ClassIncrementalLearner(source, cfg, steps=_STEPS.value,
                                             order_seed=_ORDER_SEED.value, run_dir=run_dir)

  output = os.path.abspath(_OUTPUT.value)
  stem = os.path.splitext(output)[0]
  run_root = _RUN_DIR.value or stem + "_runs"
  setting = "task-incremental" if task else "class-incremental"
  print(f"{setting}: {label}; memory {_MEMORY.value} stored images per class")
  print(f"protocol {protocol.describe()}")

  def on_start(strategy, seed, done):
    if done:
      print(f"{strategy} seed {seed}: resuming after step {done}")

  def on_step(strategy, seed, r):
    mem = r["memory"]
    print(f"{strategy} seed {seed} step {r['step'] + 1}: acc {r['accuracy']:.2f}% on "
          f"{r['seen_classes']} classes (per step: "
          f"{', '.join(f'{a:.1f}' for a in r['group_accuracy'])}); memory "
          f"{mem['stored_images']} stored / {mem['formed_images']} formed images; "
          f"{r['memory_seconds']:.0f} s exemplars, {r['train_seconds']:.0f} s training",
          flush=True)

  results = continual.compare(scenario, config, _EXEMPLARS.value,
                              [int(s) for s in _SEEDS.value], run_root=run_root,
                              on_step=on_step, on_start=on_start)
  print(continual.format_table(results))
  payload = dict(command=" ".join(["python -m apps.continual"] + sys.argv[1:]),
                 setting=setting, scenario=label, memory_ipc=_MEMORY.value,
                 protocol=protocol.describe(), summary=continual.summarize(results),
                 results=[r.as_dict() for r in results])
  atomic.write_json(output, payload, sort_keys=False)
  png = continual.plot_accuracy(results, stem + ".png", title=f"{setting}: {label}")
  print(f"results written to {output}; plot {png}")


def run():
  """The `tfcondense-continual` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
