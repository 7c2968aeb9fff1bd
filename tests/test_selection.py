"""Selection baselines: random, herding and kcenter."""
import numpy as np
import pytest

from tests.fixtures import quadrant_source
from tfcondense import methods
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import selection
from tfcondense.registry import UnknownNameError


def test_random_is_per_class_distinct_and_seeded():
  src = quadrant_source(n_per_class=10)
  a = methods.select("random", src, ipc=3, seed=1)
  b = methods.select("random", src, ipc=3, seed=1)
  c = methods.select("random", src, ipc=3, seed=2)
  np.testing.assert_array_equal(a.labels, np.repeat(np.arange(4), 3))
  idx = np.array(a.meta["indices"])
  assert len(set(idx)) == 12 and np.all(src.train_labels[idx] == a.labels)
  np.testing.assert_array_equal(a.images, src.train_images[idx])
  assert a.meta["indices"] == b.meta["indices"] != c.meta["indices"]
  assert a.meta["method"] == "random" and a.meta["ipc"] == 3 and a.meta["factor"] == 1


def test_bad_method_and_ipc():
  src = quadrant_source(n_per_class=4)
  with pytest.raises(UnknownNameError, match="herding, kcenter, random"):
    methods.select("nope", src, ipc=1)
  with pytest.raises(InvalidConfigError, match="exceeds the 4 images"):
    methods.select("random", src, ipc=5)


def test_herding_order_tracks_the_mean():
  feats = np.array([[10.0, 0], [0, 0], [1, 1], [-1, -1], [-10, 0]])
  # mean is (0, 0): the zero row first, then a pair whose mean is the mean.
  order = selection.herding_order(feats, 3)
  assert order[0] == 1
  assert set(order[1:]) in ({2, 3}, {0, 4})
  assert len(set(selection.herding_order(feats, 5))) == 5


def test_kcenter_picks_one_real_point_per_cluster():
  rng = np.random.default_rng(0)
  centres = np.array([[0, 0], [10, 10], [-10, 10]], np.float32)
  feats = np.concatenate([c + rng.normal(0, 0.1, (20, 2)) for c in centres]).astype(np.float32)
  picked = selection.kcenter_indices(feats, 3, seed=0)
  assert sorted(p // 20 for p in picked) == [0, 1, 2]  # one from each cluster
  assert len(set(picked)) == 3


@pytest.mark.parametrize("method", ["herding", "kcenter"])
def test_embedding_methods_end_to_end(method, tmp_path):
  src = quadrant_source(n_per_class=12)
  art = methods.select(method, src, ipc=2, seed=0, cache_dir=str(tmp_path),
                       show_progress=False)
  np.testing.assert_array_equal(art.labels, np.repeat(np.arange(4), 2))
  idx = np.array(art.meta["indices"])
  np.testing.assert_array_equal(art.images, src.train_images[idx])
  assert list(tmp_path.glob("embed-*.npy"))  # embedding cached on disk


@pytest.mark.heavy
def test_embedding_cache_tells_equal_sized_subsets_apart(tmp_path):
  from tfcondense.methods import selection
  src = quadrant_source()
  a = src.subset([0, 1], name="sub")
  b = src.subset([2, 3], name="sub")  # same name, same label vector, other images
  ea = selection.embeddings(a, cache_dir=str(tmp_path), show_progress=False)
  eb = selection.embeddings(b, cache_dir=str(tmp_path), show_progress=False)
  assert not np.allclose(ea, eb)
  assert len(list(tmp_path.iterdir())) == 2


def test_misspelt_option_is_refused_before_any_work():
  src = quadrant_source(n_per_class=4)
  with pytest.raises(InvalidConfigError, match=r"no option 'cach_dir'.*cache_dir, show_progress"):
    methods.select("random", src, ipc=1, cach_dir="/tmp/x")
  with pytest.raises(InvalidConfigError, match="no option 'epochs'"):
    methods.select("kcenter", src, ipc=1, epochs=3)


def test_in_memory_embedding_cache_is_bounded(monkeypatch):
  calls = []

  def fake_train(source, seed, model, epochs, show_progress):
    del source, model, epochs, show_progress
    calls.append(seed)
    return np.full((4, 2), seed, np.float32)

  monkeypatch.setattr(selection, "_train_and_embed", fake_train)
  monkeypatch.setattr(selection, "_EMBED_CACHE", {})
  src = quadrant_source(n_per_class=1)
  for seed in (1, 2, 1, 3):  # 1 is used again while still cached, then 2 is evicted
    selection.embeddings(src, seed=seed)
  assert calls == [1, 2, 3]
  assert len(selection._EMBED_CACHE) == selection._EMBED_CACHE_SIZE == 2
  selection.embeddings(src, seed=2)  # evicted: trained again
  assert calls == [1, 2, 3, 2]
