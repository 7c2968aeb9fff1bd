"""ImageNet-10 / ImageNet-100 subsets of an ImageNet-style class-folder tree."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

from tfcondense.data import folders
from tfcondense.data.common import check_limit, first_per_class, resolve_dir
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError, SourceUnavailableError

ENV_VAR = "TFCONDENSE_IMAGENET_DIR"
NCLASSES = (10, 100)
LAYOUT = ("root/train/<wnid>/*.JPEG and root/val/<wnid>/*.JPEG (validation images "
          "sorted into class folders), plus the class list root/classes.txt (one wnid per "
          "line, the first 10 being ImageNet-10) or class_list=...; optional "
          "root/words.txt ('wnid<TAB>names') for class names")


register_info(SourceInfo("imagenet_subset", "ImageNet subset", (224, 224, 3), NCLASSES[0],
                         folders.IMAGENET_MEAN, folders.IMAGENET_STD))


@SOURCES.register("imagenet_subset")
def imagenet_subset(*, root: Optional[str] = None, nclass: int = 10,
                    class_list: Union[str, Sequence[str], None] = None, size: int = 224,
                    limit_per_class: Optional[int] = None) -> SourceData:
  """The first `nclass` classes of an ImageNet subset list (ImageNet-10 / -100, as in IDC).

  Images are resized so the shorter side is round(size * 256 / 224) and centre-cropped
  to size x size (torchvision Resize(256) + CenterCrop(224) at the default size).

  Memory: everything is decoded into float32, 4 * 3 * size**2 bytes per image, i.e.
  about 0.6 MB at 224 px. ImageNet-10 (~13000 train + 500 val) needs ~8 GB,
  ImageNet-100 (~130000 + 5000) ~80 GB; use limit_per_class and/or a smaller `size`
  (e.g. limit_per_class=260, or size=64 for ~6.5 GB at ImageNet-100).

  Args:
    root: the ImageNet directory; defaults to $TFCONDENSE_IMAGENET_DIR.
    nclass: 10 or 100.
    class_list: a text file of wnids (one per line) or a sequence of wnids, in class
      order; defaults to root/classes.txt.
    size: crop side (224 reference; e.g. 32 for tests).
    limit_per_class: keep only the first N train images (in file-name order) per class.

  Returns:
    The SourceData (val split as test), normalised with the ImageNet mean/std; class
    names from root/words.txt when present, else the wnids.

  Raises:
    InvalidConfigError: nclass not in {10, 100}, or the class list is shorter than
      nclass or repeats a wnid.
    SourceUnavailableError: root, the class list or a class folder is missing, or a
      class folder holds no image.
  """
  check_limit(limit_per_class)
  size = folders.check_size(size)
  if nclass not in NCLASSES:
    raise InvalidConfigError(
        f"imagenet_subset nclass must be 10 or 100 (ImageNet-10 / ImageNet-100), got "
        f"{nclass!r}")
  root = resolve_dir(root, ENV_VAR)
  if root is None or not os.path.isdir(root):
    raise SourceUnavailableError(
        f"imagenet_subset needs root=... (or ${ENV_VAR}) pointing at an existing "
        f"ImageNet directory (got {root!r}); expected layout: {LAYOUT}.")
  wnids = _class_list(root, class_list)
  if len(wnids) < nclass:
    raise InvalidConfigError(
        f"the class list has {len(wnids)} wnids, fewer than nclass={nclass}; give a list "
        "of at least that many (the IDC ImageNet-100 list, first 10 = ImageNet-10).")
  wnids = wnids[:nclass]
  if len(set(wnids)) != len(wnids):
    raise InvalidConfigError(f"the class list repeats a wnid among its first {nclass}")

  splits = {}
  for split in ("train", "val"):
    paths, labels = [], []
    for c, wnid in enumerate(wnids):
      files = folders.list_images(os.path.join(root, split, wnid), LAYOUT)
      paths += files
      labels += [c] * len(files)
    labels = np.asarray(labels, np.int32)
    if split == "train":
      keep = first_per_class(labels, limit_per_class)
      paths, labels = [paths[i] for i in keep], labels[keep]
    splits[split] = (paths, labels)

  transform = folders.resize_center_crop(size)
  names = folders.read_words(os.path.join(root, "words.txt"))
  return SourceData(
      name="imagenet_subset",
      train_images=folders.load_images(splits["train"][0], transform, size),
      train_labels=splits["train"][1],
      test_images=folders.load_images(splits["val"][0], transform, size),
      test_labels=splits["val"][1],
      class_names=tuple(names.get(w, w) for w in wnids),
      mean=folders.IMAGENET_MEAN, std=folders.IMAGENET_STD)


def _class_list(root: str, class_list: Union[str, Sequence[str], None]) -> list[str]:
  if class_list is not None and not isinstance(class_list, (str, os.PathLike)):
    return [str(w).strip() for w in class_list if str(w).strip()]
  path = os.path.expanduser(os.fspath(class_list)) if class_list is not None else \
      os.path.join(root, "classes.txt")
  if not os.path.isfile(path):
    raise SourceUnavailableError(
        f"class list {path} not found; pass class_list=<file of wnids, one per line> or "
        f"put it at root/classes.txt. Expected layout: {LAYOUT}.")
  return folders.read_lines(path)
