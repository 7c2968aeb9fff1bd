"""The training layer: PyTorch SGD, the milestone schedule, precision, the Trainer's hook."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import quadrant_source
from tfcondense import evaluation as ev
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.models import build_model, initialize


def test_milestone_lr_steps_down_at_two_thirds_and_five_sixths():
  p = ev.Protocol(lr=0.1)
  lrs = [float(training.milestone_lr(tf.constant(s), 60, p.lr, p.milestones, p.gamma))
         for s in (0, 39, 40, 49, 50, 59)]
  np.testing.assert_allclose(lrs, [0.1, 0.1, 0.02, 0.02, 0.004, 0.004], rtol=1e-6)


def test_sgd_step_matches_pytorch_formula():
  w = tf.Variable([1.0, -2.0])
  buf = tf.Variable([0.5, 0.5])
  g = tf.constant([0.1, 0.2])
  training.sgd_step([w], [buf], [g], lr=0.1, momentum=0.9, weight_decay=0.01)
  d = np.array([0.1, 0.2]) + 0.01 * np.array([1.0, -2.0])
  b = 0.9 * 0.5 + d
  np.testing.assert_allclose(buf.numpy(), b, rtol=1e-6)
  np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0]) - 0.1 * b, rtol=1e-6)


def test_sgd_step_missing_gradients_skip_or_decay_the_buffer():
  w1, w2 = tf.Variable([1.0]), tf.Variable([1.0])
  b1, b2 = tf.Variable([0.5]), tf.Variable([0.5])
  training.sgd_step([w1], [b1], [None], lr=0.1, momentum=0.5)
  assert float(w1[0]) == 1.0 and float(b1[0]) == 0.5  # untouched
  training.sgd_step([w2], [b2], [None], lr=[0.1], momentum=0.5, missing="zero")
  assert float(b2[0]) == pytest.approx(0.25) and float(w2[0]) == pytest.approx(0.975)
  with pytest.raises(InvalidConfigError, match="missing must be one of"):
    training.sgd_step([w2], [b2], [None], lr=0.1, momentum=0.5, missing="zeros")


def test_build_with_precision_restores_the_global_policy():
  before = keras.config.dtype_policy().name
  net = training.build_with_precision("mixed_bfloat16", "mlp", (8, 8, 1), 3, seed=0)
  assert net.layers[-1].compute_dtype == "bfloat16"
  assert keras.config.dtype_policy().name == before


def test_each_epoch_visits_every_image_once():
  src = quadrant_source(n_per_class=4)  # 16 images, batch 8 -> 2 steps per epoch
  net = build_model("mlp", src.image_shape, 4)
  tr = training.Trainer(net, src.train_images, src.train_labels, src.mean, src.std,
                        ev.Protocol(batch_size=8, epochs=2, augmentation="none"))
  tr.reset(0)
  for epoch in range(2):
    seen = np.concatenate([tr._batch_indices(tf.constant(epoch * 2 + s, tf.int64)).numpy()
                           for s in range(2)])
    assert sorted(seen) == list(range(16))


class _ScaledLoss(training.Trainer):
  """The default loss times a factor, through the hook."""

  factor = 1.0

  def loss(self, logits, batch):
    return self.factor * super().loss(logits, batch)


def _weights_after(trainer_cls, factor, protocol, steps=6):
  src = quadrant_source(n_per_class=4)
  net = build_model("mlp", src.image_shape, 4, seed=0)
  tr = trainer_cls(net, src.train_images, src.train_labels, src.mean, src.std, protocol)
  tr.factor = factor
  tr.reset(3)
  tr.train(0, steps)
  return [v.numpy() for v in net.trainable_variables]


def test_the_loss_hook_is_what_the_trainer_descends():
  protocol = ev.get_protocol("cpu", steps=6, batch_size=8)  # dsa + CutMix p 0.5
  plain = _weights_after(training.Trainer, 1.0, protocol)
  same = _weights_after(_ScaledLoss, 1.0, protocol)
  for a, b in zip(plain, same):
    np.testing.assert_array_equal(a, b)  # the hook is the loss the step uses
  # A zero loss leaves only weight decay through the momentum: w shrinks, no learning.
  frozen = _weights_after(_ScaledLoss, 0.0, ev.Protocol(
      steps=1, epochs=None, batch_size=8, augmentation="none", cutmix_prob=0.0,
      weight_decay=0.5, lr=0.1), steps=1)
  net = build_model("mlp", quadrant_source(n_per_class=4).image_shape, 4, seed=0)
  initialize(net, 3)  # what reset(3) starts from
  start = [v.numpy() for v in net.trainable_variables]
  for w0, w1 in zip(start, frozen):
    np.testing.assert_allclose(w1, w0 * (1 - 0.1 * 0.5), rtol=1e-6, atol=1e-7)
