"""Listing and decoding image files for the folder-backed sources (TensorFlow decoding)."""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import numpy as np

from tfcondense.errors import InvalidConfigError, SourceUnavailableError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BATCH = 64


def list_images(folder: str, layout: str) -> list[str]:
  """Sorted image files directly inside `folder`.

  Args:
    folder: a class folder.
    layout: a description of the expected layout, for error messages.

  Raises:
    SourceUnavailableError: the folder is missing or holds no image file.
  """
  if not os.path.isdir(folder):
    raise SourceUnavailableError(f"missing class folder {folder}; expected layout: {layout}")
  files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(IMAGE_EXTENSIONS))
  if not files:
    raise SourceUnavailableError(
        f"class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)}); "
        f"expected layout: {layout}")
  return files


def read_lines(path: str) -> list[str]:
  """Non-empty, stripped lines of a text file."""
  with open(path, encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip()]


def read_words(path: str) -> dict[str, str]:
  """wnid -> first synonym, from an ImageNet `words.txt` ("wnid<TAB>name, name...")."""
  names = {}
  if not os.path.isfile(path):
    return names
  with open(path, encoding="utf-8") as f:
    for line in f:
      wnid, _, words = line.rstrip("\n").partition("\t")
      if words:
        names[wnid.strip()] = words.split(",")[0].strip()
  return names


def check_size(size) -> int:
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise InvalidConfigError(f"size must be a positive integer, got {size!r}")
  return int(size)


def resize_to(size: int) -> Callable:
  """Transform: bilinear (antialiased) resize to size x size unless already that size."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def transform(img):
    same = tf.reduce_all(tf.shape(img)[:2] == size)
    img = tf.cond(same, lambda: img,
                  lambda: tf.image.resize(img, (size, size), antialias=True))
    return tf.ensure_shape(img, (size, size, 3))

  return transform


def resize_center_crop(size: int, resize: Optional[int] = None) -> Callable:
  """Transform as torchvision Resize(resize) + CenterCrop(size), the IDC reference.

  The shorter side is resized to `resize` (default round(size * 256 / 224), i.e. 256
  for 224) with the longer side int(resize * long / short), then the centre size x size
  crop is taken (top = round((h - size) / 2), half to even as in torchvision).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if resize is None:
    resize = int(round(size * 256 / 224))
  if resize < size:
    raise InvalidConfigError(f"resize {resize} is smaller than the crop {size}")

  def transform(img):
    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    hf, wf = tf.cast(h, tf.float64), tf.cast(w, tf.float64)
    r = tf.constant(resize, tf.int32)
    long_h = tf.cast(resize * hf / wf, tf.int32)
    long_w = tf.cast(resize * wf / hf, tf.int32)
    new_h = tf.where(w <= h, long_h, r)
    new_w = tf.where(w <= h, r, long_w)
    img = tf.image.resize(img, tf.stack([new_h, new_w]), antialias=True)
    top = tf.cast(tf.round(tf.cast(new_h - size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_w - size, tf.float64) / 2.0), tf.int32)
    img = img[top:top + size, left:left + size]
    return tf.ensure_shape(img, (size, size, 3))

  return transform


def load_images(paths: Sequence[str], transform: Callable, size: int) -> np.ndarray:
  """Decodes `paths` (RGB; grayscale is expanded) and applies `transform`.

  Args:
    paths: image files.
    transform: float32 [h, w, 3] in [0, 255] -> [size, size, 3], in TF ops.
    size: the side of the transformed images.

  Returns:
    float32 [len(paths), size, size, 3] in [0, 1], filled batch by batch so the peak
    memory is the result plus one batch.

  Raises:
    SourceUnavailableError: a file cannot be decoded; the message names it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def load(path):
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    img = transform(tf.cast(img, tf.float32))
    return tf.clip_by_value(img / 255.0, 0.0, 1.0)

  out = np.empty((len(paths), size, size, 3), np.float32)
  if not len(paths):
    return out
  ds = tf.data.Dataset.from_tensor_slices(list(paths))
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH)
  i = 0
  try:
    for batch in ds.as_numpy_iterator():
      out[i:i + len(batch)] = batch
      i += len(batch)
  except tf.errors.OpError as e:
    raise SourceUnavailableError(
        f"cannot decode image {_first_bad(paths[i:i + BATCH], load)}: {e.message}") from e
  return out


def _first_bad(paths: Sequence[str], load: Callable) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for p in paths:
    try:
      load(tf.constant(p))
    except tf.errors.OpError:
      return p
  return f"among {paths[0]} .. {paths[-1]}"
