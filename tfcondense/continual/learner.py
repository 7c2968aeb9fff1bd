"""Class- and task-incremental learners: the loop over steps and its resume.

Class-incremental (IDC, Kim et al., ICML 2022, Sec. 5.4 and Fig. 7; setting of Zhao &
Bilen, "Dataset Condensation with Distribution Matching", WACV 2023; code base of Hou
et al., "Learning a Unified Classifier Incrementally via Rebalancing", CVPR 2019): the
classes arrive in `steps` equal groups in a fixed seeded order. When a group arrives,
its exemplars are made from that group's data only (`tfcondense.continual.memory`) and
added to the memory; the classifier grows by the new classes, keeping the old rows;
the network is then trained ONLY on the memory of all classes seen so far with CutMix
cross-entropy plus distillation from the frozen previous model
(`tfcondense.continual.losses`). After each step the model is tested on the test
images of all classes seen so far.

Task-incremental (DC, Zhao et al., ICLR 2021, Sec. 4: SVHN -> MNIST -> USPS): a
sequence of datasets, each a task with its own classes. The network has one head per
task, implemented as ONE classifier whose columns are split into per-task blocks
(task offsets): task t owns columns [offset_t, offset_t + K_t), its softmax (in the
loss and at test time, where the task is known) runs over its block only. Blocks
share no parameters, so this is the multi-head network, grown task by task exactly
as the class-incremental classifier is (old blocks copied). By default the network
trains on the current task's full training set plus the memory of earlier tasks
(`train_on="memory+current"`, DC's setting); distillation keeps each old head's
softmax close to the previous model's, block by block. Tasks of different shapes are
harmonised (`tfcondense.continual.scenarios.harmonize`) and one normalisation (the
mean of the tasks' per-channel statistics) is used for all tasks.

Resume: with `run_dir`, every finished step leaves its memory, the model weights and
its results under `run_dir/step_XXX/`, and `state.json` (written last, atomically)
lists the finished steps (`tfcondense.continual.state`). A new learner with the same
settings continues after the last finished step without rebuilding earlier memories
(a memory built before an interruption in the middle of a step is reused too).
`config.json` guards the settings, as `tfcondense.engine` does.

The other jobs live in their own modules, re-exported here: `config` (protocols,
ContinualConfig), `scenarios` (class orders, task sequences), `losses`, `growth`
(classifier growth), `training` (one step's trainer), `metrics` (test accuracy),
`state` (run directory), `results` (ContinualResult, summaries), `plots`, `compare`.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from tfcondense import evaluation as ev
from tfcondense import fileio
from tfcondense import progress as progress_lib
from tfcondense import seeds
from tfcondense import training
from tfcondense.continual import memory as memory_lib
from tfcondense.continual import metrics
from tfcondense.continual import state as state_lib
from tfcondense.continual.compare import compare
from tfcondense.continual.config import PROTOCOLS, TRAIN_ON, ContinualConfig, get_protocol
from tfcondense.continual.growth import grow_classifier
from tfcondense.continual.losses import classification_loss, distillation_loss
from tfcondense.continual.plots import plot_accuracy
from tfcondense.continual.results import ContinualResult, format_table, summarize
from tfcondense.continual.scenarios import (DIGIT_TASKS, convert_images, harmonize,
                                            make_class_order, split_classes, split_source,
                                            task_sequence)
from tfcondense.continual.training import IncrementalTrainer
from tfcondense.data.store import SourceData

__all__ = [
    "DIGIT_TASKS", "PROTOCOLS", "TRAIN_ON", "ClassIncrementalLearner", "ContinualConfig",
    "ContinualResult", "IncrementalTrainer", "TaskIncrementalLearner",
    "classification_loss", "compare", "convert_images", "distillation_loss",
    "format_table", "get_protocol", "grow_classifier", "harmonize", "make_class_order",
    "plot_accuracy", "split_classes", "split_source", "summarize", "task_sequence",
]

#: Salts of the per-step seeds (`fresh_seed(config.seed, salt, step)`) of the memory,
#: the model initialisation and the training (tfcondense/seeds.py: 0xE7, 0x3D, 0x7A).
_SALT_MEMORY = seeds.salt("continual.memory")
_SALT_MODEL = seeds.salt("continual.model")
_SALT_TRAIN = seeds.salt("continual.train")

#: The learners' default settings (a frozen dataclass, shared safely).
_DEFAULT_CONFIG = ContinualConfig()


@dataclasses.dataclass(frozen=True)
class _Plan:
  """One step of a scenario: which columns arrive, from which data."""

  name: str
  classes: Tuple[int, ...]     # dataset class ids (of the step's own dataset)
  columns: Tuple[int, ...]     # classifier columns of those classes, in the same order
  group: int                   # softmax group (task) of the columns
  train: int                   # training images available at the step
  test: int                    # test images


class _IncrementalLearner:
  """The loop shared by the class- and task-incremental learners."""

  setting = ""
  default_train_on = "memory"

  def __init__(self, plans: Sequence[_Plan], step_source: Callable[[int], SourceData],
               step_test: Callable[[int], Tuple[np.ndarray, np.ndarray]],
               config: ContinualConfig, *, image_shape, mean, std, flip: bool,
               sources_record: Dict[str, Any], run_dir: Optional[str],
               show_progress: bool):
    self.config = config
    self.plans = tuple(plans)
    self._step_source = step_source
    self._step_test = step_test
    self.image_shape = tuple(int(d) for d in image_shape)
    self.mean, self.std = tuple(mean), tuple(std)
    self.flip = bool(flip) if config.flip is None else bool(config.flip)
    self.train_on = config.train_on or self.default_train_on
    self.run_dir = run_dir
    self.show_progress = show_progress
    self.model = None
    self._memories: List[memory_lib.Exemplars] = []
    self._results: List[Dict[str, Any]] = []
    self.record = dict(setting=self.setting, config=config.record(),
                       train_on=self.train_on, flip=self.flip,
                       image_shape=list(self.image_shape), sources=sources_record,
                       steps=[dict(name=p.name, classes=list(p.classes),
                                   columns=list(p.columns), group=p.group, train=p.train,
                                   test=p.test) for p in self.plans])
    if run_dir:
      from tfcondense import engine  # pylint: disable=g-import-not-at-top
      engine.guard_config(run_dir, self.record)
      self._load_state()

  # ------------------------------------------------------------------ state
  def _step_dir(self, t: int) -> Optional[str]:
    return state_lib.step_dir(self.run_dir, t) if self.run_dir else None

  def _load_state(self) -> None:
    results = state_lib.read_results(self.run_dir, len(self.plans))
    done = len(results)
    self._memories = state_lib.load_memories(self.run_dir, done)
    if done:
      model = self._build(self._columns_until(done - 1), done - 1)
      self.model = state_lib.load_weights(model, self.run_dir, done - 1)
    self._results = results

  def _save_step(self, t: int, result: Dict[str, Any]) -> None:
    state_lib.save_step(self.run_dir, t, self.model, result, self._results)

  # ------------------------------------------------------------------ pieces
  @property
  def finished_steps(self) -> int:
    return len(self._results)

  @property
  def results(self) -> ContinualResult:
    return ContinualResult(self.setting, self.config.strategy.lower(), int(self.config.seed),
                           tuple(self._results))

  @property
  def memory(self) -> Tuple[memory_lib.Exemplars, ...]:
    """The exemplars of every finished (or started) step, labels = classifier columns."""
    return tuple(self._memories)

  def _seed(self, salt: int, t: int) -> int:
    from tfcondense.methods.base import fresh_seed  # pylint: disable=g-import-not-at-top
    return fresh_seed(int(self.config.seed), salt, t)

  def _columns_until(self, t: int) -> int:
    return sum(len(p.columns) for p in self.plans[:t + 1])

  def _build(self, num_classes: int, t: int):
    cfg = self.config
    return training.build_with_precision(cfg.protocol.precision, cfg.model, self.image_shape,
                                         num_classes, seed=self._seed(_SALT_MODEL, t),
                                         **dict(cfg.model_options))

  def _column_groups(self, t: int) -> List[int]:
    return [p.group for p in self.plans[:t + 1] for _ in p.columns]

  def _old_blocks(self, t: int) -> List[Tuple[int, int]]:
    """Column ranges of the old classes, one per softmax group."""
    blocks: Dict[int, List[int]] = {}
    for p in self.plans[:t]:
      blocks.setdefault(p.group, []).extend(p.columns)
    return [(min(c), max(c) + 1) for c in blocks.values()]

  def _make_memory(self, t: int, source: SourceData) -> Tuple[memory_lib.Exemplars, float]:
    """Step t's exemplars: from disk if already built, else from `source` only."""
    plan = self.plans[t]
    d = self._step_dir(t)
    path = os.path.join(d, "memory") if d else None
    if path and fileio.exists(os.path.join(path, "meta.json")):
      return memory_lib.Exemplars.load(path), 0.0
    t0 = time.perf_counter()
    ex = memory_lib.build_exemplars(
        self.config.strategy, source, self.config.memory_ipc, self._seed(_SALT_MEMORY, t),
        self.config.exemplars, workdir=os.path.join(d, "condense") if d else None)
    seconds = time.perf_counter() - t0
    ex = ex.relabel(plan.columns)
    ex = dataclasses.replace(ex, meta=dict(ex.meta, step=t, classes=list(plan.classes),
                                           columns=list(plan.columns),
                                           seconds=round(seconds, 2)))
    if path:
      ex.save(path, dict(source=source.name))
    return ex, seconds

  def _training_set(self, t: int, source: SourceData) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*(m.formed() for m in self._memories[:t + 1]))
    xs, ys = list(xs), list(ys)
    if self.train_on == "memory+current":
      xs[t] = np.asarray(source.train_images, np.float32)
      ys[t] = np.asarray(self.plans[t].columns, np.int32)[source.train_labels]
    return np.concatenate(xs), np.concatenate(ys).astype(np.int32)

  def _evaluate(self, t: int) -> Tuple[float, List[float]]:
    groups = self._column_groups(t)

    def tests():  # one step's test images at a time
      for s in range(t + 1):
        x, local = self._step_test(s)
        yield (x, np.asarray(self.plans[s].columns, np.int32)[local],
               [c for c, g in enumerate(groups) if g == self.plans[s].group])

    return metrics.seen_accuracy(self.model, self.mean, self.std, tests(),
                                 own_head=self.setting == "task_incremental")

  # -------------------------------------------------------------------- run
  def run(self, until: Optional[int] = None,
          on_step: Optional[Callable[[Dict[str, Any]], None]] = None) -> ContinualResult:
    """Runs the steps after the last finished one, up to `until` (exclusive; None = all).

    Args:
      until: stop after this many steps in total (e.g. 2 runs steps 0 and 1).
      on_step: called with each finished step's result dict (apps print it).

    Returns:
      The ContinualResult of every finished step (resumed ones included).
    """
    cfg = self.config
    stop = len(self.plans) if until is None else min(int(until), len(self.plans))
    for t in range(self.finished_steps, stop):
      plan = self.plans[t]
      source = self._step_source(t)  # this step's data only
      ex, memory_seconds = self._make_memory(t, source)
      self._memories = self._memories[:t] + [ex]
      teacher = self.model
      columns = self._columns_until(t)
      if teacher is None:
        model = self._build(columns, t)
      else:
        model = grow_classifier(teacher, len(plan.columns), lambda n, t=t: self._build(n, t))
      x, y = self._training_set(t, source)
      trainer = IncrementalTrainer(
          model, x, y, self.mean, self.std, cfg.protocol, flip=self.flip, teacher=teacher,
          temperature=cfg.temperature, distill_weight=cfg.distill_weight,
          blocks=self._old_blocks(t), column_groups=self._column_groups(t))
      trainer.start(self._seed(_SALT_TRAIN, t))
      t0 = time.perf_counter()
      total = trainer.total_steps
      bounds = sorted({round(total * (k + 1) / 20) for k in range(20)} - {0})
      done, loss = 0, float("nan")
      with progress_lib.progress(total, f"{cfg.strategy} step {t + 1}/{len(self.plans)}",
                                 enabled=self.show_progress, unit="step") as bar:
        for b in bounds:
          loss = trainer.train(done, b - done)
          bar.update(b - done)
          done = b
      train_seconds = time.perf_counter() - t0
      self.model = model
      accuracy, per_group = self._evaluate(t)
      storage = [m.storage() for m in self._memories]
      result = dict(
          step=t, name=plan.name, classes=list(plan.classes), columns=list(plan.columns),
          seen_classes=columns, accuracy=accuracy, group_accuracy=per_group,
          memory={k: int(sum(s[k] for s in storage)) for k in storage[0]},
          train_images=int(len(x)), train_steps=int(trainer.total_steps), loss=float(loss),
          memory_seconds=round(memory_seconds, 2), train_seconds=round(train_seconds, 2),
          protocol=cfg.protocol.name, strategy=cfg.strategy.lower())
      if self.run_dir:
        self._save_step(t, result)
      self._results.append(result)
      if on_step is not None:
        on_step(result)
    return self.results


class ClassIncrementalLearner(_IncrementalLearner):
  """Class-incremental learning on one source (IDC Fig. 7: CIFAR-100, 5 x 20 classes).

  Args:
    source: the SourceData.
    config: ContinualConfig (train_on defaults to "memory").
    steps: number of class groups; must divide the number of classes.
    class_order: explicit order of all classes; default
      `make_class_order(n, order_seed)`.
    order_seed: seed of the default order.
    run_dir: directory for resume (None: in memory only).
    show_progress: progress bars.

  Raises (before anything trains):
    InvalidConfigError: steps not dividing the classes, a bad order, a memory that
      cannot hold one image per class or is larger than a class, a bad condensation
      setting, or a run_dir holding a run with other settings.
    UnknownNameError: unknown strategy or model.
  """

  setting = "class_incremental"
  default_train_on = "memory"

  def __init__(self, source: SourceData, config: ContinualConfig = _DEFAULT_CONFIG, *,
               steps: int = 5, class_order: Optional[Sequence[int]] = None,
               order_seed: int = 0, run_dir: Optional[str] = None,
               show_progress: bool = True):
    order = (tuple(int(c) for c in class_order) if class_order is not None
             else make_class_order(source.num_classes, order_seed))
    groups = split_classes(order, steps, source.num_classes)
    source.check_ipc(config.memory_ipc)
    memory_lib.check_strategy(config.strategy, source.name, config.memory_ipc,
                              config.exemplars)
    self.source = source
    self.class_order = order
    self.groups = groups
    counts = source.class_counts()
    test_counts = np.bincount(source.test_labels, minlength=source.num_classes)
    plans, start = [], 0
    for g in groups:
      plans.append(_Plan(name=",".join(source.class_names[c] for c in g), classes=g,
                         columns=tuple(range(start, start + len(g))), group=0,
                         train=int(counts[list(g)].min()),
                         test=int(test_counts[list(g)].sum())))
      start += len(g)
    def step_test(t):
      remap = np.full(source.num_classes, -1, np.int32)
      remap[list(groups[t])] = np.arange(len(groups[t]), dtype=np.int32)
      keep = remap[source.test_labels] >= 0
      return source.test_images[keep], remap[source.test_labels[keep]]

    flip = source.name not in ev.NO_FLIP_SOURCES
    super().__init__(plans, lambda t: source.subset(groups[t]), step_test, config,
                     image_shape=source.image_shape, mean=source.mean, std=source.std,
                     flip=flip, sources_record=dict(name=source.name,
                                                    train=int(len(source.train_labels)),
                                                    test=int(len(source.test_labels))),
                     run_dir=run_dir, show_progress=show_progress)


class TaskIncrementalLearner(_IncrementalLearner):
  """Task-incremental learning over a sequence of datasets (DC: SVHN -> MNIST -> USPS).

  One head per task (a shared classifier with per-task column blocks, see the module
  docstring); the task is known at test time. Tasks of different shapes are
  harmonised with `harmonize`.

  Args:
    tasks: SourceData per task (or names, loaded with `tfcondense.data.load_source`).
    config: ContinualConfig (train_on defaults to "memory+current").
    image_shape: common (H, W, C) (None: the largest of each dimension).
    run_dir, show_progress: as ClassIncrementalLearner.
  """

  setting = "task_incremental"
  default_train_on = "memory+current"

  def __init__(self, tasks: Sequence[Union[str, SourceData]],
               config: ContinualConfig = _DEFAULT_CONFIG, *,
               image_shape: Optional[Sequence[int]] = None, run_dir: Optional[str] = None,
               show_progress: bool = True):
    tasks = task_sequence(tasks, image_shape)
    for s in tasks:
      s.check_ipc(config.memory_ipc)
      memory_lib.check_strategy(config.strategy, s.name, config.memory_ipc,
                                config.exemplars)
    self.tasks = tasks
    plans, start = [], 0
    for i, s in enumerate(tasks):
      k = s.num_classes
      plans.append(_Plan(name=f"{i}:{s.name}", classes=tuple(range(k)),
                         columns=tuple(range(start, start + k)), group=i,
                         train=int(s.class_counts().min()), test=int(len(s.test_labels))))
      start += k
    mean = tuple(float(v) for v in np.mean([s.mean for s in tasks], axis=0))
    std = tuple(float(v) for v in np.mean([s.std for s in tasks], axis=0))
    flip = all(s.name not in ev.NO_FLIP_SOURCES for s in tasks)
    super().__init__(plans, lambda t: tasks[t],
                     lambda t: (tasks[t].test_images, tasks[t].test_labels), config,
                     image_shape=tasks[0].image_shape,
                     mean=mean, std=std, flip=flip,
                     sources_record=[dict(name=s.name, train=int(len(s.train_labels)),
                                          test=int(len(s.test_labels)))
                                     for s in tasks],
                     run_dir=run_dir, show_progress=show_progress)
