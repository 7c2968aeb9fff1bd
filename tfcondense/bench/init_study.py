"""Initialisation study: snapshots of a synthesis run at chosen iteration counts.

DC-BENCH (Cui et al. 2022, Sec. 4.5) found that initialising DM from K-Center
selections reaches the accuracy of random initialisation with about 30% of the
compute and ends about 1.3 points higher (CIFAR-10). `snapshots` condenses from a given
initialisation (resumable) and saves the formed set at each of `marks` (0 = the
initialisation itself); the caller evaluates them. Used by the `init` suite and by
`benchmarks/init_study.py`.

`random` here means random real images *as the method stores them*: for a
multi-formation method (IDC, f > 1) that is `mix`, f x f random real images of the class
downsampled into each stored image, as K-Center's images are packed; the plain `random`
initialiser would store whole images, each formed image a 1/f^2 crop of one (16% after
formation on Fashion-MNIST, against 76% for 10 whole random images per class).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from tfcondense import atomic


def snapshot_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, "snapshots", f"it{int(step):06d}.npz")


def snapshots(source, method: str, init: str, ipc: int, marks: Sequence[int], *,
              workdir: str, overrides: Optional[Dict[str, Any]] = None,
              init_options: Optional[Dict[str, Any]] = None,
              show_progress: bool = True) -> Dict[int, str]:
  """Runs synthesis `method` from `init` to max(marks), saving the set at each mark.

  Args:
    source: the SourceData.
    method: a synthesis method name (`tfcondense.condensation.SYNTHESIS`).
    init: its initialisation (random, kcenter, noise, herding, mix); `random` becomes
      `mix` for a method whose formation factor is above 1 (see the module docstring).
    ipc: stored images per class.
    marks: iteration counts at which the formed set is saved (0 = before any step).
    workdir: checkpoints and `snapshots/it<step>.npz` go here; a second call resumes
      (marks the resumed run has already passed are missing from the result).
    overrides: config fields of the method (those it lacks are dropped).
    init_options: options of the initialiser (e.g. cache_dir for kcenter).
    show_progress: progress bar.

  Returns:
    {mark: path of the .npz (images, labels)} for the marks that have a snapshot.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import engine  # pylint: disable=g-import-not-at-top
  marks = sorted(int(m) for m in marks)
  spec = condense_lib.SYNTHESIS.get(method)
  fields = {f.name for f in dataclasses.fields(spec.config_cls)}
  values = {k: v for k, v in dict(overrides or {}, init=init).items() if k in fields}
  cfg = condense_lib.make_config(method, source.name, ipc, **values)
  if init == "random" and int(getattr(cfg, "factor", None) or 1) > 1:
    cfg = condense_lib.make_config(method, source.name, ipc, **dict(values, init="mix"))
  paths = {m: snapshot_path(workdir, m) for m in marks}
  if all(os.path.exists(p) for p in paths.values()):
    return paths
  os.makedirs(os.path.dirname(paths[marks[0]]), exist_ok=True)
  obj = spec.build(source, cfg, init_options)

  def save(step, scalars=None):  # pylint: disable=unused-argument
    if step in paths and not os.path.exists(paths[step]):
      images, labels = obj.synthetic.formed_numpy()
      with atomic.replacing(paths[step], ".npz") as tmp:
        np.savez(tmp, images=images, labels=labels)

  if marks[0] == 0 and not os.path.exists(os.path.join(workdir, "checkpoints")):
    save(0)
  if marks[-1] > 0:
    engine.run(obj, engine.RunOptions(workdir=workdir, max_steps=marks[-1],
                                      checkpoint_seconds=120, show_progress=show_progress,
                                      desc=f"{method}/{init}"),
               config=dict(method=method, config=cfg.as_dict()), on_step=save)
  return {m: p for m, p in paths.items() if os.path.exists(p)}


def load_snapshot(path: str):
  """(images, labels) of a snapshot file."""
  with np.load(path) as z:
    return z["images"], z["labels"]


def steps_to_match(curve: Dict[int, float], target: float) -> Optional[int]:
  """The first mark whose accuracy reaches `target` (None if none does)."""
  for mark in sorted(curve):
    if curve[mark] >= target:
      return mark
  return None
