"""Tests of tfcondense.data: sources, registry, cache and the SourceData store."""
from __future__ import annotations

import gzip
import os
import time

import numpy as np
import pytest

from tfcondense import data
from tfcondense.data import folders, idx
from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError, SourceUnavailableError
from tfcondense.registry import UnknownNameError

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


# ---------------------------------------------------------------- registry and API


def test_source_names_and_unknown_name():
  names = data.source_names()
  for n in ("fashion_mnist", "digits", "mnist", "cifar10", "cifar100", "svhn_cropped",
            "tiny_imagenet", "imagenet_subset"):
    assert n in names
  with pytest.raises(UnknownNameError, match="known sources: .*fashion_mnist"):
    data.load_source("fashoin_mnist")
  assert data.SourceData is SourceData


def test_unknown_option_is_clear():
  with pytest.raises(TypeError, match="'colour'.*accepts: path, limit_per_class"):
    data.load_source("fashion_mnist", colour=True)
  with pytest.raises(InvalidConfigError):
    data.load_source("digits", sise=8)


# ---------------------------------------------------------------- Fashion-MNIST


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason=f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_real_files():
  s = data.load_source("fashion_mnist")
  assert s.train_images.shape == (60000, 28, 28, 1)
  assert s.test_images.shape == (10000, 28, 28, 1)
  assert s.train_images.dtype == np.float32 and s.train_labels.dtype == np.int32
  assert s.train_images.min() == 0.0 and s.train_images.max() == 1.0
  np.testing.assert_array_equal(s.class_counts(), [6000] * 10)
  assert s.class_names[0] == "T-shirt/top" and s.class_names[9] == "Ankle boot"
  assert s.mean == (0.2861,) and s.std == (0.3530,)
  # The reference statistics match the data.
  assert abs(float(s.train_images.mean()) - 0.2861) < 1e-3
  t = time.perf_counter()
  assert data.load_source("fashion_mnist", path=None) is s  # cached
  assert time.perf_counter() - t < 0.1
  assert not s.train_images.flags.writeable


def _write_fashion(tmp_path, n_train=30, n_test=10, gz=True):
  rng = np.random.default_rng(0)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = labels * 20  # pixel (0, 0) encodes the label
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", images),
                      (f"{prefix}-labels-idx1-ubyte", labels)):
      raw = idx.encode_idx(arr)
      if gz:
        with gzip.open(tmp_path / (stem + ".gz"), "wb") as f:
          f.write(raw)
      else:
        (tmp_path / stem).write_bytes(raw)
  return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_idx_fixture_round_trips(tmp_path, gz):
  _write_fashion(tmp_path, gz=gz)
  s = data.load_source("fashion_mnist", path=str(tmp_path), cache=False)
  assert s.train_images.shape == (30, 28, 28, 1) and s.test_images.shape == (10, 28, 28, 1)
  np.testing.assert_array_equal(s.train_labels, np.arange(30) % 10)
  np.testing.assert_allclose(s.train_images[:, 0, 0, 0] * 255, s.train_labels * 20,
                             atol=1e-3)
  assert 0.0 <= s.train_images.min() and s.train_images.max() <= 1.0


def test_fashion_env_var_and_limit_per_class(tmp_path, monkeypatch):
  _write_fashion(tmp_path)
  monkeypatch.setenv("TFCONDENSE_FASHION_MNIST_DIR", str(tmp_path))
  s = data.load_source("fashion_mnist", limit_per_class=2, cache=False)
  np.testing.assert_array_equal(s.class_counts(), [2] * 10)
  # The first two of each class, in file order: indices 0..19.
  np.testing.assert_array_equal(s.train_labels, np.arange(20) % 10)
  assert len(s.test_labels) == 10  # the test split is not limited
  for bad in (0, -1, 1.5):
    with pytest.raises(InvalidConfigError, match="limit_per_class"):
      data.load_source("fashion_mnist", limit_per_class=bad)


def test_fashion_missing_files(tmp_path):
  with pytest.raises(SourceUnavailableError, match="apt-get install dataset-fashion-mnist"):
    data.load_source("fashion_mnist", path=str(tmp_path / "nowhere"))
  _write_fashion(tmp_path)
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(SourceUnavailableError,
                     match="t10k-labels-idx1-ubyte.gz.*TFCONDENSE_FASHION_MNIST_DIR"):
    data.load_source("fashion_mnist", path=str(tmp_path))


def test_corrupt_idx_names_the_file(tmp_path):
  _write_fashion(tmp_path)
  target = tmp_path / "train-images-idx3-ubyte.gz"
  raw = gzip.decompress(target.read_bytes())
  # A valid gzip stream whose IDX payload is cut short.
  target.write_bytes(gzip.compress(raw[:-100]))
  with pytest.raises(SourceUnavailableError, match="train-images-idx3-ubyte.gz.*truncated"):
    data.load_source("fashion_mnist", path=str(tmp_path), cache=False)
  # A gzip stream cut short.
  target.write_bytes(gzip.compress(raw)[:-50])
  with pytest.raises(SourceUnavailableError, match="train-images-idx3-ubyte.gz"):
    data.load_source("fashion_mnist", path=str(tmp_path), cache=False)
  # Labels where images belong: wrong magic number.
  target.write_bytes((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes())
  with pytest.raises(SourceUnavailableError, match="magic number 0x00000801"):
    data.load_source("fashion_mnist", path=str(tmp_path), cache=False)


# ---------------------------------------------------------------- digits


def test_digits_split_is_stratified_and_deterministic():
  a = data.load_source("digits", size=8, cache=False)
  b = data.load_source("digits", size=8, cache=False)
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  assert len(a.train_labels) + len(a.test_labels) == 1797
  assert len(a.test_labels) == 360
  train_frac = np.bincount(a.train_labels) / len(a.train_labels)
  test_frac = np.bincount(a.test_labels) / len(a.test_labels)
  np.testing.assert_allclose(train_frac, test_frac, atol=0.01)
  assert a.image_shape == (8, 8, 1) and a.train_images.max() <= 1.0
  np.testing.assert_allclose(a.mean, [a.train_images.mean()], rtol=1e-5)
  np.testing.assert_allclose(a.std, [a.train_images.std()], rtol=1e-4)
  big = data.load_source("digits", limit_per_class=5)
  assert big.image_shape == (16, 16, 1)  # default size
  np.testing.assert_array_equal(big.class_counts(), [5] * 10)
  np.testing.assert_array_equal(big.train_labels, a.train_labels[np.sort(np.concatenate(
      [np.flatnonzero(a.train_labels == c)[:5] for c in range(10)]))])


# ---------------------------------------------------------------- tfds sources


@pytest.mark.parametrize("name,shape,ncls", [
    ("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10),
    ("cifar100", (32, 32, 3), 100), ("svhn_cropped", (32, 32, 3), 10)])
def test_tfds_sources_with_mock_data(tmp_path, name, shape, ncls):
  import tensorflow_datasets as tfds
  # USE_CODE: build the info from the dataset class, ignoring any files in data_dir.
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    s = data.load_source(name, data_dir=str(tmp_path), cache=False)
    limited = data.load_source(name, data_dir=str(tmp_path), limit_per_class=1,
                               cache=False)
  assert s.name == name
  assert s.train_images.shape == (40, *shape) and s.test_images.shape == (40, *shape)
  assert s.train_images.dtype == np.float32 and s.train_labels.dtype == np.int32
  assert 0.0 <= s.train_images.min() and s.train_images.max() <= 1.0
  assert s.train_images.max() > 0.5  # uint8 was scaled, not clipped
  assert s.num_classes == ncls and len(s.mean) == shape[-1]
  assert s.train_labels.min() >= 0 and s.train_labels.max() < ncls
  present = np.unique(s.train_labels)
  np.testing.assert_array_equal(np.sort(limited.train_labels), present)
  if name == "cifar10":
    assert s.class_names[0] == "airplane" and s.mean == (0.4914, 0.4822, 0.4465)
  if name == "cifar100":
    assert s.class_names[:2] == ("apple", "aquarium_fish")


def test_tfds_offline_error_is_fast_and_helpful(tmp_path):
  t = time.perf_counter()
  with pytest.raises(SourceUnavailableError) as info:
    data.load_source("cifar10", data_dir=str(tmp_path))
  assert time.perf_counter() - t < 20
  msg = str(info.value)
  assert f"cifar10 is not prepared under {tmp_path}" in msg
  for hint in ("tfds.builder('cifar10'", "data_dir=", "TFDS_DATA_DIR", "download=True"):
    assert hint in msg


# ---------------------------------------------------------------- folder sources


def _write_image(path, array, fmt):
  import tensorflow as tf
  enc = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(enc(np.asarray(array, np.uint8)).numpy())


def _flat(value, h, w):
  return np.full((h, w, 3), value, np.uint8)


TINY_WNIDS = ["n03", "n01", "n02"]  # unsorted on purpose; classes are sorted


def _tiny_tree(root):
  (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
  (root / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
  (root / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tshark\n"
                                  "n99\tunused\n")
  for wnid in TINY_WNIDS:
    c = sorted(TINY_WNIDS).index(wnid)
    for i in range(4):
      _write_image(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG",
                   _flat(40 + 60 * c, 64, 64), "jpeg")
  # Val images named without the class; only the annotations say which is which.
  val = [("val_0.JPEG", "n02"), ("val_1.JPEG", "n03"), ("val_2.JPEG", "n01"),
         ("val_3.JPEG", "n03"), ("val_4.JPEG", "n02")]
  lines = []
  for fname, wnid in val:
    c = sorted(TINY_WNIDS).index(wnid)
    _write_image(root / "val" / "images" / fname, _flat(40 + 60 * c, 64, 64), "jpeg")
    lines.append(f"{fname}\t{wnid}\t0\t0\t10\t10")
  (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
  return [sorted(TINY_WNIDS).index(w) for _, w in val]


def _label_from_colour(images):
  return np.round((images.mean(axis=(1, 2, 3)) * 255 - 40) / 60).astype(int)


def test_tiny_imagenet_fixture(tmp_path):
  val_labels = _tiny_tree(tmp_path)
  s = data.load_source("tiny_imagenet", root=str(tmp_path), cache=False)
  assert s.train_images.shape == (12, 64, 64, 3) and s.test_images.shape == (5, 64, 64, 3)
  assert s.class_names == ("goldfish", "shark", "n03")
  np.testing.assert_array_equal(s.class_counts(), [4, 4, 4])
  np.testing.assert_array_equal(_label_from_colour(s.train_images), s.train_labels)
  np.testing.assert_array_equal(s.test_labels, val_labels)
  np.testing.assert_array_equal(_label_from_colour(s.test_images), s.test_labels)
  assert s.mean == (0.485, 0.456, 0.406) and s.std == (0.229, 0.224, 0.225)
  small = data.load_source("tiny_imagenet", root=str(tmp_path), size=32,
                           limit_per_class=2, cache=False)
  assert small.train_images.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(_label_from_colour(small.train_images),
                                small.train_labels)


def test_tiny_imagenet_bad_layouts(tmp_path, monkeypatch):
  monkeypatch.delenv("TFCONDENSE_TINY_IMAGENET_DIR", raising=False)
  with pytest.raises(SourceUnavailableError, match="root=.*TFCONDENSE_TINY_IMAGENET_DIR"):
    data.load_source("tiny_imagenet")
  with pytest.raises(SourceUnavailableError, match="wnids.txt not found.*expected layout"):
    data.load_source("tiny_imagenet", root=str(tmp_path))
  _tiny_tree(tmp_path)
  for f in (tmp_path / "train" / "n02" / "images").iterdir():
    f.unlink()
  with pytest.raises(SourceUnavailableError, match="n02.images has no images"):
    data.load_source("tiny_imagenet", root=str(tmp_path), cache=False)
  (tmp_path / "wnids.txt").write_text("n01\nn03\n")
  with pytest.raises(SourceUnavailableError, match="wnid 'n02' is not in wnids.txt"):
    data.load_source("tiny_imagenet", root=str(tmp_path), cache=False)


IMAGENET_WNIDS = [f"n{900 - i:08d}" for i in range(12)]  # list order, not sorted


def _imagenet_tree(root, h=48, w=64):
  root.mkdir(parents=True, exist_ok=True)
  (root / "classes.txt").write_text("\n".join(IMAGENET_WNIDS) + "\n")
  for c, wnid in enumerate(IMAGENET_WNIDS[:10]):
    img = _flat(10 + 24 * c, h, w)
    img[:, :8] = img[:, -8:] = (255, 0, 0)  # red bands that the centre crop removes
    for split, n in (("train", 3), ("val", 1)):
      for i in range(n):
        _write_image(root / split / wnid / f"{wnid}_{i}.png", img, "png")


def test_imagenet_subset_fixture(tmp_path):
  _imagenet_tree(tmp_path)
  s = data.load_source("imagenet_subset", root=str(tmp_path), nclass=10, size=32,
                       cache=False)
  assert s.train_images.shape == (30, 32, 32, 3) and s.test_images.shape == (10, 32, 32, 3)
  assert s.class_names == tuple(IMAGENET_WNIDS[:10])
  for x, y in ((s.train_images, s.train_labels), (s.test_images, s.test_labels)):
    # No red band survives the crop: all channels equal the class grey.
    np.testing.assert_allclose(x[..., 0], x[..., 1], atol=2 / 255)
    grey = x[..., 1].mean(axis=(1, 2)) * 255
    np.testing.assert_array_equal(np.round((grey - 10) / 24).astype(int), y)
  limited = data.load_source("imagenet_subset", root=str(tmp_path), size=32,
                             limit_per_class=1, class_list=IMAGENET_WNIDS, cache=False)
  np.testing.assert_array_equal(limited.train_labels, np.arange(10))


def test_imagenet_subset_bad_configs(tmp_path):
  _imagenet_tree(tmp_path)
  with pytest.raises(InvalidConfigError, match="nclass must be 10 or 100"):
    data.load_source("imagenet_subset", root=str(tmp_path), nclass=5)
  with pytest.raises(InvalidConfigError, match="12 wnids, fewer than nclass=100"):
    data.load_source("imagenet_subset", root=str(tmp_path), nclass=100)
  with pytest.raises(SourceUnavailableError, match="class list .*missing.txt not found"):
    data.load_source("imagenet_subset", root=str(tmp_path),
                     class_list=str(tmp_path / "missing.txt"))
  with pytest.raises(SourceUnavailableError, match="needs root="):
    data.load_source("imagenet_subset", root=str(tmp_path / "nope"))
  (tmp_path / "train" / IMAGENET_WNIDS[0] / "readme.txt").write_text("x")
  for f in (tmp_path / "train" / IMAGENET_WNIDS[0]).glob("*.png"):
    f.unlink()
  with pytest.raises(SourceUnavailableError, match=f"{IMAGENET_WNIDS[0]} has no images"):
    data.load_source("imagenet_subset", root=str(tmp_path), size=32, cache=False)


def test_resize_center_crop_matches_torchvision_geometry():
  import tensorflow as tf
  # Pixel value = column index; a centred crop keeps the mean column at the centre.
  img = tf.constant(np.tile(np.arange(64, dtype=np.float32)[None, :, None], (48, 1, 3)))
  out = folders.resize_center_crop(32)(img)  # shorter side 48 -> 37, 64 -> 49, crop 32
  assert out.shape == (32, 32, 3)
  assert abs(float(tf.reduce_mean(out)) - 31.5) < 1.0
  ref = folders.resize_center_crop(224)(tf.zeros((300, 400, 3)))  # 256 x 341 -> 224
  assert ref.shape == (224, 224, 3)


def test_corrupt_image_is_named(tmp_path):
  _imagenet_tree(tmp_path)
  bad = tmp_path / "val" / IMAGENET_WNIDS[3] / "zz_bad.png"
  bad.write_bytes(b"\x89PNG not really")
  with pytest.raises(SourceUnavailableError, match="zz_bad.png"):
    data.load_source("imagenet_subset", root=str(tmp_path), size=32, cache=False)


# ---------------------------------------------------------------- the store


def _coded_store(counts=(5, 3, 4)):
  """A store whose every pixel equals label / 10, classes interleaved."""
  labels = np.concatenate([np.full(n, c, np.int32) for c, n in enumerate(counts)])
  labels = labels[np.random.default_rng(0).permutation(len(labels))]
  images = np.broadcast_to(labels[:, None, None, None] / 10.0,
                           (len(labels), 4, 4, 1)).astype(np.float32)
  return SourceData(name="coded", train_images=images, train_labels=labels,
                    test_images=images[:2], test_labels=labels[:2],
                    class_names=("a", "b", "c"), mean=(0.5,), std=(0.25,))


def test_check_ipc_names_the_class():
  s = _coded_store()
  s.check_ipc(3)
  with pytest.raises(InvalidConfigError, match=r"IPC 4 .*3 images of class 1 \('b'\)"):
    s.check_ipc(4)


def test_sample_class_returns_only_that_class():
  s = _coded_store()
  rng = np.random.default_rng(1)
  for c in range(3):
    np.testing.assert_array_equal(s.train_labels[s.class_indices(c)], c)
    x = s.sample_class(c, 3, rng)
    assert x.shape == (3, 4, 4, 1)
    np.testing.assert_allclose(x, c / 10.0)
  x = s.sample_class(1, 7, rng)  # more than the class holds: with replacement
  np.testing.assert_allclose(x, 0.1)


def test_subset_relabels():
  s = _coded_store()
  sub = s.subset([2, 0], name="sub")
  assert sub.class_names == ("c", "a") and sub.name == "sub"
  np.testing.assert_array_equal(sub.class_counts(), [4, 5])
  np.testing.assert_allclose(sub.images_of_class(0), 0.2)
  np.testing.assert_allclose(sub.images_of_class(1), 0.0)
  np.testing.assert_allclose(sub.normalize(sub.train_images[:1]), (0.2 - 0.5) / 0.25,
                             rtol=1e-6)
