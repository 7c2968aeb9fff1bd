"""IDC: the matching loss by hand, siamese sharing, the loop, resume, NaN, budget."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tests import apprun
from tfcondense import condensation as condense_lib
from tfcondense import engine, matching
from tfcondense.errors import InvalidConfigError, NonFiniteLossError
from tfcondense.methods import base, idc

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = dict(outer_iterations=2, inner_iterations=2, real_per_class=8, n_data=16, net_batch=8)


def _softmax(z):
  e = np.exp(z - z.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def test_match_loss_against_hand_computation():
  # Tiny net: a 1x1 convolution from 1 channel to 2 logits on 1x1 images, no bias.
  import keras
  inp = keras.Input((1, 1, 1))
  out = keras.layers.Flatten()(keras.layers.Conv2D(2, 1, use_bias=False)(inp))
  model = keras.Model(inp, out)
  w = np.array([0.7, -0.3], np.float32)
  model.layers[1].kernel.assign(w.reshape(1, 1, 1, 2))
  xr = np.array([1.0, 2.0, -1.0], np.float32)
  xs = np.array([0.5, -2.0], np.float32)
  y = 1

  def grads(x):
    with tf.GradientTape() as tape:
      logits = model(x.reshape(-1, 1, 1, 1))
      loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
          tf.fill([len(x)], y), logits))
    return tape.gradient(loss, matching.matched_variables(model))

  def hand(x):  # dL/dw_k = mean_n x_n (softmax_k(x_n w) - [k == y])
    p = _softmax(x[:, None] * w[None, :])
    onehot = np.eye(2)[[y] * len(x)]
    return (x[:, None] * (p - onehot)).mean(0)

  gr, gs = hand(xr), hand(xs)
  got = {m: float(matching.match_loss(grads(xr), grads(xs), m)) for m in ("l1", "mse", "cos")}
  assert got["l1"] == pytest.approx(np.abs(gr - gs).sum(), rel=1e-5)
  assert got["mse"] == pytest.approx(((gr - gs) ** 2).sum(), rel=1e-5)
  # cos: one input feature per output channel, so each channel's cosine is the sign of
  # gr * gs: 0 where the signs agree, 2 where they differ.
  for x2 in (xs, np.array([-2.0, -1.0], np.float32)):
    gs = hand(x2)
    expect = sum(1 - gr[k] * gs[k] / (abs(gr[k]) * abs(gs[k]) + 1e-6) for k in range(2))
    assert float(matching.match_loss(grads(xr), grads(x2), "cos")) == pytest.approx(
        expect, abs=1e-5)
  assert expect > 1.0  # the second batch flips the signs: the check is not vacuous


def test_cos_distance_per_output_channel():
  a = tf.constant([[1.0, 0.0], [0.0, 1.0]])   # [in, out]: channel 0 = (1, 0), 1 = (0, 1)
  b = tf.constant([[2.0, 1.0], [0.0, 0.0]])   # channel 0 = (2, 0) parallel, 1 = (1, 0) orthogonal
  assert float(matching.cos(a, b)) == pytest.approx(1.0, abs=1e-5)


def test_matched_variables_are_conv_kernels():
  from tfcondense.models import build_model
  model = build_model("convnet3", (16, 16, 1), 4)
  names = [v.path for v in matching.matched_variables(model)]
  assert len(names) == 3 and all("conv" in n and "kernel" in n for n in names)
  assert len(matching.matched_variables(model, "all")) == len(model.trainable_variables)


def _idc(src, **kw):
  cfg = idc.IDCConfig(**dict(TINY, **kw))
  return idc.IDC(src, cfg)


def test_siamese_draw_is_shared_between_real_and_synthetic():
  # With every real image of a class stored unchanged (identity formation, all 4
  # images), the real and synthetic batches hold the same images: a shared draw gives
  # identical gradients (loss ~ 0); independent draws would not.
  src = quadrant_source(n_per_class=4)
  m = _idc(src, ipc=4, factor=1, real_per_class=4, init="random")
  seed = tf.constant([3, 4], tf.int64)
  loss, grads = m.class_match_loss(1, seed, m.synthetic.trainable_variables)
  aug = m._siamese  # pylint: disable=protected-access
  sample = aug.sample
  aug.sample = lambda n, s: sample(4, s)  # per-sample draws: the bug this test catches
  try:
    broken, _ = m.class_match_loss(1, seed, m.synthetic.trainable_variables)
  finally:
    aug.sample = sample
  assert float(loss) < 1e-3 * float(broken)
  assert grads[0] is not None


def test_matching_gradient_reaches_every_stored_pixel_through_formation():
  src = quadrant_source()
  m = _idc(src, ipc=2, factor=2, strategy="none")
  _, grads = m.class_match_loss(2, tf.constant([1, 2], tf.int64),
                                m.synthetic.trainable_variables)
  g = tf.convert_to_tensor(grads[0]).numpy()
  rows = m.synthetic.class_rows(2).numpy()
  assert np.all(g[rows] != 0)
  others = np.setdiff1d(np.arange(len(g)), rows)
  assert np.all(g[others] == 0)


def test_config_defaults_follow_the_reference():
  cfg = condense_lib.make_config("idc", "fashion_mnist", 10)
  assert (cfg.factor, cfg.formation, cfg.init, cfg.metric) == (2, "uniform", "mix", "l1")
  assert cfg.lr_img == pytest.approx(1e-4) and cfg.net_steps == 8
  cfg = condense_lib.make_config("idc_i", "cifar10", 50)
  assert (cfg.factor, cfg.formation, cfg.init, cfg.metric) == (1, "identity", "random", "mse")
  assert cfg.lr_img == pytest.approx(5e-3 * 5) and cfg.net_steps == 32
  with pytest.raises(InvalidConfigError, match="no setting"):
    condense_lib.make_config("idc", "fashion_mnist", 10, lr=1.0)


@pytest.mark.heavy
def test_condense_writes_artifact_grid_and_meta(tmp_path):
  src = quadrant_source()
  res = condense_lib.condense(
      "idc", src, 2, options=engine.RunOptions(workdir=str(tmp_path / "w"),
                                               show_progress=False), **TINY)
  art = res.artifact
  assert art.images.shape == (8, 16, 16, 1) and art.images.min() >= 0 and art.images.max() <= 1
  assert art.meta["budget"]["steps"] == 4 and art.meta["budget"]["stopped"] == "done"
  assert art.meta["storage"]["formed_images"] == 32
  assert art.meta["storage"]["stored_pixels"] == 8 * 16 * 16
  assert os.path.exists(res.grid_png) and os.path.exists(res.formed_png)
  assert os.path.exists(tmp_path / "w" / "tensorboard")
  from tfcondense import synthetic
  from tfcondense.artifact import load_artifact
  fx, fy = synthetic.formed_from_artifact(load_artifact(res.artifact_dir))
  assert fx.shape == (32, 16, 16, 1) and np.bincount(fy).tolist() == [8] * 4


@pytest.mark.heavy
def test_learnable_formation_weights_are_trained_and_saved(tmp_path):
  src = quadrant_source()
  res = condense_lib.condense(
      "idc", src, 1, formation="learnable", lr_formation=1e-2,
      options=engine.RunOptions(workdir=str(tmp_path / "w"), show_progress=False), **TINY)
  from tfcondense.artifact import load_artifact
  art = load_artifact(res.artifact_dir)
  assert art.weights and any(np.abs(v).sum() > 0 for k, v in art.weights.items())
  assert art.meta["storage"]["parameters"] > 0


@pytest.mark.heavy
def test_resume_refuses_other_settings(tmp_path):
  src = quadrant_source()
  opts = engine.RunOptions(workdir=str(tmp_path), show_progress=False, max_steps=1)
  condense_lib.condense("idc", src, 1, options=opts, **TINY)
  with pytest.raises(InvalidConfigError, match="different settings"):
    condense_lib.condense("idc", src, 2, options=opts, **TINY)


@pytest.mark.heavy
def test_max_steps_then_resume_continues(tmp_path):
  src = quadrant_source()
  opts = engine.RunOptions(workdir=str(tmp_path), show_progress=False, max_steps=1)
  r1 = condense_lib.condense("idc_i", src, 1, options=opts, **TINY)
  assert (r1.run.steps, r1.run.stopped) == (1, "max_steps")
  r2 = condense_lib.condense("idc_i", src, 1, options=engine.RunOptions(
      workdir=str(tmp_path), show_progress=False), **TINY)
  assert (r2.run.resumed_from, r2.run.steps, r2.run.stopped) == (1, 4, "done")


@pytest.mark.heavy
def test_minutes_budget_stops_cleanly(tmp_path):
  src = quadrant_source()
  res = condense_lib.condense("idc_i", src, 1, options=engine.RunOptions(
      workdir=str(tmp_path), show_progress=False, minutes=1e-6), **TINY)
  assert res.run.stopped == "budget" and res.run.steps == 1
  assert os.path.exists(os.path.join(res.artifact_dir, "images.npy"))


@pytest.mark.heavy
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  src = quadrant_source()
  cfg = idc.IDCConfig(ipc=1, factor=1, **TINY)
  method = idc.IDC(src, cfg)
  opts = engine.RunOptions(workdir=str(tmp_path), show_progress=False, checkpoint_seconds=0)
  engine.run(method, dataclasses_replace(opts, max_steps=1))
  good = method.synthetic.images.numpy().copy()
  step = method.step

  def poisoned(s):  # the data diverge after the restore
    method.synthetic.images.assign(tf.fill(method.synthetic.images.shape, float("inf")))
    return step(s)

  method.step = poisoned
  with pytest.raises(NonFiniteLossError, match="last good state"):
    engine.run(method, opts)
  fresh = idc.IDC(src, cfg)
  r = engine.run(fresh, dataclasses_replace(opts, max_steps=1))
  assert r.resumed_from == 1
  np.testing.assert_array_equal(fresh.synthetic.images.numpy(), good)


def dataclasses_replace(obj, **kw):
  import dataclasses
  return dataclasses.replace(obj, **kw)


def _worker(workdir, out, extra=()):
  cmd = [sys.executable, os.path.join(HERE, "resume_worker.py"), workdir, out, *extra]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFCONDENSE_PROGRESS="0",
             PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), HERE]))
  return cmd, env


@pytest.mark.heavy
def test_killed_run_resumes_to_the_same_artifact(tmp_path):
  """A run SIGKILLed mid-way and restarted ends bit-identical to an uninterrupted one
  (the run to kill is a fresh interpreter; the others are forked, tests/apprun.py)."""
  cmd, env = _worker(str(tmp_path / "a"), str(tmp_path / "a.npy"))
  done = apprun.run_script(*cmd[1:], env=env)
  assert done.returncode == 0, done.stderr
  cmd, env = _worker(str(tmp_path / "b"), str(tmp_path / "b.npy"))
  proc = subprocess.Popen(cmd, env=env)
  state = tmp_path / "b" / "checkpoints" / "checkpoint"
  deadline = time.time() + 240
  killed_at = None
  while time.time() < deadline and proc.poll() is None:
    if state.exists() and "ckpt-3" in state.read_text():  # mid-way through 2 x 3 steps
      proc.send_signal(signal.SIGKILL)
      killed_at = state.read_text()
      break
    time.sleep(0.05)
  proc.wait(timeout=60)
  assert killed_at is not None, "the worker finished before it could be killed"
  assert not (tmp_path / "b.npy").exists()
  done = apprun.run_script(*cmd[1:], env=env)
  assert done.returncode == 0, done.stderr
  with open(tmp_path / "b" / "resumed.json") as f:
    assert json.load(f)["resumed_from"] >= 3
  np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.heavy
def test_pretrained_networks_start_each_outer_iteration(tmp_path):
  src = quadrant_source()
  paths = idc.save_pretrained(src, str(tmp_path), count=2, steps=3,
                              config=idc.IDCConfig(**TINY))
  assert len(paths) == 2 and all(os.path.exists(p) for p in paths)
  m = _idc(src, ipc=1, pretrained=tuple(paths))
  fresh = _idc(src, ipc=1)
  for outer in (0, 1, 2):
    m.begin_outer(outer)
    fresh.begin_outer(outer)
    w = [v.numpy() for v in m.model.trainable_variables]
    trained_away = any(not np.allclose(a, b.numpy())
                       for a, b in zip(w, fresh.model.trainable_variables))
    assert trained_away  # the pretrained weights differ from the fresh initialisation
    probe = _idc(src, ipc=1)
    probe.model.load_weights(paths[outer % 2])
    for a, b in zip(w, probe.model.trainable_variables):
      np.testing.assert_array_equal(a, b.numpy())
  with pytest.raises(InvalidConfigError, match="not found"):
    _idc(src, ipc=1, pretrained=(str(tmp_path / "nope.weights.h5"),))


def test_bound_formation_feeds_every_stored_image_to_matching():
  # ipc 6, f 2, cap 16: the reference bound schedule forms fewer than ipc * 4 = 24 and
  # every stored image still gets a gradient.
  src = quadrant_source()
  m = _idc(src, ipc=6, factor=2, formation="bound", strategy="none",
           formation_options=(("max_per_class", 16),), max_formed_per_class=16)
  _, grads = m.class_match_loss(0, tf.constant([1, 2], tf.int64),
                                m.synthetic.trainable_variables)
  g = tf.convert_to_tensor(grads[0]).numpy()
  assert np.all(np.abs(g[:6]).reshape(6, -1).sum(1) > 0)


def test_factor_defaults_to_the_sources():
  assert condense_lib.make_config("idc", "imagenet_subset", 10).factor == 3
  assert condense_lib.make_config("idc", "cifar10", 10).factor == 2
  assert condense_lib.make_config("idc_i", "imagenet_subset", 10).factor == 1
  assert condense_lib.make_config("idc", "cifar10", 10, factor=4).factor == 4


def test_speech_defaults_split_along_time_with_convnet4():
  cfg = condense_lib.make_config("idc", "speech_commands", 10)
  assert (cfg.formation, cfg.factor, cfg.model) == ("time", 2, "convnet4")
  assert cfg.lr_net == pytest.approx(3e-4)  # the reference's speech network lr
  fashion = condense_lib.make_config("idc", "fashion_mnist", 10)
  assert (fashion.model, fashion.lr_net) == ("convnet3", 0.01)
  # DM on spectrograms uses the same network and time-axis formation.
  dm = condense_lib.make_config("dm_mf", "speech_commands", 10)
  assert (dm.model, dm.formation, dm.factor) == ("convnet4", "time", 2)
  assert condense_lib.make_config("dm", "fashion_mnist", 10).model == "convnet3"


def test_speech_data_lr_is_the_references_step_on_standardised_spectrograms():
  # The reference condenses standardised spectrograms (std 1) with lr_img 3e-3 x ipc/10;
  # on our [0, 1] images that step is lr_img * std^2. Image sources keep lr_img as is
  # (their reference stores [0, 1] pixels too).
  speech = quadrant_source(n_per_class=4, size=16, name="speech_commands")   # std 0.3
  m = idc.IDC(speech, idc.IDCConfig(ipc=2, **TINY))
  assert m.config.lr_img == pytest.approx(3e-3 * 2 / 10)
  np.testing.assert_allclose(m.image_lr, [3e-3 * 2 / 10 * 0.09], rtol=1e-6)
  toy = idc.IDC(quadrant_source(n_per_class=4), idc.IDCConfig(ipc=2, lr_img=0.5, **TINY))
  assert float(toy.image_lr) == pytest.approx(0.5)
  # The step actually taken: one class's first matching step from zero momentum.
  m.begin_outer(0)
  before = tf.identity(m.synthetic.images)
  variables = m.synthetic.trainable_variables
  _, grads = m.class_match_loss(0, base.fold(m.match_seed(tf.constant(0, tf.int64)), 0),
                                variables)
  m._apply_data_grads(grads, variables, [m.image_lr])  # pylint: disable=protected-access
  np.testing.assert_allclose(m.synthetic.images - before,
                             -float(m.image_lr[0]) * tf.convert_to_tensor(grads[0]),
                             rtol=1e-3, atol=2e-7)   # float32 rounding of x ~ 0.5
