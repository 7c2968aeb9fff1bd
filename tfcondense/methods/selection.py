"""Selection baselines: Random, Herding and K-Center (as DC-BENCH defines them).

K-Center follows DC-BENCH (Cui et al., 2022, Sec. 3): a ConvNet trained for one epoch
on the whole training set embeds every image; per class, scikit-learn's KMeans with
`ipc` centres (at most 300 iterations) clusters the embeddings and the real image
nearest each centre is kept. Herding (Welling, ICML 2009; used as a baseline by
Rebuffi et al. 2017 and the IDC paper) greedily picks the images whose running mean
embedding best matches the class mean, in the same embedding.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, Optional

import numpy as np

from tfcondense import atomic
from tfcondense import fileio
from tfcondense import synthetic as synthetic_lib
from tfcondense.methods.base import SELECTION

# Embeddings kept in memory, newest last; Fashion-MNIST's is about 490 MB, so the
# cache keeps at most _EMBED_CACHE_SIZE of them (the disk cache, `cache_dir`, keeps all).
_EMBED_CACHE: Dict[str, np.ndarray] = {}
_EMBED_CACHE_SIZE = 2


def _gather(source, per_class_indices):
  idx = np.concatenate(per_class_indices)
  return source.train_images[idx], source.train_labels[idx].astype(np.int32), idx


@SELECTION.register("random")
def random_selection(source, ipc, seed, cache_dir=None, show_progress=True):
  """`ipc` distinct real images per class drawn uniformly (numpy Generator(seed))."""
  del cache_dir, show_progress  # the common options of selection methods; unused here
  rng = np.random.default_rng(seed)
  picks = [np.sort(rng.choice(source.class_indices(c), ipc, replace=False))
           for c in range(source.num_classes)]
  images, labels, idx = _gather(source, picks)
  return images, labels, {"indices": idx.tolist()}


def embeddings(source, seed: int = 0, model: str = "convnet3", epochs: int = 1,
               cache_dir: Optional[str] = None, show_progress: bool = True) -> np.ndarray:
  """Penultimate-layer features of every training image.

  A `model` is trained for `epochs` epochs on the whole training set (batch 256,
  SGD lr 0.01, no augmentation), as DC-BENCH's K-Center does; features are the
  input of its classifier. Results are cached in memory (the last two) and, with
  `cache_dir`, on disk.

  Returns:
    float32 [N, D] features aligned with `source.train_images`.
  """
  # The key covers the images too: two class subsets of equal sizes must not share it.
  h = hashlib.sha1(np.ascontiguousarray(source.train_labels).tobytes())
  h.update(np.ascontiguousarray(source.train_images).tobytes())
  digest = h.hexdigest()[:10]
  key = f"{source.name}-{len(source.train_labels)}-{digest}-{model}-e{epochs}-s{seed}"
  path = os.path.join(cache_dir, f"embed-{key}.npy") if cache_dir else None
  feats = _EMBED_CACHE.get(key)
  if feats is None and path and fileio.exists(path):
    feats = fileio.load_npy(path)
  if feats is None:
    feats = _train_and_embed(source, seed, model, epochs, show_progress)
  _EMBED_CACHE.pop(key, None)
  _EMBED_CACHE[key] = feats  # newest last: dicts keep insertion order
  while len(_EMBED_CACHE) > _EMBED_CACHE_SIZE:
    del _EMBED_CACHE[next(iter(_EMBED_CACHE))]
  if path and not fileio.exists(path):
    atomic.write_bytes(path, fileio.npy_bytes(feats))
  return feats


def _train_and_embed(source, seed, model, epochs, show_progress):
  """Trains `model` for `epochs` epochs on all of `source` and embeds every image."""
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import training  # pylint: disable=g-import-not-at-top
  from tfcondense.models import build_model, embedding_model  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  protocol = ev.Protocol(name="embed", epochs=epochs, batch_size=256, milestones=(),
                         augmentation="none", cutmix_prob=0.0, num_evals=1)
  net = build_model(model, source.image_shape, source.num_classes, seed=seed)
  trainer = training.Trainer(net, source.train_images, source.train_labels, source.mean,
                             source.std, protocol, flip=False)
  trainer.reset(seed)
  with progress_lib.progress(trainer.total_steps, "embedding net", enabled=show_progress,
                             unit="step") as bar:
    trainer.run(bar)
  features = embedding_model(net)
  embed = tf.function(lambda x: features(x, training=False))
  feats = np.concatenate([
      embed(tf.constant(source.normalize(source.train_images[i:i + 1000]))).numpy()
      for i in range(0, len(source.train_images), 1000)]).astype(np.float32)
  return feats


def herding_order(features: np.ndarray, k: int) -> np.ndarray:
  """Indices of `k` rows chosen greedily so their running mean tracks the mean.

  At step t the row i minimising ||mu - (sum_selected + f_i) / t|| is added
  (without replacement).
  """
  mu = features.mean(0)
  chosen, total = [], np.zeros_like(mu)
  available = np.ones(len(features), bool)
  for t in range(1, k + 1):
    dist = np.linalg.norm(mu[None] - (total[None] + features) / t, axis=1)
    dist[~available] = np.inf
    i = int(np.argmin(dist))
    chosen.append(i)
    available[i] = False
    total += features[i]
  return np.array(chosen)


def _select_in_embedding(source, ipc, seed, pick, cache_dir, show_progress):
  """Per class, keeps the rows `pick(class_features, ipc)` of the shared embedding."""
  feats = embeddings(source, seed, cache_dir=cache_dir, show_progress=show_progress)
  picks = [idx[pick(feats[idx], ipc)]
           for idx in map(source.class_indices, range(source.num_classes))]
  images, labels, idx = _gather(source, picks)
  return images, labels, {"indices": idx.tolist(), "embedding": "convnet3, 1 epoch"}


@SELECTION.register("herding")
def herding_selection(source, ipc, seed, cache_dir=None, show_progress=True):
  """Herding in the embedding of a ConvNet trained one epoch (see `embeddings`)."""
  return _select_in_embedding(source, ipc, seed, herding_order, cache_dir, show_progress)


def kcenter_indices(features: np.ndarray, k: int, seed: int, max_iter: int = 300) -> np.ndarray:
  """Rows nearest each of `k` KMeans centres (distinct rows)."""
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  km = KMeans(n_clusters=k, max_iter=max_iter, n_init=1, random_state=seed).fit(features)
  d = _sqdist(features, km.cluster_centers_)
  chosen = []
  for j in range(k):
    order = np.argsort(d[:, j])
    chosen.append(next(int(i) for i in order if int(i) not in chosen))
  return np.array(chosen)


def _sqdist(a, b, chunk=4096):
  """Squared Euclidean distances [len(a), len(b)], computed in row chunks."""
  out = np.empty((len(a), len(b)), np.float32)
  bb = (b ** 2).sum(1)
  for i in range(0, len(a), chunk):
    x = a[i:i + chunk]
    out[i:i + chunk] = (x ** 2).sum(1)[:, None] - 2 * x @ b.T + bb[None]
  return out


@SELECTION.register("kcenter")
def kcenter_selection(source, ipc, seed, cache_dir=None, show_progress=True):
  """DC-BENCH K-Center: per-class KMeans on 1-epoch ConvNet embeddings."""
  images, labels, meta = _select_in_embedding(
      source, ipc, seed, lambda f, k: kcenter_indices(f, k, seed), cache_dir, show_progress)
  return images, labels, dict(meta, kmeans_max_iter=300)


def _init_from_selection(method: str):
  """An initialiser of synthetic sets (`tfcondense.synthetic.INITS`) from a selection:
  the `ipc x tiles` selected images of each class, packed `tiles` to a stored image as
  IDC's `mix` init packs random ones (Kim et al., ICML 2022, Sec. 3.2)."""

  def init(source, ipc, formation, seed, cache_dir=None, show_progress=False, **unused):
    del unused
    grid = synthetic_lib.tile_grid(formation)
    k = grid[0] * grid[1]
    per_class = min(ipc * k, int(source.class_counts().min()))
    images, labels, _ = SELECTION.get(method)(source, per_class, seed, cache_dir=cache_dir,
                                           show_progress=show_progress)
    out = []
    for c in range(source.num_classes):
      chosen = images[labels == c]
      if len(chosen) < ipc * k:  # a class too small for all tiles: repeat its images
        chosen = chosen[np.arange(ipc * k) % len(chosen)]
      out.append(synthetic_lib.mix_tiles(chosen, grid, source.image_shape) if k > 1
                 else chosen)
    return np.concatenate(out)

  init.__name__ = f"init_{method}"
  return init


# Selection's own initialisers of synthetic sets (IDC-I's `--init kcenter`, ...).
for _name in ("kcenter", "herding"):
  synthetic_lib.INITS.register(_name)(_init_from_selection(_name))
