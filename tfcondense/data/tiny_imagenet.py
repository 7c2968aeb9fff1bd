"""Tiny ImageNet (tiny-imagenet-200) from its standard folder layout."""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from tfcondense.data import folders
from tfcondense.data.common import check_limit, first_per_class, resolve_dir
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import SourceUnavailableError

ENV_VAR = "TFCONDENSE_TINY_IMAGENET_DIR"
LAYOUT = ("root/wnids.txt (one wnid per line), root/words.txt (optional, "
          "'wnid<TAB>names'), root/train/<wnid>/images/*.JPEG, root/val/images/*.JPEG and "
          "root/val/val_annotations.txt ('file<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h'), as in "
          "the unzipped tiny-imagenet-200.zip")


register_info(SourceInfo("tiny_imagenet", "Tiny ImageNet", (64, 64, 3), 200,
                         folders.IMAGENET_MEAN, folders.IMAGENET_STD))


@SOURCES.register("tiny_imagenet")
def tiny_imagenet(*, root: Optional[str] = None, size: int = 64,
                  limit_per_class: Optional[int] = None) -> SourceData:
  """Tiny ImageNet: 500 train images per class, the 50-per-class val split as test.

  Classes are the wnids listed in wnids.txt, in sorted order (as torchvision's
  ImageFolder orders them); names come from words.txt when present (first synonym),
  else the wnid. The full set (100000 train + 10000 val at 64x64x3 float32) needs about
  5.4 GB of memory.

  Args:
    root: the tiny-imagenet-200 directory; defaults to $TFCONDENSE_TINY_IMAGENET_DIR.
    size: output side; images of another size are resized (bilinear, antialiased).
    limit_per_class: keep only the first N train images (in file-name order) per class.

  Returns:
    The SourceData, normalised with the ImageNet mean/std.

  Raises:
    SourceUnavailableError: a file or folder of the layout is missing, a class folder
      holds no image, or an annotation names an unknown wnid or a missing file.
  """
  check_limit(limit_per_class)
  size = folders.check_size(size)
  root = resolve_dir(root, ENV_VAR)
  if root is None:
    raise SourceUnavailableError(
        f"tiny_imagenet needs root=... (or ${ENV_VAR}) pointing at the tiny-imagenet-200 "
        f"directory; expected layout: {LAYOUT}.")
  wnids_path = os.path.join(root, "wnids.txt")
  if not os.path.isfile(wnids_path):
    raise SourceUnavailableError(f"{wnids_path} not found; expected layout: {LAYOUT}.")
  wnids = sorted(set(folders.read_lines(wnids_path)))
  if not wnids:
    raise SourceUnavailableError(f"{wnids_path} lists no class.")
  index = {w: i for i, w in enumerate(wnids)}

  train_paths, train_labels = [], []
  for wnid in wnids:
    files = folders.list_images(os.path.join(root, "train", wnid, "images"), LAYOUT)
    train_paths += files
    train_labels += [index[wnid]] * len(files)
  train_labels = np.asarray(train_labels, np.int32)
  keep = first_per_class(train_labels, limit_per_class)
  train_paths = [train_paths[i] for i in keep]
  train_labels = train_labels[keep]

  test_paths, test_labels = _val_split(root, index)
  transform = folders.resize_to(size)
  names = folders.read_words(os.path.join(root, "words.txt"))
  return SourceData(
      name="tiny_imagenet",
      train_images=folders.load_images(train_paths, transform, size),
      train_labels=train_labels,
      test_images=folders.load_images(test_paths, transform, size),
      test_labels=test_labels,
      class_names=tuple(names.get(w, w) for w in wnids),
      mean=folders.IMAGENET_MEAN, std=folders.IMAGENET_STD)


def _val_split(root: str, index: dict[str, int]) -> tuple[list[str], np.ndarray]:
  """The val images and labels listed in val/val_annotations.txt."""
  ann = os.path.join(root, "val", "val_annotations.txt")
  if not os.path.isfile(ann):
    raise SourceUnavailableError(f"{ann} not found; expected layout: {LAYOUT}.")
  paths, labels = [], []
  for n, line in enumerate(folders.read_lines(ann), 1):
    fields = line.split("\t")
    if len(fields) < 2:
      raise SourceUnavailableError(f"{ann}:{n}: expected 'file<TAB>wnid...', got {line!r}")
    fname, wnid = fields[0].strip(), fields[1].strip()
    if wnid not in index:
      raise SourceUnavailableError(f"{ann}:{n}: wnid {wnid!r} is not in wnids.txt")
    path = os.path.join(root, "val", "images", fname)
    if not os.path.isfile(path):
      raise SourceUnavailableError(f"{ann}:{n}: image {path} not found")
    paths.append(path)
    labels.append(index[wnid])
  if not paths:
    raise SourceUnavailableError(f"{ann} lists no image.")
  return paths, np.asarray(labels, np.int32)
