"""`SyntheticSet`: the learnable stored images, their labels and their formation.

IDC (Kim et al., ICML 2022) separates what is *stored* (ipc full-size images per
class, the storage budget) from what a network *trains on* (the formed images a
formation function decodes from them). One object owns both, as the IDC reference's
`Synthesizer` does: the stored images are a `tf.Variable` (NHWC, unnormalised, [0, 1],
class-major), `formed()` decodes them, and initialisers fill them from real data.

Initialisers (registry `INITS`):

* ``mix``: each stored image is a grid of real images of its class, each downsampled
  to one tile by nearest neighbour as the reference (IDC's default for factor > 1: at
  initialisation every formed image is then a coarse real image);
* ``random``: ipc random real images per class (seeded; the reference takes the
  first ipc, which is the same in distribution);
* ``noise``: uniform noise in [0, 1];
* ``kcenter`` / ``herding`` / any selection method: the images that method selects
  (ipc * tiles per class, tiled as in ``mix`` when the formation has tiles).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from tfcondense import formation as formation_lib
from tfcondense import seeds
from tfcondense.errors import CorruptArtifactError, InvalidConfigError
from tfcondense.registry import Registry

INITS = Registry("initialisation",
                 hint="Known: mix, random, noise, and the initialisers that method modules "
                      "register (kcenter, herding: tfcondense.methods.selection; kmeans: "
                      "tfcondense.methods.representative), present once tfcondense.methods "
                      "is imported.")


def tile_grid(formation) -> Tuple[int, int]:
  """(rows, cols) of tiles a stored image holds under `formation` (for `mix`)."""
  f = int(getattr(formation, "factor", 1))
  if formation.name == "identity" or f == 1:
    return 1, 1
  if formation.name == "time":
    return (f, 1) if int(getattr(formation, "axis", 1)) == 1 else (1, f)
  return f, f


#: How `mix` downsamples a real image to a tile: "nearest" (the IDC reference's
#: PyTorch `F.interpolate` default; the default since 2026-12) or "antialias"
#: (antialiased bilinear, ours before). Measured by `benchmarks/eval_protocol.py`
#: (part init): IDC's Fashion-MNIST IPC 10 initial set (factor 2, 0 iterations) trains
#: ConvNet-3 to about 80 % with nearest tiles and about 73 % with antialiased ones
#: (cpu recipe, 3 repetitions; BENCHMARKS.md): the smoothed tiles lose the detail.
MIX_RESIZES = ("nearest", "antialias")
MIX_RESIZE = "nearest"


def downsample(images: np.ndarray, size: Tuple[int, int], method: str) -> np.ndarray:
  """Resizes float [N, H, W, C] images to `size` by one of `MIX_RESIZES`.

  "nearest" picks source pixel floor(i * H / h) for output row i (and likewise for
  columns), as PyTorch's nearest mode does; TensorFlow's nearest uses half-pixel
  centres and picks other pixels, so it is written out here.
  """
  if method == "nearest":
    h, w = images.shape[1:3]
    rows = np.floor(np.arange(size[0]) * (h / size[0])).astype(np.int64)
    cols = np.floor(np.arange(size[1]) * (w / size[1])).astype(np.int64)
    return np.asarray(images)[:, rows][:, :, cols]
  if method == "antialias":
    return tf.image.resize(images, size, method="bilinear", antialias=True).numpy()
  raise InvalidConfigError(f"unknown mix resize {method!r}; known: {', '.join(MIX_RESIZES)}")


def mix_tiles(images: np.ndarray, grid: Tuple[int, int], out_shape,
              resize: str = MIX_RESIZE) -> np.ndarray:
  """Packs real images into stored images, each downsampled to one tile.

  Args:
    images: float32 [n * rows * cols, H, W, C] real images (consecutive groups of
      rows * cols make one stored image, row-major).
    grid: (rows, cols).
    out_shape: (H, W, C) of a stored image.
    resize: how a real image becomes a tile (`downsample`'s methods).

  Returns:
    float32 [n, H, W, C]: the padded canvas (H and W rounded up to multiples of the
    grid, filled with 0.5 as the formation pads) cropped back to (H, W).
  """
  rows, cols = grid
  h, w, c = out_shape
  th, tw = -(-h // rows), -(-w // cols)
  k = rows * cols
  n = len(images) // k
  small = downsample(images, (th, tw), resize)
  small = small.reshape(n, rows, cols, th, tw, c).transpose(0, 1, 3, 2, 4, 5)
  canvas = small.reshape(n, rows * th, cols * tw, c)
  return np.clip(canvas[:, :h, :w, :], 0.0, 1.0).astype(np.float32)


@INITS.register("random")
def _init_random(source, ipc, formation, seed, **unused):
  rows, cols = tile_grid(formation)
  k = rows * cols
  if k > 1:
    logging.warning(
        "init `random` stores whole real images, so each of the %d images formed from one "
        "is a 1/%d crop of it; `mix` (IDC's init) packs %d real images into each instead",
        k, k, k)
  rng = np.random.default_rng(seed)
  return np.concatenate([source.sample_class(c, ipc, rng) for c in range(source.num_classes)])


@INITS.register("mix")
def _init_mix(source, ipc, formation, seed, resize: str = MIX_RESIZE, **unused):
  grid = tile_grid(formation)
  k = grid[0] * grid[1]
  rng = np.random.default_rng(seed)
  out = [mix_tiles(source.sample_class(c, ipc * k, rng), grid, source.image_shape, resize)
         for c in range(source.num_classes)]
  return np.concatenate(out)


@INITS.register("noise")
def _init_noise(source, ipc, formation, seed, **unused):
  shape = (source.num_classes * ipc,) + source.image_shape
  return tf.random.stateless_uniform(shape, [seed, seeds.salt("synthetic.noise_init")]).numpy()




class SyntheticSet:
  """Stored synthetic images (a `tf.Variable`), labels and a formation function.

  Args:
    images: float32 [num_classes * ipc, H, W, C] initial stored images in [0, 1],
      class-major (ipc consecutive images per class).
    num_classes: number of classes.
    formation: a `tfcondense.formation.Formation` (identity for IDC-I / DC / DM).

  Attributes:
    images: the stored images, a trainable float32 `tf.Variable`.
    labels: int32 [N] constant labels (class-major).
  """

  def __init__(self, images: np.ndarray, num_classes: int, formation=None):
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) % num_classes:
      raise InvalidConfigError(
          f"stored images {images.shape} are not NHWC with an equal count per class "
          f"for {num_classes} classes")
    self.num_classes = int(num_classes)
    self.ipc = len(images) // self.num_classes
    self.formation = formation or formation_lib.make_formation("identity")
    self.formation.build(int(images.shape[-1]))  # learnable weights exist before optimisers
    self.images = tf.Variable(images, trainable=True, name="synthetic_images")
    self.labels = tf.constant(np.repeat(np.arange(self.num_classes), self.ipc), tf.int32)

  @classmethod
  def initialize(cls, source, ipc: int, formation=None, init: str = "random",
                 seed: int = 0, **options) -> "SyntheticSet":
    """Builds a set of `ipc` stored images per class of `source`, filled by `init`.

    Args:
      source: a SourceData.
      ipc: stored images per class.
      formation: the Formation (default identity).
      init: a name in `INITS` (mix, random, noise, kcenter, herding).
      seed: seed of the initialisation.
      **options: passed to the initialiser (e.g. `cache_dir` for kcenter).

    Raises:
      InvalidConfigError: IPC larger than a class (for real-data initialisers).
    """
    formation = formation or formation_lib.make_formation("identity")
    fn = INITS.get(init)
    if init != "noise":
      source.check_ipc(ipc)
    images = fn(source, int(ipc), formation, int(seed), **options)
    return cls(images, source.num_classes, formation)

  @property
  def image_shape(self) -> Tuple[int, int, int]:
    return tuple(int(d) for d in self.images.shape[1:])

  @property
  def trainable_variables(self):
    """The stored images and any learnable formation weights."""
    return [self.images] + list(self.formation.variables)

  def class_rows(self, c) -> tf.Tensor:
    """Row indices of class `c`'s stored images (int32 [ipc])."""
    return tf.range(self.ipc) + tf.cast(c, tf.int32) * self.ipc

  def stored_class(self, c) -> tf.Tensor:
    """Class `c`'s stored images [ipc, H, W, C] (differentiable w.r.t. `images`)."""
    return tf.gather(self.images, self.class_rows(c))

  def formed_class(self, c, dtype=tf.float32) -> tf.Tensor:
    """Class `c`'s formed images [ipc * k, H, W, C]."""
    x = tf.cast(self.stored_class(c), dtype)
    formed, _ = self.formation(x, tf.gather(self.labels, self.class_rows(c)))
    return formed

  def formed(self) -> Tuple[tf.Tensor, tf.Tensor]:
    """All formed images and their labels."""
    return self.formation(self.images, self.labels)

  def clamp(self) -> None:
    """Clips the stored images to [0, 1] (IDC does this at each outer iteration)."""
    self.images.assign(tf.clip_by_value(self.images, 0.0, 1.0))

  def storage(self) -> Dict[str, Any]:
    return self.formation.storage(int(self.images.shape[0]), self.image_shape,
                                  num_classes=self.num_classes)

  def numpy(self) -> Tuple[np.ndarray, np.ndarray]:
    """(stored images clipped to [0, 1], labels) as numpy."""
    return (np.clip(self.images.numpy(), 0.0, 1.0).astype(np.float32),
            self.labels.numpy().astype(np.int32))

  def formed_numpy(self) -> Tuple[np.ndarray, np.ndarray]:
    images, labels = self.numpy()
    return self.formation.form_numpy(images, labels)


_ARTIFACT_WEIGHTS: Any = object()  # formed_from_artifact's default: the artifact's own


def formed_from_artifact(art, weights: Optional[Dict[str, np.ndarray]] = _ARTIFACT_WEIGHTS):
  """(formed images, labels) of an Artifact, decoded with the formation in its meta.

  Args:
    art: the Artifact.
    weights: the learnable formation's weights (`Formation.get_weights()`); by default
      the artifact's own (its formation.npz).

  Raises:
    CorruptArtifactError: the formation is learnable and there are no weights for it
      (decoding with freshly initialised weights would give other images silently).
  """
  if weights is _ARTIFACT_WEIGHTS:
    weights = getattr(art, "weights", None)
  form = formation_lib.from_meta(art.meta, weights)
  if not weights and form.num_parameters(art.images.shape[1:]) > 0:
    raise CorruptArtifactError(
        f"the artifact's formation ({form.describe()['name']}) is learnable, "
        "but it carries no formation weights (formation.npz); they were lost or not "
        "saved, and fresh weights would decode other images")
  return form.form_numpy(art.images, art.labels)
