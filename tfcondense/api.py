"""`condense(method, source, ipc, ...)`: every method of the library behind one call.

Selection methods (random, herding, kcenter, ...) pick real images; synthesis methods
(IDC, DM, MTT, ...) learn them through `tfcondense.engine`. Both kinds come back as the
same `CondenseResult` (artifact, where it was written, the run record of a synthesis
method, and, when asked for, its evaluation), so the apps, the benchmarks, the bench
suites and continual learning need not know which kind a name is:

    import tfcondense as tfc
    res = tfc.condense("kcenter", "fashion_mnist", ipc=10, evaluate="quick")
    res = tfc.condense("idc", source, ipc=10, options=tfc.RunOptions(minutes=5),
                       evaluate="cpu")
    print(res.evaluation)

The flow is: this module -> the method (`tfcondense.methods.select` or
`tfcondense.condensation.condense`, which drives `tfcondense.engine`) -> the artifact
(`tfcondense.artifact`) -> the evaluation of the images it decodes to
(`tfcondense.soft_labels.training_set`, then `tfcondense.evaluation.evaluate`).
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any, Dict, Optional, Union

from tfcondense import artifact as artifact_lib
from tfcondense import atomic
from tfcondense import condensation
from tfcondense import engine
from tfcondense import evaluation as ev
from tfcondense import methods as methods_lib
from tfcondense import soft_labels as soft_lib
from tfcondense import viz
from tfcondense.condensation import CondenseResult

__all__ = ["CondenseResult", "condense", "evaluate_artifact", "kind", "method_names"]

kind = methods_lib.kind
#: Options `condense` passes to a selection method only where its function names them.
_SELECTION_HINTS = ("cache_dir", "show_progress")
method_names = methods_lib.all_method_names


def _source(source, **source_options):
  """A SourceData from a SourceData or a source name."""
  if isinstance(source, str):
    from tfcondense import data  # pylint: disable=g-import-not-at-top (loads TensorFlow)
    return data.load_source(source, **source_options)
  return source


def evaluate_artifact(art: artifact_lib.Artifact, source, *,
                      protocol: Union[str, ev.Protocol] = "cpu", model: Optional[str] = None,
                      repetitions: int = 3, seed: int = 0, cluster=None,
                      show_progress: bool = True, desc: Optional[str] = None) -> ev.EvalResult:
  """Trains fresh networks on what an artifact decodes to and tests them.

  The images are the artifact's formed images (its own formation weights, or a
  `CorruptArtifactError` for a learnable formation without them), trained on its soft
  labels where it carries them.

  Args:
    art: the Artifact.
    source: the SourceData it was condensed from (its test split is used).
    protocol: protocol name (with the source's default augmentation) or Protocol.
    model: evaluation network (default: the source's).
    repetitions: networks trained, with distinct seeds.
    seed: evaluation seed.
    cluster: a `tfcondense.cluster.Cluster` spreading the repetitions (None: alone).
    show_progress: progress bars.
    desc: progress bar label.
  """
  protocol = ev.resolve_protocol(protocol, source.name)
  images, labels, soft = soft_lib.training_set(art)
  return ev.evaluate(images, labels, source, model=model, protocol=protocol,
                     repetitions=repetitions, seed=seed, soft_labels=soft, cluster=cluster,
                     show_progress=show_progress,
                     desc=desc or f"eval {art.meta.get('method', 'set')}")


def condense(method: str, source, ipc: int, *, seed: int = 0,
             options: Optional[engine.RunOptions] = None, artifact_dir: Optional[str] = None,
             init_options: Optional[Dict[str, Any]] = None, cluster=None,
             evaluate: Union[None, str, ev.Protocol] = None, repetitions: int = 3,
             eval_model: Optional[str] = None, **overrides) -> CondenseResult:
  """Condenses `source` to `ipc` images per class with any registered method.

  Args:
    method: a selection or synthesis method name (`method_names()`).
    source: a SourceData, or a source name to load with its defaults.
    ipc: stored images per class.
    seed: the method's seed (and the evaluation's).
    options: loop options of a synthesis method (workdir for resume, minutes budget,
      progress); a selection method reads only `workdir` (its artifact goes to
      `<workdir>/artifact`, its embedding cache to `<workdir>/cache`) and
      `show_progress`.
    artifact_dir: where to write the artifact (default `<workdir>/artifact`; with
      neither, nothing is written).
    init_options: options of a synthesis method's initialiser (e.g. cache_dir).
    cluster: a `tfcondense.cluster.Cluster`: a synthesis method runs split over its
      replicas, the evaluation's repetitions are spread over its workers; only the
      chief writes files.
    evaluate: None (no evaluation), or the protocol (name or Protocol) to evaluate the
      set with; the result's `evaluation` holds it and, when the artifact is written,
      so does its `evaluation.json`.
    repetitions: evaluation repetitions.
    eval_model: evaluation network (default: the source's).
    **overrides: a synthesis method's config fields (factor, outer_iterations, lr_img,
      ...) or a selection method's options; unknown ones are errors, except
      `cache_dir` and `show_progress`, which a selection method gets only where its
      function names them.

  Returns:
    A CondenseResult; `run` is None for a selection method.

  Raises:
    UnknownNameError: no method of that name.
    InvalidConfigError: an option the method does not take, or a bad value.
  """
  source = _source(source)
  options = options or engine.RunOptions()
  if artifact_dir is None and options.workdir:
    artifact_dir = os.path.join(options.workdir, "artifact")
  if cluster is not None and not cluster.is_chief:
    artifact_dir = None
  if evaluate is not None:  # an unknown protocol fails before any work
    evaluate = ev.resolve_protocol(evaluate, source.name)
  if kind(method) == "selection":
    # cache_dir and show_progress are hints every caller may give: a method that does
    # not name them does not get them (any other option it does not name is an error).
    takes = inspect.signature(methods_lib.SELECTION.get(method)).parameters
    if options.workdir:
      overrides.setdefault("cache_dir", os.path.join(options.workdir, "cache"))
    overrides.setdefault("show_progress", options.show_progress)
    for hint in _SELECTION_HINTS:
      if hint not in takes:
        overrides.pop(hint, None)
    art = methods_lib.select(method, source, ipc, seed=seed, **overrides)
    grid = None
    if artifact_dir:
      art = artifact_lib.save_artifact(artifact_dir, art.images, art.labels, art.meta)
      grid = viz.save_grid(art.images, art.labels, os.path.join(artifact_dir, "stored.png"),
                           source.class_names,
                           title=f"{method} {source.name} ipc {ipc}")
    res = CondenseResult(art, artifact_dir, None, grid, None)
  else:
    res = condensation.condense(method, source, ipc, options=options,
                                artifact_dir=artifact_dir, init_options=init_options,
                                cluster=cluster, seed=seed, **overrides)
  if evaluate is None:
    return res
  result = evaluate_artifact(res.artifact, source, protocol=evaluate, model=eval_model,
                             repetitions=repetitions, seed=seed, cluster=cluster,
                             show_progress=options.show_progress, desc=f"eval {method} ipc{ipc}")
  if res.artifact_dir:
    atomic.write_json(os.path.join(res.artifact_dir, artifact_lib.EVALUATION),
                      dict(result.as_dict(), seed=int(seed), source=source.name),
                      sort_keys=False)
  return dataclasses.replace(res, evaluation=result)
