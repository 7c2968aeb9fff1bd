"""The train-from-scratch evaluator."""
import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import quadrant_source
from tfcondense import evaluate as ev
from tfcondense.errors import InvalidConfigError, NonFiniteLossError

FAST = ev.Protocol(name="test", epochs=None, steps=40, batch_size=16, num_evals=2,
                   augmentation="none", cutmix_prob=0.0)


def test_named_protocols_and_overrides():
  assert ev.get_protocol("paper").total_steps(400) == 1000 * 7  # ceil(400/64) per epoch
  assert ev.get_protocol("paper").total_steps(10) == 1000  # batch capped at the set size
  assert ev.get_protocol("cpu", steps=12).total_steps(400) == 12
  with pytest.raises(InvalidConfigError, match="known: paper, cpu"):
    ev.get_protocol("fast")


def test_lr_schedule_steps_down_at_two_thirds_and_five_sixths():
  p = ev.Protocol(lr=0.1)
  lrs = [float(ev._lr_at(tf.constant(s), 60, p)) for s in (0, 39, 40, 49, 50, 59)]
  np.testing.assert_allclose(lrs, [0.1, 0.1, 0.02, 0.02, 0.004, 0.004], rtol=1e-6)


def test_sgd_update_matches_pytorch_formula():
  w = tf.Variable([1.0, -2.0])
  buf = tf.Variable([0.5, 0.5])
  g = tf.constant([0.1, 0.2])
  ev._sgd_update([w], [buf], [g], lr=0.1, momentum=0.9, weight_decay=0.01)
  d = np.array([0.1, 0.2]) + 0.01 * np.array([1.0, -2.0])
  b = 0.9 * 0.5 + d
  np.testing.assert_allclose(buf.numpy(), b, rtol=1e-6)
  np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0]) - 0.1 * b, rtol=1e-6)


def test_each_epoch_visits_every_image_once():
  src = quadrant_source(n_per_class=4)  # 16 images, batch 8 -> 2 steps per epoch
  from tfcondense.models import build_model
  net = build_model("mlp", src.image_shape, 4)
  tr = ev.Trainer(net, src.train_images, src.train_labels, src.mean, src.std,
                  ev.Protocol(batch_size=8, epochs=2, augmentation="none"))
  tr.reset(0)
  for epoch in range(2):
    seen = np.concatenate([tr._batch_indices(tf.constant(epoch * 2 + s, tf.int64)).numpy()
                           for s in range(2)])
    assert sorted(seen) == list(range(16))


def test_evaluate_learns_a_separable_task_and_is_deterministic():
  src = quadrant_source(n_per_class=16, n_test=10)
  r1 = ev.evaluate(src.train_images, src.train_labels, src, model="convnet3",
                   protocol=FAST, repetitions=2, seed=0, show_progress=False)
  assert r1.best_mean >= 90.0, r1
  assert len(r1.best) == 2 and r1.steps == 40
  r2 = ev.evaluate(src.train_images, src.train_labels, src, model="convnet3",
                   protocol=FAST, repetitions=2, seed=0, show_progress=False)
  assert r1.best == r2.best and r1.last == r2.last


def test_evaluate_with_augmentation_and_cutmix_runs():
  src = quadrant_source(n_per_class=4, n_test=4)
  p = ev.get_protocol("smoke", augmentation="dsa", cutmix_prob=1.0)
  r = ev.evaluate(src.train_images, src.train_labels, src, protocol=p, repetitions=1,
                  show_progress=False)
  assert 0.0 <= r.best_mean <= 100.0 and r.augmentation == "dsa"


def test_evaluate_rejects_bad_input_and_diverging_runs():
  src = quadrant_source(n_per_class=4, n_test=4)
  with pytest.raises(InvalidConfigError, match="do not match"):
    ev.evaluate(np.zeros((4, 8, 8, 1)), [0, 1, 2, 3], src, protocol="smoke")
  with pytest.raises(InvalidConfigError, match=r"labels must lie in \[0, 4\)"):
    ev.evaluate(src.train_images[:2], [0, 7], src, protocol="smoke")
  with pytest.raises(InvalidConfigError, match="NaN"):
    ev.evaluate(np.full((2, 16, 16, 1), np.nan), [0, 1], src, protocol="smoke")
  with pytest.raises(NonFiniteLossError, match="lower the lr"):
    ev.evaluate(src.train_images, src.train_labels, src,
                protocol=ev.get_protocol("smoke", lr=1e12, steps=20), repetitions=1,
                show_progress=False)


def test_speech_sources_default_to_convnet4_without_augmentation():
  """IDC evaluates spectrograms with ConvNet-4 and no augmentation; other sources keep
  ConvNet-3 and the protocol's DSA; an explicit Protocol is respected as given."""
  assert ev.default_model("speech_commands") == "convnet4"
  assert ev.default_model("fashion_mnist") == "convnet3"
  assert ev.default_augmentation("fashion_mnist") is None
  src = quadrant_source(n_per_class=4, size=16, name="speech_commands")
  res = ev.evaluate(src.train_images, src.train_labels, src, protocol="smoke",
                    repetitions=1, show_progress=False)
  assert (res.model, res.augmentation) == ("convnet4", "none")
  res = ev.evaluate(src.train_images, src.train_labels, src, model="mlp",
                    protocol=ev.get_protocol("smoke"), repetitions=1, show_progress=False)
  assert (res.model, res.augmentation) == ("mlp", "dsa")
