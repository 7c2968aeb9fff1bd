"""Helpers shared by the benchmark scripts: machine description and JSON output."""
from __future__ import annotations

import dataclasses
import datetime
import os

from absl import logging

from tfcondense import atomic
from tfcondense import hardware

# Checkpoint saves log at INFO through absl; benchmark output should be the figures.
logging.set_verbosity(logging.WARNING)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine() -> dict:
  """`tfcondense.hardware.machine()` and today's date."""
  return dict(hardware.machine(), date=datetime.date.today().isoformat())


def shipped_configs(folder: str, wanted=None) -> list:
  """The artifact configs (sub-folders with a meta.json) of `folder`, sorted; only
  `wanted` ones if given, refusing names that are not there."""
  from absl import app  # pylint: disable=g-import-not-at-top
  configs = sorted(d for d in os.listdir(folder)
                   if os.path.isfile(os.path.join(folder, d, "meta.json"))) \
      if os.path.isdir(folder) else []
  if wanted:
    unknown = sorted(set(wanted) - set(configs))
    if unknown:
      raise app.UsageError(f"no artifact for {unknown} in {folder}; there: {configs}")
    configs = [c for c in configs if c in wanted]
  return configs


def write_json(name: str, payload: dict) -> str:
  """Atomically writes benchmarks/results/<name>, keeping the file's `superseded_rows`.

  `superseded_rows` are rows measured under settings that have since changed (each
  says why in `superseded_because`); the scripts never read them as done, and they
  stay in the file for the record that BENCHMARKS.md quotes.
  """
  return atomic.write_json_keeping(os.path.join(RESULTS, name), payload,
                                   keep=("superseded_rows",), sort_keys=False)


def write_json_to(path: str, payload: dict) -> str:
  """Atomically writes `payload` as JSON to `path` (keys in the order given)."""
  return atomic.write_json(path, payload, sort_keys=False)


def condense_for_minutes(method: str, source, ipc: int, workdir: str, minutes: float,
                         precision: str, artifact_dir: str | None = None, **overrides):
  """`tfcondense.condense` for a wall-clock budget of `minutes` (summed over
  resumed sessions), checkpointing every 2 minutes into `workdir`, the artifact in
  `artifact_dir` (default `workdir`/artifact); `precision` applies to the methods whose
  config has one."""
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import engine  # pylint: disable=g-import-not-at-top
  spec = condense_lib.SYNTHESIS.get(method)
  if "precision" in {f.name for f in dataclasses.fields(spec.config_cls)}:
    overrides.setdefault("precision", precision)
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  return api.condense(
      method, source, ipc, options=engine.RunOptions(
          workdir=workdir, minutes=minutes, checkpoint_seconds=120, desc=f"{method}@{ipc}"),
      artifact_dir=artifact_dir or os.path.join(workdir, "artifact"), **overrides)


def set_digest(images, labels) -> str:
  """SHA-256 of an evaluated set (float32 formed images and int32 labels): what the
  fast_idc and soft_labels benchmarks key their records by."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for a in (np.ascontiguousarray(images, np.float32), np.ascontiguousarray(labels, np.int32)):
    h.update(repr(a.shape).encode())
    h.update(a.tobytes())
  return h.hexdigest()
