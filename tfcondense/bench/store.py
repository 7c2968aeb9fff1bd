"""One JSON file per result cell, written atomically, with a settings guard.

DC-BENCH runs are long; every result cell (one evaluation, one ground-truth training,
one cost measurement) is its own file `<root>/cells/<source>/<suite>/<key>.json`::

    {"suite": ..., "key": ..., "source": ..., "spec": {...what was computed...},
     "result": {...}, "created": ...}

so an interrupted run loses at most the cell in progress and a re-run computes only
the missing cells. A cell found with a different `spec` than the one asked for is an
error (as `tfcondense.engine.guard_config` refuses to resume with other settings):
silently mixing budgets is worse than stopping. Evaluations shared by several suites
(the dsa ConvNet cell of a method is in the augmentation, compression and transfer
suites) are computed once: `find_equal` looks a spec up across the whole store.
"""
from __future__ import annotations

import datetime
import glob
import json
import os
import re
from typing import Any, Dict, Iterator, List, Optional

from tfcondense import atomic
from tfcondense.errors import CorruptArtifactError, InvalidConfigError

_SAFE = re.compile(r"[^A-Za-z0-9_.@=+-]+")


def normalize(obj: Any) -> Any:
  """The JSON round trip of `obj` (tuples become lists, keys strings), for comparisons."""
  return json.loads(json.dumps(obj, sort_keys=True))


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
    self.root = os.path.abspath(root)
    self.cells_dir = os.path.join(self.root, "cells")
    self._by_spec: Optional[Dict[str, Dict[str, Any]]] = None

  def path(self, source: str, suite: str, key: str) -> str:
    return os.path.join(self.cells_dir, safe_name(source), safe_name(suite),
                        safe_name(key) + ".json")

  @staticmethod
  def _read(path: str) -> Dict[str, Any]:
    try:
      with open(path) as f:
        return json.load(f)
    except (OSError, ValueError) as e:
      raise CorruptArtifactError(f"cell {path} is unreadable ({e}); delete it to "
                                 "recompute it") from e

  def get(self, source: str, suite: str, key: str,
          spec: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The stored cell, None if missing.

    Raises:
      InvalidConfigError: the stored cell was computed with another spec.
    """
    path = self.path(source, suite, key)
    if not os.path.exists(path):
      return None
    cell = self._read(path)
    if normalize(cell.get("spec")) != normalize(spec):
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
    return json.dumps(normalize(spec), sort_keys=True)

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
    for path in sorted(glob.glob(pattern)):
      if not os.path.basename(path).startswith(".tmp-"):
        yield self._read(path)

  def sources(self) -> List[str]:
    if not os.path.isdir(self.cells_dir):
      return []
    return sorted(d for d in os.listdir(self.cells_dir)
                  if os.path.isdir(os.path.join(self.cells_dir, d)))
