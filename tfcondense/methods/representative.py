"""Representative matching (Liu et al., ICCV 2023, "DREAM: Efficient Dataset
Distillation by Representative Matching").

Gradient matching against a random real batch of a class spends its steps on
whatever the draw happens to cover. DREAM instead clusters the class in the feature
space of the current matching network and matches against the real image nearest
each cluster centre, which covers the class evenly:

* `RepresentativeBatches.refresh` (every `every` inner iterations, theirs 10): for each
  class, a candidate subset of its real images (`candidates` drawn without
  replacement; the whole class if smaller) is embedded with the network's
  penultimate features (the layer named "embedding"), clustered by scikit-learn's
  k-means into as many clusters as the real batch has images, and the distinct
  candidates nearest the centres become the class's real batch (`batch`) until the
  next refresh. The candidate subset bounds the cost: embedding all 6,000 images of
  a Fashion-MNIST class every 10 iterations would about double an inner iteration on
  two CPU cores (REFERENCE.md section 5). Measured (`benchmarks/fast_idc.py --parts
  overhead`, `clustering_overhead` in benchmarks/results/fast_idc.json; Fashion-MNIST
  IPC 10, factor 2, 64 representatives, 2-core AMD EPYC): one refresh of 256
  candidates per class takes 1.9 s against 8.3 s for one inner iteration, 2.3 % at
  one refresh every 10 iterations (128: 1.3 %, 512: 4.4 %).
* `init="kmeans"` (registered in `tfcondense.synthetic.INITS` on import): the stored
  images start from the k-means medoids of each class (packed into tiles as `mix`
  does for a formation with tiles), in the features of a freshly initialised network.

Written from the paper's description; no code of the authors' repository is used.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfcondense import seeds
from tfcondense import synthetic as synthetic_lib
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base
from tfcondense.methods.selection import kcenter_indices

# Salts (tfcondense/seeds.py): the root [seed, SALT_CANDIDATES] of which real images of
# a class are candidates; k-means' random_state (fresh_seed(seed, SALT_KMEANS, .)).
SALT_CANDIDATES = seeds.salt("representative.candidates")
SALT_KMEANS = seeds.salt("representative.kmeans")


def medoids(features: np.ndarray, k: int, seed: int, max_iter: int = 100) -> np.ndarray:
  """Rows of `features` ([n, D]) nearest each of `k` k-means centres, distinct
  (`k` >= n returns every row)."""
  features = np.asarray(features, np.float32).reshape(len(features), -1)
  if k >= len(features):
    return np.arange(len(features))
  return kcenter_indices(features, k, seed, max_iter=max_iter)


class RepresentativeBatches:
  """Per-class real batches of k-means representatives, refreshed on demand.

  Args:
    real: the `base.RealData` of the source.
    embed: features of normalised images, `[n, H, W, C] -> [n, D]` (the penultimate
      layer of the matching network, e.g. `models.embedding_model(model)`); called on
      one batch of every class's candidates at once.
    per_class: images in a class's real batch (IDC's `real_per_class`).
    candidates: real images per class embedded and clustered per refresh.
    seed: the run's seed; refresh number `step` folds it in.
    max_iter: k-means iterations (n_init 1).
    threads: OpenMP / BLAS threads of the clustering (threadpoolctl). One by default:
      beside TensorFlow's thread pools on the 2-core machine, scikit-learn's default
      (all cores, spinning) made a refresh of 256 candidates per class take 40 s
      instead of 1.9 s (`benchmarks/fast_idc.py --parts overhead`).

  Attributes:
    indices: int64 [num_classes, per_class] variable of rows of `real.images`; a
      class with fewer than `per_class` candidates repeats its representatives.
  """

  def __init__(self, real, embed: Callable, per_class: int, candidates: int, seed: int,
               max_iter: int = 100, threads: Optional[int] = 1):
    if candidates < 1 or per_class < 1:
      raise InvalidConfigError(
          f"representative matching needs candidates and per_class >= 1, got {candidates}, "
          f"{per_class}")
    self.real = real
    self.per_class = int(per_class)
    self.candidates = int(candidates)
    self.max_iter = int(max_iter)
    self.threads = threads
    self._seed = tf.constant([int(seed), SALT_CANDIDATES], tf.int64)
    self._kmeans_seed = int(seed)
    self.indices = tf.Variable(tf.zeros([real.num_classes, self.per_class], tf.int64),
                               trainable=False, name="representative_indices")
    self._embed = tf.function(lambda x: tf.cast(embed(x), tf.float32))

  def candidate_indices(self, c: int, seed) -> tf.Tensor:
    """Up to `candidates` distinct rows of class `c`, drawn statelessly."""
    row = self.real.class_table[c]
    keys = tf.where(row >= 0, tf.random.stateless_uniform(tf.shape(row), seed), -1.0)
    k = tf.minimum(self.candidates, tf.reduce_sum(tf.cast(row >= 0, tf.int32)))
    return tf.gather(row, tf.math.top_k(keys, k=k, sorted=False).indices)

  def refresh(self, step: int) -> None:
    """Re-clusters every class in the current network's features (refresh `step`)."""
    seed = base.fold(self._seed, step)
    cands = [self.candidate_indices(c, base.fold(seed, c))
             for c in range(self.real.num_classes)]
    x = self.real.normalize(tf.gather(self.real.images, tf.concat(cands, 0)))
    feats = self._embed(x).numpy()
    from threadpoolctl import threadpool_limits  # pylint: disable=g-import-not-at-top
    out = np.zeros([self.real.num_classes, self.per_class], np.int64)
    start = 0
    with threadpool_limits(self.threads):
      for c, cand in enumerate(cands):
        cand = cand.numpy()
        f = feats[start:start + len(cand)]
        start += len(cand)
        state = base.fresh_seed(self._kmeans_seed, SALT_KMEANS, step * 1000 + c)
        pick = medoids(f, self.per_class, state, self.max_iter)
        out[c] = np.resize(cand[pick], self.per_class)
    self.indices.assign(out)

  def batch(self, c) -> tf.Tensor:
    """Class `c`'s representatives [per_class, H, W, C] (unnormalised)."""
    return tf.gather(self.real.images, self.indices[c])


def _init_kmeans(source, ipc, formation, seed, model: str = "convnet3",
                 model_options=(), candidates: Optional[int] = 2000, max_iter: int = 100,
                 **unused):
  """The stored images from per-class k-means medoids (`init="kmeans"`).

  Features are the penultimate layer of `model` freshly initialised from `seed`;
  each class clusters at most `candidates` of its images (None: all) into
  ipc x tiles clusters.
  """
  from tfcondense.models import build_model, embedding_model  # pylint: disable=g-import-not-at-top
  rows, cols = synthetic_lib.tile_grid(formation)
  k = ipc * rows * cols
  net = build_model(model, source.image_shape, source.num_classes, seed=seed,
                    **dict(model_options))
  embed = embedding_model(net)
  rng = np.random.default_rng(seed)
  out = []
  for c in range(source.num_classes):
    idx = source.class_indices(c)
    if candidates is not None and len(idx) > candidates:
      idx = np.sort(rng.choice(idx, candidates, replace=False))
    x = source.train_images[idx]
    feats = np.concatenate([
        embed(source.normalize(x[i:i + 500]), training=False).numpy()
        for i in range(0, len(x), 500)]).astype(np.float32)
    pick = medoids(feats, k, seed + c, max_iter)
    chosen = x[np.resize(pick, k)]
    out.append(synthetic_lib.mix_tiles(chosen, (rows, cols), source.image_shape)
               if rows * cols > 1 else chosen)
  return np.concatenate(out).astype(np.float32)


synthetic_lib.INITS.register("kmeans")(_init_kmeans)
