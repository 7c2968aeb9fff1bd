"""MNIST, CIFAR-10/100 and SVHN through tensorflow-datasets, never downloading by default.

Offline, `tfds.load(name)` retries its download for minutes; with `download=False` it
fails at once, and the failure is turned into a SourceUnavailableError that says how to
prepare the data elsewhere and bring it here.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from tfcondense.data.common import (check_limit, first_per_class, prepare_command,
                                    to_unit_float)
from tfcondense.data.info import SourceInfo, register_info
from tfcondense.data.sources import SOURCES
from tfcondense.data.store import SourceData
from tfcondense.errors import SourceUnavailableError

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
CIFAR100_NAMES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house
kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree
plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank
telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf
woman worm""".split())

# name -> (mean, std, fallback class names used when the tfds metadata has only numbers).
SPECS = {
    "mnist": ((0.1307,), (0.3081,), None),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), CIFAR10_NAMES),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), CIFAR100_NAMES),
    "svhn_cropped": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), None),
}
#: Human names, and the sources whose classes a horizontal flip changes (digits).
TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
          "svhn_cropped": "SVHN (cropped)"}
NO_FLIP = frozenset({"mnist", "svhn_cropped"})
BATCH = 4096


def load_tfds(name: str, *, data_dir: Optional[str] = None, download: bool = False,
              limit_per_class: Optional[int] = None) -> SourceData:
  """Loads the train and test splits of tfds dataset `name` into a SourceData.

  Args:
    name: a key of SPECS.
    data_dir: the tfds data directory; None means $TFDS_DATA_DIR, else
      ~/tensorflow_datasets.
    download: let tfds download and prepare the data if it is missing (needs internet;
      offline, tfds retries for minutes before failing).
    limit_per_class: keep only the first N train images of each class.

  Raises:
    SourceUnavailableError: the dataset is not prepared under `data_dir` (or its files
      cannot be read).
  """
  check_limit(limit_per_class)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  mean, std, fallback_names = SPECS[name]
  if data_dir is not None:
    data_dir = os.path.expanduser(os.fspath(data_dir))
  shown_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
  arrays = {}
  info = None
  for split in ("train", "test"):
    try:
      ds, info = tfds.load(name, split=split, data_dir=data_dir, download=download,
                           as_supervised=True, with_info=True)
      x, y = _to_numpy(ds)
    except _unavailable_errors() as e:
      raise _unavailable(name, shown_dir, download, e) from e
    arrays[split] = (x, y)
  x, y = arrays["train"]
  if limit_per_class is not None:
    keep = first_per_class(y, limit_per_class)
    x, y = x[keep], y[keep]
  tx, ty = arrays["test"]
  return SourceData(
      name=name, train_images=to_unit_float(x), train_labels=y,
      test_images=to_unit_float(tx), test_labels=ty,
      class_names=_class_names(info, fallback_names), mean=mean, std=std)


def _to_numpy(ds) -> tuple[np.ndarray, np.ndarray]:
  """Materialises a supervised (image, label) dataset in batches.

  `tfds.load(batch_size=-1)` is avoided on purpose: it batches by the split size from
  the metadata, which `tfds.testing.mock_data` leaves at 0 (tfds then batches by
  sys.maxsize and aborts the process).
  """
  xs, ys = [], []
  for x, y in ds.batch(BATCH).as_numpy_iterator():
    xs.append(x)
    ys.append(y)
  if not xs:
    raise SourceUnavailableError("the split is empty")
  return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def _class_names(info, fallback: Optional[Sequence[str]]) -> tuple[str, ...]:
  names = tuple(info.features["label"].names)
  if fallback is not None and all(n == str(i) for i, n in enumerate(names)):
    return tuple(fallback)  # metadata not generated yet (e.g. mocked): use known names
  return names


def _unavailable_errors() -> tuple[type[BaseException], ...]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import registered  # pylint: disable=g-import-not-at-top
  return (AssertionError, FileNotFoundError, registered.DatasetNotFoundError,
          tf.errors.NotFoundError, tf.errors.DataLossError, SourceUnavailableError)


def _unavailable(name: str, data_dir: str, download: bool,
                 error: BaseException) -> SourceUnavailableError:
  if download:
    how = (f"tfds could not download or prepare it ({type(error).__name__}: {error}). "
           "If this machine is offline, prepare it elsewhere (")
  else:
    how = ("download=False, so nothing was downloaded "
           f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}). "
           "Prepare it where you have internet (")
  return SourceUnavailableError(
      f"{name} is not prepared under {data_dir}; {how}{prepare_command(name)}), copy "
      "that data_dir here and pass data_dir=... (or set TFDS_DATA_DIR), or pass "
      "download=True on a machine with internet.")


def _register(name: str) -> None:
  def source(*, data_dir: Optional[str] = None, download: bool = False,
             limit_per_class: Optional[int] = None) -> SourceData:
    return load_tfds(name, data_dir=data_dir, download=download,
                     limit_per_class=limit_per_class)

  source.__name__ = source.__qualname__ = name
  source.__doc__ = f"tfds `{name}` (train/test splits).\n\n" + (load_tfds.__doc__ or "")
  SOURCES.register(name)(source)
  mean, std, names = SPECS[name]
  register_info(SourceInfo(name, TITLES[name], (32, 32, 3) if len(mean) == 3 else (28, 28, 1),
                           len(names) if names else 10, mean, std,
                           flip_safe=name not in NO_FLIP))


for _name in SPECS:
  _register(_name)
