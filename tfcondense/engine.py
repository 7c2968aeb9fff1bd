"""The shared outer loop of every synthesis method: resume, budget, NaN stop, logs.

The keras-io custom-training-loop shape: a method supplies a `tf.function` that does
one unit of work (for IDC one inner iteration), and this plain Python loop around it
does everything else, once for all methods:

* resume: `tf.train.CheckpointManager` in `<workdir>/checkpoints` holds the method's
  state (synthetic images, optimiser slots, network weights) plus the step counter and
  the time spent. Randomness is stateless and derived from (seed, step), so the step
  counter is the whole RNG state: a run killed at any moment and started again with
  the same settings continues from the last checkpoint and, with op determinism,
  ends bit-for-bit where an uninterrupted run ends;
* settings guard: `<workdir>/config.json` records the settings; resuming with
  different ones is refused (a silent mix of two runs is worse than an error);
* budget: `minutes` of wall-clock work (summed over resumed sessions) stops the run
  cleanly with a checkpoint;
* a NaN or infinite loss stops the run with `NonFiniteLossError`; the last good
  checkpoint is kept (never overwritten by the bad state);
* visibility: a tqdm bar with ETA, TensorBoard scalars (loss, seconds per step) and
  image grids under `<workdir>/tensorboard`;
* several workers (`cluster`, a `tfcondense.distribute.Cluster`): only the chief writes
  config.json, checkpoints and logs; every worker restores the same checkpoint (checked),
  the budget stop is agreed by all workers, and a lost worker stops the run with
  `WorkerLostError` naming the checkpoint a restart resumes from.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Dict, Optional, Protocol, Tuple

import tensorflow as tf

from tfcondense import atomic
from tfcondense import progress as progress_lib
from tfcondense.errors import (CorruptArtifactError, InvalidConfigError,
                               NonFiniteLossError, TfcondenseError, WorkerLostError)


class Cluster(Protocol):
  """What the loop needs from a multi-worker run (`tfcondense.distribute.Cluster`)."""

  is_chief: bool
  multi_worker: bool
  peer_errors: tuple

  def any(self, flag: bool) -> bool:
    """True on every worker if `flag` is true on any worker."""

  def check_same(self, value, what: str) -> None:
    """Raises unless every worker holds an equal `value`."""


class Method(Protocol):
  """What a synthesis method gives the loop."""

  total_steps: int

  def checkpoint_items(self) -> Dict[str, Any]:
    """Trackables (variables, lists of variables) that make up the method's state."""

  def step(self, step: int) -> Dict[str, float]:
    """Runs unit of work number `step` (0-based); returns scalars incl. "loss"."""

  def image_summaries(self) -> Dict[str, Any]:
    """Image batches [N, H, W, C] in [0, 1] to show in TensorBoard."""


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How the loop runs (not what it computes; these may change between resumes).

  Attributes:
    workdir: checkpoints, config.json and TensorBoard logs go here; None runs in
      memory only (no resume).
    minutes: wall-clock budget in minutes, summed over resumed sessions; None = no
      limit (the method's step count decides).
    max_steps: stop after this many steps in total (None = the method's total).
    checkpoint_seconds: at most this long between checkpoints.
    keep_checkpoints: checkpoints kept by the manager.
    image_every: steps between TensorBoard image grids (0 = only at the end).
    show_progress: draw a progress bar.
    desc: label of the progress bar.
  """

  workdir: Optional[str] = None
  minutes: Optional[float] = None
  max_steps: Optional[int] = None
  checkpoint_seconds: float = 60.0
  keep_checkpoints: int = 2
  image_every: int = 100
  show_progress: bool = True
  desc: str = "condense"


@dataclasses.dataclass(frozen=True)
class RunResult:
  """How a run ended."""

  steps: int            # steps done in total (over all sessions)
  total_steps: int      # steps the method asked for
  seconds: float        # wall-clock work in total (over all sessions)
  stopped: str          # "done", "budget" or "max_steps"
  resumed_from: int     # step the session started at (0 for a fresh run)
  last_loss: Optional[float]


def guard_config(workdir: str, config: Dict[str, Any], write: bool = True) -> None:
  """Writes `config.json` in a new workdir, or checks it equals the recorded one
  (`write=False`: only checks an existing one, as a non-chief worker does)."""
  path = os.path.join(workdir, "config.json")
  if write:
    os.makedirs(workdir, exist_ok=True)
  elif not os.path.exists(path):
    return
  config = json.loads(json.dumps(config, sort_keys=True))
  if os.path.exists(path):
    try:
      with open(path) as f:
        old = json.load(f)
    except (OSError, ValueError) as e:
      raise CorruptArtifactError(f"{path} is unreadable ({e}); remove the workdir") from e
    if old != config:
      diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
      raise InvalidConfigError(
          f"{workdir} holds a run with different settings ({', '.join(diff)}: "
          f"{[old.get(k) for k in diff]} there vs {[config.get(k) for k in diff]} now); "
          "resume with the same settings or use a new --workdir")
    return
  atomic.write_json(path, config)


def _together(cluster: Optional[Cluster], fn: Callable[[], Any]):
  """`fn()` on every worker; if it raises a library error on any worker, every worker
  raises (none is left waiting for the others in a collective)."""
  error = None
  try:
    out = fn()
  except TfcondenseError as e:
    error = e
  if cluster is not None and cluster.multi_worker and cluster.any(error is not None):
    raise error or TfcondenseError("another worker could not start the run; see its log")
  if error is not None:
    raise error
  return out


def _peer_detail(error) -> str:
  """The informative line of a failed collective's message (e.g. 'Socket closed')."""
  lines = [l.strip() for l in str(error).splitlines() if l.strip()]
  for line in lines:
    if "aborted by:" in line:
      return line.split("aborted by:", 1)[1].strip()[:200]
  useful = [l for l in lines if not l.endswith("execution error:")]
  return (useful or ["no detail"])[0][:200]


def _fingerprint(step: int, method: Method) -> list:
  """The restored step and a checksum of the method's state (to compare workers)."""
  total = 0.0
  for v in tf.nest.flatten(method.checkpoint_items()):
    if hasattr(v, "dtype") and tf.as_dtype(v.dtype).is_floating:  # Keras dtypes are str
      total += float(tf.reduce_sum(tf.cast(tf.convert_to_tensor(v), tf.float64)))
  return [step, total]


def _checkpoint(method: Method) -> Tuple[tf.train.Checkpoint, tf.Variable, tf.Variable]:
  """(the checkpoint `run` writes, its step variable, its seconds variable)."""
  step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
  seconds_var = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="seconds")
  ckpt = tf.train.Checkpoint(step=step_var, seconds=seconds_var, **method.checkpoint_items())
  return ckpt, step_var, seconds_var


def _restore(ckpt: tf.train.Checkpoint, path: str, workdir: str) -> None:
  """Restores `path` into `ckpt`, every object of `ckpt` present in the file."""
  try:
    ckpt.restore(path).assert_existing_objects_matched()
  except (tf.errors.OpError, AssertionError, ValueError) as e:
    raise CorruptArtifactError(
        f"cannot restore {path} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''}); delete "
        f"{workdir} to start afresh") from e


def restore_last(method: Method, workdir: str) -> Optional[int]:
  """Loads `method`'s state from the last checkpoint `run` wrote in `workdir`.

  For reading a run's state after it (e.g. the unclipped synthetic images), not for
  resuming: `run` restores by itself.

  Args:
    method: a method built with the run's settings.
    workdir: the run's `RunOptions.workdir`.

  Returns:
    The step of that checkpoint, or None where `workdir` holds none.

  Raises:
    CorruptArtifactError: the checkpoint cannot be read into `method`.
  """
  path = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
  if path is None:
    return None
  ckpt, step_var, _ = _checkpoint(method)
  _restore(ckpt, path, workdir)
  return int(step_var.numpy())


def run(method: Method, options: RunOptions = RunOptions(),
        config: Optional[Dict[str, Any]] = None,
        on_step: Optional[Callable[[int, Dict[str, float]], None]] = None,
        cluster: Optional[Cluster] = None) -> RunResult:
  """Runs `method.step` from the last checkpoint until done, out of budget or stopped.

  Args:
    method: the synthesis method (see `Method`).
    options: RunOptions.
    config: the method's settings, recorded in / checked against
      `<workdir>/config.json`.
    on_step: optional callback(step, scalars) after every step.
    cluster: the workers of a distributed run (None: this process alone).

  Returns:
    A RunResult.

  Raises:
    NonFiniteLossError: a step returned a NaN / infinite loss (state not saved).
    InvalidConfigError: the workdir belongs to a run with other settings.
    CorruptArtifactError: the checkpoint cannot be read.
    WorkerLostError: (multi-worker) another worker died or stopped answering.
    DistributedError: (multi-worker) the workers restored different states.
  """
  chief = cluster is None or cluster.is_chief
  ckpt, step_var, seconds_var = _checkpoint(method)
  manager = writer = None

  def restore():
    if manager.latest_checkpoint:
      _restore(ckpt, manager.latest_checkpoint, options.workdir)

  def lost(error, step):
    last = manager.latest_checkpoint if manager is not None else None
    return WorkerLostError(
        f"lost contact with another worker at step {step} ({type(error).__name__}: "
        f"{_peer_detail(error)}); stopped. "
        + (f"The last checkpoint is {last}; start every worker again with the same "
           "command to resume from it." if last else
           "No checkpoint was written (give --workdir to make runs resumable)."))

  multi = cluster is not None and cluster.multi_worker
  try:
    if options.workdir:
      _together(cluster, lambda: guard_config(options.workdir, config or {}, write=chief))
      # Only the chief saves; the others read the chief's checkpoints to resume.
      manager = tf.train.CheckpointManager(ckpt, os.path.join(options.workdir, "checkpoints"),
                                           max_to_keep=options.keep_checkpoints)
      _together(cluster, restore)
      if chief:
        writer = tf.summary.create_file_writer(os.path.join(options.workdir, "tensorboard"))
    if multi:
      cluster.check_same(_fingerprint(int(step_var.numpy()), method)
                         + [options.minutes, options.max_steps],
                         "the restored step, state checksum, --minutes and --max_steps")
  except (cluster.peer_errors if multi else ()) as e:
    raise lost(e, int(step_var.numpy())) from e

  total = int(method.total_steps)
  stop_at = min(total, options.max_steps) if options.max_steps is not None else total
  start = int(step_var.numpy())
  budget = None if options.minutes is None else 60.0 * float(options.minutes)
  spent = float(seconds_var.numpy())
  last_save = time.monotonic()
  last_loss = None
  stopped = "done"

  def save():
    if manager is not None and chief:
      manager.save(checkpoint_number=int(step_var.numpy()))

  def out_of_budget() -> bool:
    if budget is None:  # the same on every worker (checked above)
      return False
    return cluster.any(spent >= budget) if multi else spent >= budget

  def images(step):
    if writer is None:
      return
    with writer.as_default(step=step):
      for name, batch in method.image_summaries().items():
        tf.summary.image(name, tf.clip_by_value(batch, 0.0, 1.0), max_outputs=len(batch))

  step = start
  try:  # a collective fails on every surviving worker when one dies
    with progress_lib.progress(stop_at, options.desc, enabled=options.show_progress,
                               unit="it") as bar:
      bar.update(start)
      while step < stop_at:
        if out_of_budget():
          stopped = "budget"
          break
        t0 = time.perf_counter()
        scalars = {k: float(v) for k, v in method.step(step).items()}
        dt = time.perf_counter() - t0
        loss = scalars.get("loss")
        if loss is not None and not math.isfinite(loss):
          last = manager.latest_checkpoint if manager is not None else None
          raise NonFiniteLossError(
              f"the loss became {loss} at step {step}; stopped. "
              + (f"The last good state is kept in {last}. " if last else "")
              + "Lower the learning rates (e.g. --lr_img) or check the data.")
        step += 1
        spent += dt
        last_loss = loss
        step_var.assign(step)
        seconds_var.assign(spent)
        if writer is not None:
          with writer.as_default(step=step):
            for k, v in scalars.items():
              tf.summary.scalar(k, v)
            tf.summary.scalar("seconds_per_step", dt)
        if on_step is not None:
          on_step(step, scalars)
        bar.update(1)
        if loss is not None:
          bar.set_postfix(loss=f"{loss:.4g}", s_per_it=f"{dt:.2f}")
        if options.image_every and step % options.image_every == 0:
          images(step)
        if time.monotonic() - last_save >= options.checkpoint_seconds:
          save()
          last_save = time.monotonic()
      else:
        stopped = "done" if stop_at == total else "max_steps"
  except (cluster.peer_errors if multi else ()) as e:
    raise lost(e, step) from e
  save()
  images(int(step_var.numpy()))
  if writer is not None:
    writer.flush()
  return RunResult(steps=int(step_var.numpy()), total_steps=total, seconds=spent,
                   stopped=stopped, resumed_from=start, last_loss=last_loss)
