"""`condense(...)`: run a synthesis method on a source and write its artifact.

Synthesis methods register a `SynthesisSpec` in `SYNTHESIS` (tfcondense/methods/base.py)
from their own module: the config dataclass,
its defaults for the method name (IDC-I is IDC with factor 1) and how to build the
method object that `tfcondense.engine.run` drives. Everything after the loop (the
artifact with its budget and storage accounting, the PNG grids) is shared.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, Dict, Optional

import numpy as np

from tfcondense import artifact as artifact_lib
from tfcondense import engine
from tfcondense import hardware
from tfcondense import viz
from tfcondense.errors import InvalidConfigError
from tfcondense import methods as _methods  # noqa: F401  (registers every method)
from tfcondense.methods.base import SYNTHESIS, SynthesisSpec  # noqa: F401 (re-exported)


@dataclasses.dataclass(frozen=True)
class CondenseResult:
  """What `tfcondense.condense(...)` returns, for either kind of method.

  Attributes:
    artifact: the condensed set (stored images, labels, meta, formation weights).
    artifact_dir: where it was written (None: not written).
    run: the synthesis loop's record (steps, seconds, how it stopped); None for a
      selection method.
    grid_png: the stored images' grid (None: not written).
    formed_png: the formed images' grid, for a formation with several per stored image.
    evaluation: the `tfcondense.evaluation.EvalResult` when evaluation was asked for.
  """

  artifact: artifact_lib.Artifact
  artifact_dir: Optional[str]
  run: Optional[engine.RunResult]
  grid_png: Optional[str]
  formed_png: Optional[str]
  evaluation: Optional[Any] = None


def _fits(value: Any, hint: Any) -> bool:
  """Whether `value` has the type a config field is annotated with (int, float, str,
  bool, Optional / Union, tuples and lists of those; other annotations pass)."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if hint is Any:
    return True
  if origin is typing.Union:
    return any(_fits(value, a) for a in args)
  if hint is type(None):
    return value is None
  if hint is bool:
    return isinstance(value, (bool, np.bool_))
  if hint is int:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
  if hint is float:
    return isinstance(value, (int, float, np.integer, np.floating)) \
        and not isinstance(value, bool)
  if hint is str:
    return isinstance(value, str)
  if origin in (tuple, list) or hint in (tuple, list):
    if not isinstance(value, (tuple, list)):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_fits(v, args[0]) for v in value)
    if args and len(args) == len(value):
      return all(_fits(v, a) for v, a in zip(value, args))
    return not args
  return True


def _type_name(hint: Any) -> str:
  return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def make_config(method: str, source_name: str, ipc: int, **overrides):
  """The method's config for `source_name` at `ipc`, with `overrides` applied.

  Dict values (e.g. model_options) are frozen into sorted tuples of pairs, lists
  into tuples. Every override is checked against its field's annotated type first, so
  a wrong value fails here, before a workdir or tracing is touched.

  Raises:
    InvalidConfigError: an unknown field, or a value of the wrong type.
  """
  spec = SYNTHESIS.get(method)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise InvalidConfigError(f"{method} has no setting(s) {unknown}; known: {sorted(fields)}")
  hints = typing.get_type_hints(spec.config_cls)
  values = dict(spec.defaults, ipc=int(ipc))
  for k, v in overrides.items():
    if v is None:
      continue
    v = tuple(sorted(v.items())) if isinstance(v, dict) else v
    v = tuple(v) if isinstance(v, list) else v
    if not _fits(v, hints.get(k, Any)):
      raise InvalidConfigError(f"{method} setting {k} takes {_type_name(hints[k])}, got "
                               f"{type(v).__name__} {v!r}")
    values[k] = v
  cfg = spec.config_cls(**values)
  return cfg.resolve(source_name) if hasattr(cfg, "resolve") else cfg


def condense(method: str, source, ipc: int, *, options: Optional[engine.RunOptions] = None,
             artifact_dir: Optional[str] = None, init_options: Optional[Dict[str, Any]] = None,
             cluster=None, **overrides) -> CondenseResult:
  """Condenses `source` to `ipc` stored images per class with `method`.

  Args:
    method: a name in SYNTHESIS (idc, idc_i, ...).
    source: the SourceData.
    ipc: stored images per class.
    options: loop options (workdir for resume, minutes budget, progress); None: the
      defaults (no workdir, no budget).
    artifact_dir: where to write the artifact (default `<workdir>/artifact`; with
      neither, nothing is written).
    init_options: options of the initialiser (e.g. cache_dir for kcenter init).
    cluster: a `tfcondense.cluster.Cluster` to run the method split over its
      replicas (None or the default strategy: this process alone). Only the chief
      writes the artifact; every worker returns it.
    **overrides: config fields (factor, outer_iterations, lr_img, precision, ...).

  Returns:
    A CondenseResult (the artifact holds the stored images; decode them with
    `tfcondense.synthetic.formed_from_artifact` for training).
  """
  options = options or engine.RunOptions()
  spec = SYNTHESIS.get(method)
  cfg = make_config(method, source.name, ipc, **overrides)
  if cluster is not None and cluster.distributed:
    method_obj = cluster.build_method(method.lower(), spec.build, source, cfg, init_options)
  else:
    method_obj = spec.build(source, cfg, init_options)
  record = dict(method=method.lower(), source=source.name, config=cfg.as_dict(),
                data=source.fingerprint())
  result = engine.run(method_obj, options, config=record, cluster=cluster)
  syn = method_obj.synthetic
  images, labels = syn.numpy()
  form = syn.formation
  meta = dict(
      source=source.name, method=method.lower(), ipc=int(cfg.ipc),
      factor=int(getattr(cfg, "factor", 1)), formation=form.describe(), seed=int(cfg.seed),
      budget=dict(seconds=round(result.seconds, 1), minutes=round(result.seconds / 60, 2),
                  steps=result.steps, total_steps=result.total_steps,
                  stopped=result.stopped),
      storage=syn.storage(), config=cfg.as_dict(), class_names=list(source.class_names),
      machine=hardware.machine())
  if result.changes:  # settings a resume changed (RunOptions.allow_changes)
    meta["changes"] = [dict(field=k, before=b, after=a) for k, b, a in result.changes]
  weights = form.get_weights() if getattr(form, "variables", None) else None
  if artifact_dir is None and options.workdir:
    artifact_dir = os.path.join(options.workdir, "artifact")
  if cluster is not None and not cluster.is_chief:
    artifact_dir = None
  art = artifact_lib.Artifact(images, labels, meta, dict(weights or {}))
  grid = formed_png = None
  if artifact_dir:
    art = artifact_lib.save_artifact(artifact_dir, images, labels, meta, weights=weights)
    title = f"{method} {source.name} ipc {cfg.ipc}"
    grid = viz.save_grid(images, labels, os.path.join(artifact_dir, "stored.png"),
                         source.class_names, title=title + " (stored)")
    if form.formed_per_stored() > 1:
      fx, fy = form.form_numpy(images, labels)
      formed_png = viz.save_grid(fx, fy, os.path.join(artifact_dir, "formed.png"),
                                 source.class_names, max_per_class=16,
                                 title=title + " (formed)")
  return CondenseResult(art, artifact_dir, result, grid, formed_png)
