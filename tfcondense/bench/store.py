"""One JSON file per result cell, written atomically, with a settings guard.

DC-BENCH runs are long; every result cell (one evaluation, one ground-truth training,
one cost measurement) is its own file `<root>/cells/<source>/<suite>/<key>.json`::

    {"suite": ..., "key": ..., "source": ..., "spec": {...what was computed...},
     "result": {...}, "created": ...}

so an interrupted run loses at most the cell in progress and a re-run computes only
the missing cells. A cell found with a different `spec` than the one asked for is an
error (as `tfcondense.engine.guard_config` refuses to resume with other settings):
silently mixing budgets is worse than stopping. The one exception: a cell made under
evaluation protocol version 1 whose recipe version 2 changed (DSA lost cutout under
CutMix) is recomputed; one whose recipe did not change is kept as it is.
Evaluations shared by several suites (the dsa ConvNet cell of a method is in the
augmentation, compression and transfer suites) are computed once: `find_equal` looks
a spec up across the whole store.
"""
from __future__ import annotations

import datetime
import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional

from tfcondense import atomic
from tfcondense import fileio
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

_SAFE = re.compile(r"[^A-Za-z0-9_.@=+-]+")


def normalize(obj: Any) -> Any:
  """The JSON round trip of `obj` (tuples become lists, keys strings), for comparisons."""
  return json.loads(json.dumps(obj, sort_keys=True))


#: The DSA strategy evaluation protocol version 1 applied whatever the CutMix setting
#: (`tfcondense.evaluation.DSA_WITH_CUTOUT`; spelled out so the store stays a leaf).
_V1_DSA = "color_crop_cutout_flip_scale_rotate"
_V2_FIELDS = ("strategy", "min_steps", "max_steps")


def _is_protocol(obj: Any) -> bool:
  return isinstance(obj, dict) and {"augmentation", "cutmix_prob", "milestones"} <= set(obj)


def protocol_version(protocol: Dict[str, Any]) -> int:
  """The evaluation protocol version of a stored `Protocol` dict (1: no `strategy`)."""
  return 2 if "strategy" in protocol else 1


def effective_protocol(protocol: Dict[str, Any]) -> Dict[str, Any]:
  """A stored `Protocol` dict with the DSA strategy it trained with made explicit.

  Version 1 (before 2026-12) recorded no strategy and kept cutout under CutMix;
  version 2 records None for the IDC reference's rule (no cutout under CutMix).
  """
  p = dict(protocol)
  v1 = protocol_version(p) == 1
  for name in _V2_FIELDS:
    p.setdefault(name, None)
  if p["augmentation"] != "dsa":
    p["strategy"] = None
  elif p["strategy"] is None:
    p["strategy"] = _V1_DSA if v1 or not p.get("cutmix_prob") else _V1_DSA.replace(
        "cutout_", "")
  return p


def effective_spec(obj: Any) -> Any:
  """`obj` (a cell spec) normalised, each protocol in it made explicit
  (`effective_protocol`), so that specs of both versions compare by what they ran."""
  obj = normalize(obj)
  if _is_protocol(obj):
    return effective_protocol(obj)
  if isinstance(obj, dict):
    return {k: effective_spec(v) for k, v in obj.items()}
  if isinstance(obj, list):
    return [effective_spec(v) for v in obj]
  return obj


def _v1_recipe_changed(old: Any, new: Any) -> bool:
  """Whether two specs differ only in what evaluation protocol version 2 changed."""
  def strip(obj):
    if _is_protocol(obj):
      return {k: v for k, v in obj.items() if k not in _V2_FIELDS}
    if isinstance(obj, dict):
      return {k: strip(v) for k, v in obj.items()}
    if isinstance(obj, list):
      return [strip(v) for v in obj]
    return obj
  return strip(effective_spec(old)) == strip(effective_spec(new))


def safe_name(text: str) -> str:
  """`text` reduced to a portable file name."""
  name = _SAFE.sub("-", str(text)).strip("-.")
  if not name:
    raise InvalidConfigError(f"cannot make a file name from {text!r}")
  return name


class CellStore:
  """The cells under `<root>/cells/`.

  Args:
    root: the benchmark output directory (the report goes to `<root>/report/`).
  """

  def __init__(self, root: str):
    self.root = fileio.abspath(root)
    self.cells_dir = os.path.join(self.root, "cells")
    self._by_spec: Optional[Dict[str, Dict[str, Any]]] = None

  def path(self, source: str, suite: str, key: str) -> str:
    return os.path.join(self.cells_dir, safe_name(source), safe_name(suite),
                        safe_name(key) + ".json")

  @staticmethod
  def _read(path: str) -> Dict[str, Any]:
    try:
      return fileio.read_json(path)
    except (OSError, ValueError) as e:
      raise CorruptArtifactError(f"cell {path} is unreadable ({e}); delete it to "
                                 "recompute it") from e

  def get(self, source: str, suite: str, key: str,
          spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The stored cell, None if missing (or made under evaluation protocol version 1
    with a recipe version 2 changes: it is to be recomputed).

    Raises:
      InvalidConfigError: the stored cell was computed with another spec.
    """
    path = self.path(source, suite, key)
    if not fileio.exists(path):
      return None
    cell = self._read(path)
    if effective_spec(cell.get("spec")) != effective_spec(spec):
      if _v1_recipe_changed(cell.get("spec"), spec):
        return None
      old, new = normalize(cell.get("spec")) or {}, normalize(spec)
      diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
      raise InvalidConfigError(
          f"{path} was computed with other settings (differing: {', '.join(diff)}); "
          "use another --out for this budget, or delete the cell to recompute it")
    return cell

  def put(self, source: str, suite: str, key: str, spec: Dict[str, Any],
          result: Dict[str, Any], **extra) -> Dict[str, Any]:
    """Writes one cell atomically and returns it."""
    cell = dict(extra, suite=suite, key=key, source=source, spec=normalize(spec),
                result=normalize(result),
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"))
    atomic.write_json(self.path(source, suite, key), cell)
    if self._by_spec is not None:
      self._by_spec.setdefault(self._spec_key(cell["spec"]), cell)
    return cell

  @staticmethod
  def _spec_key(spec) -> str:
    return json.dumps(effective_spec(spec), sort_keys=True)

  def find_equal(self, spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Any cell (of any suite and source) computed with exactly `spec`."""
    if self._by_spec is None:
      self._by_spec = {}
      for cell in self.cells():
        self._by_spec.setdefault(self._spec_key(cell.get("spec")), cell)
    return self._by_spec.get(self._spec_key(spec))

  def cells(self, source: Optional[str] = None,
            suite: Optional[str] = None) -> Iterator[Dict[str, Any]]:
    """Every stored cell, optionally of one source and / or suite (sorted by path)."""
    pattern = os.path.join(self.cells_dir, safe_name(source) if source else "*",
                           safe_name(suite) if suite else "*", "*.json")
    for path in sorted(fileio.glob(pattern)):
      if not os.path.basename(path).startswith(".tmp-"):
        yield self._read(path)

  def sources(self) -> List[str]:
    if not fileio.isdir(self.cells_dir):
      return []
    return sorted(d for d in fileio.listdir(self.cells_dir)
                  if fileio.isdir(os.path.join(self.cells_dir, d)))
