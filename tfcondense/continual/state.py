"""The run directory of a resumable continual run: its layout, reads and writes.

    run_dir/config.json                  the settings guard (`tfcondense.engine`)
    run_dir/state.json                   results of the finished steps (written last)
    run_dir/step_XXX/memory/             the step's exemplars (an artifact directory)
    run_dir/step_XXX/condense/           the condensation's own work directory
    run_dir/step_XXX/model.weights.h5    the model after the step
    run_dir/step_XXX/result.json         the step's result

Every file is written atomically and `state.json` after the others, so a run killed
at any point resumes after its last finished step; a memory built before an
interruption in the middle of a step is found and reused.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Sequence

from tfcondense import atomic
from tfcondense import fileio
from tfcondense.continual import memory as memory_lib
from tfcondense.errors import CorruptArtifactError

STATE = "state.json"
_WEIGHTS = "model.weights.h5"


def step_dir(run_dir: str, t: int) -> str:
  """The directory of step t."""
  return os.path.join(run_dir, f"step_{t:03d}")


def read_results(run_dir: str, num_steps: int) -> List[Dict[str, Any]]:
  """The finished steps' results ([] for a new run).

  Raises:
    CorruptArtifactError: `state.json` is unreadable or lists more than `num_steps`
      steps (the message says to remove the run directory).
  """
  path = os.path.join(run_dir, STATE)
  if not fileio.exists(path):
    return []
  try:
    results = fileio.read_json(path)["results"]
  except (OSError, ValueError, KeyError) as e:
    raise CorruptArtifactError(f"{path} is unreadable ({e}); remove {run_dir}") from e
  done = len(results)
  if done > num_steps:
    raise CorruptArtifactError(f"{path} lists {done} steps, the scenario has "
                               f"{num_steps}; remove {run_dir}")
  return list(results)


def load_memories(run_dir: str, done: int) -> List[memory_lib.Exemplars]:
  """The stored exemplars of steps 0 .. done - 1."""
  return [memory_lib.Exemplars.load(os.path.join(step_dir(run_dir, t), "memory"))
          for t in range(done)]


def load_weights(model, run_dir: str, t: int):
  """Loads step t's weights into `model` (built with the columns seen until t)."""
  weights = os.path.join(step_dir(run_dir, t), _WEIGHTS)
  try:
    model.load_weights(weights)
  except (OSError, ValueError) as e:
    raise CorruptArtifactError(
        f"cannot load {weights} ({e}); remove {run_dir} to start afresh") from e
  return model


def save_step(run_dir: str, t: int, model, result: Dict[str, Any],
              previous: Sequence[Dict[str, Any]]) -> None:
  """Writes step t's weights and result, then `state.json` (previous + result)."""
  d = step_dir(run_dir, t)
  fileio.makedirs(d)
  with atomic.replacing(os.path.join(d, _WEIGHTS), ".weights.h5") as tmp:
    model.save_weights(tmp, overwrite=True)
  atomic.write_json(os.path.join(d, "result.json"), result)
  atomic.write_json(os.path.join(run_dir, STATE), dict(results=list(previous) + [result]))
