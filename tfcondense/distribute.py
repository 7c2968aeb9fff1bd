"""Condensation and evaluation under a `tf.distribute.Strategy`.

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

How IDC (Kim et al., ICML 2022, Algorithm 1) is split, `ReplicatedIDC`:

* matching: the classes are cut into contiguous groups, one per replica. A class's
  matching gradient depends only on its own stored rows and on the network (fixed
  during matching); the single-process loop's one data-optimiser step per class
  reaches the other classes' rows only through the momentum buffer's decay. So each
  replica replays the whole sequence of per-class steps on a local copy of its own
  rows, with the same element-wise arithmetic, and the groups' rows are summed back
  together (disjoint rows: the sum is exact).
* network update: every replica draws the same real batch (stateless seeds), runs
  forward and backward on its share of the rows (loss scaled by share / batch), the
  gradients are all-reduced, and one SGD step is applied to every copy.

The result equals the single-process run up to float rounding (the batch gradient is
summed in another order). Models with batch statistics (BatchNorm) see per-replica
batches instead, as in any data-parallel run; ConvNet's instance norm does not.

Workers: the chief (the ``chief`` task, else worker 0) alone writes checkpoints,
config.json, TensorBoard logs and the artifact; every worker restores from
`<workdir>/checkpoints` (so a multi-host workdir must be on a filesystem all workers
read) and the restored states are compared across workers before the first step.
Stop decisions (the minutes budget) are agreed by an all-reduce, so no worker is left
waiting in a collective. A lost worker surfaces as `WorkerLostError` naming the last
checkpoint; starting every worker again resumes from it.

Evaluation: repetition r and comparison cell i run on worker r mod W (i mod W); the
results are gathered with a collective, so no shared filesystem is needed for them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

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


class ReplicatedIDC:
  """Installs per-replica class-group matching and a sharded network update on an IDC
  object built inside the strategy's scope (see the module docstring).

  Args:
    method: a `tfcondense.methods.idc.IDC` whose variables are mirrored.
    cluster: the Cluster.

  Raises:
    InvalidConfigError: a learnable formation (its weights are shared by all classes
      and updated after every class, so classes cannot be matched independently), or a
      network batch smaller than the number of replicas.
  """

  def __init__(self, method, cluster: Cluster):
    self.method = method
    self.strategy = cluster.strategy
    replicas = cluster.num_replicas
    if len(method.synthetic.trainable_variables) != 1:
      raise InvalidConfigError(
          "a learnable formation cannot be split over replicas (its weights are shared by "
          "every class and updated after each class); use a fixed formation or "
          "--strategy default")
    if method.config.net_batch < replicas:
      raise InvalidConfigError(f"net_batch {method.config.net_batch} is smaller than the "
                               f"{replicas} replicas sharing it")
    self.groups = class_groups(method.num_classes, replicas)
    self.shards = batch_shards(method.config.net_batch, replicas)
    self._present: Optional[List[int]] = None
    method.replace_steps(tf.function(self._match), tf.function(self._network_update))

  # -- matching --------------------------------------------------------------------------
  def _match(self, step):
    m = self.method
    images, buffer, total = self.strategy.run(self._replica_match, args=(m.match_seed(step),))
    first = self.strategy.experimental_local_results
    m.synthetic.images.assign(first(images)[0])
    m.data_buffers[0].assign(first(buffer)[0])
    return first(total)[0] / m.num_classes

  def _replica_match(self, seed):
    """This replica's classes: every class step of the single-process loop, replayed on
    a local copy of the group's rows; returns full-size (rows, buffer, loss sum) summed
    over replicas."""
    from tfcondense.methods import base  # pylint: disable=g-import-not-at-top
    m = self.method
    cfg = m.config
    syn = m.synthetic
    ipc = syn.ipc
    classes = self.groups[replica_index()]
    images = tf.convert_to_tensor(syn.images)
    buffer = tf.convert_to_tensor(m.data_buffers[0])
    total = tf.constant(0.0)
    if classes:
      first, n = classes[0], len(classes)
      lo, hi = first * ipc, (first + n) * ipc
      rows, buf = images[lo:hi], buffer[lo:hi]
      pad_image = [[0, 0]] * (len(images.shape) - 1)
      for k in range(m.num_classes):
        # The single-process step of class k: buf = momentum * buf + grad (zero outside
        # class k's rows); rows -= lr * buf.
        buf = cfg.momentum_img * buf
        if first <= k < first + n:
          j = k - first
          stored = rows[j * ipc:(j + 1) * ipc]
          loss, grads = m.class_match_loss(k, base.fold(seed, k), [stored], stored=stored)
          grad = tf.pad(tf.convert_to_tensor(grads[0]), [[j * ipc, (n - j - 1) * ipc]] + pad_image)
          buf = buf + grad
          total += loss
        rows = rows - m.image_lr * buf
      outside = [[lo, int(images.shape[0]) - hi]] + pad_image
      images, buffer = tf.pad(rows, outside), tf.pad(buf, outside)
    else:
      images, buffer = tf.zeros_like(images), tf.zeros_like(buffer)
    ctx = tf.distribute.get_replica_context()
    return tuple(ctx.all_reduce(tf.distribute.ReduceOp.SUM, [images, buffer, total]))

  # -- network update ----------------------------------------------------------------------
  def _network_update(self, step, count):
    from tfcondense.methods import base  # pylint: disable=g-import-not-at-top
    m = self.method
    seed = m.network_seed(step)
    for i in tf.range(count):
      reduced = self.strategy.run(self._replica_network_grads,
                                  args=(base.fold(seed, tf.cast(i, tf.int64)),))
      grads = [None] * len(m.network_variables)
      for index, g in zip(self._present, reduced):
        grads[index] = self.strategy.experimental_local_results(g)[0]
      m.apply_network_grads(grads)
    return tf.constant(0)

  def _replica_network_grads(self, seed):
    """Gradients of this replica's rows of the shared batch (mean loss x share),
    summed over replicas: the full batch's gradient."""
    from tfcondense.augment import mix  # pylint: disable=g-import-not-at-top
    m = self.method
    x, y_a, y_b, lam = m.network_batch(seed)
    lo, hi = self.shards[replica_index()]
    with tf.GradientTape() as tape:
      loss = mix.cutmix_loss(m.model(x[lo:hi], training=True), y_a[lo:hi], y_b[lo:hi], lam)
      loss = loss * ((hi - lo) / m.config.net_batch)
    grads = tape.gradient(loss, m.network_variables)
    self._present = [i for i, g in enumerate(grads) if g is not None]
    present = [tf.convert_to_tensor(grads[i]) for i in self._present]
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present)


DISTRIBUTED.register("idc")(ReplicatedIDC)
DISTRIBUTED.register("idc_i")(ReplicatedIDC)


# -- evaluation ----------------------------------------------------------------------------
def gather_by_index(cluster: Optional[Cluster], results: Dict[int, Any]) -> Dict[int, Any]:
  """Merges every worker's {index: result} (JSON-serialisable results) on every worker."""
  if cluster is None or not cluster.multi_worker:
    return dict(results)
  merged: Dict[int, Any] = {}
  for part in cluster.all_gather_json(sorted(results.items())):
    merged.update({int(k): v for k, v in part})
  return merged


def compare(cluster: Cluster, source, cells: Iterable, *, results_path: Optional[str] = None,
            header: Optional[Dict[str, Any]] = None, log=print, **kwargs) -> List[Dict[str, Any]]:
  """`tfcondense.experiment.compare` with the cells spread over the workers.

  Cells are handed out in rounds of `num_workers` (cell i to worker i mod W); after each
  round the rows are gathered on every worker and the chief writes `results_path`, so
  an interrupted comparison loses at most one round. Cells already in the chief's
  `results_path` are skipped. With one worker this is `experiment.compare` itself.

  Args:
    cluster: the Cluster.
    source, cells, **kwargs: as `experiment.compare` (model, protocol, repetitions,
      seed, artifacts_root, cache_dir, show_progress).
    results_path: JSON rows file (read and written by the chief only).
    header: extra header fields, as `experiment.compare`.
    log: where one line per finished cell goes.

  Returns:
    All rows (the chief's previous ones first), the same on every worker.
  """
  from tfcondense import evaluate as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top
  cells = list(cells)
  if not cluster.multi_worker:
    return experiment.compare(source, cells, results_path=results_path, header=header,
                              log=log, **kwargs)
  # Resolve the model and protocol as experiment.compare does, for the skip keys.
  protocol = kwargs.pop("protocol", "cpu")
  if isinstance(protocol, str):
    protocol = ev.get_protocol(protocol, augmentation=ev.default_augmentation(source.name))
  protocol = ev.get_protocol(protocol)
  model = kwargs.get("model") or ev.default_model(source.name)
  rows = cluster.broadcast_json(experiment.read_rows(results_path) if cluster.is_chief else [])
  done = {(r["key"], r["model"], r["protocol"], r.get("augmentation")) for r in rows}
  todo = []
  for cell in cells:
    if (cell.key, model, protocol.name, protocol.augmentation) in done:
      log(f"skip {cell.key}: already in {results_path}")
    else:
      todo.append(cell)
  head = dict(header or {}, source=source.name, protocol=protocol.describe(),
              repetitions=kwargs.get("repetitions", 3),
              workers=cluster.num_workers)
  width = cluster.num_workers
  for start in range(0, len(todo), width):
    mine = cluster.share(todo[start:start + width])
    new = experiment.compare(source, mine, protocol=protocol, results_path=None, log=log,
                             header=header, **kwargs) if mine else []
    for part in cluster.all_gather_json(new):
      rows.extend(part)
    if cluster.is_chief and results_path:
      experiment.write_rows(results_path, rows, head)
  return rows
