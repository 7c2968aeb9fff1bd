"""MTT: the functional student, the trajectory loss, its gradients, experts, the loop."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tfcondense import condensation as condense_lib
from tfcondense import engine
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base, mtt
from tfcondense.models import build_model

NARROW = (("width", 8),)  # ConvNet-3 of width 8: ~1.6 k parameters, fast on CPU


def _flat(model):
  return mtt.flat_parameters(model).numpy()


def _write(path, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.save(path, np.asarray(rows, np.float32))


def _cfg(experts_dir, **kw):
  values = dict(ipc=2, model_options=NARROW, experts_dir=str(experts_dir), expert_epochs=1,
                max_start_epoch=1, syn_steps=2, strategy="none", iterations=4)
  values.update(kw)
  return mtt.MTTConfig(**values)


def _dummy_experts(src, directory, seed=0, rows=2):
  """One expert whose row 0 is the student model's own initialisation."""
  model = build_model("convnet3", src.image_shape, src.num_classes, seed=seed, width=8)
  theta = _flat(model)
  noise = np.random.default_rng(1).normal(0, 0.01, (rows - 1, theta.size))
  _write(os.path.join(directory, "expert_0000.npy"),
         np.concatenate([theta[None], theta[None] + noise]))
  return model, theta


def test_stateless_call_equals_the_model():
  for norm in ("instance", "batch"):
    model = build_model("convnet3", (16, 16, 1), 4, seed=3, width=8, norm=norm)
    x = tf.random.stateless_uniform([5, 16, 16, 1], [1, 2])
    student = mtt.FunctionalModel(model)
    theta = mtt.flat_parameters(model)
    assert student.num_params == theta.shape[0] == model.count_params() - sum(
        int(np.prod(v.shape)) for v in model.non_trainable_variables)
    for a, v in zip(student.unflatten(theta), model.trainable_variables):
      np.testing.assert_array_equal(a.numpy(), v.numpy())
    for training in (True, False):
      np.testing.assert_allclose(student(theta, x, training=training).numpy(),
                                 model(x, training=training).numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.heavy
def test_loss_is_zero_when_the_student_reproduces_the_expert(tmp_path):
  src = quadrant_source()
  model, theta0 = _dummy_experts(src, str(tmp_path / "dummy"))
  cfg = _cfg(tmp_path / "dummy", syn_steps=1)
  method = mtt.MTT(src, cfg)
  # The expert's epoch-1 parameters: one SGD step of the KERAS model (not the
  # functional student) on all synthetic images, normalised, without augmentation.
  x = (method.synthetic.images - src.mean[0]) / src.std[0]
  with tf.GradientTape() as tape:
    loss = base.cross_entropy(model(x, training=True), method.synthetic.labels)
  grads = tape.gradient(loss, model.trainable_variables)
  g = np.concatenate([np.reshape(gi.numpy(), -1) for gi in grads])
  target = theta0 - cfg.lr_teacher * g
  _write(str(tmp_path / "exact" / "expert_0000.npy"), [theta0, target])
  exact = mtt.MTT(src, _cfg(tmp_path / "exact", syn_steps=1))
  assert exact.segment(0) == (0, 0)
  out = exact.step(0)  # the returned loss is the one before the update
  assert float(out["loss"]) == pytest.approx(0.0, abs=1e-9)
  off, _ = exact.loss_and_grads(tf.constant([0, 1], tf.int64), tf.constant(theta0),
                                tf.constant(target * 1.01 - theta0 * 0.01))
  assert float(off) > 1e-5


def test_gradients_reach_images_and_syn_lr(tmp_path):
  src = quadrant_source()
  _, theta0 = _dummy_experts(src, str(tmp_path))
  method = mtt.MTT(src, _cfg(tmp_path, strategy="color_crop_cutout_flip_scale_rotate",
                             aug_mode="all"))
  seed = tf.constant([5, 6], tf.int64)
  target = tf.constant(np.asarray(method.experts[0][1]))
  loss, (g_img, g_lr) = method.loss_and_grads(seed, tf.constant(theta0), target)
  g = tf.convert_to_tensor(g_img).numpy()
  assert np.all(np.abs(g).reshape(len(g), -1).sum(1) > 0)  # every image gets a gradient
  assert np.isfinite(float(loss)) and np.isfinite(float(g_lr)) and float(g_lr) != 0.0


@pytest.mark.heavy
def test_second_order_gradients_match_finite_differences(tmp_path):
  # The student's parameter gradient of a ReLU network jumps where a pre-activation
  # crosses zero, so the trajectory loss is only piecewise smooth in the images;
  # sigmoid activations make it smooth for central differences. Checked on the
  # checkpointed while loop over all images (the loops test compares it with the
  # plain unroll on minibatches).
  src = quadrant_source()
  _, theta0 = _dummy_experts(src, str(tmp_path))
  method = mtt.MTT(src, _cfg(tmp_path, strategy="color_crop_cutout_flip_scale_rotate",
                             aug_mode="all", lr_teacher=0.1, loop="while",
                             checkpoint_unroll=True,
                             model_options=(("act", "sigmoid"), ("width", 8))))
  seed = tf.constant([5, 6], tf.int64)
  start = tf.constant(theta0)
  noise = np.random.default_rng(2).normal(0, 1e-3, theta0.shape).astype(np.float32)
  target = tf.constant(theta0 + noise)
  fn = tf.function(method.loss_and_grads)
  _, (g_img, g_lr) = fn(seed, start, target)
  g = tf.convert_to_tensor(g_img).numpy()
  x0 = method.synthetic.images.numpy().copy()

  def loss_at(lr, images):
    method.syn_lr.assign(lr)
    method.synthetic.images.assign(images)
    return float(fn(seed, start, target)[0])

  h = 1e-4
  fd = (loss_at(0.1 + h, x0) - loss_at(0.1 - h, x0)) / (2 * h)
  assert fd == pytest.approx(float(g_lr), rel=1e-2)
  d = g / np.linalg.norm(g)
  eps = 1e-2
  fd = (loss_at(0.1, x0 + eps * d) - loss_at(0.1, x0 - eps * d)) / (2 * eps)
  assert fd == pytest.approx(float(np.sum(g * d)), rel=1e-2)


@pytest.mark.heavy
def test_loops_and_checkpointed_unroll_agree(tmp_path):
  src = quadrant_source()
  _, theta0 = _dummy_experts(src, str(tmp_path))
  seed = tf.constant([7, 8], tf.int64)
  results = []
  for kw in (dict(loop="python"), dict(loop="while", checkpoint_unroll=True)):
    # batch_syn 3 of 8 images: 3 chunks per permutation, the last one smaller.
    method = mtt.MTT(src, _cfg(tmp_path, syn_steps=3, batch_syn=3, strategy="color_crop_flip",
                               **kw))
    target = tf.constant(np.asarray(method.experts[0][1]))
    loss, (g_img, g_lr) = tf.function(method.loss_and_grads)(seed, tf.constant(theta0), target)
    results.append((float(loss), tf.convert_to_tensor(g_img).numpy(), float(g_lr)))
  for loss, g_img, g_lr in results[1:]:
    assert loss == pytest.approx(results[0][0], rel=1e-5)
    assert g_lr == pytest.approx(results[0][2], rel=1e-4)
    np.testing.assert_allclose(g_img, results[0][1], rtol=1e-3,
                               atol=1e-7 * np.abs(g_img).max())


@pytest.mark.heavy
def test_train_experts_writes_trajectories_and_skips_existing(tmp_path):
  src = quadrant_source()
  cfg = mtt.MTTConfig(model_options=NARROW, lr_teacher=0.05)
  kw = dict(steps_per_epoch=2, batch_size=16, show_progress=False)
  paths = mtt.train_experts(src, str(tmp_path), 2, 3, cfg, **kw)
  model = build_model("convnet3", src.image_shape, 4, width=8)
  p = model.count_params()
  arrays = [np.load(q) for q in paths]
  assert [a.shape for a in arrays] == [(4, p), (4, p)] and arrays[0].dtype == np.float32
  for a in arrays:
    assert all(np.abs(a[i + 1] - a[i]).max() > 0 for i in range(3))  # trained every epoch
  assert np.abs(arrays[0][0] - arrays[1][0]).max() > 0  # different initialisations
  from tfcondense.models import initialize
  initialize(model, mtt.expert_init_seed(cfg.seed, 1))
  np.testing.assert_array_equal(arrays[1][0], _flat(model))  # row 0 = the initialisation
  stamps = [os.stat(q).st_mtime_ns for q in paths]
  paths3 = mtt.train_experts(src, str(tmp_path), 3, 3, cfg, **kw)
  assert paths3[:2] == paths and [os.stat(q).st_mtime_ns for q in paths] == stamps
  assert np.load(paths3[2]).shape == (4, p)
  assert sorted(os.listdir(tmp_path)) == [os.path.basename(q) for q in paths3]  # no temp files


def _tensorboard_losses(logdir):
  losses = {}
  for name in os.listdir(logdir):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
      for v in event.summary.value:
        if v.tag == "loss":
          losses[event.step] = float(tf.make_ndarray(v.tensor))
  return [losses[k] for k in sorted(losses)]


@pytest.mark.heavy
def test_condense_lowers_the_trajectory_loss_and_writes_an_artifact(tmp_path):
  src = quadrant_source()
  experts = str(tmp_path / "experts")
  mtt.train_experts(src, experts, 1, 2, mtt.MTTConfig(model_options=NARROW),
                    steps_per_epoch=3, batch_size=16, show_progress=False)
  # One expert and one start epoch, no augmentation: the loss changes only through
  # the updates of the images and syn_lr. lr_img is the default (1000).
  res = condense_lib.condense(
      "mtt", src, 2, options=engine.RunOptions(workdir=str(tmp_path / "w"),
                                               show_progress=False),
      experts_dir=experts, iterations=30, syn_steps=5, expert_epochs=1, max_start_epoch=1,
      strategy="none", model_options=dict(NARROW))
  assert res.artifact.meta["config"]["lr_img"] == 1000.0
  losses = _tensorboard_losses(str(tmp_path / "w" / "tensorboard"))
  assert len(losses) == 30 and all(np.isfinite(losses))
  assert np.mean(losses[-3:]) < 0.8 * min(np.mean(losses[:3]), losses[0])
  art = res.artifact
  assert art.images.shape == (8, 16, 16, 1) and art.meta["method"] == "mtt"
  assert art.meta["budget"]["steps"] == 30 and os.path.exists(res.grid_png)
  assert os.path.exists(os.path.join(res.artifact_dir, "images.npy"))


@pytest.mark.heavy
def test_resume_continues_from_checkpoint(tmp_path):
  src = quadrant_source()
  _dummy_experts(src, str(tmp_path / "e"), rows=4)
  cfg = _cfg(tmp_path / "e", max_start_epoch=3, batch_syn=5, loop="while",
             strategy="color_crop_cutout_flip_scale_rotate")
  method = mtt.MTT(src, cfg)  # one object (one trace); its state is reset by hand
  state = method.checkpoint_items()
  initial = [v.numpy() for v in tf.nest.flatten(state)]

  def reset(values):
    for v, x in zip(tf.nest.flatten(state), values):
      v.assign(x)

  engine.run(method, engine.RunOptions(show_progress=False))
  whole = method.synthetic.images.numpy(), float(method.syn_lr.numpy())
  assert len({method.segment(s) for s in range(4)}) > 1  # several start epochs drawn
  reset(initial)
  opts = engine.RunOptions(workdir=str(tmp_path / "w"), show_progress=False)
  engine.run(method, dataclasses.replace(opts, max_steps=2))
  reset([np.full_like(x, 7.0) for x in initial])  # garbage: the checkpoint must win
  r = engine.run(method, opts)
  assert r.resumed_from == 2 and r.steps == 4
  # Without op determinism, multi-threaded reductions may differ in the last bit (CI saw
  # 1.2e-7); the garbage above is 7 away, so a tight tolerance still proves the resume.
  np.testing.assert_allclose(method.synthetic.images.numpy(), whole[0], rtol=0, atol=1e-5)
  assert float(method.syn_lr.numpy()) == pytest.approx(whole[1], rel=1e-5)
  assert whole[1] != cfg.lr_teacher
  assert method._step_fn.experimental_get_tracing_count() == 1  # traced once


def test_missing_or_mismatched_experts_raise(tmp_path):
  with pytest.raises(InvalidConfigError, match="train_experts"):
    condense_lib.make_config("mtt", "toy", 2)
  (tmp_path / "empty").mkdir()
  with pytest.raises(InvalidConfigError, match="train_experts"):
    condense_lib.make_config("mtt", "toy", 2, experts_dir=str(tmp_path / "empty"))
  src = quadrant_source()
  _dummy_experts(src, str(tmp_path / "short"), rows=2)
  with pytest.raises(InvalidConfigError, match="expert_epochs"):
    mtt.MTT(src, _cfg(tmp_path / "short", expert_epochs=2))
  _write(str(tmp_path / "wrong" / "expert_0000.npy"), np.zeros((3, 10)))
  with pytest.raises(InvalidConfigError, match="model_options"):
    mtt.MTT(src, _cfg(tmp_path / "wrong"))
  cfg = condense_lib.make_config("mtt", "tiny_imagenet", 10,
                                 experts_dir=str(tmp_path / "short"))
  assert cfg.lr_img == 10000.0 and cfg.loop == "python"
  assert condense_lib.make_config("mtt", "toy", 1, experts_dir=str(tmp_path / "short"),
                                  syn_steps=50).loop == "while"


def test_forward_floats_counts_one_images_activations():
  # Flatten (a reshape, not counted) -> MatMul [1, 3] -> BiasAdd [1, 3] -> Relu [1, 3].
  model = tf.keras.Sequential([tf.keras.Input((2, 2, 1)), tf.keras.layers.Flatten(),
                               tf.keras.layers.Dense(3, activation="relu")])
  assert mtt.forward_floats(model, (2, 2, 1)) == 9
  # ConvNet-3 doubles its activations with its width (the count of the docstring).
  narrow = mtt.forward_floats(build_model("convnet3", (16, 16, 1), 4, width=8), (16, 16, 1))
  wide = mtt.forward_floats(build_model("convnet3", (16, 16, 1), 4, width=16), (16, 16, 1))
  assert 1.9 < wide / narrow < 2.1


def test_unroll_memory_estimate():
  # 4 bytes x 20 steps x (0.76 x 500 x 1.25 M + 3 x 320 k): the Fashion-MNIST IPC 50
  # cell that was killed for memory at 24 GB.
  plain = mtt.unroll_memory_bytes(20, 500, 1_250_000, 320_000, 784, checkpointed=False)
  assert plain == pytest.approx(4 * 20 * (0.76 * 500 * 1.25e6 + 3 * 320_000))
  assert 37e9 < plain < 39e9
  ckpt = mtt.unroll_memory_bytes(20, 500, 1_250_000, 320_000, 784, checkpointed=True)
  assert ckpt == pytest.approx(4 * (20 * (2 * 320_000 + 500 * 784) + 0.76 * 500 * 1.25e6))
  assert ckpt < plain / 10


def test_auto_checkpointing_follows_available_memory(tmp_path, monkeypatch):
  src = quadrant_source()
  _dummy_experts(src, str(tmp_path))
  monkeypatch.setattr(mtt.tf.config, "list_physical_devices", lambda kind=None: [])
  cfg = _cfg(tmp_path)  # checkpoint_unroll="auto" by default
  assert cfg.checkpoint_unroll == "auto"
  forward = mtt.forward_floats(build_model("convnet3", src.image_shape, src.num_classes,
                                           width=8), src.image_shape)
  probe = mtt.MTT(src, dataclasses.replace(cfg, checkpoint_unroll=False))
  args = (cfg.syn_steps, probe.batch_syn, forward, probe.student.num_params,
          int(np.prod(src.image_shape)))
  plain = mtt.unroll_memory_bytes(*args, checkpointed=False)
  ckpt = mtt.unroll_memory_bytes(*args, checkpointed=True)
  assert ckpt < plain

  def with_memory(available):
    monkeypatch.setattr(mtt.hardware, "available_memory_bytes", lambda: available)
    return mtt.MTT(src, cfg)

  assert not with_memory(int(plain * 10)).checkpoint_unroll
  assert with_memory(int((plain + ckpt) / 2 / mtt._AUTO_MEMORY_FRACTION)).checkpoint_unroll
  assert not with_memory(None).checkpoint_unroll  # unknown: the plain unroll
  with pytest.raises(InvalidConfigError, match="batch_syn"):
    with_memory(int(ckpt / 2))
  # An explicit choice is kept whatever the memory.
  monkeypatch.setattr(mtt.hardware, "available_memory_bytes", lambda: 1)
  assert mtt.MTT(src, dataclasses.replace(cfg, checkpoint_unroll=True)).checkpoint_unroll
  assert not mtt.MTT(src, dataclasses.replace(cfg, checkpoint_unroll=False)).checkpoint_unroll
  with pytest.raises(InvalidConfigError, match="checkpoint_unroll"):
    dataclasses.replace(cfg, checkpoint_unroll="yes").check()


def test_available_memory_is_read_from_meminfo(tmp_path):
  from tfcondense import hardware  # pylint: disable=g-import-not-at-top
  path = tmp_path / "meminfo"
  path.write_text("MemTotal:       24000000 kB\nMemAvailable:    1000 kB\n")
  assert hardware.available_memory_bytes(str(path)) == 1000 * 1024
  path.write_text("MemTotal:       24000000 kB\n")
  assert hardware.available_memory_bytes(str(path)) is None
  assert hardware.available_memory_bytes(str(tmp_path / "missing")) is None
