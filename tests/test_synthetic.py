"""SyntheticSet: initialisers, class slices, clamping, storage, formed images."""
import numpy as np
import pytest

from fixtures import quadrant_source
from tfcondense import formation, synthetic
from tfcondense.errors import InvalidConfigError


def _brightest_quadrant(img):
  x = img.mean(axis=-1)
  h = x.shape[0] // 2
  q = [x[:h, :h].mean(), x[:h, h:].mean(), x[h:, :h].mean(), x[h:, h:].mean()]
  return int(np.argmax(q))


def test_mix_init_tiles_downsampled_real_images_of_the_class():
  src = quadrant_source()
  form = formation.make_formation("uniform", 2)
  s = synthetic.SyntheticSet.initialize(src, 2, form, init="mix", seed=3)
  assert s.images.shape == (8, 16, 16, 1)
  assert s.labels.numpy().tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
  fx, fy = s.formed_numpy()
  assert fx.shape == (32, 16, 16, 1) and np.bincount(fy).tolist() == [8] * 4
  # Every formed image is an (upsampled) real image of its class: bright quadrant = class.
  assert [_brightest_quadrant(x) for x in fx] == fy.tolist()


def test_mix_resize_nearest_picks_pixels_as_pytorch_does():
  x = np.arange(2 * 28 * 27, dtype=np.float32).reshape(2, 28, 27, 1)
  y = synthetic.downsample(x, (14, 14), "nearest")
  np.testing.assert_array_equal(y[:, :, :, 0], x[:, ::2][:, :, [0, 1, 3, 5, 7, 9, 11, 13,
                                                                15, 17, 19, 21, 23, 25], 0])
  smooth = synthetic.downsample(x, (14, 14), "antialias")
  assert not np.allclose(smooth, y)
  src = quadrant_source()
  form = formation.make_formation("uniform", 2)
  a = synthetic.SyntheticSet.initialize(src, 2, form, init="mix", seed=0, resize="nearest")
  b = synthetic.SyntheticSet.initialize(src, 2, form, init="mix", seed=0, resize="antialias")
  assert not np.allclose(a.images.numpy(), b.images.numpy())
  with pytest.raises(InvalidConfigError, match="unknown mix resize 'cubic'"):
    synthetic.SyntheticSet.initialize(src, 2, form, init="mix", resize="cubic")


def test_mix_tiles_places_each_image_in_its_tile():
  imgs = np.stack([np.full((4, 4, 1), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4)])
  out = synthetic.mix_tiles(imgs, (2, 2), (4, 4, 1))
  np.testing.assert_allclose(out[0, :2, :2, 0], 0.1, atol=1e-6)
  np.testing.assert_allclose(out[0, :2, 2:, 0], 0.2, atol=1e-6)
  np.testing.assert_allclose(out[0, 2:, :2, 0], 0.3, atol=1e-6)
  np.testing.assert_allclose(out[0, 2:, 2:, 0], 0.4, atol=1e-6)
  # Time formation: tiles stacked along time (rows) only.
  out = synthetic.mix_tiles(imgs[:2], (2, 1), (4, 4, 1))
  np.testing.assert_allclose(out[0, :2, :, 0], 0.1, atol=1e-6)
  np.testing.assert_allclose(out[0, 2:, :, 0], 0.2, atol=1e-6)


def test_random_init_under_multi_formation_warns_that_formed_images_are_crops(caplog):
  src = quadrant_source()
  form = formation.make_formation("uniform", 2)
  with caplog.at_level("WARNING"):
    s = synthetic.SyntheticSet.initialize(src, 2, form, init="random", seed=3)
  assert "1/4 crop" in caplog.text and "`mix`" in caplog.text
  fx, fy = s.formed_numpy()
  # Each formed image is a quarter of one real image: most miss their class's blob.
  assert sum(_brightest_quadrant(x) == y for x, y in zip(fx, fy)) < len(fy) // 2


def test_init_study_random_means_mix_for_a_multi_formation_method(tmp_path):
  from tfcondense.bench import init_study
  src = quadrant_source()
  paths = init_study.snapshots(src, "idc", "random", 2, [0], workdir=str(tmp_path / "w"),
                               show_progress=False)
  fx, fy = init_study.load_snapshot(paths[0])
  assert fx.shape == (32, 16, 16, 1)
  assert [_brightest_quadrant(x) for x in fx] == fy.tolist()


@pytest.mark.parametrize("init", ["random", "kcenter", "herding"])
def test_real_inits_take_images_of_the_right_class(init, tmp_path):
  src = quadrant_source()
  s = synthetic.SyntheticSet.initialize(src, 3, init=init, seed=1, cache_dir=str(tmp_path))
  imgs, labels = s.numpy()
  assert [_brightest_quadrant(x) for x in imgs] == labels.tolist()
  # Each stored image is one of the class's real images.
  for x, y in zip(imgs, labels):
    assert np.min(np.abs(src.images_of_class(y) - x).reshape(-1, 256).sum(1)) < 1e-5


def test_noise_init_is_seeded_and_in_range():
  src = quadrant_source()
  a = synthetic.SyntheticSet.initialize(src, 2, init="noise", seed=4).numpy()[0]
  b = synthetic.SyntheticSet.initialize(src, 2, init="noise", seed=4).numpy()[0]
  c = synthetic.SyntheticSet.initialize(src, 2, init="noise", seed=5).numpy()[0]
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c) and a.min() >= 0 and a.max() <= 1


def test_class_slices_clamp_and_storage():
  src = quadrant_source()
  s = synthetic.SyntheticSet.initialize(src, 2, formation.make_formation("uniform", 2))
  np.testing.assert_array_equal(s.stored_class(2).numpy(), s.images.numpy()[4:6])
  assert s.formed_class(2).shape == (8, 16, 16, 1)
  s.images.assign(s.images * 3 - 1)
  s.clamp()
  assert s.images.numpy().min() >= 0 and s.images.numpy().max() <= 1
  st = s.storage()
  assert st["stored_images"] == 8 and st["stored_pixels"] == 8 * 256
  assert st["stored_bytes"] == 4 * 8 * 256 and st["formed_images"] == 32


def test_bad_input():
  src = quadrant_source()
  with pytest.raises(InvalidConfigError, match="exceeds"):
    synthetic.SyntheticSet.initialize(src, 21)
  with pytest.raises(InvalidConfigError):
    synthetic.SyntheticSet(np.zeros((5, 4, 4, 1), np.float32), num_classes=2)
  with pytest.raises(Exception, match="unknown initialisation"):
    synthetic.SyntheticSet.initialize(src, 2, init="zeros")


def test_grid_puts_each_class_in_its_row_and_writes_a_png(tmp_path):
  from tfcondense import viz  # pylint: disable=g-import-not-at-top
  # 3 classes, labels shuffled, class 1 has 3 images (cols = 2 cuts the third): each
  # image is a constant equal to (label + 1) / 10 + column / 100.
  labels = np.array([2, 0, 1, 1, 0, 1, 2])
  col = np.array([0, 0, 0, 1, 1, 2, 1])
  images = np.ones((7, 3, 4, 1), np.float32) * ((labels + 1) / 10 + col / 100)[:, None, None,
                                                                               None]
  m = viz._mosaic(images, labels, np.unique(labels), cols=2)  # pylint: disable=protected-access
  assert m.shape == (3 * 3 + 2, 2 * 4 + 1, 1)
  for r in range(3):
    for j in range(2):
      np.testing.assert_allclose(m[r * 4:r * 4 + 3, j * 5:j * 5 + 4], (r + 1) / 10 + j / 100)
  assert (m[3] == 1).all() and (m[:, 4] == 1).all()  # white gutters
  path = viz.save_grid(images, labels, str(tmp_path / "g.png"), class_names=["a", "b", "c"],
                       max_per_class=2, title="t")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
