"""What every suite shares: the source view, the condensed sets, cached evaluations.

`BenchContext` holds one source (possibly a per-class subset, as the budget says), the
budget, the cell store and the work directory. Condensed sets are made once and kept
as artifacts (`<work>/sets/<method>_ipc<k>/`, loadable with `np.load`), synthesis runs
resume from `<work>/condense/<method>_ipc<k>/` -- or synthesis sets made elsewhere
(`apps.condense`, another benchmark, another library's export) are read from
`sets_from` -- and `evaluate` returns a cached cell
when one with the same spec exists anywhere in the store (DC-BENCH, Cui et al. 2022,
evaluates the same set under several suites).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

from absl import logging
import numpy as np

from tfcondense import atomic
from tfcondense.bench import budgets as budgets_lib
from tfcondense.bench.store import CellStore, normalize
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

FULL = "full"  # pseudo-method: the whole training set (of the view).


def source_view(name: str, train_per_class: Optional[int] = None,
                test_per_class: Optional[int] = None, **options):
  """`load_source(name, **options)` keeping the first images of each class.

  Args:
    name: source registry name.
    train_per_class: training images kept per class (None = all).
    test_per_class: test images kept per class (None = all).
    **options: options of the source (data_dir, path, ...).

  Returns:
    A SourceData with the same name, classes and normalisation.
  """
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  source = data.load_source(name, **options)
  if train_per_class is None and test_per_class is None:
    return source

  def first(labels, k):
    if k is None:
      return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:k]
                                   for c in range(source.num_classes)]))

  tr = first(source.train_labels, train_per_class)
  te = first(source.test_labels, test_per_class)
  return dataclasses.replace(
      source, train_images=source.train_images[tr], train_labels=source.train_labels[tr],
      test_images=source.test_images[te], test_labels=source.test_labels[te])


class CondensedSet:
  """Training images of one method at one IPC (formed images for IDC-like methods).

  A set that is not on disk yet is made only when its images are first read: its
  `spec` (what keys the cells) is known without them, so a resumed benchmark whose
  cells are all stored selects and condenses nothing -- on a fresh checkout, where the
  work directory is empty, that saves every K-Center selection and 15-minute
  condensation behind cells already committed.

  Attributes:
    method: method name (or "full").
    ipc: stored images per class (None for the full set).
    images, labels: what a network trains on (made on first access if need be).
    spec: what identifies the set (method, ipc, settings), part of every cell spec.
    meta: the artifact's metadata (budget, storage, ...).
  """

  def __init__(self, method: str, ipc: Optional[int], images: Optional[np.ndarray],
               labels: Optional[np.ndarray], spec: Dict[str, Any],
               meta: Optional[Dict[str, Any]] = None, *,
               make: Optional[Callable[[], Tuple[np.ndarray, np.ndarray,
                                                 Dict[str, Any]]]] = None):
    if make is None and (images is None or labels is None):
      raise InvalidConfigError("CondensedSet needs images and labels, or `make` to produce them")
    self.method = method
    self.ipc = ipc
    self.spec = spec
    self._data = None if make is not None else (images, labels, dict(meta or {}))
    self._make = make

  @property
  def made(self) -> bool:
    """Whether the images are in memory (False until a deferred set is first read)."""
    return self._data is not None

  def _get(self):
    if self._data is None:
      self._data = self._make()
      self._make = None
    return self._data

  @property
  def images(self) -> np.ndarray:
    return self._get()[0]

  @property
  def labels(self) -> np.ndarray:
    return self._get()[1]

  @property
  def meta(self) -> Dict[str, Any]:
    return self._get()[2]


class BenchContext:
  """Shared state of one benchmark run on one source.

  Args:
    source_name: source registry name.
    budget: a Budget or a preset name.
    out_dir: where the cells (and later the report) go.
    work_dir: artifacts, condensation checkpoints and caches (default `<out>/work`).
    seed: seed of selection, condensation, NAS sampling and evaluation.
    source_options: options of `load_source` (e.g. data_dir).
    nas_ground_truth: optional NAS-Bench-201 results file (see `bench.nas`).
    nas_dataset: the dataset of that file to read (cifar10, cifar100, ...).
    sets_from: where to find synthesis sets instead of condensing them under the
      budget: a path pattern with `{method}` and `{ipc}` naming an artifact directory
      (images.npy, labels.npy, meta.json; `apps.condense` writes one), e.g.
      "runs/{method}_ipc{ipc}/artifact". A set that is not there is condensed.
    show_progress: progress bars.
    log: one line per finished cell (None: absl logging at INFO; `apps.bench` passes
      `print`).
  """

  def __init__(self, source_name: str, budget, out_dir: str, work_dir: Optional[str] = None,
               *, seed: int = 0, source_options: Optional[Dict[str, Any]] = None,
               nas_ground_truth: Optional[str] = None, nas_dataset: str = "cifar10",
               sets_from: Optional[str] = None, show_progress: bool = True,
               log: Optional[Callable[[str], None]] = None):
    self.budget = budgets_lib.get_budget(budget)
    budgets_lib.check_budget(self.budget)
    self.source_name = str(source_name).lower()
    self.out_dir = os.path.abspath(out_dir)
    self.work_dir = os.path.abspath(work_dir or os.path.join(self.out_dir, "work"))
    self.seed = int(seed)
    self.source_options = dict(source_options or {})
    self.nas_ground_truth = nas_ground_truth
    self.nas_dataset = nas_dataset
    if sets_from is not None:
      try:
        sets_from.format(method="m", ipc=1)
      except (KeyError, IndexError, ValueError) as e:
        raise InvalidConfigError(f"sets_from {sets_from!r}: only {{method}} and {{ipc}} may "
                                 f"appear in braces ({e})") from None
    self.sets_from = sets_from
    self.show_progress = show_progress
    self.log = log or logging.info
    self.store = CellStore(self.out_dir)
    self._source = None
    self._sets: Dict[Tuple[str, Optional[int]], CondensedSet] = {}

  # -- data ---------------------------------------------------------------------------

  @property
  def source(self):
    if self._source is None:
      self._source = source_view(self.source_name, self.budget.train_per_class,
                                 self.budget.test_per_class, **self.source_options)
    return self._source

  @property
  def view_spec(self) -> Dict[str, Any]:
    """Identifies the data every cell was computed on."""
    return dict(source=self.source_name, train_per_class=self.budget.train_per_class,
                test_per_class=self.budget.test_per_class)

  @property
  def cache_dir(self) -> str:
    return os.path.join(self.work_dir, "cache")

  def class_size(self) -> int:
    return int(self.source.class_counts().min())

  # -- condensed sets -----------------------------------------------------------------

  def condensed(self, method: str, ipc: Optional[int]) -> CondensedSet:
    """The training set of `method` at `ipc`, made once and kept as an artifact."""
    from tfcondense import api  # pylint: disable=g-import-not-at-top
    from tfcondense.registry import UnknownNameError  # pylint: disable=g-import-not-at-top
    method = method.lower()
    key = (method, None if method == FULL else int(ipc))
    if key in self._sets:
      return self._sets[key]
    if method == FULL:
      src = self.source
      cset = CondensedSet(FULL, None, src.train_images, src.train_labels,
                          dict(method=FULL, view=self.view_spec), {})
    else:
      try:
        kind = api.kind(method)
      except UnknownNameError:
        raise InvalidConfigError(f"unknown method {method!r}; known: "
                                 f"{', '.join(api.method_names())}, full") from None
      make = self._selection if kind == "selection" else self._synthesis
      cset = make(method, int(ipc))
    self._sets[key] = cset
    return cset

  def set_dir(self, method: str, ipc: int) -> str:
    return os.path.join(self.work_dir, "sets", f"{method}_ipc{ipc}")

  def _load_if_matching(self, directory: str, expect: Dict[str, Any]):
    from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
    if not os.path.isdir(directory):
      return None
    try:
      art = artifact_lib.load_artifact(directory)
    except CorruptArtifactError:
      return None
    if "bench_spec" not in art.meta:  # written, but the run stopped before tagging it
      return None
    if normalize(art.meta["bench_spec"]) != normalize(expect):
      raise InvalidConfigError(
          f"{directory} holds a set made with other settings; use another --work_dir "
          "for this budget or delete the directory")
    return art

  def _selection(self, method: str, ipc: int) -> CondensedSet:
    from tfcondense import api  # pylint: disable=g-import-not-at-top
    from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
    self.source.check_ipc(ipc)
    spec = dict(method=method, ipc=ipc, seed=self.seed, view=self.view_spec)
    directory = self.set_dir(method, ipc)
    art = self._load_if_matching(directory, spec)
    if art is not None:
      return CondensedSet(method, ipc, art.images, art.labels, spec, art.meta)

    def make():
      sel = api.condense(method, self.source, ipc, seed=self.seed, cache_dir=self.cache_dir,
                         show_progress=self.show_progress).artifact
      made = artifact_lib.save_artifact(directory, sel.images, sel.labels,
                                        dict(sel.meta, bench_spec=spec))
      self.log(f"selected {method}@{ipc}: {len(made.images)} images -> {directory}")
      return made.images, made.labels, made.meta

    return CondensedSet(method, ipc, None, None, spec, make=make)

  def synthesis_config(self, method: str, ipc: int, **extra):
    """(config, overrides) of synthesis `method` at `ipc` under the budget."""
    from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
    spec = condense_lib.SYNTHESIS.get(method)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    overrides = dict(self.budget.condense_overrides(method))
    if "precision" in fields and "precision" not in overrides:
      overrides["precision"] = self.budget.condense_precision
    if "seed" in fields:
      overrides.setdefault("seed", self.seed)
    overrides.update(extra)
    if method == "mtt" and "experts_dir" not in overrides:
      overrides["experts_dir"] = self.mtt_experts()
    return condense_lib.make_config(method, self.source.name, ipc, **overrides), overrides

  def mtt_experts(self) -> str:
    """Trains (or finds) the MTT expert trajectories of the budget; returns their dir."""
    from tfcondense.methods import mtt  # pylint: disable=g-import-not-at-top
    n, epochs, steps = self.budget.mtt_experts
    directory = os.path.join(self.work_dir, "mtt_experts")
    mtt.train_experts(self.source, directory, n, epochs, steps_per_epoch=steps,
                      show_progress=self.show_progress)
    return directory

  def _synthesis(self, method: str, ipc: int) -> CondensedSet:
    from tfcondense import api  # pylint: disable=g-import-not-at-top
    from tfcondense import engine  # pylint: disable=g-import-not-at-top
    from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
    self.source.check_ipc(ipc)
    imported = self._imported(method, ipc)
    if imported is not None:
      return imported
    cfg, overrides = self.synthesis_config(method, ipc)
    spec = dict(method=method, ipc=ipc, config=cfg.as_dict(),
                minutes=self.budget.condense_minutes, view=self.view_spec)
    directory = self.set_dir(method, ipc)
    art = self._load_if_matching(directory, spec)
    if art is not None:
      images, labels = synthetic.formed_from_artifact(art, art.weights)
      return CondensedSet(method, ipc, images, labels, spec, art.meta)

    def make():
      t0 = time.perf_counter()
      kwargs = dict(overrides)
      res = api.condense(
          method, self.source, ipc, seed=kwargs.pop("seed", self.seed), options=engine.RunOptions(
              workdir=os.path.join(self.work_dir, "condense", f"{method}_ipc{ipc}"),
              minutes=self.budget.condense_minutes, checkpoint_seconds=120,
              show_progress=self.show_progress, desc=f"{method}@{ipc}"),
          artifact_dir=directory, init_options={"cache_dir": self.cache_dir}, **kwargs)
      # Tag the artifact (written with its PNG grids) with what made it.
      made = dataclasses.replace(res.artifact, meta=dict(res.artifact.meta, bench_spec=spec))
      atomic.write_json(os.path.join(directory, "meta.json"), made.meta)
      self.log(f"condensed {method}@{ipc}: {res.run.steps} steps in "
               f"{time.perf_counter() - t0:.0f} s ({res.run.stopped}) -> {directory}")
      images, labels = synthetic.formed_from_artifact(made, made.weights)
      return images, labels, made.meta

    return CondensedSet(method, ipc, None, None, spec, make=make)

  def _imported(self, method: str, ipc: int) -> Optional[CondensedSet]:
    """The set of `method` at `ipc` under `sets_from`, if there is one there."""
    from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
    from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
    if not self.sets_from:
      return None
    directory = os.path.abspath(os.path.expanduser(
        self.sets_from.format(method=method, ipc=ipc)))
    if not os.path.isdir(directory):
      self.log(f"no {method}@{ipc} set at {directory}; condensing one under the budget")
      return None
    art = artifact_lib.load_artifact(directory)  # a corrupt one is an error, not a skip
    meta = art.meta
    found = (meta.get("method"), meta.get("ipc"), meta.get("source"))
    if found != (method, ipc, self.source_name):
      raise InvalidConfigError(
          f"{directory} holds {found[0]}@{found[1]} of {found[2]}, not {method}@{ipc} of "
          f"{self.source_name}; fix the --sets_from pattern")
    # The images' digest keys the cached evaluations: a set replaced on disk is
    # evaluated again, never confused with the one before it.
    digest = hashlib.sha256(np.ascontiguousarray(art.images).tobytes()).hexdigest()[:16]
    spec = dict(method=method, ipc=ipc, imported=digest, budget=meta.get("budget"),
                view=self.view_spec)
    images, labels = synthetic.formed_from_artifact(art, art.weights)
    self.log(f"read {method}@{ipc} from {directory}: {len(images)} training images")
    return CondensedSet(method, ipc, images, labels, spec, meta)

  # -- evaluation ---------------------------------------------------------------------

  def cached(self, suite: str, key: str, spec: Dict[str, Any],
             compute: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """The result of cell (suite, key): stored, copied from an equal spec, or computed."""
    cell = self.store.get(self.source_name, suite, key, spec)
    if cell is not None:
      return cell["result"]
    twin = self.store.find_equal(spec)
    if twin is not None:
      self.store.put(self.source_name, suite, key, spec, twin["result"],
                     budget=self.budget.name, copied_from=f"{twin['suite']}/{twin['key']}")
      return twin["result"]
    t0 = time.perf_counter()
    result = compute()
    self.store.put(self.source_name, suite, key, spec, result, budget=self.budget.name,
                   cell_seconds=round(time.perf_counter() - t0, 2))
    return result

  def eval_spec(self, set_spec: Dict[str, Any], *, model: str, protocol,
                model_kwargs: Optional[Dict[str, Any]] = None,
                repetitions: Optional[int] = None) -> Dict[str, Any]:
    """The spec of an evaluation cell: the set, the network, the protocol, the data."""
    return dict(kind="evaluate", set=set_spec, model=model,
                model_kwargs=dict(model_kwargs or {}),
                protocol=dataclasses.asdict(protocol),
                repetitions=int(repetitions or self.budget.repetitions), seed=self.seed,
                view=self.view_spec)

  def evaluate(self, suite: str, key: str, cset: CondensedSet, *, model: Optional[str] = None,
               protocol=None, model_kwargs: Optional[Dict[str, Any]] = None,
               repetitions: Optional[int] = None) -> Dict[str, Any]:
    """Trains fresh models on `cset` and tests them (cached as cell `suite/key`).

    Returns:
      The cell result: `EvalResult.as_dict()` plus num_images, the set's identity and,
      for a synthesis set, `set_budget` (its artifact's budget: steps, total_steps,
      minutes, seconds, stopped).
    """
    from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
    model = model or self.budget.model
    protocol = protocol or self.budget.protocol("eval_protocol")
    reps = int(repetitions or self.budget.repetitions)
    spec = self.eval_spec(cset.spec, model=model, protocol=protocol, model_kwargs=model_kwargs,
                          repetitions=reps)

    def compute():
      res = ev.evaluate(cset.images, cset.labels, self.source, model=model,
                        protocol=protocol, repetitions=reps, seed=self.seed,
                        model_kwargs=model_kwargs, show_progress=self.show_progress,
                        desc=f"{suite} {key}")
      self.log(f"{suite} {key}: {res}")
      extra = {}
      # What condensation made the set (iterations done of the schedule, minutes): a
      # set made under a minutes budget is gone with the work dir, the cell stays.
      made_by = cset.meta.get("budget")
      if isinstance(made_by, dict) and made_by.get("steps") is not None:
        extra["set_budget"] = made_by
      return dict(res.as_dict(), method=cset.method, ipc=cset.ipc,
                  protocol_description=protocol.describe(), **extra)

    return self.cached(suite, key, spec, compute)
