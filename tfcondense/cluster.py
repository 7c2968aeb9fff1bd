"""Where a run stands in a `tf.distribute.Strategy`: strategies, workers, collectives.

TensorFlow's own distributed engine does the work (TF guides "Distributed training with
TensorFlow", "Custom training with tf.distribute.Strategy" and "Multi-worker training
with a custom training loop"); this module only decides what each replica computes.
Strategies (registry `STRATEGIES`):

* ``default``: one process, one device: the unchanged single-process code path.
* ``mirrored``: `tf.distribute.MirroredStrategy`, one process over several devices of
  one machine (its GPUs, or `logical_cpus` logical CPUs made with
  `tf.config.set_logical_device_configuration`, which is how the tests run it).
* ``multi_worker``: `tf.distribute.MultiWorkerMirroredStrategy`, one process per
  machine (or per GPU); the cluster and this process's task come from the `TF_CONFIG`
  environment variable. Collectives time out after `timeout_seconds`
  (`tf.distribute.experimental.CommunicationOptions`) and the strategy's peer health
  check aborts them when a worker goes away.

Workers: the chief (the ``chief`` task, else worker 0) alone writes checkpoints,
config.json, TensorBoard logs and the artifact; every worker restores from
`<workdir>/checkpoints` (so a multi-host workdir must be on a filesystem all workers
read) and the restored states are compared across workers before the first step.
Stop decisions (the minutes budget) are agreed by an all-reduce, so no worker is left
waiting in a collective. A lost worker surfaces as `WorkerLostError` naming the last
checkpoint; starting every worker again resumes from it.

Evaluation (`tfcondense.evaluation.evaluate` and `tfcondense.experiment.compare`, each given
the Cluster): repetition r and comparison cell i run on worker r mod W (i mod W); the
results are gathered with `Cluster.gather_by_index`, a collective, so no shared
filesystem is needed for them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfcondense.errors import DistributedError, InvalidConfigError
from tfcondense.registry import Registry

STRATEGIES = Registry(
    "distribution",
    hint="default: one process; mirrored: several devices of one machine; multi_worker: "
         "several processes described by TF_CONFIG.")

#: Synthesis methods that can run split over replicas (name -> adapter(method, cluster)).
DISTRIBUTED = Registry(
    "distributed synthesis method",
    hint="Only these methods have a per-replica step so far; run the others with "
         "--strategy default.")

#: What a collective raises when a peer died, restarted or stopped answering.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.AbortedError,
               tf.errors.FailedPreconditionError)

_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')


@dataclasses.dataclass(frozen=True)
class StrategyOptions:
  """How a strategy is made.

  Attributes:
    devices: mirrored: the devices to mirror over (default: every GPU, else the CPU,
      or every logical CPU when `logical_cpus` is set).
    logical_cpus: mirrored: split the host CPU into this many logical devices first
      (must happen before TensorFlow initialises its devices; for CPU machines and
      tests).
    timeout_seconds: multi_worker: a collective that waits longer than this raises
      (None: no timeout; the strategy's peer health check still notices a dead worker,
      within about a minute). Set it above the slowest step's imbalance between workers.
  """

  devices: Tuple[str, ...] = ()
  logical_cpus: int = 0
  timeout_seconds: Optional[float] = None


def free_local_ports(n: int) -> List[int]:
  """`n` distinct free TCP ports on 127.0.0.1, for a local multi-worker TF_CONFIG."""
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def configure_logical_cpus(count: int) -> List[str]:
  """Splits the host CPU into `count` logical devices; returns their names.

  Raises:
    InvalidConfigError: TensorFlow has already initialised its devices differently.
  """
  if count < 1:
    raise InvalidConfigError(f"logical_cpus must be >= 1, got {count}")
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
  except RuntimeError as e:
    if len(tf.config.list_logical_devices("CPU")) != count:
      raise InvalidConfigError(
          f"cannot split the CPU into {count} logical devices: TensorFlow already "
          f"initialised its devices ({e}); configure them first thing in the process") from e
  return [d.name for d in tf.config.list_logical_devices("CPU")]


def _refuse(options: StrategyOptions, name: str, *fields: str) -> None:
  given = [f for f in fields if getattr(options, f)]
  if given:
    raise InvalidConfigError(f"{', '.join(given)} do(es) not apply to --strategy {name}; "
                             "use --strategy mirrored")


@STRATEGIES.register("default")
def _default_strategy(options: StrategyOptions):
  _refuse(options, "default", "devices", "logical_cpus")
  return tf.distribute.get_strategy()


@STRATEGIES.register("mirrored")
def _mirrored_strategy(options: StrategyOptions):
  devices = list(options.devices)
  if options.logical_cpus:
    names = configure_logical_cpus(options.logical_cpus)
    devices = devices or names
  return tf.distribute.MirroredStrategy(devices or None)


@STRATEGIES.register("multi_worker")
def _multi_worker_strategy(options: StrategyOptions):
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise InvalidConfigError(
        "--strategy multi_worker needs the TF_CONFIG environment variable describing the "
        f"cluster and this process's task, e.g. {_TF_CONFIG_EXAMPLE} (index 1 on the "
        "second machine); see README 'Scaling out with tf.distribute'")
  try:
    config = json.loads(raw)
    workers = config["cluster"].get("worker", []) + config["cluster"].get("chief", [])
    config["task"]["type"], config["task"]["index"]  # pylint: disable=pointless-statement
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise InvalidConfigError(f"TF_CONFIG is not a cluster description ({e!r}); expected "
                             f"something like {_TF_CONFIG_EXAMPLE}") from e
  if not workers:
    raise InvalidConfigError(f"TF_CONFIG lists no worker; expected e.g. {_TF_CONFIG_EXAMPLE}")
  _refuse(options, "multi_worker", "devices", "logical_cpus")
  comm = tf.distribute.experimental.CommunicationOptions(
      timeout_seconds=options.timeout_seconds or None)
  return tf.distribute.MultiWorkerMirroredStrategy(communication_options=comm)


class Cluster:
  """A strategy plus where this process stands in it.

  Args:
    strategy: the `tf.distribute.Strategy`.
    name: its name in STRATEGIES ("default" keeps every single-process code path).

  Attributes:
    num_workers: processes in the run (1 unless multi_worker).
    worker_index: this process's index (the chief is 0).
    is_chief: whether this process writes checkpoints, logs and artifacts.
  """

  peer_errors = PEER_ERRORS

  def __init__(self, strategy, name: str = "default"):
    self.strategy = strategy
    self.name = name
    resolver = getattr(strategy, "cluster_resolver", None)
    jobs = resolver.cluster_spec().as_dict() if resolver is not None else {}
    has_chief = bool(jobs.get("chief"))
    self.num_workers = max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))
    if self.num_workers > 1:
      task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
      self.worker_index = 0 if task_type == "chief" else task_id + int(has_chief)
    else:
      self.worker_index = 0
    self.is_chief = self.worker_index == 0

  @property
  def distributed(self) -> bool:
    """Whether methods run through their per-replica steps (any non-default strategy)."""
    return self.name != "default"

  @property
  def multi_worker(self) -> bool:
    return self.num_workers > 1

  @property
  def num_replicas(self) -> int:
    return int(self.strategy.num_replicas_in_sync)

  @property
  def local_replicas(self) -> int:
    return len(self.strategy.extended.worker_devices)

  def describe(self) -> str:
    return (f"{self.name}: {self.num_replicas} replica(s) on {self.num_workers} worker(s); "
            f"this is worker {self.worker_index}{' (chief)' if self.is_chief else ''}")

  # -- build methods -------------------------------------------------------------------
  def build_method(self, name: str, build: Callable[..., Any], *args, **kwargs):
    """`build(*args, **kwargs)` inside the strategy's scope, with its per-replica steps.

    Raises:
      UnknownNameError: `name` has no distributed implementation (checked first).
    """
    adapter = DISTRIBUTED.get(name)
    with self.strategy.scope():
      method = build(*args, **kwargs)
    adapter(method, self)
    return method

  # -- agreement between workers ---------------------------------------------------------
  def _sum(self, array: np.ndarray) -> np.ndarray:
    """Element-wise sum over workers of a float array (one contribution per worker)."""
    array = np.asarray(array, np.float32)
    local = self.local_replicas

    def value(ctx):
      first = ctx.replica_id_in_sync_group % local == 0
      return tf.constant(array if first else np.zeros_like(array))

    per_replica = self.strategy.experimental_distribute_values_from_function(value)
    return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()

  def any(self, flag: bool) -> bool:
    """True on every worker if `flag` is true on any worker (a collective)."""
    if not self.multi_worker:
      return bool(flag)
    return bool(self._sum(np.array([1.0 if flag else 0.0]))[0] > 0)

  def all_gather_json(self, obj) -> list:
    """[obj of worker 0, obj of worker 1, ...] on every worker (JSON-serialisable obj)."""
    if not self.multi_worker:
      return [obj]
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    lengths = np.zeros(self.num_workers, np.float32)
    lengths[self.worker_index] = len(data)
    lengths = self._sum(lengths).astype(np.int64)
    table = np.zeros((self.num_workers, int(lengths.max())), np.float32)
    table[self.worker_index, :len(data)] = data
    table = self._sum(table)
    return [json.loads(table[w, :lengths[w]].astype(np.uint8).tobytes().decode())
            for w in range(self.num_workers)]

  def broadcast_json(self, obj):
    """The chief's `obj` on every worker."""
    return self.all_gather_json(obj if self.is_chief else None)[0]

  def check_same(self, value, what: str) -> None:
    """Raises DistributedError on every worker unless all workers hold equal `value`."""
    values = self.all_gather_json(value)
    if any(v != values[0] for v in values):
      raise DistributedError(
          f"workers disagree on {what}: {values}. Every worker must read the same "
          "checkpoint directory (a shared filesystem for a multi-host run) and be started "
          "with the same flags.")

  def share(self, items: Sequence) -> list:
    """This worker's share of `items`: item i goes to worker i mod num_workers."""
    return list(items)[self.worker_index::self.num_workers]

  def gather_by_index(self, results: Dict[int, Any]) -> Dict[int, Any]:
    """Merges every worker's {index: result} (JSON-serialisable results) on every worker."""
    if not self.multi_worker:
      return dict(results)
    merged: Dict[int, Any] = {}
    for part in self.all_gather_json(sorted(results.items())):
      merged.update({int(k): v for k, v in part})
    return merged


def make_cluster(name: str = "default", options: StrategyOptions = StrategyOptions()) -> Cluster:
  """The strategy `name` (see STRATEGIES) made with `options`, as a Cluster.

  Make it first thing in the process: logical devices and multi-worker collectives
  must be set up before TensorFlow runs any operation.
  """
  factory = STRATEGIES.get(name)
  return Cluster(factory(options), name.lower())


def class_groups(num_classes: int, num_replicas: int) -> List[List[int]]:
  """Contiguous, balanced class groups, one per replica (empty when replicas > classes)."""
  bounds = np.linspace(0, num_classes, num_replicas + 1).round().astype(int)
  return [list(range(bounds[r], bounds[r + 1])) for r in range(num_replicas)]


def batch_shards(batch: int, num_replicas: int) -> List[Tuple[int, int]]:
  """[lo, hi) row ranges of a batch, one per replica (balanced, contiguous)."""
  bounds = np.linspace(0, batch, num_replicas + 1).round().astype(int)
  return [(int(bounds[r]), int(bounds[r + 1])) for r in range(num_replicas)]


def replica_index() -> int:
  """This replica's global index as a Python int (inside `strategy.run`).

  MirroredStrategy and MultiWorkerMirroredStrategy trace the replica function once per
  local device with a constant replica id, so the per-replica work can differ in its
  Python structure (which classes it unrolls).
  """
  ctx = tf.distribute.get_replica_context()
  rid = tf.get_static_value(ctx.replica_id_in_sync_group)
  if rid is None:
    raise DistributedError("this strategy gives no static replica id; use mirrored or "
                           "multi_worker")
  return int(rid)
