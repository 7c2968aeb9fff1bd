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
* a NaN or infinite loss, or a NaN / infinite value anywhere in the method's state,
  stops the run with `NonFiniteLossError`; no checkpoint ever holds a non-finite value
  (the state is checked before every save), so the last checkpoint is the last good
  state. A resume may change a field named in `RunOptions.allow_changes` (e.g. a smaller
  `lr_img`); config.json records the change and the step it took effect at;
* robust resume: an unreadable `checkpoints/checkpoint` state file or a corrupt
  newest checkpoint falls back to the newest readable `ckpt-N` (said in a warning,
  the corrupt files moved to `checkpoints/corrupt/`), never to a silent restart;
  temporary folders of killed saves (`ckpt-N_temp`, `.tmp-*`) are removed;
* SIGINT / SIGTERM finish the current step, save a checkpoint and raise
  `RunInterruptedError` (a second signal interrupts at once);
* OS errors on the workdir (read-only, full, a file in the way) raise `WorkdirError`
  naming the path;
* any path: the workdir may be a local folder or a URL that `tf.io.gfile` knows
  (`gs://bucket/run`; `ram://` in tests); its side files, the corrupt-checkpoint
  handling and the clean-up of temporaries go through `tfcondense.fileio`;
* visibility: a tqdm bar with ETA (of the steps, or with `minutes` of the time
  budget: `tfcondense.progress.loop_bar`), TensorBoard scalars (loss, seconds per
  step) and image grids under `<workdir>/tensorboard`;
* several workers (`cluster`, a `tfcondense.cluster.Cluster`): only the chief writes
  config.json, checkpoints and logs; every worker restores the same checkpoint (checked),
  the budget stop is agreed by all workers, and a lost worker stops the run with
  `WorkerLostError` naming the checkpoint a restart resumes from.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from absl import logging
import tensorflow as tf

from tfcondense import atomic
from tfcondense import fileio
from tfcondense import progress as progress_lib
from tfcondense.fileio import workdir_error  # noqa: F401 (part of this module's API)
from tfcondense.errors import (CorruptArtifactError, InvalidConfigError,
                               NonFiniteLossError, RunInterruptedError, TfcondenseError,
                               WorkdirError, WorkerLostError)


class Cluster(Protocol):
  """What the loop needs from a multi-worker run (`tfcondense.cluster.Cluster`)."""

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
    allow_changes: settings (leaf names such as "lr_img", or dotted paths such as
      "config.lr_img") a resume may change; config.json records each change with the
      step it took effect at. Everything else must equal the recorded settings.
    handle_signals: SIGINT / SIGTERM stop the run after the current step with a
      checkpoint (main thread only).
  """

  workdir: Optional[str] = None
  minutes: Optional[float] = None
  max_steps: Optional[int] = None
  checkpoint_seconds: float = 60.0
  keep_checkpoints: int = 2
  image_every: int = 100
  show_progress: bool = True
  desc: str = "condense"
  allow_changes: Tuple[str, ...] = ()
  handle_signals: bool = True

  def __post_init__(self):
    for name, low, ok in (("minutes", 0, self.minutes is None or self.minutes >= 0),
                          ("max_steps", 0, self.max_steps is None or self.max_steps >= 0),
                          ("checkpoint_seconds", 0, self.checkpoint_seconds >= 0),
                          ("keep_checkpoints", 1, self.keep_checkpoints >= 1),
                          ("image_every", 0, self.image_every >= 0)):
      if not ok:
        raise InvalidConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
    if isinstance(self.allow_changes, str):
      object.__setattr__(self, "allow_changes", (self.allow_changes,))


@dataclasses.dataclass(frozen=True)
class RunResult:
  """How a run ended."""

  steps: int            # steps done in total (over all sessions)
  total_steps: int      # steps the method asked for
  seconds: float        # wall-clock work in total (over all sessions)
  stopped: str          # "done", "budget" or "max_steps"
  resumed_from: int     # step the session started at (0 for a fresh run)
  last_loss: Optional[float]  # None when this session ran no step
  #: Seconds of this session's first step beyond a typical step (tracing and graph
  #: building; counted in `minutes`); None with fewer than 2 steps this session.
  warmup_seconds: Optional[float] = None
  #: Settings changed on this resume (allowed by `RunOptions.allow_changes`):
  #: ("config.lr_img", old, new) triples.
  changes: Tuple[Tuple[str, Any, Any], ...] = ()


#: Record keys added after the first runs were recorded: a config.json without them
#: (an older run) is resumed and gains them.
_LATER_KEYS = ("data", "runtime")
_MISSING = "<not set>"


def _flatten(record: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  """{"config.lr_img": 1e-4, ...}: nested dicts as dotted keys."""
  out = {}
  for key, value in record.items():
    if isinstance(value, dict) and value:
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _short(value: Any) -> str:
  text = json.dumps(value)
  return text if len(text) <= 60 else text[:57] + "..."


def _allowed(key: str, allow: Sequence[str]) -> bool:
  return any(key == name or key.rsplit(".", 1)[-1] == name for name in allow)


def check_writable(path: str) -> None:
  """Raises WorkdirError unless `path` is a folder, or can become one, that this
  process may write in. Creates nothing (for checking flags before any work).

  Local paths only: a URL (gs://, ram://) passes unchecked, since permissions of a
  bucket show only on the first write (which `run` turns into a WorkdirError too).
  """
  if not fileio.is_local(path):
    return
  probe = os.path.abspath(fileio.local_path(path))
  while not os.path.exists(probe):
    parent = os.path.dirname(probe)
    if parent == probe:
      break
    probe = parent
  if not os.path.isdir(probe):
    raise workdir_error(path, NotADirectoryError(20, "Not a directory", probe))
  if not os.access(probe, os.W_OK | os.X_OK):
    # access() reports a read-only filesystem as well as missing permissions.
    raise WorkdirError(f"cannot write in {path}: {probe} is not writable "
                       "(read-only filesystem or no permission)")


def guard_config(workdir: str, config: Dict[str, Any], write: bool = True,
                 allow_changes: Sequence[str] = ()) -> List[Tuple[str, Any, Any]]:
  """Writes `config.json` in a new workdir, or checks it equals the recorded one.

  Args:
    workdir: the run's folder.
    config: the settings (JSON-serialisable, nested dicts allowed).
    write: False only checks an existing config.json (as a non-chief worker does).
    allow_changes: fields (leaf names or dotted paths) that may differ; see
      `RunOptions.allow_changes`.

  Returns:
    The allowed changes, (dotted key, recorded value, new value) triples; record them
    with `record_changes` once the step they take effect at is known.

  Raises:
    InvalidConfigError: other fields differ (one line per field in the message).
    CorruptArtifactError: config.json is unreadable.
    WorkdirError: the workdir cannot be created or written.
  """
  path = os.path.join(workdir, "config.json")
  config = json.loads(json.dumps(config, sort_keys=True))
  try:
    if write:
      fileio.makedirs(workdir)
    if not fileio.exists(path):
      if write:
        atomic.write_json(path, config)
      return []
    try:
      old = fileio.read_json(path)
    except ValueError as e:
      raise CorruptArtifactError(f"{path} is unreadable ({e}); remove the workdir") from e
    history = old.pop("changes", [])
    gained = [k for k in _LATER_KEYS if k not in old and k in config]
    for key in gained:  # recorded by an older version: taken as they are now
      old[key] = config[key]
    if gained and write:
      atomic.write_json(path, dict(old, changes=history) if history else old)
  except OSError as e:
    raise workdir_error(workdir, e) from e
  before, now = _flatten(old), _flatten(config)
  diff = sorted(k for k in set(before) | set(now)
                if before.get(k, _MISSING) != now.get(k, _MISSING))
  refused = [k for k in diff if not _allowed(k, allow_changes)]
  if refused:
    lines = "".join(f"\n  {k}: {_short(before.get(k, _MISSING))} there, "
                    f"{_short(now.get(k, _MISSING))} now" for k in refused)
    raise InvalidConfigError(
        f"{workdir} holds a run with different settings; resume with the same settings or use "
        f"a new --workdir:{lines}")
  return [(k, before.get(k, _MISSING), now.get(k, _MISSING)) for k in diff]


def record_changes(workdir: str, config: Dict[str, Any],
                   changes: Sequence[Tuple[str, Any, Any]], step: int) -> None:
  """Rewrites config.json with the new settings and appends `changes` to its
  "changes" list, each with the step it takes effect at."""
  path = os.path.join(workdir, "config.json")
  try:
    history = fileio.read_json(path).get("changes", [])
    history += [{"field": k, "from": old, "to": new, "at_step": int(step)}
                for k, old, new in changes]
    atomic.write_json(path, dict(json.loads(json.dumps(config)), changes=history))
  except OSError as e:
    raise workdir_error(workdir, e) from e


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
  lines = [s.strip() for s in str(error).splitlines() if s.strip()]
  for line in lines:
    if "aborted by:" in line:
      return line.split("aborted by:", 1)[1].strip()[:200]
  useful = [s for s in lines if not s.endswith("execution error:")]
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


_CKPT_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


def _checkpoint_numbers(directory: str) -> List[int]:
  """The N of every `ckpt-N` with an index file in `directory`, newest first."""
  if not fileio.isdir(directory):
    return []
  found = (_CKPT_INDEX.match(name) for name in fileio.listdir(directory))
  return sorted((int(m.group(1)) for m in found if m), reverse=True)


def clean_temporaries(workdir: str) -> List[str]:
  """Removes what killed writes leave in a workdir: TensorFlow's `ckpt-N_temp` save
  folders and `tfcondense.atomic`'s `.tmp-*` files and folders (and `*.old-.tmp-*`
  folders of an interrupted swap). Returns the removed paths."""
  patterns = (os.path.join(workdir, "checkpoints", "ckpt-*_temp"),
              os.path.join(workdir, "checkpoints", ".tmp-*"),
              os.path.join(workdir, ".tmp-*"), os.path.join(workdir, "*.old-.tmp-*"))
  removed = []
  for pattern in patterns:
    for path in fileio.glob(pattern):
      if fileio.isdir(path):
        fileio.rmtree(path, ignore_errors=True)
      else:
        try:
          fileio.remove(path)
        except OSError:
          continue
      removed.append(path)
  return removed


def _reason(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__


def _try_restore(ckpt: tf.train.Checkpoint, path: str) -> Optional[str]:
  """Restores `path` into `ckpt`; None on success, else why it failed."""
  try:
    ckpt.restore(path).assert_existing_objects_matched()
  except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError,
          TypeError) as e:  # a truncated .data file raises IndexError
    return _reason(e)
  return None


def _move_aside(directory: str, number: int) -> str:
  """Moves the files of `ckpt-<number>` into `<directory>/corrupt/`; returns that folder."""
  target = os.path.join(directory, "corrupt")
  fileio.makedirs(target)
  stamp = time.strftime("%Y%m%d-%H%M%S")
  for path in fileio.glob(os.path.join(directory, f"ckpt-{number}.*")):
    fileio.rename(path, os.path.join(target, f"{fileio.basename(path)}.{stamp}"),
                  overwrite=True)
  return target


def _write_state(directory: str, numbers: Sequence[int]) -> None:
  """Rewrites the `checkpoint` state file to list `ckpt-<numbers>` (any order), with
  their file times, so that `tf.train.CheckpointManager` rotates them as usual."""
  paths = [os.path.join(directory, f"ckpt-{n}") for n in sorted(numbers)]
  times = [fileio.mtime(p + ".index") for p in paths]
  tf.compat.v1.train.update_checkpoint_state(
      directory, paths[-1], paths, all_model_checkpoint_timestamps=times,
      last_preserved_timestamp=min(times) - 1.0)


def _resume(ckpt: tf.train.Checkpoint, workdir: str, repair: bool) -> Optional[str]:
  """Restores the newest readable checkpoint of `workdir` into `ckpt`.

  The newest `ckpt-N` on disk is tried first, whatever the state file says (an
  unreadable state file must not restart the run); a checkpoint that cannot be read is
  skipped with a warning and, with `repair`, moved to `checkpoints/corrupt/`, and the
  state file is rewritten to list what is left.

  Returns:
    The restored checkpoint's path, or None where the workdir holds none.

  Raises:
    CorruptArtifactError: checkpoints exist but none can be read.
  """
  directory = os.path.join(workdir, "checkpoints")
  numbers = _checkpoint_numbers(directory)
  if not numbers:
    return None
  state = tf.train.get_checkpoint_state(directory)  # None: missing or unreadable
  listed = os.path.basename(state.model_checkpoint_path) if state else None
  newest = f"ckpt-{numbers[0]}"
  damaged = listed != newest
  if state is None:
    logging.warning("%s is missing or unreadable; resuming from the newest checkpoint on "
                    "disk instead", os.path.join(directory, "checkpoint"))
  failures = []
  for n in numbers:
    path = os.path.join(directory, f"ckpt-{n}")
    reason = _try_restore(ckpt, path)
    if reason is None:
      if failures:
        logging.warning("%s; resumed from %s instead%s", "; ".join(failures), path,
                        f" (the unreadable files are in {os.path.join(directory, 'corrupt')})"
                        if repair else "")
      if repair and damaged:
        _write_state(directory, [m for m in numbers if m <= n])
      return path
    failures.append(f"checkpoint ckpt-{n} cannot be read ({reason})")
    damaged = True
    if repair:
      _move_aside(directory, n)
  raise CorruptArtifactError(
      f"cannot restore any checkpoint in {directory} (newest, {newest}: "
      f"{failures[0].split(' (', 1)[1]}; delete {workdir} to start afresh")


def restore_last(method: Method, workdir: str) -> Optional[int]:
  """Loads `method`'s state from the last readable checkpoint `run` wrote in `workdir`.

  For reading a run's state after it (e.g. the unclipped synthetic images), not for
  resuming: `run` restores by itself. Nothing in `workdir` is changed.

  Args:
    method: a method built with the run's settings.
    workdir: the run's `RunOptions.workdir`.

  Returns:
    The step of that checkpoint, or None where `workdir` holds none.

  Raises:
    CorruptArtifactError: no checkpoint can be read into `method`.
  """
  ckpt, step_var, _ = _checkpoint(method)
  if _resume(ckpt, workdir, repair=False) is None:
    return None
  return int(step_var.numpy())


def _nonfinite_part(method: Method) -> Optional[str]:
  """The name of the first state item holding a NaN / infinite value, else None."""
  for name, value in method.checkpoint_items().items():
    for v in tf.nest.flatten(value):
      if hasattr(v, "dtype") and tf.as_dtype(v.dtype).is_floating:
        if not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v)))):
          return name
  return None


class _StopSignals:
  """SIGINT / SIGTERM set a flag the loop reads after each step (a second signal
  interrupts at once). Installed only in the main thread, where Python delivers them."""

  def __init__(self, enabled: bool):
    self.enabled = enabled and threading.current_thread() is threading.main_thread()
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is not None:  # the second one: stop now
      self.__exit__()
      raise KeyboardInterrupt
    self.received = signal.Signals(signum).name

  def __enter__(self):
    if self.enabled:
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}
    return False


def _op_determinism() -> Optional[bool]:
  """Whether `tf.config.experimental.enable_op_determinism()` is on (None: unknown).
  TensorFlow exports only the setter; the getter lives in its framework module."""
  try:
    from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    return bool(tf_config.is_op_determinism_enabled())
  except (ImportError, AttributeError):
    return None


def _show_step(bar, spec: progress_lib.LoopBar, step: int, stop_at: int,
               loss: Optional[float], dt: float) -> None:
  """The bar's postfix after a step: the loss, seconds per step and, on a time bar,
  the step count."""
  postfix = {} if loss is None else dict(loss=f"{loss:.4g}", s_per_it=f"{dt:.2f}")
  if spec.timed:
    postfix["step"] = f"{step}/{stop_at}"
  if postfix:
    bar.set_postfix(postfix)


def _resume_hint(last: Optional[str]) -> str:
  if not last:
    return "Nothing was saved; "
  return (f"The last good state is kept in {last}: resume from it with a smaller data "
          "learning rate (apps.condense: the same command with e.g. --lr_img <smaller> "
          "--allow_change lr_img; Python: RunOptions(allow_changes=('lr_img',))), which "
          "config.json records, or ")


def run(method: Method, options: RunOptions = RunOptions(),
        config: Optional[Dict[str, Any]] = None,
        on_step: Optional[Callable[[int, Dict[str, float]], None]] = None,
        cluster: Optional[Cluster] = None) -> RunResult:
  """Runs `method.step` from the last checkpoint until done, out of budget or stopped.

  Args:
    method: the synthesis method (see `Method`).
    options: RunOptions.
    config: the method's settings, recorded in / checked against
      `<workdir>/config.json` (with this process's op-determinism flag added).
    on_step: optional callback(step, scalars) after every step.
    cluster: the workers of a distributed run (None: this process alone).

  Returns:
    A RunResult.

  Raises:
    NonFiniteLossError: a loss or the state became NaN / infinite (not saved).
    RunInterruptedError: SIGINT / SIGTERM (a checkpoint was saved first).
    InvalidConfigError: the workdir belongs to a run with other settings.
    CorruptArtifactError: no checkpoint can be read.
    WorkdirError: the workdir cannot be written.
    WorkerLostError: (multi-worker) another worker died or stopped answering.
    DistributedError: (multi-worker) the workers restored different states.
  """
  chief = cluster is None or cluster.is_chief
  ckpt, step_var, seconds_var = _checkpoint(method)
  manager = writer = None
  record = dict(config or {})
  record.setdefault("runtime", {})
  record["runtime"] = dict(record["runtime"],
                           op_determinism=_op_determinism())
  changes = []
  restored = None

  def start():
    nonlocal changes, restored
    changes = guard_config(options.workdir, record, write=chief,
                           allow_changes=options.allow_changes)
    if chief:
      clean_temporaries(options.workdir)
    restored = _resume(ckpt, options.workdir, repair=chief)

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
      _together(cluster, start)
      # Only the chief saves; the others read the chief's checkpoints to resume.
      manager = tf.train.CheckpointManager(ckpt, os.path.join(options.workdir, "checkpoints"),
                                           max_to_keep=options.keep_checkpoints)
      if chief:
        if changes:
          record_changes(options.workdir, record, changes, int(step_var.numpy()))
        writer = tf.summary.create_file_writer(os.path.join(options.workdir, "tensorboard"))
    if multi:
      cluster.check_same(_fingerprint(int(step_var.numpy()), method)
                         + [options.minutes, options.max_steps],
                         "the restored step, state checksum, --minutes and --max_steps")
  except (cluster.peer_errors if multi else ()) as e:
    raise lost(e, int(step_var.numpy())) from e
  except OSError as e:
    raise workdir_error(options.workdir, e) from e

  total = int(method.total_steps)
  stop_at = min(total, options.max_steps) if options.max_steps is not None else total
  start_step = int(step_var.numpy())
  # The step whose state is on disk: saving it again would rewrite identical files (and
  # TensorFlow's ram:// filesystem appends to a rewritten file instead of replacing it).
  saved_step = start_step if restored else None
  budget = None if options.minutes is None else 60.0 * float(options.minutes)
  spent = float(seconds_var.numpy())
  last_save = time.monotonic()
  last_loss = None
  stopped = "done"
  times = []  # this session's step times (the first includes tracing)

  def save():
    nonlocal saved_step
    if manager is None or not chief or saved_step == int(step_var.numpy()):
      return
    bad = _nonfinite_part(method)
    if bad is not None:
      raise NonFiniteLossError(
          f"the method's state ({bad}) became NaN or infinite by step "
          f"{int(step_var.numpy())}; stopped without saving it. "
          + _resume_hint(manager.latest_checkpoint) + "start afresh in a new workdir.")
    try:
      manager.save(checkpoint_number=int(step_var.numpy()))
      saved_step = int(step_var.numpy())
    except (OSError, tf.errors.OpError) as e:
      clean_temporaries(options.workdir)
      last = manager.latest_checkpoint
      raise WorkdirError(
          f"cannot write a checkpoint in {manager.directory} ({_reason(e)}); "
          + (f"the last checkpoint, {last}, is intact. " if last else "")
          + "Free space or fix the folder, then rerun the same command to resume.") from e

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

  step = start_step
  spec = progress_lib.loop_bar(stop_at, start_step, budget, spent)
  try:  # a collective fails on every surviving worker when one dies
    with _StopSignals(options.handle_signals) as signals, progress_lib.progress(
        spec.total, options.desc, enabled=options.show_progress, **spec.kwargs()) as bar:
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
              f"the loss became {loss} at step {step}; stopped. " + _resume_hint(last)
              + "start afresh in a new workdir (or check the data).")
        step += 1
        spent += dt
        last_loss = loss
        times.append(dt)
        step_var.assign(step)
        seconds_var.assign(spent)
        if writer is not None:
          with writer.as_default(step=step):
            for k, v in scalars.items():
              tf.summary.scalar(k, v)
            tf.summary.scalar("seconds_per_step", dt)
        if on_step is not None:
          on_step(step, scalars)
        bar.update(min(spec.advance(dt), spec.total - bar.n))
        _show_step(bar, spec, step, stop_at, loss, dt)
        if options.image_every and step % options.image_every == 0:
          images(step)
        if (cluster.any(signals.received is not None) if multi
            else signals.received is not None):  # every worker stops at the same step
          stopped = "interrupted"
          break
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
  if stopped == "interrupted":
    raise RunInterruptedError(
        f"stopped by {signals.received or 'a signal to another worker'} after step {step}; "
        + (f"saved {manager.latest_checkpoint}: rerun the same command to resume"
           if manager is not None and chief else "nothing saved (no workdir)"))
  warmup = (max(0.0, times[0] - statistics.median(times[1:]))
            if len(times) >= 2 else None)
  return RunResult(steps=int(step_var.numpy()), total_steps=total, seconds=spent,
                   stopped=stopped, resumed_from=start_step, last_loss=last_loss,
                   warmup_seconds=warmup, changes=tuple(changes))
