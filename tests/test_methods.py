"""DC, DSA and DM: losses on tiny tensors, loops, init paths, short condensations."""
import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tfcondense import condensation as condense_lib
from tfcondense import engine
from tfcondense import evaluation as ev
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import dc, dm


def test_dm_mean_embedding_distance_by_hand():
  # Identity "embedding" on 1x1x2 images: the loss is ||mean(real) - mean(syn)||^2.
  embed = lambda x, training=False: tf.reshape(x, [tf.shape(x)[0], -1])  # noqa: E731
  real = tf.constant([[1.0, 2.0], [3.0, 4.0]])[:, None, None, :]   # mean (2, 3)
  syn = tf.constant([[0.0, 1.0]])[:, None, None, :]                  # mean (0, 1)
  assert float(dm.mean_embedding_distance(embed, real, syn)) == pytest.approx(4.0 + 4.0)


def test_dm_loss_is_zero_for_identical_sets_and_shares_the_draw():
  src = quadrant_source(n_per_class=4)
  m = dm.DM(src, dm.DMConfig(ipc=4, real_per_class=4, iterations=1))
  seed = tf.constant([1, 2], tf.int64)
  assert float(m.class_loss(0, seed)) < 1e-8   # the whole class, same draw: equal means
  sample = m._siamese.sample  # pylint: disable=protected-access
  m._siamese.sample = lambda n, s: sample(4, s)  # per-sample draws break the symmetry
  assert float(m.class_loss(0, seed)) > 1e-4


def test_dc_loops_follow_the_papers_and_extend_sensibly():
  assert [dc.loops_for(i) for i in (1, 10, 20, 30, 40, 50)] == [
      (1, 1), (10, 50), (20, 25), (30, 20), (40, 15), (50, 10)]
  assert dc.loops_for(5) == (5, 50) and dc.loops_for(100) == (50, 5)
  assert dc.loops_for(1000) == (50, 1)


def test_dc_matching_loss_zero_for_identical_sets():
  # mse, because DC's cosine adds 1e-6 to each norm product, so near-zero channels of
  # identical gradients still contribute (as in the reference).
  src = quadrant_source(n_per_class=4)
  for strategy in ("none", dc.DSA_STRATEGY):
    m = dc.DC(src, dc.DCConfig(ipc=4, real_per_class=4, iterations=1, strategy=strategy,
                               metric="mse"))
    assert float(m.class_match_loss(2, tf.constant([5, 6], tf.int64))) < 1e-9


def test_registered_names_and_defaults():
  assert condense_lib.make_config("dsa", "fashion_mnist", 10).strategy == dc.DSA_STRATEGY
  assert condense_lib.make_config("dc", "fashion_mnist", 10).strategy == "none"
  cfg = condense_lib.make_config("dm_mf", "fashion_mnist", 10)
  assert (cfg.factor, cfg.formation, cfg.init) == (2, "uniform", "mix")
  with pytest.raises(InvalidConfigError):
    condense_lib.make_config("dm", "fashion_mnist", 10, lr_img=-1.0)


def _accuracy(images, labels, src):
  proto = ev.get_protocol("smoke", steps=60, num_evals=1, augmentation="none", cutmix_prob=0.0)
  return ev.evaluate(images, labels, src, protocol=proto, repetitions=1,
                     show_progress=False).best_mean


@pytest.mark.parametrize("method,kw", [
    ("dm", dict(iterations=40, real_per_class=20)),
    ("dm_mf", dict(iterations=40, real_per_class=20)),
    ("dc", dict(iterations=3, real_per_class=20)),
    ("dsa", dict(iterations=3, real_per_class=20)),
])
@pytest.mark.heavy
def test_short_condensation_improves_on_noise_init(method, kw, tmp_path):
  src = quadrant_source()
  res = condense_lib.condense(method, src, 1, init="noise", options=engine.RunOptions(
      workdir=str(tmp_path), show_progress=False), **kw)
  from tfcondense import synthetic
  fx, fy = synthetic.formed_from_artifact(res.artifact)
  start = condense_lib.make_config(method, src.name, 1, init="noise", **kw)
  noise = synthetic.SyntheticSet.initialize(src, 1, init="noise", seed=start.seed)
  before = _accuracy(*noise.numpy(), src)
  after = _accuracy(fx, fy, src)
  assert after >= before + 20, (before, after)


@pytest.mark.heavy
@pytest.mark.parametrize("init", ["random", "kcenter"])
def test_init_paths(init, tmp_path):
  src = quadrant_source()
  m = dm.DM(src, dm.DMConfig(ipc=2, init=init, iterations=1),
            init_options={"cache_dir": str(tmp_path)})
  imgs = m.synthetic.images.numpy()
  # Real images of the right class: the class's bright quadrant is the brightest one.
  for c in range(4):
    x = imgs[m.synthetic.labels.numpy() == c].mean(axis=(0, 3))
    q = [x[:8, :8].mean(), x[:8, 8:].mean(), x[8:, :8].mean(), x[8:, 8:].mean()]
    assert int(np.argmax(q)) == c


@pytest.mark.heavy
def test_fresh_networks_differ_between_iterations():
  from tfcondense.methods import base
  seeds = {base.fresh_seed(0, 0x0E7, i) for i in range(50)}
  assert len(seeds) == 50
  src = quadrant_source()
  m = dm.DM(src, dm.DMConfig(ipc=1, iterations=3, real_per_class=8))
  kernels = []
  for s in range(2):
    m.step(s)
    kernels.append(m.model.get_layer("conv0").kernel.numpy().copy())
  assert not np.allclose(kernels[0], kernels[1])


def test_normalised_lr_makes_a_pixel_step_the_references_normalised_step():
  # The references (DC/DSA, DM, MTT, IDC on speech) step z = (x - mean) / std with lr;
  # we store x. One step on x with base.normalised_lr must land on the same z.
  from tfcondense.methods import base
  mean, std, lr = (0.3, 0.5), (0.2, 0.4), 0.7
  x0 = tf.random.stateless_uniform([2, 3, 3, 2], [1, 2])
  w = tf.random.stateless_normal([2, 3, 3, 2], [3, 4])
  loss = lambda z: tf.reduce_sum(tf.sin(z) * w)  # noqa: E731
  z = tf.Variable((x0 - mean) / std)
  with tf.GradientTape() as tape:
    lz = loss(z)
  z_ref = z - lr * tape.gradient(lz, z)
  x = tf.Variable(x0)
  with tf.GradientTape() as tape:
    lx = loss((x - mean) / std)
  gx = tape.gradient(lx, x)
  x_new = x - base.normalised_lr(lr, std) * gx
  np.testing.assert_allclose((x_new - mean) / std, z_ref, rtol=1e-5, atol=1e-5)
  assert not np.allclose((x - lr * gx - mean) / std, z_ref, atol=1e-2)  # the unscaled step


@pytest.mark.heavy
@pytest.mark.parametrize("method", ["dm", "dc"])
def test_dm_and_dc_step_the_pixels_by_lr_times_std_squared(method):
  src = quadrant_source(n_per_class=4)   # std 0.3
  from tfcondense.methods import base
  if method == "dm":
    m = dm.DM(src, dm.DMConfig(ipc=2, real_per_class=4, iterations=1, lr_img=1.0))
    seed = base.fold(m._seed, tf.constant(0, tf.int64))  # pylint: disable=protected-access
    loss_fn = lambda: tf.add_n([m.class_loss(c, base.fold(seed, c)) for c in range(4)])  # noqa
    step = lambda: m._step_fn(tf.constant(0, tf.int64))  # noqa: E731  pylint: disable=protected-access
  else:
    m = dc.DC(src, dc.DCConfig(ipc=2, real_per_class=4, iterations=1, lr_img=1.0))
    seed = base.fold(m._seed, tf.constant(0, tf.int64), tf.constant(0, tf.int64), 1)  # pylint: disable=protected-access
    loss_fn = lambda: tf.add_n([m.class_match_loss(c, base.fold(seed, c)) for c in range(4)])  # noqa
    step = lambda: m._match_fn(tf.constant(0, tf.int64), tf.constant(0, tf.int64))  # noqa: E731  pylint: disable=protected-access
  before = tf.identity(m.synthetic.images)
  with tf.GradientTape() as tape:
    loss = loss_fn()
  grad = tape.gradient(loss, m.synthetic.images)
  step()
  moved = m.synthetic.images - before
  # First step from zero momentum: x -= lr * std^2 * grad (0.09 x grad, not 1 x grad).
  np.testing.assert_allclose(moved, -0.09 * tf.convert_to_tensor(grad), rtol=1e-3, atol=1e-7)
  assert float(tf.reduce_max(tf.abs(moved))) > 0
