"""IDC's per-replica steps under a `tf.distribute` strategy (`tfcondense.cluster`).

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
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow as tf

from tfcondense import cluster as cluster_lib
from tfcondense.augment import mix
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base


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

  def __init__(self, method, cluster: cluster_lib.Cluster):
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
    self.groups = cluster_lib.class_groups(method.num_classes, replicas)
    self.shards = cluster_lib.batch_shards(method.config.net_batch, replicas)
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
    m = self.method
    cfg = m.config
    syn = m.synthetic
    ipc = syn.ipc
    classes = self.groups[cluster_lib.replica_index()]
    images = tf.convert_to_tensor(syn.images)
    buffer = tf.convert_to_tensor(m.data_buffers[0])
    total = tf.constant(0.0)
    if classes:
      first, n = classes[0], len(classes)
      lo, hi = first * ipc, (first + n) * ipc
      rows, buf = images[lo:hi], buffer[lo:hi]
      pad_image = [[0, 0]] * (len(images.shape) - 1)
      for k in range(m.num_classes):
        # The single-process step of class k (`training.sgd_step(..., missing="zero")`),
        # replayed on this replica's rows as tensors, not variables:
        # buf = momentum * buf + grad (zero outside class k's rows); rows -= lr * buf.
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
    m = self.method
    x, y_a, y_b, lam = m.network_batch(seed)
    lo, hi = self.shards[cluster_lib.replica_index()]
    with tf.GradientTape() as tape:
      loss = mix.cutmix_loss(m.model(x[lo:hi], training=True), y_a[lo:hi], y_b[lo:hi], lam)
      loss = loss * ((hi - lo) / m.config.net_batch)
    grads = tape.gradient(loss, m.network_variables)
    self._present = [i for i, g in enumerate(grads) if g is not None]
    present = [tf.convert_to_tensor(grads[i]) for i in self._present]
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, present)


cluster_lib.DISTRIBUTED.register("idc")(ReplicatedIDC)
cluster_lib.DISTRIBUTED.register("idc_i")(ReplicatedIDC)
