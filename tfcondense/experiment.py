"""Run-and-compare: condensed sets from several methods evaluated side by side.

Shared by `apps.evaluate` and the benchmark scripts. Each (method, ipc) result is a
*cell*; with a `results_path`, finished cells are stored in that JSON file as soon as
they are done (atomically) and skipped when the run is started again, so a long
comparison interrupted at any point loses at most the cell in progress.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from absl import logging

from tfcondense import api
from tfcondense import artifact as artifact_lib
from tfcondense import atomic
from tfcondense import engine
from tfcondense import evaluation as ev
from tfcondense import fileio
from tfcondense import methods as methods_lib
from tfcondense.errors import InvalidConfigError

FULL = "full"  # pseudo-method: the whole training set.


@dataclasses.dataclass(frozen=True)
class Cell:
  """One comparison cell: a method (or an artifact directory) at one IPC.

  Attributes:
    method: any registered method (selection or synthesis), FULL, or "artifact".
    ipc: images per class (None for FULL and artifacts).
    artifact_dir: the artifact to evaluate, instead of running a method.
    name: a stable key for an artifact cell (default: the artifact's absolute path,
      which differs between checkouts; committed results name their cells instead).
    minutes: a synthesis method's wall-clock budget (it or `max_steps` is required:
      the methods' full schedules take hours to days).
    max_steps: a synthesis method's step budget.
    config: a synthesis method's config overrides (or a selection method's options):
      (field, value) pairs or a dict, stored sorted by field, so that the key of a
      cell does not depend on the order they were given in.

  Raises:
    InvalidConfigError: `config` is not a mapping or (field, value) pairs, or names a
      field twice.
  """

  method: str
  ipc: Optional[int]
  artifact_dir: Optional[str] = None
  name: Optional[str] = None
  minutes: Optional[float] = None
  max_steps: Optional[int] = None
  config: Tuple[Tuple[str, Any], ...] = ()

  def __post_init__(self):
    pairs = self.config.items() if isinstance(self.config, dict) else self.config
    try:
      pairs = [(k, v) for k, v in pairs]
    except (TypeError, ValueError):
      raise InvalidConfigError(
          f"Cell config must be (field, value) pairs or a dict, got {self.config!r}") from None
    fields = [k for k, _ in pairs]
    if not all(isinstance(k, str) for k in fields) or len(set(fields)) != len(fields):
      raise InvalidConfigError(
          f"Cell config must name each field once, by its name, got {self.config!r}")
    object.__setattr__(self, "config", tuple(sorted(pairs, key=lambda kv: kv[0])))

  @property
  def key(self) -> str:
    if self.name:
      return self.name
    if self.artifact_dir:
      return f"artifact:{fileio.abspath(self.artifact_dir)}"
    if self.method == FULL:
      return FULL
    key = f"{self.method}@{self.ipc}"
    if self.minutes is not None:
      key += f"/{self.minutes:g}min"
    if self.max_steps is not None:
      key += f"/{self.max_steps}steps"
    return key + "".join(f"/{k}={v}" for k, v in self.config)


def read_rows(path: Optional[str]) -> List[Dict[str, Any]]:
  """The rows of a results file (local or a URL), [] where there is none."""
  if not path or not fileio.exists(path):
    return []
  return fileio.read_json(path)["rows"]


def write_rows(path: str, rows: Sequence[Dict[str, Any]], header: Dict[str, Any]) -> None:
  """Atomically writes {"header":..., "rows": [...]} to `path`.

  The file's `superseded_rows` (rows of older protocol versions, see
  `supersede_old_rows`) are kept.
  """
  atomic.write_json_keeping(path, {"header": header, "rows": list(rows)},
                            keep=("superseded_rows",), sort_keys=False)


def supersede_old_rows(path: str, protocol_names: Iterable[str]) -> int:
  """Moves rows of `protocol_names` made under an older protocol version to
  `superseded_rows` in `path`, each with `superseded_because`; returns how many moved.

  They stay in the file for the record (BENCHMARKS.md quotes what moved) and are never
  read as done, so the next `compare` recomputes those cells under the current recipe.
  """
  if not fileio.exists(path):
    return 0
  payload = fileio.read_json(path)
  names = set(protocol_names)
  keep, moved = [], []
  for r in payload.get("rows", []):
    if r.get("protocol") in names and ev.row_version(r) < ev.PROTOCOL_VERSION:
      moved.append(dict(r, superseded_because=(
          f"protocol version {ev.row_version(r)} (version {ev.PROTOCOL_VERSION}: "
          "the reference's augmentation, no cutout under CutMix)")))
    else:
      keep.append(r)
  if moved:
    payload["rows"] = keep
    payload["superseded_rows"] = list(payload.get("superseded_rows", [])) + moved
    atomic.write_json(path, payload, sort_keys=False)
  return len(moved)


def is_current(row: Dict[str, Any], protocol, source_name: str) -> bool:
  """Whether a stored row of `protocol`'s name is what `protocol` would give now: same
  recipe, protocol version and step count for the row's set size."""
  if row.get("protocol") != protocol.name:
    return False
  if (ev.row_recipe(row), ev.row_version(row)) != (ev.recipe(protocol, source_name),
                                                   ev.PROTOCOL_VERSION):
    return False
  n = row.get("num_images")
  return n is None or int(row.get("steps", -1)) == protocol.total_steps(int(n))


def compare(source, cells: Iterable[Cell], *, model: Optional[str] = None,
            protocol="cpu", repetitions: int = 3, seed: int = 0,
            results_path: Optional[str] = None, artifacts_root: Optional[str] = None,
            cache_dir: Optional[str] = None, header: Optional[Dict[str, Any]] = None,
            show_progress: bool = True, log=None, cluster=None) -> List[Dict[str, Any]]:
  """Evaluates every cell, skipping cells already in `results_path`.

  With a multi-worker `cluster` (`tfcondense.cluster.Cluster`) the cells are handed
  out in rounds of `num_workers` (cell i of a round to worker i mod W); after each round
  the rows are gathered on every worker and the chief alone writes `results_path`, so
  an interrupted comparison loses at most one round.

  Args:
    source: the SourceData.
    cells: what to evaluate.
    model: evaluation model name (None: the source's, `evaluate.default_model`).
    protocol: evaluation protocol (name or Protocol; a name takes the source's
      default augmentation, `evaluation.resolve_protocol`).
    repetitions: evaluation repetitions per cell.
    seed: seed for selection and evaluation.
    results_path: JSON file holding finished rows (read first, appended to).
    artifacts_root: if given, selection artifacts are saved under it.
    cache_dir: cache for shared embeddings (herding / kcenter).
    header: extra fields recorded in the JSON header.
    show_progress: progress bars.
    log: where one line per finished cell goes (None: absl logging at INFO; the apps
      pass `print`).
    cluster: the workers of a distributed comparison (None: this process alone).

  Returns:
    Rows (dicts) with method, ipc, model, protocol, acc_mean, acc_std, seconds, ...
    (the stored rows first; the same on every worker).
  """
  log = log or logging.info
  protocol = ev.resolve_protocol(protocol, source.name)
  model = model or ev.default_model(source.name)
  if cluster is not None and cluster.multi_worker:
    rows = cluster.broadcast_json(read_rows(results_path) if cluster.is_chief else [])
  else:
    rows = read_rows(results_path)
  # A row counts as done only if made with the same recipe, protocol version and
  # length (a protocol whose length grows with the set may have changed its rule).
  done = {(r["key"], r["model"], r["protocol"], ev.row_recipe(r), ev.row_version(r))
          for r in rows if is_current(r, protocol, source.name)}
  this = (protocol.name, ev.recipe(protocol, source.name), ev.PROTOCOL_VERSION)
  head = dict(header or {}, source=source.name, protocol=protocol.describe(),
              repetitions=repetitions)
  todo = []
  for cell in cells:
    if (cell.key, model) + this in done:
      log(f"skip {cell.key}: already in {results_path}")
    else:
      todo.append(cell)
  kw = dict(model=model, protocol=protocol, repetitions=repetitions, seed=seed,
            artifacts_root=artifacts_root, cache_dir=cache_dir, show_progress=show_progress,
            log=log)
  if cluster is None or not cluster.multi_worker:
    for cell in todo:
      rows = _replace_row(rows, _evaluate_cell(source, cell, **kw), this)
      if results_path:
        write_rows(results_path, rows, head)
    return rows
  head["workers"] = cluster.num_workers
  for start in range(0, len(todo), cluster.num_workers):
    mine = cluster.share(todo[start:start + cluster.num_workers])
    new = [_evaluate_cell(source, cell, **kw) for cell in mine]
    for part in cluster.all_gather_json(new):
      for row in part:
        rows = _replace_row(rows, row, this)
    if cluster.is_chief and results_path:
      write_rows(results_path, rows, head)
  return rows


def _replace_row(rows, row, this):
  """`rows` plus `row`; a row of the same cell and recipe made at another length (an
  older length rule) gives way to it; rows of other recipes or versions stay beside it."""
  same = (row["key"], row["model"]) + this
  return [r for r in rows if (r["key"], r["model"], r["protocol"], ev.row_recipe(r),
                              ev.row_version(r)) != same] + [row]


def _evaluate_cell(source, cell: Cell, *, model, protocol, repetitions, seed, artifacts_root,
                   cache_dir, show_progress, log) -> Dict[str, Any]:
  """One cell's row: its training set made or loaded, then evaluated."""
  t0 = time.perf_counter()
  meta: Dict[str, Any] = {}
  art = None
  if cell.artifact_dir:
    art = artifact_lib.load_artifact(cell.artifact_dir)
  elif cell.method == FULL:
    images, labels = source.train_images, source.train_labels
  else:
    made = _make_set(source, cell, seed=seed, artifacts_root=artifacts_root,
                     cache_dir=cache_dir, show_progress=show_progress)
    artifact_dir = made.artifact_dir
    if made.run is None:  # selection: the picked images themselves
      images, labels, meta = made.artifact.images, made.artifact.labels, made.artifact.meta
    else:
      art = made.artifact
  select_seconds = time.perf_counter() - t0
  desc = f"eval {cell.key}"
  if art is not None:
    # A set that decodes (IDC's formed images, soft labels): the library's one path.
    meta = art.meta
    res = api.evaluate_artifact(art, source, protocol=protocol, model=model,
                                repetitions=repetitions, seed=seed,
                                show_progress=show_progress, desc=desc)
  else:
    res = ev.evaluate(images, labels, source, model=model, protocol=protocol,
                      repetitions=repetitions, seed=seed, show_progress=show_progress,
                      desc=desc)
  if artifacts_root and not cell.artifact_dir and cell.method != FULL:
    # What the TFDS builders report as the set's accuracy (datasets_builders/).
    atomic.write_json(os.path.join(artifact_dir, artifact_lib.EVALUATION),
                      dict(res.as_dict(), seed=int(seed), source=source.name))
  row = make_row(cell.key, meta, source, res, select_seconds, default_method=cell.method,
                 default_ipc=cell.ipc)
  log(f"{cell.key}: {res}")
  return row


def _make_set(source, cell: Cell, *, seed, artifacts_root, cache_dir, show_progress):
  """A method cell's set, through `tfcondense.condense(...)`: a selection method's
  artifact goes to `<artifacts_root>/<source>_<method>_ipc<ipc>`, a synthesis method
  runs (resumably) in that folder and writes its artifact to `<folder>/artifact`."""
  name = f"{source.name}_{cell.method}_ipc{cell.ipc}"
  out = os.path.join(artifacts_root, name) if artifacts_root else None
  config = dict(cell.config)
  if methods_lib.kind(cell.method) == "selection":
    return api.condense(cell.method, source, cell.ipc, seed=seed, artifact_dir=out,
                        options=engine.RunOptions(show_progress=show_progress),
                        **dict(dict(cache_dir=cache_dir), **config))
  if cell.minutes is None and cell.max_steps is None:
    raise InvalidConfigError(
        f"synthesis method {cell.method!r} in a comparison needs a budget (minutes or "
        "max_steps; apps.evaluate: --minutes / --max_steps)")
  options = engine.RunOptions(workdir=out, minutes=cell.minutes, max_steps=cell.max_steps,
                              show_progress=show_progress, desc=f"{cell.method} ipc{cell.ipc}")
  return api.condense(cell.method, source, cell.ipc, seed=seed, options=options,
                      init_options={"cache_dir": cache_dir} if cache_dir else None, **config)


def make_row(key: str, meta: Dict[str, Any], source, result: ev.EvalResult,
             select_seconds: float = 0.0, *, default_method: Optional[str] = None,
             default_ipc: Optional[int] = None) -> Dict[str, Any]:
  """One results row: the set's key, method, ipc and factor (from its artifact meta),
  the source, and the evaluation's fields (what `format_table` prints)."""
  method = meta.get("method", default_method)
  if result.soft_labels is not None:
    method = f"{method}+soft"
  return dict(key=key, method=method,
              ipc=meta.get("ipc", default_ipc), factor=meta.get("factor", 1),
              source=source.name, select_seconds=round(select_seconds, 1),
              seconds=round(result.seconds, 1), **{
                  k: v for k, v in result.as_dict().items() if k != "seconds"})


def format_table(rows: Sequence[Dict[str, Any]]) -> str:
  """A Markdown table: method, ipc, model, protocol, accuracy, seconds."""
  lines = ["| method | ipc | images | model | protocol | aug | acc best (%) | acc last (%) | "
           "eval s |", "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['method']} | {r['ipc'] if r['ipc'] is not None else 'all'} | "
        f"{r['num_images']} | {r['model']} | {r['protocol']} | {ev.row_recipe(r)} | "
        f"{r['acc_mean']:.2f} +- {r['acc_std']:.2f} | {r['last_mean']:.2f} +- "
        f"{r['last_std']:.2f} | {r['seconds']:.0f} |")
  return "\n".join(lines)
