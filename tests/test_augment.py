"""Tests for tfcondense.augment: DSA ops (adjoint, gradients, siamese), policies, CutMix."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfcondense.augment import affine, mix, ops, policies
from tfcondense.augment import autoaugment as aa
from tfcondense.registry import UnknownNameError

OP_NAMES = ["brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "rotate"]
SEED = tf.constant([7, 11], tf.int64)


def _images(shape, seed=0, dtype=np.float64):
  return tf.constant(np.random.default_rng(seed).uniform(size=shape).astype(dtype))


def _linear_part(fn):
  """x -> fn(x) - fn(0): the linear part of an affine map (brightness adds a constant)."""
  return lambda x: fn(x) - fn(tf.zeros_like(x))


def _composite(mode):
  return ops.DSA("color_crop_cutout_flip_scale_rotate", mode=mode)


def _op_and_params(name, batch, seed=SEED):
  if name.startswith("dsa_"):
    op = _composite(name[4:])
  else:
    op = ops.OPS.get(name)()
  return op, op.sample(batch, seed)


# ------------------------------------------------------------------ adjoint / gradients
@pytest.mark.parametrize("name", OP_NAMES + ["dsa_all", "dsa_one_geometric"])
def test_adjoint_dot_product(name):
  """<A x, y> == <x, A^T y>, A^T y from the tape: the image gradient is the exact adjoint."""
  shape = (3, 10, 12, 3)  # non-square, per-sample draws
  op, params = _op_and_params(name, shape[0])
  a = _linear_part(lambda x: op.apply(x, params))
  x, y = _images(shape, 1), _images(shape, 2)
  # Linearity (the dot-product test assumes it).
  np.testing.assert_allclose(a(2.0 * x - 3.0 * y), 2.0 * a(x) - 3.0 * a(y), atol=1e-12)
  u = tf.zeros(shape, tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(u)
    inner = tf.reduce_sum(a(u) * y)
  at_y = tape.gradient(inner, u)
  lhs = float(tf.reduce_sum(a(x) * y))
  rhs = float(tf.reduce_sum(x * at_y))
  assert abs(lhs - rhs) <= 1e-6 * max(abs(lhs), 1.0), (lhs, rhs)


@pytest.mark.parametrize("name", OP_NAMES)
def test_gradient_matches_finite_differences(name):
  shape = (2, 9, 9, 3)
  op, params = _op_and_params(name, shape[0], tf.constant([3, 5], tf.int64))
  w = _images(shape, 3)

  def g(x):
    return tf.reduce_sum(tf.sin(3.0 * op.apply(x, params)) * w)

  x = _images(shape, 4)
  with tf.GradientTape() as tape:
    tape.watch(x)
    val = g(x)
  grad = tape.gradient(val, x)
  eps = 1e-6
  for k in range(3):
    v = _images(shape, 10 + k) - 0.5
    fd = (float(g(x + eps * v)) - float(g(x - eps * v))) / (2 * eps)
    an = float(tf.reduce_sum(grad * v))
    assert abs(fd - an) <= 1e-6 * max(abs(an), 1.0), (k, fd, an)


# --------------------------------------------------------------------- siamese / draws
@pytest.mark.parametrize("name", OP_NAMES + ["dsa_all", "dsa_one_geometric"])
def test_siamese_draw_is_shared_across_batches(name):
  op, params = _op_and_params(name, 1)
  a, b = _images((3, 12, 12, 3), 5), _images((2, 12, 12, 3), 6)
  joint = op.apply(tf.concat([a, b], 0), params)
  np.testing.assert_allclose(joint, tf.concat([op.apply(a, params), op.apply(b, params)], 0),
                             atol=1e-12)
  # The same image in two batches gets the very same transform: fails if params were
  # re-drawn per call or per sample.
  np.testing.assert_allclose(op.apply(a, params)[0],
                             op.apply(tf.concat([a[:1], b], 0), params)[0], atol=1e-12)
  twice = op.apply(tf.concat([a[:1], a[:1]], 0), params)
  np.testing.assert_array_equal(twice[0], twice[1])


def test_siamese_call_matches_explicit_draw():
  d = _composite("one_geometric")
  x = _images((4, 12, 12, 3), 7, np.float32)
  np.testing.assert_array_equal(d(x, SEED, siamese=True), d.apply(x, d.sample(1, SEED)))
  np.testing.assert_array_equal(d(x, SEED), d.apply(x, d.sample(4, SEED)))


@pytest.mark.parametrize("name", OP_NAMES + ["dsa_one_geometric"])
def test_per_sample_draws_differ(name):
  op, params = _op_and_params(name, 16)
  img = _images((1, 12, 12, 3), 8)
  out = op.apply(tf.tile(img, [16, 1, 1, 1]), params).numpy()
  distinct = {out[i].tobytes() for i in range(16)}
  assert len(distinct) >= 2
  if name not in ("flip",):
    assert len(distinct) >= 8


def test_determinism_in_seed():
  d = _composite("all")
  x = _images((4, 12, 12, 3), 9, np.float32)
  np.testing.assert_array_equal(d(x, SEED), d(x, tf.constant([7, 11], tf.int64)))
  np.testing.assert_array_equal(d(x, SEED), d(x, tf.constant([7, 11], tf.int32)))
  assert not np.array_equal(d(x, SEED), d(x, tf.constant([7, 12], tf.int64)))


def test_one_geometric_equals_sequential_application():
  """The single-warp fast path (matrix selection, flip folded in) matches op by op."""
  d = _composite("one_geometric")
  x = _images((16, 12, 12, 3), 10)
  p = d.sample(16, SEED)
  y = x
  for name in ops.COLOR:
    y = d.ops[[o.name for o in d.ops].index(name)].apply(y, p[name])
  outs = [op.apply(y, p[op.name]) for op in d.geometric_ops]
  choice = p["choice"].numpy()
  assert set(choice) == {0, 1, 2}
  y = tf.stack([outs[c][i] for i, c in enumerate(choice)])
  y = ops.Flip().apply(y, p["flip"])
  y = ops.Cutout().apply(y, p["cutout"])
  # Matrices are float32, so coordinates agree to ~1e-7 px, not bit for bit.
  np.testing.assert_allclose(d.apply(x, p), y, atol=1e-5)


def test_strategy_parsing_and_errors():
  assert ops.parse_strategy("color_crop") == ["brightness", "saturation", "contrast", "crop"]
  assert ops.parse_strategy("none") == []
  x = _images((2, 8, 8, 1), 0, np.float32)
  np.testing.assert_array_equal(ops.DSA("none")(x, SEED), x)
  with pytest.raises(UnknownNameError, match="rotate"):
    ops.DSA("color_warp")
  with pytest.raises(ValueError):
    ops.DSA("crop", mode="some")


# -------------------------------------------------------------------- identity & exact
def test_identity_parameters_give_back_x():
  x = _images((3, 10, 12, 3), 11, np.float32)
  one = tf.ones([1])
  np.testing.assert_array_equal(ops.Rotate().apply(x, {"angle": tf.zeros([1])}), x)
  np.testing.assert_array_equal(ops.Scale().apply(x, {"sx": one, "sy": one}), x)
  np.testing.assert_array_equal(ops.Crop().apply(x, {"shift": tf.zeros([1, 2], tf.int32)}), x)
  np.testing.assert_array_equal(ops.Flip().apply(x, {"flip": tf.constant([False])}), x)
  np.testing.assert_array_equal(ops.Brightness().apply(x, {"delta": tf.zeros([1])}), x)
  np.testing.assert_allclose(ops.Contrast().apply(x, {"factor": one}), x, atol=1e-6)
  gray = x[..., :1]
  np.testing.assert_array_equal(ops.Saturation().apply(gray, {"factor": 2 * one}), gray)


def test_crop_translates_by_the_drawn_shift():
  x = _images((2, 12, 12, 3), 12, np.float32)
  out = ops.Crop().apply(x, {"shift": tf.constant([[2, -3], [0, 1]])}).numpy()
  np.testing.assert_array_equal(out[0, 5, 7], x[0, 7, 4])  # out[i, j] = x[i + dy, j + dx]
  np.testing.assert_array_equal(out[0, :10, 3:], x[0, 2:, :9])
  assert not out[0, 10:].any() and not out[0, :, :3].any()  # zero fill
  np.testing.assert_array_equal(out[1, :, :11], x[1, :, 1:])
  # Drawn shifts: integers in [-s, s], s = int(0.125 * 32 + 0.5) = 4, all reached.
  crop = ops.Crop()
  shifts = crop.shift(crop.sample(2000, SEED), 32, 32).numpy()
  assert shifts.min() == -4 and shifts.max() == 4 and len(np.unique(shifts)) == 9
  # ... and apply uses exactly those shifts.
  p = crop.sample(2, SEED)
  np.testing.assert_array_equal(crop.apply(x, p), crop.apply(x, {"shift": crop.shift(p, 12, 12)}))


def test_cutout_zeroes_the_expected_area():
  x = tf.ones([3, 32, 32, 1])
  centre = tf.constant([[16, 16], [0, 0], [31, 10]])
  out = ops.Cutout().apply(x, {"centre": centre}).numpy()
  zeros = (out == 0).sum(axis=(1, 2, 3))
  # size 16, box rows [c - 8, c + 8) clipped: 16x16, 8x8, 9x16.
  np.testing.assert_array_equal(zeros, [256, 64, 144])
  assert not out[0, 8:24, 8:24].any() and out[0, 7].all() and out[0, 24].all()
  # Random centres: the area is never larger than the box.
  cut = ops.Cutout()
  out = cut.apply(tf.ones([64, 28, 28, 1]), cut.sample(64, SEED)).numpy()
  zeros = (out == 0).sum(axis=(1, 2, 3))
  assert zeros.max() == 14 * 14 and zeros.min() > 0


def test_scale_and_rotate_match_reference_geometry():
  x = np.zeros([1, 9, 9, 1], np.float32)
  x[0, 4, 6, 0] = 1.0  # 2 px right of the centre
  out = ops.Rotate().apply(tf.constant(x), {"angle": tf.constant([np.pi / 2])}).numpy()
  # theta = [[0, -1], [1, 0]]: output (dx, dy) samples input (-dy, dx) about the centre,
  # so the dot at (2, 0) shows at (0, -2): row 2, column 4.
  assert out[0, 2, 4, 0] == pytest.approx(1.0, abs=1e-5) and out.sum() == pytest.approx(1.0)
  out = ops.Scale().apply(tf.constant(x), {"sx": tf.constant([2.0]), "sy": tf.constant([1.0])})
  # Sampling at 2x the offset: the dot, 2 px right, appears 1 px right of the centre.
  assert out.numpy()[0, 4, 5, 0] == pytest.approx(1.0)


def test_affine_bilinear_matches_numpy():
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(2, 5, 6, 2))
  xs = rng.uniform(-2, 7, size=(2, 4, 3))
  ys = rng.uniform(-2, 6, size=(2, 4, 3))
  out = affine.sample(tf.constant(x), tf.constant(xs), tf.constant(ys)).numpy()

  def px(b, i, j):
    return x[b, i, j] if 0 <= i < 5 and 0 <= j < 6 else np.zeros(2)

  ref = np.zeros_like(out)
  for b in range(2):
    for i in range(4):
      for j in range(3):
        y0, x0 = int(np.floor(ys[b, i, j])), int(np.floor(xs[b, i, j]))
        fy, fx = ys[b, i, j] - y0, xs[b, i, j] - x0
        ref[b, i, j] = ((1 - fy) * (1 - fx) * px(b, y0, x0) + (1 - fy) * fx * px(b, y0, x0 + 1)
                        + fy * (1 - fx) * px(b, y0 + 1, x0) + fy * fx * px(b, y0 + 1, x0 + 1))
  np.testing.assert_allclose(out, ref, atol=1e-12)


# ------------------------------------------------------------------------------ policies
_SHAPES = {"gray28": ((8, 28, 28, 1), (0.29,), (0.35,)),
           "rgb32": ((8, 32, 32, 3), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))}


@pytest.mark.heavy
@pytest.mark.parametrize("shape_key", sorted(_SHAPES))
@pytest.mark.parametrize("name", ["none", "imagenet", "dsa", "autoaugment", "randaugment",
                                  "time_shift_noise"])
def test_policy_in_tf_function(name, shape_key):
  shape, mean, std = _SHAPES[shape_key]
  policy = policies.make_policy(name, image_shape=shape[1:], mean=mean, std=std,
                                flip=shape[-1] == 3)
  fn = tf.function(policy, input_signature=[tf.TensorSpec([None, *shape[1:]], tf.float32),
                                            tf.TensorSpec([2], tf.int64)])
  x = _images(shape, 13, np.float32)
  out = fn(x, SEED)
  assert out.shape == shape and out.dtype == tf.float32
  assert np.isfinite(out.numpy()).all()
  if name != "dsa":  # DSA's colour ops leave [0, 1], as in the reference
    assert out.numpy().min() >= 0.0 and out.numpy().max() <= 1.0
  np.testing.assert_array_equal(out, fn(x, SEED))
  if name != "none":
    assert not np.array_equal(out, fn(x, SEED + 1))
    assert not np.array_equal(out, x)


def test_policy_registry_and_options():
  assert set(policies.POLICIES.names()) == {"none", "imagenet", "crop_flip", "dsa",
                                            "autoaugment", "randaugment", "time_shift_noise"}
  with pytest.raises(UnknownNameError, match="randaugment"):
    policies.make_policy("trivial", image_shape=(8, 8, 1), mean=(0.5,), std=(0.5,))
  with pytest.raises(ValueError):
    policies.make_policy("dsa", image_shape=(8, 8, 3), mean=(0.5,), std=(0.5,))
  x = _images((4, 8, 8, 1), 14, np.float32)
  no_flip = policies.make_policy("dsa", image_shape=(8, 8, 1), mean=(0.3,), std=(0.2,),
                                 flip=False, strategy="flip")
  np.testing.assert_allclose(no_flip(x, SEED), x, atol=1e-6)
  flips = policies.make_policy("dsa", image_shape=(8, 8, 1), mean=(0.3,), std=(0.2,),
                               strategy="flip")
  assert not np.allclose(flips(x, SEED), x)


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["imagenet", "dsa"])
def test_xla_apply_matches_plain(name):
  """jit_compile only compiles the apply half: same draws, same output up to rounding."""
  shape, mean, std = _SHAPES["rgb32"]
  x = _images(shape, 18, np.float32)
  out = [policies.make_policy(name, image_shape=shape[1:], mean=mean, std=std,
                              jit_compile=jit)(x, SEED) for jit in (True, False)]
  np.testing.assert_allclose(out[0], out[1], atol=1e-4)


def test_time_shift_moves_time_only_and_fills_with_silence():
  """Without noise every sample is itself shifted along axis 1 by at most 2 of 16 frames."""
  x = 0.8 * _images((32, 16, 8, 1), 19, np.float32) + 0.1  # in (0, 1): none silent
  policy = policies.make_policy("time_shift_noise", image_shape=(16, 8, 1), mean=(0.5,),
                                std=(0.2,), noise=0.0)
  out = policy(tf.constant(x), SEED).numpy()
  shifts = []
  for a, b in zip(x, out):
    matches = [s for s in range(-2, 3)
               if np.array_equal(b, np.roll(a, s, axis=0) * _kept(16, s)[:, None, None])]
    assert len(matches) == 1, "each sample must be one whole-frame time shift"
    shifts.append(matches[0])
  assert len(set(shifts)) == 5  # all shifts in [-2, 2] are drawn over 32 samples
  noisy = policies.make_policy("time_shift_noise", image_shape=(16, 8, 1), mean=(0.5,),
                               std=(0.2,), max_shift=0.0)(tf.constant(x), SEED).numpy()
  assert 0 < np.abs(noisy - np.clip(x, 0, 1)).mean() < 0.03


def _kept(frames, shift):
  """1 for output frames read from inside the clip, 0 for the silence shifted in."""
  t = np.arange(frames) - shift
  return ((t >= 0) & (t < frames)).astype(np.float32)


def test_dsa_policy_fills_with_the_mean_colour():
  """Zero fill in normalised space == the mean colour in pixel space."""
  mean = (0.2, 0.5, 0.7)
  policy = policies.make_policy("dsa", image_shape=(16, 16, 3), mean=mean, std=(0.3,) * 3,
                                strategy="cutout")
  out = policy(tf.ones([4, 16, 16, 3]), SEED).numpy()
  hole = np.all(out != 1.0, axis=-1)
  assert hole.sum(axis=(1, 2)).min() > 0
  np.testing.assert_allclose(out[hole], np.broadcast_to(mean, out[hole].shape), atol=1e-6)


# ---------------------------------------------------------------------- autoaugment ops
def test_posterize_hand_example():
  x = tf.constant([0, 37, 128, 255, 7], tf.float32)[None, :, None, None] / 255.0
  out = aa.posterize(x, tf.constant([5])).numpy().ravel() * 255.0
  np.testing.assert_allclose(out, [0, 32, 128, 248, 0], atol=1e-4)
  out = aa.posterize(x, tf.constant([8])).numpy().ravel() * 255.0
  np.testing.assert_allclose(out, [0, 37, 128, 255, 7], atol=1e-4)


def _equalize_reference(chan):
  """PIL / torchvision `_scale_channel` on a uint8 array."""
  hist = np.bincount(chan.ravel(), minlength=256)
  nonzero = hist[hist != 0]
  step = nonzero[:-1].sum() // 255
  if step == 0:
    return chan
  lut = (np.cumsum(hist) + step // 2) // step
  lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
  return lut[chan]


def test_equalize_hand_example_and_reference():
  img = np.full(256, 10, np.int64)
  img[128:255] = 20
  img[255] = 30
  x = tf.constant(img.reshape(1, 16, 16, 1) / 255.0, tf.float32)
  out = np.round(aa.equalize(x).numpy() * 255).astype(int).ravel()
  assert set(zip(img, out)) == {(10, 0), (20, 128), (30, 255)}
  # Constant channels are unchanged (step 0); random ones match the reference per channel.
  rng = np.random.default_rng(0)
  q = rng.integers(40, 200, size=(3, 16, 16, 2))
  q[1, :, :, 1] = 77
  out = np.round(aa.equalize(tf.constant(q / 255.0, tf.float32)).numpy() * 255).astype(int)
  for b in range(3):
    for c in range(2):
      np.testing.assert_array_equal(out[b, :, :, c], _equalize_reference(q[b, :, :, c]))


def test_autocontrast_solarize_invert():
  x = tf.constant([[0.2, 0.4, 0.6]], tf.float32)[:, :, None, None] * tf.ones([1, 3, 1, 2])
  np.testing.assert_allclose(aa.autocontrast(x).numpy()[0, :, 0, 0], [0.0, 0.5, 1.0], atol=1e-6)
  flat = tf.fill([1, 3, 3, 1], 0.3)
  np.testing.assert_array_equal(aa.autocontrast(flat), flat)
  np.testing.assert_allclose(aa.solarize(x, tf.constant([0.5])).numpy()[0, :, 0, 0],
                             [0.2, 0.4, 0.4], atol=1e-6)
  np.testing.assert_allclose(aa.invert(x), 1.0 - x.numpy())


def test_autoaugment_tables():
  assert len(aa.CIFAR10_POLICY) == 25 and all(len(sp) == 2 for sp in aa.CIFAR10_POLICY)
  assert aa.magnitude("Posterize", 7, 10, 32, 32) == 5.0
  assert aa.magnitude("Posterize", 0, 10, 32, 32) == 8.0
  assert aa.magnitude("Posterize", 9, 10, 32, 32) == 4.0
  assert aa.magnitude("Solarize", 9, 10, 32, 32) == pytest.approx(0.0)
  assert aa.magnitude("TranslateX", 9, 10, 32, 32) == pytest.approx(150 / 331 * 32)
  assert aa.magnitude("Rotate", 9, 10, 32, 32) == pytest.approx(30.0)


def test_apply_ops_selects_per_sample():
  x = _images((4, 8, 8, 3), 15, np.float32)
  out = aa.apply_ops(x, tf.constant([0, 1, -1, 2]), tf.constant([0.0, 0.0, 0.0, 3.0]),
                     ["Invert", "Equalize", "TranslateX"])
  np.testing.assert_allclose(out[0], 1.0 - x[0])
  np.testing.assert_allclose(out[1], aa.equalize(x[1:2])[0])
  np.testing.assert_array_equal(out[2], x[2])
  np.testing.assert_array_equal(out[3, :, 3:], x[3, :, :5])  # shifted right by 3 px
  assert not out[3, :, :3].numpy().any()


# ---------------------------------------------------------------------------- CutMix
def test_cutmix_box_area_and_labels():
  b, h, w = 16, 20, 24
  y = tf.range(b)
  x = tf.tile(tf.cast(y, tf.float32)[:, None, None, None], [1, h, w, 2])
  for k in range(5):
    seed = tf.constant([k, 3], tf.int64)
    xm, ya, yb, lam = mix.cutmix(x, y, seed, prob=1.0)
    xm, ya, yb, lam = xm.numpy(), ya.numpy(), yb.numpy(), float(lam)
    np.testing.assert_array_equal(ya, y)
    assert sorted(yb) == list(range(b))  # a permutation
    for i in range(b):
      own = (xm[i, :, :, 0] == i).mean()
      if yb[i] != i:
        assert own == pytest.approx(lam)
        assert set(np.unique(xm[i])) <= {i, yb[i]}
    assert 0.0 <= lam <= 1.0


def test_cutmix_prob_zero_is_identity_and_loss():
  x = _images((8, 12, 12, 3), 16, np.float32)
  y = tf.constant([0, 1, 2, 3, 0, 1, 2, 3])
  xm, ya, yb, lam = mix.cutmix(x, y, SEED, prob=0.0)
  np.testing.assert_array_equal(xm, x)
  np.testing.assert_array_equal(ya, y)
  np.testing.assert_array_equal(yb, y)
  assert float(lam) == 1.0
  logits = tf.constant(np.random.default_rng(0).normal(size=(8, 4)), tf.float32)
  ce = lambda t: tf.nn.sparse_softmax_cross_entropy_with_logits(t, logits)  # noqa: E731
  yb2 = tf.reverse(y, [0])
  np.testing.assert_allclose(mix.cutmix_loss(logits, y, yb2, 0.3),
                             tf.reduce_mean(0.3 * ce(y) + 0.7 * ce(yb2)), rtol=1e-6)
  fn = tf.function(lambda x, y, s: mix.cutmix(x, y, s, prob=0.5))
  draws = {float(fn(x, y, tf.constant([i, 0], tf.int64))[3]) for i in range(12)}
  assert 1.0 in draws and len(draws) > 2  # applied to some batches only


# ------------------------------------------------------------------- every policy
@pytest.mark.parametrize("name", policies.POLICIES.names())
def test_every_policy_traces_and_is_seeded(name):
  """Each registered policy under tf.function: same shape and dtype, finite, the same
  output for the same seed, and (unless it is the identity) a different one for another."""
  x = _images((8, 16, 16, 3), 17, np.float32)
  fn = tf.function(policies.make_policy(name, image_shape=(16, 16, 3), mean=(0.5,) * 3,
                                        std=(0.25,) * 3))
  a, b, c = (fn(x, SEED).numpy(), fn(x, SEED).numpy(), fn(x, SEED + 1).numpy())
  assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
  np.testing.assert_array_equal(a, b)
  if name != "none":
    assert not np.array_equal(a, c)
