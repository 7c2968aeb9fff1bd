"""Results of a continual run: `ContinualResult`, summaries over seeds, a table."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np


@dataclasses.dataclass(frozen=True)
class ContinualResult:
  """Per-step results of one learner run.

  Attributes:
    setting: "class_incremental" or "task_incremental".
    strategy: the exemplar strategy.
    seed: the config seed.
    steps: one dict per finished step: step, name, classes (dataset class ids),
      columns, seen_classes, accuracy (class-incremental: % of the test images of
      all seen classes; task-incremental: mean over seen tasks of each task's
      accuracy with its own head), group_accuracy (per arrived group / task),
      memory (stored_images, stored_pixels, formed_images of the whole memory),
      train_images, train_steps, loss, memory_seconds, train_seconds.
  """

  setting: str
  strategy: str
  seed: int
  steps: Tuple[Dict[str, Any], ...]

  @property
  def accuracies(self) -> List[float]:
    return [float(s["accuracy"]) for s in self.steps]

  def as_dict(self) -> Dict[str, Any]:
    return dict(setting=self.setting, strategy=self.strategy, seed=self.seed,
                accuracies=self.accuracies, steps=list(self.steps))


def summarize(results: Sequence[Union[ContinualResult, Dict[str, Any]]]
              ) -> Dict[str, Dict[str, List[float]]]:
  """Per strategy: mean and std over seeds of the accuracy after each step."""
  rows = [r.as_dict() if isinstance(r, ContinualResult) else r for r in results]
  out: Dict[str, Dict[str, List[float]]] = {}
  for strategy in dict.fromkeys(r["strategy"] for r in rows):
    runs = [r["accuracies"] for r in rows if r["strategy"] == strategy]
    n = min(len(a) for a in runs)
    acc = np.array([a[:n] for a in runs], np.float64).reshape(len(runs), n)
    out[strategy] = dict(mean=acc.mean(0).round(2).tolist(), std=acc.std(0).round(2).tolist(),
                         seeds=len(runs))
  return out


def format_table(results: Sequence[Union[ContinualResult, Dict[str, Any]]]) -> str:
  """A Markdown table: one row per strategy, accuracy after each step (mean +- std)."""
  summary = summarize(results)
  steps = max((len(v["mean"]) for v in summary.values()), default=0)
  lines = ["| strategy | seeds | " + " | ".join(f"step {i + 1}" for i in range(steps)) + " |",
           "|---|---|" + "---|" * steps]
  for strategy, v in summary.items():
    cells = [f"{m:.2f} +- {s:.2f}" for m, s in zip(v["mean"], v["std"])]
    cells += [""] * (steps - len(cells))
    lines.append(f"| {strategy} | {v['seeds']} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
