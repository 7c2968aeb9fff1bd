"""Tests for tfcondense.formation: IDC multi-formation decoders (Kim et al. 2022)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tfcondense import formation as fm
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import UnknownNameError

# (name, factor, options, formed per stored image)
CASES = [
    ("identity", 1, {}, 1),
    ("uniform", 2, {}, 4),
    ("uniform", 3, {}, 9),
    ("multiscale", 3, {}, 1 + 4 + 9),
    ("bound", 2, {"max_per_class": 128}, 4),
    ("bound", 2, {"max_per_class": 128, "mode": "truncate"}, 4),
    ("time", 3, {}, 3),
    ("time", 2, {"axis": 2}, 2),
    ("learnable", 2, {"width": 4, "seed": 3}, 4),
]
IDS = [f"{n}-f{f}-{'-'.join(map(str, o.values()))}" for n, f, o, _ in CASES]


def _rand(shape, seed=0, dtype=np.float32):
  return tf.constant(np.random.default_rng(seed).uniform(size=shape).astype(dtype))


def _quadrants(values):
  """A 4x4x1 image whose 2x2 quadrants are constant: values in row-major order."""
  img = np.zeros((4, 4, 1), np.float32)
  for i, v in enumerate(values):
    r, c = divmod(i, 2)
    img[2 * r:2 * r + 2, 2 * c:2 * c + 2] = v
  return img


def _perturbed_learnable(factor=2, channels=1, seed=5):
  """A learnable formation whose residual branch is nonzero."""
  f = fm.make_formation("learnable", factor, width=4, seed=1, channels=channels)
  w = f.get_weights()
  w["conv2_kernel"] = np.random.default_rng(seed).normal(
      size=w["conv2_kernel"].shape).astype(np.float32)
  f.set_weights(w)
  return f


# ------------------------------------------------------------------ placement / padding
def test_uniform_tiles_are_row_major_quadrants_and_labels_repeat():
  stored = np.stack([_quadrants([1, 2, 3, 4]), _quadrants([5, 6, 7, 8])])
  formed, labels = fm.make_formation("uniform", 2)(tf.constant(stored), tf.constant([3, 9]))
  assert formed.shape == (8, 4, 4, 1)
  np.testing.assert_allclose(formed.numpy(),
                             np.arange(1, 9, dtype=np.float32)[:, None, None, None]
                             * np.ones((8, 4, 4, 1)), atol=1e-6)
  np.testing.assert_array_equal(labels.numpy(), [3, 3, 3, 3, 9, 9, 9, 9])


def test_uniform_pads_with_half():
  """H=5, f=2: padded to 6, the bottom tiles' last padded row is 0.5 upsampled."""
  stored = tf.zeros([1, 5, 4, 1])
  formed = fm.make_formation("uniform", 2)(stored, tf.constant([0]))[0].numpy()
  np.testing.assert_allclose(formed[:2], 0.0, atol=1e-7)  # top tiles: rows 0-2, all real.
  for tile in formed[2:]:  # bottom tiles: rows 3, 4 real (0), row 5 padding (0.5).
    np.testing.assert_allclose(tile[0], 0.0, atol=1e-7)
    np.testing.assert_allclose(tile[-1], 0.5, atol=1e-6)
    assert 0.0 < tile[3, 0, 0] < 0.5


@pytest.mark.parametrize("shape,factor", [((2, 4, 4, 3), 2), ((2, 7, 7, 3), 3),
                                          ((1, 5, 6, 2), 2), ((1, 7, 5, 1), 4)])
def test_decode_matches_tf_image_resize(shape, factor):
  """Interpolation matrices == tf.image.resize(bilinear, antialias=False) on the tiles."""
  x = _rand(shape, 1)
  formed = fm.make_formation("uniform", factor)(x, tf.zeros([shape[0]], tf.int32))[0]
  h, w = shape[1], shape[2]
  ph, pw = -h % factor, -w % factor
  padded = tf.pad(x, [[0, 0], [0, ph], [0, pw], [0, 0]], constant_values=0.5)
  th, tw = (h + ph) // factor, (w + pw) // factor
  expected = []
  for n in range(shape[0]):
    for r in range(factor):
      for c in range(factor):
        tile = padded[n:n + 1, r * th:(r + 1) * th, c * tw:(c + 1) * tw]
        expected.append(tf.image.resize(tile, [h, w], method="bilinear", antialias=False))
  np.testing.assert_allclose(formed.numpy(), tf.concat(expected, 0).numpy(), atol=1e-5)


def test_bilinear_matrix_rows_sum_to_one_and_f1_is_identity():
  for out, inp in [(4, 2), (7, 3), (64, 22), (5, 5)]:
    m = fm.bilinear_matrix(out, inp)
    np.testing.assert_allclose(m.sum(1), 1.0)
  np.testing.assert_allclose(fm.bilinear_matrix(5, 5), np.eye(5))
  x = _rand((2, 5, 5, 1))
  np.testing.assert_array_equal(fm.make_formation("uniform", 1)(x, [0, 1])[0].numpy(),
                                x.numpy())


def test_multiscale_order_is_scale_1_then_tiles():
  stored = np.stack([_quadrants([1, 2, 3, 4]), _quadrants([5, 6, 7, 8])])
  formed, labels = fm.make_formation("multiscale", 2)(tf.constant(stored), [0, 1])
  uniform = fm.make_formation("uniform", 2)(tf.constant(stored), [0, 1])[0].numpy()
  assert formed.shape == (10, 4, 4, 1)
  for i in range(2):
    np.testing.assert_allclose(formed[5 * i].numpy(), stored[i])
    np.testing.assert_allclose(formed[5 * i + 1:5 * i + 5].numpy(), uniform[4 * i:4 * i + 4])
  np.testing.assert_array_equal(labels.numpy(), [0] * 5 + [1] * 5)


# ------------------------------------------------------------------ time formation
def test_time_splits_along_time_only():
  img = np.ones((1, 8, 8, 1), np.float32)
  img[:, 4:] = 2.0
  img[..., 0] *= np.linspace(1.0, 2.0, 8, dtype=np.float32)[None, None, :]  # width varies
  formed, labels = fm.make_formation("time", 2)(tf.constant(img), tf.constant([7]))
  assert formed.shape == (2, 8, 8, 1)
  ramp = np.linspace(1.0, 2.0, 8)[None, :, None]
  np.testing.assert_allclose(formed[0].numpy(), 1.0 * ramp * np.ones((8, 8, 1)), atol=1e-6)
  np.testing.assert_allclose(formed[1].numpy(), 2.0 * ramp * np.ones((8, 8, 1)), atol=1e-6)
  np.testing.assert_array_equal(labels.numpy(), [7, 7])


def test_time_axis2_splits_width():
  img = np.ones((1, 6, 8, 1), np.float32)
  img[:, :, 4:] = 3.0
  formed = fm.make_formation("time", 2, axis=2)(tf.constant(img), [0])[0].numpy()
  np.testing.assert_allclose(formed[0], 1.0, atol=1e-6)
  np.testing.assert_allclose(formed[1], 3.0, atol=1e-6)
  with pytest.raises(InvalidConfigError):
    fm.make_formation("time", 2, axis=3)


# ------------------------------------------------------------------ counts / bound
@pytest.mark.parametrize("name,factor,options,k", CASES, ids=IDS)
def test_formed_counts(name, factor, options, k):
  f = fm.make_formation(name, factor, **options)
  assert f.formed_per_stored() == k
  formed, labels = f(_rand((3, 6, 6, 1)), tf.constant([0, 1, 2]))
  assert formed.shape == (3 * k, 6, 6, 1)
  np.testing.assert_array_equal(labels.numpy(), np.repeat([0, 1, 2], k))


def test_bound_caps_each_class_keeping_the_first():
  rng = np.random.default_rng(0)
  labels = np.array([4, 4, 4, -1, -1, -1, 7], np.int32)  # arbitrary ints, class 7 small
  stored = tf.constant(rng.uniform(size=(7, 4, 4, 2)).astype(np.float32))
  formed, flabels = fm.make_formation("bound", 2, max_per_class=5,
                                      mode="truncate")(stored, labels)
  uniform, ulabels = fm.make_formation("uniform", 2)(stored, labels)
  counts = {c: int(np.sum(flabels.numpy() == c)) for c in (4, -1, 7)}
  assert counts == {4: 5, -1: 5, 7: 4}
  keep = np.concatenate([np.arange(0, 5), np.arange(12, 17), np.arange(24, 28)])
  np.testing.assert_allclose(formed.numpy(), uniform.numpy()[keep])
  np.testing.assert_array_equal(flabels.numpy(), ulabels.numpy()[keep])


def test_bound_groups_interleaved_classes():
  labels = tf.constant([0, 1, 0, 1, 0])
  stored = _rand((5, 4, 4, 1))
  formed, flabels = fm.make_formation("bound", 2, max_per_class=6,
                                      mode="truncate")(stored, labels)
  uniform = fm.make_formation("uniform", 2)(stored, labels)[0].numpy()
  # class 0: stored 0 (4 tiles), stored 2 (2 tiles); class 1: stored 1, stored 3 (2 tiles).
  keep = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
  np.testing.assert_allclose(formed.numpy(), uniform[keep])
  np.testing.assert_array_equal(flabels.numpy(), [0] * 4 + [1] * 4 + [0] * 2 + [1] * 2)


def _reference_bound(ipc, factor, bound):
  """[(factor, images)] of decode_zoom_bound (IDC condense.py), re-derived step by step."""
  out, idx, budget, total = [], 0, ipc, 0
  room = bound - ipc
  for j in range(factor, 0, -1):
    n = min(room // j**2, budget) if j > 1 else budget
    out.append((j, n))
    idx, budget, total = idx + n, budget - n, total + n * j**2
    room = bound - total - budget
    if budget == 0:
      break
  return [(j, n) for j, n in out if n]


@pytest.mark.parametrize("ipc,factor,cap", [(50, 2, 128), (20, 3, 128), (10, 2, 128),
                                            (128, 2, 128), (1, 4, 10), (7, 3, 20),
                                            (5, 2, 5), (33, 4, 100), (3, 1, 2)])
def test_bound_reference_schedule_matches_decode_zoom_bound(ipc, factor, cap):
  ours = [(j, n) for j, n in fm.bound_schedule(ipc, factor, cap) if n]
  assert ours == _reference_bound(ipc, factor, cap)
  assert sum(n for _, n in ours) == ipc
  f = fm.make_formation("bound", factor, max_per_class=cap)
  labels = tf.constant([5] * ipc)
  factors = f.stored_factors(labels).numpy()
  np.testing.assert_array_equal(factors, np.concatenate([[j] * n for j, n in ours]))
  formed = sum(n * j * j for j, n in ours)
  assert formed <= max(cap, ipc if factor == 1 else cap)
  assert f(tf.zeros([ipc, 4, 4, 1]), labels)[0].shape[0] == formed
  assert f.storage(ipc, (4, 4, 1))["formed_images"] == formed


def test_bound_reference_ipc50_f2_forms_every_stored_image():
  """IDC's setting: ipc 50, f = 2, cap 128 -> 19 images at f = 2, 31 at f = 1."""
  ipc, classes = 50, 2
  labels = tf.constant(np.repeat([3, 8], ipc).astype(np.int32))
  x = _rand((ipc * classes, 4, 4, 1), 11)
  f = fm.make_formation("bound", 2, max_per_class=128)
  assert f.formed_per_stored() == 4 and f.describe()["mode"] == "reference"
  formed, flabels = f(x, labels)
  assert formed.shape == (2 * 107, 4, 4, 1)
  assert {c: int(np.sum(flabels.numpy() == c)) for c in (3, 8)} == {3: 107, 8: 107}
  uniform = fm.make_formation("uniform", 2)(x, labels)[0].numpy()
  expected = []
  for c in range(classes):
    base = c * ipc
    expected += [uniform[4 * (base + i):4 * (base + i) + 4] for i in range(19)]
    expected += [x.numpy()[base + 19:base + ipc]]
  np.testing.assert_allclose(formed.numpy(), np.concatenate(expected), atol=1e-6)
  np.testing.assert_array_equal(flabels.numpy(), np.repeat([3, 8], 107))
  stored = tf.Variable(x)
  weights = _rand(formed.shape, 12) + 0.5
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(f(stored, labels)[0] * weights)
  grad = tape.gradient(loss, stored).numpy()  # dense, like the other formations
  assert np.all(np.abs(grad) > 1e-6), np.argwhere(np.abs(grad) <= 1e-6)
  # Truncate mode keeps 32 stored images per class and leaves 18 without gradient.
  t = fm.make_formation("bound", 2, max_per_class=128, mode="truncate")
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(t(stored, labels)[0])
  grad = tape.gradient(loss, stored).numpy()
  touched = np.abs(grad).reshape(ipc * classes, -1).max(1) > 0
  np.testing.assert_array_equal(touched, np.tile(np.arange(ipc) < 32, classes))


def test_bound_reference_interleaved_unequal_classes():
  labels = np.array([4, -1, 4, 4, 7, -1, 4, 4], np.int32)
  x = _rand((8, 6, 6, 2), 13)
  f = fm.make_formation("bound", 2, max_per_class=9)
  # class 4 (5 stored): room 4 -> 1 at f=2, 4 at f=1 = 8; -1 (2 stored): room 7
  # -> 1 at f=2, 1 at f=1 = 5; 7 (1 stored): 1 at f=2 = 4.
  np.testing.assert_array_equal(f.stored_factors(labels).numpy(), [2, 2, 1, 1, 2, 1, 1, 1])
  formed, flabels = f(x, labels)
  uniform = fm.make_formation("uniform", 2)(x, labels)[0].numpy()
  expected = np.concatenate([uniform[0:4], uniform[4:8], x.numpy()[2:4], uniform[16:20],
                             x.numpy()[5:8]])
  np.testing.assert_allclose(formed.numpy(), expected, atol=1e-6)
  np.testing.assert_array_equal(flabels.numpy(), [4] * 4 + [-1] * 4 + [4, 4] + [7] * 4
                                + [-1, 4, 4])
  counts = {c: int(np.sum(flabels.numpy() == c)) for c in (4, -1, 7)}
  assert counts == {4: 8, -1: 5, 7: 4} and max(counts.values()) <= 9


def test_bound_reference_in_tf_function_and_errors():
  f = fm.make_formation("bound", 3, max_per_class=30)

  @tf.function(input_signature=[tf.TensorSpec([None, 7, 7, 1], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def form(x, y):
    return f(x, y)

  x = _rand((9, 7, 7, 1), 14)
  # 5 stored: 2 x 9 + 2 x 4 + 1 x 1 = 27 formed; 4 stored: 2 x 9 + 2 x 4 = 26.
  y = tf.constant([0] * 5 + [1] * 4)
  formed, labels = form(x, y)
  eager, eager_labels = f(x, y)
  np.testing.assert_allclose(formed.numpy(), eager.numpy(), atol=1e-5)
  np.testing.assert_array_equal(labels.numpy(), eager_labels.numpy())
  assert int(np.sum(labels.numpy() == 0)) == 27 and int(np.sum(labels.numpy() == 1)) == 26
  np.testing.assert_array_equal(f.stored_factors(y).numpy(), [3, 3, 2, 2, 1, 3, 3, 2, 2])
  too_many = tf.zeros([31], tf.int32)
  with pytest.raises(InvalidConfigError, match="max_per_class=30"):
    f(tf.zeros([31, 7, 7, 1]), too_many)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_per_class=30"):
    form(tf.zeros([31, 7, 7, 1]), too_many)
  # Factor 1 caps nothing in reference mode (the reference skips the bound decode).
  one = fm.make_formation("bound", 1, max_per_class=2)
  assert one(tf.zeros([3, 4, 4, 1]), [0, 0, 0])[0].shape[0] == 3
  with pytest.raises(InvalidConfigError, match="mode"):
    fm.make_formation("bound", 2, mode="zoom")


def test_bound_mode_round_trips_and_defaults_to_reference():
  for mode in ("reference", "truncate"):
    f = fm.make_formation("bound", 2, max_per_class=6, mode=mode)
    meta = json.loads(json.dumps({"formation": f.describe()}))
    assert meta["formation"]["mode"] == mode
    assert fm.from_meta(meta).mode == mode
  old = fm.from_meta({"formation": {"name": "bound", "factor": 2, "max_per_class": 6}})
  assert old.mode == "reference"
  assert fm.from_meta({"formation": "bound", "factor": 2}).mode == "reference"


def test_rank_within_class():
  ranks = fm.rank_within_class(tf.constant([3, 1, 3, 1, 2, 3, -5, 1]))
  np.testing.assert_array_equal(ranks.numpy(), [0, 0, 1, 1, 0, 2, 0, 2])
  assert fm.rank_within_class(tf.zeros([0], tf.int32)).shape == (0,)


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name,factor,options,shape", [
    ("uniform", 2, {}, (2, 4, 4, 3)),
    ("uniform", 3, {}, (2, 7, 7, 2)),
    ("multiscale", 3, {}, (2, 7, 7, 1)),
    ("time", 3, {}, (2, 7, 8, 1)),
    ("bound", 2, {"max_per_class": 8}, (2, 5, 5, 1)),
    ("learnable", 3, {"width": 4}, (2, 7, 7, 2)),
])
def test_gradient_reaches_every_stored_pixel(name, factor, options, shape):
  f = fm.make_formation(name, factor, **options)
  stored = tf.Variable(_rand(shape, 2))
  labels = tf.constant([0, 1])
  formed_shape = f(stored, labels)[0].shape
  weights = _rand(formed_shape, 3) + 0.5
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(f(stored, labels)[0] * weights)
  grad = tape.gradient(loss, stored).numpy()
  assert np.all(np.abs(grad) > 1e-6), np.argwhere(np.abs(grad) <= 1e-6)


def test_uniform_gradient_is_exact_adjoint():
  """<A x, y> == <x, A^T y> with A^T y from the tape (float64, linear part)."""
  f = fm.make_formation("uniform", 3)
  x = _rand((2, 7, 7, 2), 4, np.float64)
  zero = tf.zeros_like(x)
  a = lambda v: f(v, [0, 1])[0] - f(zero, [0, 1])[0]  # 0.5 padding is the affine part
  y = _rand(a(x).shape, 5, np.float64)
  u = tf.zeros_like(x)
  with tf.GradientTape() as tape:
    tape.watch(u)
    inner = tf.reduce_sum(a(u) * y)
  aty = tape.gradient(inner, u)
  lhs, rhs = float(tf.reduce_sum(a(x) * y)), float(tf.reduce_sum(x * aty))
  assert abs(lhs - rhs) <= 1e-10 * abs(lhs)
  assert f(x, [0, 1])[0].dtype == tf.float64


# ------------------------------------------------------------------ learnable
def test_learnable_at_init_equals_uniform_and_variables_get_gradients():
  x = _rand((3, 7, 7, 3), 6)
  labels = tf.constant([0, 1, 1])
  learn = fm.make_formation("learnable", 2, width=5, seed=2)
  out = learn(x, labels)[0]
  np.testing.assert_allclose(out.numpy(), fm.make_formation("uniform", 2)(x, labels)[0].numpy(),
                             atol=1e-6)
  assert len(learn.variables) == 4 and all(v.trainable for v in learn.variables)
  assert tuple(learn.variables[0].shape) == (3, 3, 3, 5)
  assert tuple(learn.variables[2].shape) == (3, 3, 5, 3)
  weights = _rand(out.shape, 7)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(learn(x, labels)[0] * weights)
  grads = tape.gradient(loss, learn.variables)
  assert all(g is not None for g in grads)
  assert np.abs(grads[2].numpy()).sum() > 0 and np.abs(grads[3].numpy()).sum() > 0
  # Once the residual branch is nonzero, the first convolution learns too.
  perturbed = _perturbed_learnable(channels=3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(perturbed(x, labels)[0] * weights)
  grads = tape.gradient(loss, perturbed.variables)
  assert all(np.abs(g.numpy()).sum() > 0 for g in grads)


def test_learnable_seed_and_unbuilt_variables():
  a = fm.make_formation("learnable", 2, width=4, seed=0, channels=1).get_weights()
  b = fm.make_formation("learnable", 2, width=4, seed=0, channels=1).get_weights()
  c = fm.make_formation("learnable", 2, width=4, seed=1, channels=1).get_weights()
  np.testing.assert_array_equal(a["conv1_kernel"], b["conv1_kernel"])
  assert not np.allclose(a["conv1_kernel"], c["conv1_kernel"])
  assert np.abs(a["conv1_kernel"]).max() <= 1.0 / 3.0  # 1/sqrt(9 * 1)
  np.testing.assert_array_equal(a["conv2_kernel"], 0.0)
  unbuilt = fm.make_formation("learnable", 2)
  with pytest.raises(InvalidConfigError):
    _ = unbuilt.variables
  unbuilt.build(3)
  assert len(unbuilt.variables) == 4 and unbuilt.describe()["channels"] == 3
  with pytest.raises(InvalidConfigError):
    unbuilt.build(1)
  for name in ("identity", "uniform"):  # generic code may always call build()
    f = fm.make_formation(name, 1)
    f.build(3)
    assert f.variables == []
  with pytest.raises(InvalidConfigError):
    fm.make_formation("learnable", 2, channels=1).set_weights({"conv1_kernel": a["conv1_kernel"]})


# ------------------------------------------------------------------ tf.function / dtypes
@pytest.mark.parametrize("name,factor,options,k", CASES, ids=IDS)
def test_tf_function_dynamic_batch_and_bfloat16(name, factor, options, k):
  f = fm.make_formation(name, factor, **options)

  @tf.function(input_signature=[tf.TensorSpec([None, 6, 6, 2], tf.float32),
                                tf.TensorSpec([None], tf.int32)])
  def form(x, y):
    return f(x, y)

  for n in (1, 3):
    x = _rand((n, 6, 6, 2), n)
    y = tf.range(n, dtype=tf.int32)
    formed, labels = form(x, y)
    eager, eager_labels = f(x, y)
    assert formed.shape == (n * k, 6, 6, 2)
    np.testing.assert_allclose(formed.numpy(), eager.numpy(), atol=1e-5)
    np.testing.assert_array_equal(labels.numpy(), eager_labels.numpy())
  low, _ = f(tf.cast(_rand((2, 6, 6, 2)), tf.bfloat16), tf.constant([0, 1]))
  assert low.dtype == tf.bfloat16
  ref = f(_rand((2, 6, 6, 2)), tf.constant([0, 1]))[0]
  np.testing.assert_allclose(tf.cast(low, tf.float32).numpy(), ref.numpy(), atol=0.05)


def test_learnable_first_called_inside_tf_function():
  f = fm.make_formation("learnable", 2, width=3)
  form = tf.function(lambda x: f(x, tf.zeros([tf.shape(x)[0]], tf.int32))[0])
  out = form(_rand((2, 4, 4, 1)))
  assert out.shape == (8, 4, 4, 1) and len(f.variables) == 4
  assert f.describe()["channels"] == 1


def test_bad_inputs_raise():
  with pytest.raises(InvalidConfigError):
    fm.make_formation("uniform", 2)(tf.zeros([4, 4, 1]), [0])
  with pytest.raises(InvalidConfigError):
    fm.make_formation("uniform", 2)(tf.zeros([1, 4, 4, 1], tf.int32), [0])


# ------------------------------------------------------------------ storage
def test_storage_accounting():
  s = fm.make_formation("identity").storage(20, (32, 32, 3))
  assert s == {"stored_images": 20, "stored_pixels": 20 * 3072, "parameters": 0,
               "stored_bytes": 4 * 20 * 3072, "formed_images": 20}
  assert fm.make_formation("uniform", 2).storage(20, (32, 32, 3))["formed_images"] == 80
  assert fm.make_formation("multiscale", 3).storage(2, (8, 8, 1))["formed_images"] == 28
  assert fm.make_formation("time", 4).storage(5, (64, 64, 1))["formed_images"] == 20
  bound = fm.make_formation("bound", 2, max_per_class=128, mode="truncate")
  assert bound.storage(500, (32, 32, 3), num_classes=10)["formed_images"] == 10 * 128
  assert bound.storage(100, (32, 32, 3), num_classes=10)["formed_images"] == 400
  assert bound.storage(50, (32, 32, 3))["formed_images"] == 128
  ref = fm.make_formation("bound", 2, max_per_class=128)
  assert ref.storage(500, (32, 32, 3), num_classes=10)["formed_images"] == 10 * 107
  assert ref.storage(100, (32, 32, 3), num_classes=10)["formed_images"] == 400
  assert ref.storage(50, (32, 32, 3))["formed_images"] == 107
  assert fm.make_formation("bound", 3).storage(20, (8, 8, 1))["formed_images"] == 125
  with pytest.raises(InvalidConfigError, match="max_per_class"):
    ref.storage(129, (8, 8, 1))
  learn = fm.make_formation("learnable", 2, width=16, channels=3)
  s = learn.storage(10, (32, 32, 3))
  n_vars = sum(int(np.prod(v.shape)) for v in learn.variables)
  assert s["parameters"] == n_vars == 9 * 3 * 16 + 16 + 9 * 16 * 3 + 3
  assert s["stored_bytes"] == 4 * (10 * 3072 + n_vars)
  # Unbuilt: counted from image_shape.
  assert fm.make_formation("learnable", 2).storage(1, (8, 8, 1))["parameters"] == \
      9 * 16 + 16 + 9 * 16 + 1


# ------------------------------------------------------------------ describe / from_meta
@pytest.mark.parametrize("name,factor,options,k", CASES, ids=IDS)
def test_from_meta_round_trip(name, factor, options, k):
  del k
  f = _perturbed_learnable(channels=2) if name == "learnable" else \
      fm.make_formation(name, factor, **options)
  x, y = _rand((2, 6, 6, 2), 8), tf.constant([0, 1])
  expected = f(x, y)[0].numpy()
  meta = json.loads(json.dumps({"formation": f.describe(), "factor": f.factor}))
  g = fm.from_meta(meta, f.get_weights())
  assert type(g) is type(f) and g.describe() == f.describe()
  np.testing.assert_allclose(g(x, y)[0].numpy(), expected, atol=1e-6)


def test_from_meta_string_and_missing():
  assert isinstance(fm.from_meta({"formation": "multiscale", "factor": 3}),
                    fm.MultiscaleFormation)
  assert fm.from_meta({"formation": "multiscale", "factor": 3}).factor == 3
  assert isinstance(fm.from_meta({"factor": 2}), fm.UniformFormation)
  assert fm.from_meta({"factor": 2}).factor == 2
  assert isinstance(fm.from_meta({}), fm.IdentityFormation)
  with pytest.raises(InvalidConfigError):
    fm.from_meta({"formation": "uniform"}, {"conv1_kernel": np.zeros([3, 3, 1, 1])})


def test_errors():
  with pytest.raises(UnknownNameError, match="uniform"):
    fm.make_formation("zoom", 2)
  with pytest.raises(InvalidConfigError):
    fm.make_formation("uniform", 0)
  with pytest.raises(InvalidConfigError):
    fm.make_formation("identity", 2)
  with pytest.raises(InvalidConfigError):
    fm.make_formation("uniform", 2, max_per_class=3)  # not an option of uniform
  with pytest.raises(InvalidConfigError):
    fm.make_formation("bound", 2, max_per_class=0)
  assert set(fm.FORMATIONS.names()) == {"identity", "uniform", "multiscale", "bound", "time",
                                        "learnable"}


# ------------------------------------------------------------------ form_numpy
def test_form_numpy_chunks_and_global_bound():
  rng = np.random.default_rng(9)
  images = rng.uniform(size=(7, 6, 6, 1))
  labels = np.array([0, 0, 0, 1, 1, 1, 1])
  formed, flabels = fm.make_formation("uniform", 2).form_numpy(images, labels, batch=3)
  assert formed.dtype == np.float32 and flabels.dtype == np.int32
  assert formed.shape == (28, 6, 6, 1) and flabels.shape == (28,)
  direct = fm.make_formation("uniform", 2)(tf.constant(images, tf.float32), labels)[0]
  np.testing.assert_allclose(formed, direct.numpy(), atol=1e-6)
  bound = fm.make_formation("bound", 2, max_per_class=6, mode="truncate")
  b_formed, b_labels = bound.form_numpy(images, labels, batch=2)
  t_formed, t_labels = bound(tf.constant(images, tf.float32), labels)
  assert b_formed.shape == (12, 6, 6, 1)
  np.testing.assert_allclose(b_formed, t_formed.numpy(), atol=1e-6)
  np.testing.assert_array_equal(b_labels, t_labels.numpy())
  # Reference mode plans the factors over the whole set: class 0 (3 stored, cap 9)
  # forms 1 x 4 + 2 x 1, class 1 (4 stored) 1 x 4 + 3 x 1.
  ref = fm.make_formation("bound", 2, max_per_class=9)
  r_formed, r_labels = ref.form_numpy(images, labels, batch=2)
  t_formed, t_labels = ref(tf.constant(images, tf.float32), labels)
  assert r_formed.shape == (13, 6, 6, 1)
  np.testing.assert_allclose(r_formed, t_formed.numpy(), atol=1e-6)
  np.testing.assert_array_equal(r_labels, t_labels.numpy())
  np.testing.assert_array_equal(r_labels, [0] * 6 + [1] * 7)


def test_an_artifact_decodes_with_its_own_formation_weights_or_refuses(tmp_path):
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import CorruptArtifactError  # pylint: disable=g-import-not-at-top
  f = _perturbed_learnable()
  stored = np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype(np.float32)
  meta = dict(source="s", method="idc", ipc=1, factor=2, formation=f.describe())
  artifact_lib.save_artifact(str(tmp_path / "a"), stored, np.array([0, 1]), meta,
                             weights=f.get_weights())
  art = artifact_lib.load_artifact(str(tmp_path / "a"))
  want, _ = f.form_numpy(stored, np.array([0, 1]))
  got, labels = synthetic.formed_from_artifact(art)  # the artifact's own weights
  np.testing.assert_allclose(got, want, atol=1e-6)
  np.testing.assert_array_equal(labels, [0, 0, 0, 0, 1, 1, 1, 1])
  lost = artifact_lib.Artifact(art.images, art.labels, art.meta)  # no formation.npz
  with pytest.raises(CorruptArtifactError, match="learnable, but it carries no formation"):
    synthetic.formed_from_artifact(lost)
