"""One place for progress bars, so library code never prints.

tqdm writes to stderr and disables itself when `TFCONDENSE_PROGRESS=0` or when the
caller passes `enabled=False` (tests, nested loops).
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm


def progress(total: int, desc: str, enabled: bool = True, unit: str = "it", **kwargs):
  """A tqdm bar with ETA; a disabled bar when progress is switched off."""
  disable = (not enabled) or os.environ.get("TFCONDENSE_PROGRESS", "1") == "0"
  return tqdm(total=total, desc=desc, disable=disable, unit=unit, dynamic_ncols=True,
              leave=False, **kwargs)
