"""One place for progress bars, so library code never prints.

tqdm writes to stderr and disables itself when `TFCONDENSE_PROGRESS=0` or when the
caller passes `enabled=False` (tests, nested loops).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

from tqdm.auto import tqdm

#: A time bar: seconds of the budget done / budget, and the wall-clock left.
_TIME_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of budget "
                "[{elapsed}<{remaining}{postfix}]")


def progress(total: float, desc: str, enabled: bool = True, unit: str = "it", **kwargs):
  """A tqdm bar with ETA; a disabled bar when progress is switched off."""
  disable = (not enabled) or os.environ.get("TFCONDENSE_PROGRESS", "1") == "0"
  kwargs.setdefault("dynamic_ncols", True)
  return tqdm(total=total, desc=desc, disable=disable, unit=unit, leave=False, **kwargs)


@dataclasses.dataclass(frozen=True)
class LoopBar:
  """What the bar of a step loop counts (`loop_bar`).

  Attributes:
    total: the bar's end: steps, or seconds of the time budget.
    initial: where a resumed loop starts on it.
    unit: "it" (steps) or "s" (seconds of the budget).
    bar_format: tqdm's format (None: tqdm's own).
  """

  total: float
  initial: float
  unit: str
  bar_format: Optional[str] = None

  @property
  def timed(self) -> bool:
    return self.unit == "s"

  def advance(self, seconds: float) -> float:
    """How far one step that took `seconds` moves the bar."""
    return seconds if self.timed else 1

  def kwargs(self) -> dict:
    """The keyword arguments of `progress` for this bar."""
    out = dict(unit=self.unit, initial=self.initial)
    if self.bar_format:
      out["bar_format"] = self.bar_format
    return out


def loop_bar(total_steps: int, done_steps: int, budget_seconds: Optional[float] = None,
             spent_seconds: float = 0.0) -> LoopBar:
  """The bar of a loop of `total_steps` steps, `done_steps` of them done.

  With a wall-clock budget the bar counts the budget's seconds (done / budget, and the
  time left), the steps going to its postfix: a minute budget stops a run long before a
  method's nominal step count (4 minutes of IDC are about 20 of its 200,000 steps), so
  a step bar would show an end it never reaches and a remaining time of days.
  """
  if budget_seconds is None:
    return LoopBar(total=total_steps, initial=done_steps, unit="it")
  return LoopBar(total=float(budget_seconds),
                 initial=min(float(spent_seconds), float(budget_seconds)), unit="s",
                 bar_format=_TIME_FORMAT)
