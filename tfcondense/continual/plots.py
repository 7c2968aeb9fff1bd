"""Accuracy-against-step charts of continual runs (the shape of IDC's Figure 7)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from tfcondense import atomic
from tfcondense.continual.results import ContinualResult

def plot_accuracy(results: Sequence[Union[ContinualResult, Dict[str, Any]]], path: str,
                  title: Optional[str] = None) -> str:
  """Test accuracy vs. step, one line per strategy (mean +- std over seeds).

  The shape of IDC's Figure 7: x = number of classes seen (class-incremental) or
  number of tasks (task-incremental), y = accuracy (%). Written atomically.

  Returns:
    The absolute path of the PNG.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = [r.as_dict() if isinstance(r, ContinualResult) else r for r in results]
  by_strategy: Dict[str, List[Dict[str, Any]]] = {}
  for r in rows:
    by_strategy.setdefault(r["strategy"], []).append(r)
  fig, ax = plt.subplots(figsize=(5.5, 4.0))
  task = any(r["setting"] == "task_incremental" for r in rows)
  for strategy, runs in by_strategy.items():
    n = min(len(r["steps"]) for r in runs)
    if n == 0:
      continue
    acc = np.array([[s["accuracy"] for s in r["steps"][:n]] for r in runs])
    xs = ([i + 1 for i in range(n)] if task
          else [runs[0]["steps"][i]["seen_classes"] for i in range(n)])
    mean, std = acc.mean(0), acc.std(0)
    ax.plot(xs, mean, marker="o", label=f"{strategy} ({len(runs)} seed"
            f"{'s' if len(runs) > 1 else ''})")
    if len(runs) > 1:
      ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    ax.set_xticks(xs)
  ax.set_xlabel("number of tasks" if task else "number of classes")
  ax.set_ylabel("test accuracy (%)")
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  return atomic.save_figure(fig, path, dpi=120)
