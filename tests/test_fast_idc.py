"""Issue 39: model pools + model augmentation (Acc-DD), representative matching (DREAM),
the IDC arms and DM with pool embedders."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tfcondense import condensation as condense_lib
from tfcondense import engine
from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base, idc, pool, representative
from tfcondense.registry import UnknownNameError

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = dict(outer_iterations=2, inner_iterations=2, real_per_class=8, n_data=16, net_batch=8,
            model_options=(("width", 8),))
SMALL_POOL = pool.PoolConfig(size=2, epochs=1, batch=16, model_options=(("width", 4),))


def _tiny_net():
  import keras
  from tfcondense.models import InstanceNorm
  inp = keras.Input((4, 4, 1))
  x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(inp)
  x = InstanceNorm(name="norm")(x)
  x = keras.layers.Flatten()(x)
  out = keras.layers.Dense(2, name="dense")(x)
  model = keras.Model(inp, out)
  rng = np.random.default_rng(0)
  for v in model.trainable_variables:
    v.assign(rng.normal(size=v.shape).astype(np.float32))
  return model


def test_filter_normalised_direction_by_hand():
  w = np.zeros((3, 3, 2, 2), np.float32)
  w[..., 0] = 2.0            # filter 0: norm sqrt(18) * 2
  w[0, 0, 0, 1] = -0.5       # filter 1: norm 0.5
  seed = tf.constant([4, 5], tf.int64)
  d = pool.filter_normalized_direction(w, seed).numpy()
  g = tf.random.stateless_normal(w.shape, seed).numpy()
  for j, norm in enumerate((np.sqrt(18.0) * 2, 0.5)):
    assert np.linalg.norm(d[..., j]) == pytest.approx(norm, rel=1e-5)
    np.testing.assert_allclose(d[..., j], g[..., j] * norm / np.linalg.norm(g[..., j]),
                               rtol=1e-5)


def test_perturbation_spares_biases_and_norms_and_scales_each_filter():
  model = _tiny_net()
  before = {v.path: v.numpy().copy() for v in model.trainable_variables}
  seed = tf.constant([7, 11], tf.int64)
  a, b = pool.perturb(model.trainable_variables, seed)
  assert 0.01 <= abs(a) <= 0.09 and 0.01 <= abs(b) <= 0.09
  changed = 0
  for j, v in enumerate(model.trainable_variables):
    w0, w1 = before[v.path], v.numpy()
    if w0.ndim < 2:   # conv / dense bias, instance-norm scale and shift
      np.testing.assert_array_equal(w1, w0)
      continue
    changed += 1
    # By hand: the two Gaussian draws of this variable, each filter (last axis)
    # rescaled to that filter's norm in numpy, then a d1 + b d2.
    expect = np.zeros_like(w0)
    for k, coef in ((0, a), (1, b)):
      g = tf.random.stateless_normal(
          w0.shape, base.fold(seed, pool.SALT_DIRECTION, j, k)).numpy()
      for f in range(w0.shape[-1]):
        expect[..., f] += coef * g[..., f] * (np.linalg.norm(w0[..., f])
                                              / np.linalg.norm(g[..., f]))
    np.testing.assert_allclose(w1 - w0, expect, rtol=1e-4, atol=1e-6)
  assert changed == 2   # the conv and the dense kernel
  names = {v.path for v in model.trainable_variables if before[v.path].ndim < 2}
  assert any("norm" in n for n in names) and any("bias" in n for n in names)


def test_perturbation_coefficients_take_both_signs():
  ab = np.array([pool.perturbation_coefficients(tf.constant([s, 1], tf.int64)).numpy()
                 for s in range(40)])
  assert np.all((np.abs(ab) >= 0.01) & (np.abs(ab) <= 0.09))
  assert (ab > 0).any() and (ab < 0).any()


def _members(directory, size):
  return [pool.fileio.load_npz(pool.member_path(directory, i)) for i in range(size)]


@pytest.mark.heavy
def test_pool_is_reproducible_and_a_killed_build_resumes(tmp_path, monkeypatch):
  src = quadrant_source(n_per_class=8)
  first = pool.ensure_pool(src, SMALL_POOL, str(tmp_path / "a"), show_progress=False)
  assert first.minutes is not None and first.size == 2
  trained = []
  train = pool._Trainer.train_member  # pylint: disable=protected-access

  def killed_at_second(self, index, bar=None):
    trained.append(index)
    if index == 1:
      raise KeyboardInterrupt  # the build dies while training member 1
    return train(self, index, bar)

  monkeypatch.setattr(pool._Trainer, "train_member", killed_at_second)  # pylint: disable=protected-access
  with pytest.raises(KeyboardInterrupt):
    pool.ensure_pool(src, SMALL_POOL, str(tmp_path / "b"), show_progress=False)
  directory = pool.pool_directory(src, SMALL_POOL, str(tmp_path / "b"))
  assert sorted(os.listdir(directory)) == ["member_000.npz", "pool.json"]
  with pytest.raises(InvalidConfigError, match="lacks members"):
    pool.ModelPool(directory, 2)
  trained.clear()
  monkeypatch.setattr(pool._Trainer, "train_member",  # pylint: disable=protected-access
                      lambda self, i, bar=None: (trained.append(i), train(self, i, bar)))
  resumed = pool.ensure_pool(src, SMALL_POOL, str(tmp_path / "b"), show_progress=False)
  assert trained == [1]       # member 0 was kept, member 1 trained
  for x, y in zip(_members(first.directory, 2), _members(resumed.directory, 2)):
    assert sorted(x) == sorted(y)
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  a, b = _members(first.directory, 2)
  assert any(not np.array_equal(a[k], b[k]) for k in a)   # distinct seeds, distinct nets
  # The directory is keyed by the data and the settings.
  other = pool.pool_directory(src, pool.PoolConfig(size=2, epochs=2), str(tmp_path / "a"))
  assert other != first.directory
  assert pool.pool_directory(quadrant_source(n_per_class=9), SMALL_POOL,
                             str(tmp_path / "a")) != first.directory


def test_pool_member_loads_into_the_network(tmp_path):
  src = quadrant_source(n_per_class=8)
  p = pool.ensure_pool(src, SMALL_POOL, str(tmp_path), show_progress=False)
  net = pool.build_network(SMALL_POOL, src)
  p.load(net, 1)
  for v, a in zip(net.weights, p.weights(1)):
    np.testing.assert_array_equal(v.numpy(), a)
  draws = {p.draw(tf.constant([s, 0], tf.int64)) for s in range(20)}
  assert draws == {0, 1}


def _hand_source():
  # Class 0's images have mean intensity 0, .1, .2, .8, .85, .95: two clusters whose
  # centres (.1, .8667) are nearest the images .1 (row 1) and .85 (row 4). Class 1
  # (rows 6-11): .5, .55, .6, .05, .1, .12, centres .55 (row 7) and .09 (row 10).
  values = [0.0, 0.1, 0.2, 0.8, 0.85, 0.95, 0.5, 0.55, 0.6, 0.05, 0.1, 0.12]
  x = np.stack([np.full((2, 2, 1), v, np.float32) for v in values])
  y = np.repeat([0, 1], 6).astype(np.int32)
  return SourceData(name="hand", train_images=x, train_labels=y, test_images=x,
                    test_labels=y, class_names=("a", "b"), mean=(0.0,), std=(1.0,))


def test_representative_batch_is_the_medoids_of_the_clustering():
  real = base.RealData(_hand_source())
  rep = representative.RepresentativeBatches(
      real, lambda x: tf.reduce_mean(x, axis=[1, 2]), per_class=2, candidates=6, seed=0)
  rep.refresh(0)
  idx = rep.indices.numpy()
  assert sorted(idx[0]) == [1, 4] and sorted(idx[1]) == [7, 10]
  np.testing.assert_array_equal(rep.batch(1).numpy(), real.images.numpy()[idx[1]])
  # Fewer candidates than the class: only candidates are picked, and a class smaller
  # than the batch repeats its representatives.
  few = representative.RepresentativeBatches(
      real, lambda x: tf.reduce_mean(x, axis=[1, 2]), per_class=3, candidates=2, seed=0)
  few.refresh(5)
  assert all(set(r) <= set(range(6 * c, 6 * c + 6)) for c, r in enumerate(few.indices.numpy()))
  assert all(len(set(r)) == 2 for r in few.indices.numpy())


def test_arms_fill_the_fields_and_plain_records_as_before():
  plain = condense_lib.make_config("idc", "fashion_mnist", 10)
  assert (plain.model_pool, plain.representative_every) == (0, 0)
  assert not {"arm", "model_pool", "representative_every"} & set(plain.as_dict())
  both = condense_lib.make_config("idc_i", "fashion_mnist", 10, arm="pool+representative")
  assert (both.model_pool, both.representative_every, both.factor) == (5, 10, 1)
  assert both.as_dict()["arm"] == "pool+representative"
  assert both.pool_config() == pool.PoolConfig()   # IDC's recipe = the pool's defaults
  own = condense_lib.make_config("idc", "fashion_mnist", 10, arm="pool", model_pool=3)
  assert own.model_pool == 3
  assert set(idc.ARMS.names()) == {"plain", "pool", "representative", "pool+representative"}
  with pytest.raises(UnknownNameError, match="pool\\+representative"):
    condense_lib.make_config("idc", "fashion_mnist", 10, arm="dream")
  with pytest.raises(InvalidConfigError, match="pretrained"):
    idc.IDCConfig(model_pool=2, pretrained=(__file__,)).check()


def _fast_idc(src, pool_dir, **kw):
  return idc.IDC(src, idc.IDCConfig(
      ipc=1, factor=1, seed=4, arm="pool+representative", model_pool=2, pool_epochs=1,
      pool_dir=pool_dir, representative_every=1, representative_candidates=6,
      **dict(TINY, **kw)))


@pytest.mark.heavy
def test_pool_and_representative_arms_start_from_members_and_match_representatives(
    tmp_path):
  src = quadrant_source(n_per_class=8)
  m = _fast_idc(src, str(tmp_path))
  m.step(0)   # outer iteration 0: a drawn, perturbed member; a refresh
  rows = m.representative.indices.numpy()
  assert all((src.train_labels[r] == c).all() for c, r in enumerate(rows))
  assert "representative" in m.checkpoint_items()
  m.begin_outer(1)
  member = m.pool.draw(base.fold(m._seed, idc.SALT_POOL_DRAW, 1))  # pylint: disable=protected-access
  for v, a in zip(m.model.weights, m.pool.weights(member)):
    # biases and norms as the member stored them, kernels perturbed
    assert np.array_equal(v.numpy(), a) == (len(v.shape) < 2)


@pytest.mark.slow
def test_seeded_fast_runs_agree(tmp_path):
  src = quadrant_source(n_per_class=8)
  images = []
  for _ in range(2):
    m = _fast_idc(src, str(tmp_path))
    engine.run(m, engine.RunOptions(show_progress=False))
    images.append(m.synthetic.images.numpy())
  np.testing.assert_array_equal(images[0], images[1])


def test_kmeans_init_stores_real_medoids_of_each_class():
  from tfcondense import synthetic
  src = quadrant_source(n_per_class=8)
  syn = synthetic.SyntheticSet.initialize(src, 2, init="kmeans", seed=1,
                                          model_options=(("width", 4),))
  images = syn.images.numpy()
  for row, c in enumerate(np.repeat(np.arange(4), 2)):
    match = np.all(src.train_images == images[row], axis=(1, 2, 3))
    assert match.any() and set(src.train_labels[match]) == {c}
  assert len({images[0].tobytes(), images[1].tobytes()}) == 2


@pytest.mark.slow
def test_dm_draws_its_embedders_from_the_pool(tmp_path):
  from tfcondense.methods import dm
  src = quadrant_source(n_per_class=8)
  cfg = condense_lib.make_config("dm", src.name, 1, iterations=2, real_per_class=4,
                                 model_options=(("width", 4),), model_pool=2, pool_epochs=1,
                                 pool_dir=str(tmp_path))
  assert cfg.as_dict()["model_pool"] == 2
  assert "model_pool" not in condense_lib.make_config("dm", "toy", 1).as_dict()
  m = dm.DM(src, cfg)
  m.step(0)
  member = m.pool.draw(base.fold(m._seed, dm.SALT_POOL_DRAW, 0))  # pylint: disable=protected-access
  for v, a in zip(m.model.weights, m.pool.weights(member)):
    assert np.array_equal(v.numpy(), a) == (len(v.shape) < 2)


@pytest.mark.slow
def test_fast_run_is_deterministic_under_op_determinism(tmp_path):
  """Two seeded pool+representative runs in a process with op determinism on (and a
  killed-and-resumed one) end bit-identical."""
  out = tmp_path / "out.npz"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFCONDENSE_PROGRESS="0",
             PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
  subprocess.run([sys.executable, os.path.join(HERE, "fast_worker.py"), str(tmp_path),
                  str(out)], env=env, check=True, timeout=600)
  z = np.load(out)
  np.testing.assert_array_equal(z["a"], z["b"])
  np.testing.assert_array_equal(z["a"], z["resumed"])


def test_feature_mean_distance_by_hand():
  from tfcondense import matching
  real = tf.constant([[1.0, 2.0], [3.0, 4.0]])   # mean (2, 3)
  syn = tf.constant([[0.0, 0.0], [2.0, 2.0]])    # mean (1, 1)
  assert float(matching.feature_mean_distance(real, syn, "l1")) == pytest.approx(3.0)
  assert float(matching.feature_mean_distance(real, syn, "mse")) == pytest.approx(5.0)
  assert float(matching.feature_mean_distance(real, syn, "cos")) == pytest.approx(
      1.0 - 5.0 / (np.sqrt(13.0) * np.sqrt(2.0)), abs=1e-6)
  with tf.GradientTape() as tape:  # no gradient reaches the real batch
    tape.watch([real, syn])
    d = matching.feature_mean_distance(real, syn, "l1")
  g_real, g_syn = tape.gradient(d, [real, syn])
  assert g_real is None
  np.testing.assert_allclose(g_syn.numpy(), np.full((2, 2), -0.5))


def test_dream_plus_term_adds_its_weighted_distance_to_the_matching_loss():
  """IDC with feature_weight w: the class loss is Algorithm 1's plus w times the distance
  of the mean penultimate features of the same augmented real and synthetic batches."""
  from tfcondense import matching
  from tfcondense.models import embedding_model
  src = quadrant_source(n_per_class=8)
  kw = dict(TINY, ipc=1, factor=1, seed=4)
  plain = idc.IDC(src, idc.IDCConfig(**kw))
  dream = idc.IDC(src, idc.IDCConfig(feature_weight=0.5, **kw))
  assert "feature_weight" not in plain.config.as_dict()
  assert dream.config.as_dict()["feature_weight"] == 0.5
  seed = base.fold(dream._seed, 7)  # pylint: disable=protected-access
  variables = dream.synthetic.trainable_variables
  loss_plain, _ = plain.class_match_loss(1, seed, plain.synthetic.trainable_variables)
  loss_dream, grads = dream.class_match_loss(1, seed, variables)
  # The same draw by hand: DSA parameters, real class batch, formed images.
  siamese = dream._siamese  # pylint: disable=protected-access
  params = siamese.sample(1, base.fold(seed, 1))
  real = siamese.apply(dream.real.normalize(
      dream.real.class_batch(1, kw["real_per_class"], base.fold(seed, 2))), params)
  syn = siamese.apply(dream.real.normalize(dream.synthetic.formed_class(1)), params)
  embed = embedding_model(dream.model)
  term = matching.feature_mean_distance(embed(real, training=True),
                                        embed(syn, training=True), "l1")
  assert float(term) > 1e-3 * float(loss_plain)  # large enough to be seen below
  assert float(loss_dream) == pytest.approx(float(loss_plain) + 0.5 * float(term), rel=1e-5)
  assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)
  with pytest.raises(InvalidConfigError, match="feature_weight"):
    idc.IDCConfig(feature_weight=-1.0).check()
