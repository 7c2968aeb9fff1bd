"""KIP: the arc-cosine kernels by hand and by Monte Carlo, the KRR loss by hand, the
loop (loss decreases, traced once, Adam in normalised space), condense and resume."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tfcondense import condensation as condense_lib
from tfcondense import engine, kernels
from tfcondense.errors import CorruptArtifactError, InvalidConfigError
from tfcondense.methods import kip

TINY = dict(target_batch=40, iterations=4)


# -- kernels -------------------------------------------------------------------------------
def test_depth1_kernels_against_hand_computation():
  # x = (1, 0), y = (0, 1): unit 2-d vectors at 90 degrees; weight_var 2, d = 2.
  x = tf.constant([[1.0, 0.0], [0.0, 1.0]], tf.float64)
  # bias_var 0. Layer 0: k0(x, y) = 2 * 0 / 2 = 0, k0(x, x) = 2 * 1 / 2 = 1, Theta_0 = k0.
  # x vs y: cos t = 0 / sqrt(1 * 1) = 0, t = pi / 2:
  #   nngp = 2 / (2 pi) * 1 * (sin(pi/2) + (pi/2) * 0) + 0 = 1 / pi
  #   kdot = 2 / (2 pi) * (pi / 2) = 1 / 2;  ntk = 1 / pi + 0 * 1/2 = 1 / pi
  # x vs x: t = 0:
  #   nngp = 2 / (2 pi) * 1 * (0 + pi * 1) = 1;  kdot = 2 / (2 pi) * pi = 1
  #   ntk = 1 + 1 * 1 = 2
  nngp, ntk = kernels.fc_relu_kernels(x, x, depth=1, weight_var=2.0, bias_var=0.0)
  np.testing.assert_allclose(nngp.numpy(), [[1, 1 / math.pi], [1 / math.pi, 1]], rtol=1e-12)
  np.testing.assert_allclose(ntk.numpy(), [[2, 1 / math.pi], [1 / math.pi, 2]], rtol=1e-12)

  # bias_var 0.1: k0(x, y) = 0.1, k0(x, x) = 1.1, so cos t = 0.1 / 1.1 = 1 / 11,
  # sin t = sqrt(1 - 1/121) = sqrt(120) / 11:
  #   nngp(x, y) = 1/pi * 1.1 * (sqrt(120)/11 + (pi - t)/11) + 0.1
  #              = 0.1/pi * (sqrt(120) + pi - t) + 0.1
  #   ntk(x, y)  = nngp(x, y) + 0.1 * (pi - t) / pi           (Theta_0 = 0.1, kdot = (pi - t)/pi)
  #   nngp(x, x) = 1/pi * 1.1 * pi + 0.1 = 1.2;  ntk(x, x) = 1.2 + 1.1 * 1 = 2.3
  t = math.acos(1 / 11)
  off = 0.1 / math.pi * (math.sqrt(120) + math.pi - t) + 0.1
  nngp, ntk = kernels.fc_relu_kernels(x, x, depth=1, weight_var=2.0, bias_var=0.1)
  np.testing.assert_allclose(nngp.numpy(), [[1.2, off], [off, 1.2]], rtol=1e-12)
  off_ntk = off + 0.1 * (math.pi - t) / math.pi
  np.testing.assert_allclose(ntk.numpy(), [[2.3, off_ntk], [off_ntk, 2.3]], rtol=1e-12)
  # The registry's functions are the same kernels.
  np.testing.assert_allclose(kernels.KERNELS.get("ntk")(x, x, depth=1, bias_var=0.1).numpy(),
                             ntk.numpy())
  # depth 0: the readout's linear kernel, NTK = NNGP.
  lin, lin_ntk = kernels.fc_relu_kernels(x, x, depth=0, weight_var=2.0, bias_var=0.1)
  np.testing.assert_allclose(lin.numpy(), [[1.1, 0.1], [0.1, 1.1]], rtol=1e-12)
  np.testing.assert_allclose(lin_ntk.numpy(), lin.numpy())


def _points(n=12, d=20, seed=0, dtype=np.float64):
  x = np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)
  x[3] = 2.5 * x[2]   # same direction, other norm (theta = 0 off the diagonal)
  x[4] = x[2]         # a duplicate
  return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_symmetric_psd_and_cross_consistent(dtype):
  x = _points(dtype=dtype)
  for depth in (1, 3):
    nngp, ntk = kernels.fc_relu_kernels(x, x, depth)
    for k in (nngp.numpy().astype(np.float64), ntk.numpy().astype(np.float64)):
      assert k.dtype == np.float64
      np.testing.assert_allclose(k, k.T, rtol=1e-5)
      eig = np.linalg.eigvalsh((k + k.T) / 2)
      assert eig.min() >= -1e-5 * max(1.0, eig.max())
    # A cross kernel equals the block of the joint kernel (diagonals per side).
    _, cross = kernels.fc_relu_kernels(x[:5], x[5:], depth)
    np.testing.assert_allclose(cross.numpy(), ntk.numpy()[:5, 5:], rtol=1e-5)
  # Rank > 2 inputs are flattened.
  img = tf.reshape(tf.constant(x), [12, 2, 5, 2])
  np.testing.assert_allclose(kernels.ntk_fc(img, img).numpy(), kernels.ntk_fc(x, x).numpy())


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_kernel_gradient_finite_at_identical_inputs(dtype):
  x = tf.constant(_points(n=5, dtype=dtype.as_numpy_dtype))
  for name in ("ntk", "nngp"):
    with tf.GradientTape() as tape:
      tape.watch(x)
      k = kernels.KERNELS.get(name)(x, x, depth=3)
      y = tf.reduce_sum(k) + tf.reduce_sum(kernels.KERNELS.get(name)(x, x[:1], depth=3))
    g = tape.gradient(y, x).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0
  # Zero inputs with bias_var 0 do not divide by zero either.
  z = tf.zeros([2, 3], dtype)
  with tf.GradientTape() as tape:
    tape.watch(z)
    k = kernels.ntk_fc(z, z, depth=2, bias_var=0.0)
  assert np.all(np.isfinite(k.numpy())) and np.all(np.isfinite(tape.gradient(k, z).numpy()))


def _wide_net_kernels(x, depth, width, weight_var, bias_var, seed):
  """Empirical NNGP (readout covariance over hidden units) and NTK (parameter-gradient
  inner products) of ONE wide ReLU network in the NTK parameterisation, float64."""
  rng = np.random.default_rng(seed)
  sw, sb = math.sqrt(weight_var), math.sqrt(bias_var)
  params = []
  fan_in = x.shape[1]
  for _ in range(depth):
    params += [rng.normal(size=(fan_in, width)), rng.normal(size=(width,))]
    fan_in = width
  params += [rng.normal(size=(fan_in, 1)), rng.normal(size=(1,))]
  params = [tf.Variable(p) for p in params]

  def forward(inp):
    h = tf.constant(inp)
    for i in range(0, len(params), 2):
      if i:
        h = tf.nn.relu(h)
      last = h
      h = sw * h @ params[i] / math.sqrt(float(h.shape[1])) + sb * params[i + 1]
    return h[:, 0], last

  _, last = forward(x)
  nngp = weight_var * (last @ tf.transpose(last)).numpy() / width + bias_var
  jac = []
  for row in x:
    with tf.GradientTape() as tape:
      f, _ = forward(row[None])
    jac.append(np.concatenate([g.numpy().ravel() for g in tape.gradient(f, params)]))
  jac = np.stack(jac)
  return nngp, jac @ jac.T


@pytest.mark.parametrize("depth,width,tol", [(1, 20000, 0.03), (2, 1500, 0.05)])
def test_kernels_match_wide_random_relu_networks(depth, width, tol):
  # Averaged over 4 networks; the finite-width error is O(1 / sqrt(width)) per layer.
  x = _points(n=5, d=6, seed=1)
  nngp, ntk = kernels.fc_relu_kernels(x, x, depth, weight_var=2.0, bias_var=0.1)
  emp = [_wide_net_kernels(x, depth, width, 2.0, 0.1, seed=s) for s in range(4)]
  emp_nngp, emp_ntk = np.mean([e[0] for e in emp], 0), np.mean([e[1] for e in emp], 0)
  assert np.abs(emp_nngp - nngp.numpy()).max() < tol * np.abs(nngp.numpy()).max()
  assert np.abs(emp_ntk - ntk.numpy()).max() < tol * np.abs(ntk.numpy()).max()


# -- the KRR loss --------------------------------------------------------------------------
def test_krr_loss_against_hand_computation():
  # 2 support points, 1 target, one output:
  # K_ss = [[2, 1], [1, 2]], k_ts = [1, 0.5], y_s = [1, -1], y_t = 1.
  k_ss = tf.constant([[2.0, 1.0], [1.0, 2.0]], tf.float64)
  k_ts = tf.constant([[1.0, 0.5]], tf.float64)
  y_s = tf.constant([[1.0], [-1.0]], tf.float64)
  y_t = tf.constant([[1.0]], tf.float64)
  # reg 0: K_ss^-1 = 1/3 [[2, -1], [-1, 2]], alpha = 1/3 [3, -3] = [1, -1],
  # pred = 1 * 1 + 0.5 * -1 = 0.5, loss = 1/2 * (1 - 0.5)^2 = 0.125.
  loss, _ = kip.krr_loss(k_ss, k_ts, y_s, y_t, 0.0)
  assert float(loss) == pytest.approx(0.125, rel=1e-6)
  # reg 0.5: + 0.5 * tr(K_ss) / 2 = 1 on the diagonal: [[3, 1], [1, 3]]^-1 =
  # 1/8 [[3, -1], [-1, 3]], alpha = 1/8 [4, -4] = [0.5, -0.5],
  # pred = 0.5 - 0.25 = 0.25, loss = 1/2 * 0.75^2 = 0.28125.
  loss, _ = kip.krr_loss(k_ss, k_ts, y_s, y_t, 0.5)
  assert float(loss) == pytest.approx(0.28125, rel=1e-6)
  # Two outputs: the mean runs over every target entry (the reference's 0.5 * mean).
  y2_s = tf.concat([y_s, -y_s], 1)
  y2_t = tf.constant([[1.0, 0.0]], tf.float64)   # preds 0.5 and -0.5
  loss, acc = kip.krr_loss(k_ss, k_ts, y2_s, y2_t, 0.0)
  assert float(loss) == pytest.approx(0.5 * (0.25 + 0.25) / 2, rel=1e-6)
  assert float(acc) == 1.0


def test_centered_labels():
  y = kip.centered_one_hot([0, 2], 4).numpy()
  np.testing.assert_allclose(y, [[0.75, -0.25, -0.25, -0.25], [-0.25, -0.25, 0.75, -0.25]])


# -- the method ----------------------------------------------------------------------------
def _kip(src, **kw):
  return kip.KIP(src, kip.KIPConfig(**dict(dict(ipc=2, target_batch=40), **kw)))


def _full_loss(m, src):
  y = kip.centered_one_hot(src.train_labels, src.num_classes)
  return float(m.loss(m.synthetic.images, m.label_matrix(), src.train_images, y)[0])


@pytest.mark.heavy
def test_loss_decreases_and_the_step_is_traced_once():
  src = quadrant_source()
  m = _kip(src, iterations=20)
  before = _full_loss(m, src)
  losses = [float(m.step(s)["loss"]) for s in range(20)]
  after = _full_loss(m, src)
  assert after < 0.5 * before
  assert np.mean(losses[-3:]) < np.mean(losses[:3])
  assert m._step_fn.experimental_get_tracing_count() == 1  # pylint: disable=protected-access


def test_test_accuracy_is_the_kernel_regression_on_the_test_set():
  src = quadrant_source()
  m = _kip(src)
  # The test set as its own support: KRR with a tiny ridge interpolates it.
  assert m.test_accuracy(src.test_images, kip.centered_one_hot(src.test_labels, 4)) == 100.0
  # Hand-rolled KRR over the whole test set in one block = the batched method.
  xs = m.real.normalize(m.synthetic.images)
  xt = m.real.normalize(tf.constant(src.test_images))
  pred = kip.krr_predict(m.kernel(xs, xs), m.kernel(xt, xs), m.label_matrix(), m.config.reg)
  expected = 100.0 * np.mean(np.argmax(pred.numpy(), 1) == src.test_labels)
  assert m.test_accuracy(batch_size=7) == pytest.approx(expected)
  # Labels that name the wrong class (shifted by one) score what they should: nothing
  # above chance on a task the right labels solve.
  assert m.test_accuracy() >= 90.0
  wrong = kip.centered_one_hot((m.synthetic.labels.numpy() + 1) % 4, 4)
  assert m.test_accuracy(label_matrix=wrong) <= 10.0
  with pytest.raises(InvalidConfigError, match="batch_size"):
    m.test_accuracy(batch_size=0)
  with pytest.raises(InvalidConfigError, match="label rows"):
    m.test_accuracy(src.test_images[:3])


def test_restore_last_reads_the_runs_state(tmp_path):
  src = quadrant_source()
  fresh = _kip(src)
  assert engine.restore_last(fresh, str(tmp_path)) is None   # no checkpoint: untouched
  ran = _kip(src)
  engine.run(ran, engine.RunOptions(workdir=str(tmp_path), max_steps=3, checkpoint_seconds=0,
                                    show_progress=False))
  assert engine.restore_last(fresh, str(tmp_path)) == 3
  np.testing.assert_array_equal(fresh.synthetic.images.numpy(), ran.synthetic.images.numpy())
  other = _kip(src, ipc=3)   # a method of other shapes cannot take this state
  with pytest.raises(CorruptArtifactError, match="cannot restore"):
    engine.restore_last(other, str(tmp_path))


def test_first_adam_step_is_lr_in_normalised_units():
  # Adam's first step moves every coordinate by ~lr; in pixels that is lr * std.
  src = quadrant_source()
  m = _kip(src, lr_img=0.01)
  x0 = m.synthetic.images.numpy().copy()
  m.step(0)
  delta = np.abs(m.synthetic.images.numpy() - x0)
  moved = delta[delta > 0]
  assert moved.size > 0.9 * delta.size
  np.testing.assert_allclose(np.median(moved), 0.01 * src.std[0], rtol=0.05)
  assert moved.max() <= 0.01 * src.std[0] * 1.0001


@pytest.mark.parametrize("kw", [dict(init="noise"), dict(init="random", kernel="nngp",
                                                         depth=2, float64=True,
                                                         target_sampling="uniform")])
def test_inits_kernels_and_sampling_run(kw):
  src = quadrant_source()
  m = _kip(src, **kw)
  x0 = m.synthetic.images.numpy().copy()
  out = [m.step(s) for s in range(2)]
  assert all(np.isfinite(float(o["loss"])) for o in out)
  assert not np.array_equal(x0, m.synthetic.images.numpy())
  if kw["init"] == "noise":
    assert x0.min() >= 0 and x0.max() <= 1 and np.abs(x0 - src.train_images[0]).max() > 0.1


def test_balanced_target_batch_has_every_class():
  src = quadrant_source()
  m = _kip(src)
  x, y = m.target_batch(tf.constant([1, 2], tf.int64))
  assert x.shape == (40, 16, 16, 1)
  assert np.bincount(np.argmax(y.numpy(), 1)).tolist() == [10] * 4


def test_learn_labels_changes_only_the_label_matrix_it_should():
  src = quadrant_source()
  fixed = _kip(src)
  learnt = _kip(src, learn_labels=True, lr_labels=0.05)
  y0 = learnt.label_matrix().numpy().copy()
  for s in range(3):
    fixed.step(s)
    learnt.step(s)
  np.testing.assert_array_equal(fixed.label_matrix().numpy(), y0)
  assert np.abs(learnt.label_matrix().numpy() - y0).max() > 0.01
  # The artifact keeps the hard class-major labels.
  assert learnt.synthetic.numpy()[1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


def test_config_checks():
  src = quadrant_source()
  for bad in (dict(kernel="rbf"), dict(init="nope"), dict(depth=-1), dict(reg=-1.0),
              dict(lr_img=0.0), dict(target_sampling="stratified")):
    with pytest.raises(InvalidConfigError):
      _kip(src, **bad)
  with pytest.raises(InvalidConfigError, match="target_sampling='uniform'"):
    _kip(src, target_batch=3)
  cfg = condense_lib.make_config("kip", "fashion_mnist", 10)   # registered on import
  assert (cfg.depth, cfg.kernel, cfg.lr_img, cfg.reg) == (1, "ntk", 0.01, 1e-6)


@pytest.mark.heavy
def test_condense_writes_artifact_and_resumes(tmp_path):
  src = quadrant_source()
  opts = engine.RunOptions(workdir=str(tmp_path / "w"), show_progress=False, max_steps=2)
  r1 = condense_lib.condense("kip", src, 2, options=opts, **TINY)
  assert (r1.run.steps, r1.run.stopped) == (2, "max_steps")
  r2 = condense_lib.condense("kip", src, 2, options=engine.RunOptions(
      workdir=str(tmp_path / "w"), show_progress=False), **TINY)
  assert (r2.run.resumed_from, r2.run.steps, r2.run.stopped) == (2, 4, "done")
  art = r2.artifact
  assert art.images.shape == (8, 16, 16, 1) and art.images.min() >= 0 and art.images.max() <= 1
  assert art.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
  assert art.meta["method"] == "kip" and art.meta["config"]["kernel"] == "ntk"
  assert os.path.exists(os.path.join(r2.artifact_dir, "images.npy"))
  # The resumed run ends where an uninterrupted one does (state = images + Adam slots).
  r3 = condense_lib.condense("kip", src, 2, options=engine.RunOptions(
      workdir=str(tmp_path / "straight"), show_progress=False), **TINY)
  np.testing.assert_allclose(r3.artifact.images, art.images, atol=1e-6)
