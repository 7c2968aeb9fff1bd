"""Runs one continual scenario for several exemplar strategies and seeds."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from tfcondense.continual.config import ContinualConfig
from tfcondense.continual.results import ContinualResult


class Learner(Protocol):
  """What `compare` needs of a learner (`ClassIncrementalLearner`,
  `TaskIncrementalLearner`): its finished steps and a resumable `run`."""

  @property
  def finished_steps(self) -> int: ...

  def run(self, until: Optional[int] = None,
          on_step: Optional[Callable[[Dict[str, Any]], None]] = None) -> ContinualResult: ...


def compare(scenario: Callable[[ContinualConfig, Optional[str]], Learner],
            config: ContinualConfig, strategies: Sequence[str], seeds: Sequence[int] = (0,),
            run_root: Optional[str] = None,
            on_step: Optional[Callable[[str, int, Dict[str, Any]], None]] = None,
            on_start: Optional[Callable[[str, int, int], None]] = None
            ) -> List[ContinualResult]:
  """Runs one scenario for every (strategy, seed), each resumable in its own run dir.

  All learners are built (so every setting is checked) before any of them trains.

  Args:
    scenario: `fn(config, run_dir) -> learner`, e.g.
      `lambda c, d: ClassIncrementalLearner(source, c, steps=5, run_dir=d)`.
    config: the shared ContinualConfig (its strategy and seed are replaced).
    strategies: exemplar strategies.
    seeds: config seeds (training, exemplars and initialisation; the class order is
      the scenario's).
    run_root: parent of the run dirs `<strategy>_seed<seed>` (None: no resume).
    on_step: `fn(strategy, seed, step_result)` after every step.
    on_start: `fn(strategy, seed, finished_steps)` before each learner runs.

  Returns:
    One ContinualResult per (strategy, seed), strategies outermost.
  """
  configs = [dataclasses.replace(config, strategy=strategy, seed=int(seed))
             for strategy in strategies for seed in seeds]  # checks every strategy
  learners = []
  for cfg in configs:
    strategy, seed = cfg.strategy.lower(), int(cfg.seed)
    run_dir = os.path.join(run_root, f"{strategy}_seed{seed}") if run_root else None
    learners.append((strategy, seed, scenario(cfg, run_dir)))
  results = []
  for strategy, seed, learner in learners:
    if on_start is not None:
      on_start(strategy, seed, learner.finished_steps)
    hook = None if on_step is None else (lambda r, s=strategy, k=seed: on_step(s, k, r))
    results.append(learner.run(on_step=hook))
  return results
