"""Soft labels: the loss by hand, the artifact file, CutMix mixing, the evaluator path."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import quadrant_source
from tfcondense import artifact as artifact_lib
from tfcondense import evaluation as ev
from tfcondense import soft_labels as soft_lib
from tfcondense import training
from tfcondense.errors import CorruptArtifactError, InvalidConfigError
from tfcondense.models import build_model

FAST = ev.Protocol(name="test", epochs=None, steps=20, batch_size=8, num_evals=1,
                   augmentation="none", cutmix_prob=0.0)


def test_soft_cross_entropy_and_kl_match_a_hand_computation():
  logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
  p = np.array([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0]])
  log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ce = np.mean(-(p * log_q).sum(1))  # rows: 0.869846, 0.958020
  assert ce == pytest.approx((0.869846 + 0.958020) / 2, abs=1e-5)
  got = soft_lib.soft_loss(tf.constant(logits), tf.constant(p), loss="ce")
  assert float(got) == pytest.approx(ce, rel=1e-5)
  t = 4.0
  zt = logits / t
  log_qt = zt - np.log(np.exp(zt).sum(1, keepdims=True))
  with np.errstate(divide="ignore", invalid="ignore"):
    terms = np.where(p > 0, p * (np.log(p) - log_qt), 0.0)
  kl = t * t * np.mean(terms.sum(1))
  assert float(soft_lib.soft_loss(tf.constant(logits), tf.constant(p), t, "kl")) == \
      pytest.approx(kl, rel=1e-5)
  # One-hot targets: the soft cross-entropy is the hard one.
  hard = tf.nn.sparse_softmax_cross_entropy_with_logits([0, 1], tf.constant(logits, tf.float32))
  onehot = np.eye(3)[[0, 1]]
  assert float(soft_lib.soft_loss(tf.constant(logits), tf.constant(onehot))) == \
      pytest.approx(float(tf.reduce_mean(hard)), rel=1e-6)


def test_logits_become_distributions_with_their_temperature_and_bad_rows_fail():
  soft = soft_lib.SoftLabels(np.array([[1.0, 0.0], [0.0, 3.0]]), kind="logits",
                             temperature=2.0)
  e = np.exp([0.5, 0.0])
  np.testing.assert_allclose(soft.probabilities()[0], e / e.sum(), rtol=1e-6)
  np.testing.assert_array_equal(soft.hard_labels(), [0, 1])
  with pytest.raises(InvalidConfigError, match="kind='logits'"):
    soft_lib.SoftLabels(np.array([[2.0, 1.0]]))  # not a distribution
  with pytest.raises(InvalidConfigError, match="temperature must be > 0"):
    soft_lib.SoftLabels(np.array([[0.5, 0.5]]), temperature=0)
  with pytest.raises(InvalidConfigError, match="loss must be one of ce, kl"):
    soft_lib.SoftLabels(np.array([[0.5, 0.5]]), loss="mse")


def test_rows_per_stored_image_repeat_for_the_images_each_forms():
  soft = soft_lib.SoftLabels(np.array([[0.9, 0.1], [0.2, 0.8]]))
  formed = soft_lib.for_training(soft, 2, 8)
  np.testing.assert_array_equal(formed.values[:4], np.repeat(soft.values[:1], 4, 0))
  assert formed.per == "formed" and len(formed.values) == 8
  with pytest.raises(InvalidConfigError, match="not a whole number"):
    soft_lib.for_training(soft, 2, 7)


def test_artifact_round_trip_counts_the_soft_label_bytes(tmp_path):
  src = quadrant_source(n_per_class=2)
  soft = soft_lib.SoftLabels(np.eye(4)[src.train_labels] * 0.9 + 0.025,
                             info=dict(teacher="test"))
  meta = dict(source="toy", method="random", ipc=2, storage={"stored_bytes": 1000})
  artifact_lib.save_artifact(str(tmp_path / "a"), src.train_images, src.train_labels, meta,
                             soft_labels=soft)
  art = artifact_lib.load_artifact(str(tmp_path / "a"))
  np.testing.assert_array_equal(art.soft_labels.values, soft.values)
  assert art.soft_labels.info == {"teacher": "test"}
  storage = art.meta["storage"]
  assert storage["soft_label_bytes"] == 8 * 4 * 4
  assert storage["stored_bytes"] == 1000 + 128
  assert storage["stored_bytes_without_soft_labels"] == 1000
  # A hard-label artifact has none; a missing file that meta.json names is an error.
  artifact_lib.save_artifact(str(tmp_path / "b"), src.train_images, src.train_labels,
                             dict(meta))
  assert artifact_lib.load_artifact(str(tmp_path / "b")).soft_labels is None
  (tmp_path / "a" / "soft_labels.npy").unlink()
  with pytest.raises(CorruptArtifactError, match="soft_labels.npy is missing"):
    artifact_lib.load_artifact(str(tmp_path / "a"))


def _trained_weights(src, protocol, soft=None, steps=12):
  net = build_model("convnet3", src.image_shape, 4, seed=0)
  tr = training.Trainer(net, src.train_images, src.train_labels, src.mean, src.std,
                        protocol, soft_labels=soft)
  tr.reset(7)
  tr.train(0, steps)
  return [v.numpy() for v in net.trainable_variables]


@pytest.mark.heavy
def test_one_hot_soft_labels_train_as_the_hard_labels_under_cutmix():
  """CutMix mixes the target rows by the same draw and area ratio as the hard loss."""
  src = quadrant_source(n_per_class=8)
  protocol = ev.get_protocol("cpu", steps=12, batch_size=8)  # dsa + CutMix p 0.5
  onehot = soft_lib.SoftLabels(np.eye(4, dtype=np.float32)[src.train_labels])
  hard = _trained_weights(src, protocol)
  soft = _trained_weights(src, protocol, onehot)
  for a, b in zip(hard, soft):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  other = dataclasses.replace(onehot, values=np.full((32, 4), 0.25, np.float32))
  uniform = _trained_weights(src, protocol, other)  # the targets do matter
  assert not np.allclose(hard[-1], uniform[-1], atol=1e-4)


def test_evaluate_records_the_soft_labels_and_checks_their_shape():
  src = quadrant_source(n_per_class=4)
  soft = soft_lib.SoftLabels(np.random.default_rng(0).normal(size=(16, 4)), kind="logits",
                             temperature=3.0, loss="kl")
  res = ev.evaluate(src.train_images, src.train_labels, src, model="mlp", protocol=FAST,
                    repetitions=1, show_progress=False, soft_labels=soft)
  assert res.as_dict()["soft_labels"] == dict(kind="logits", loss="kl", temperature=3.0)
  hard = ev.evaluate(src.train_images, src.train_labels, src, model="mlp", protocol=FAST,
                     repetitions=1, show_progress=False)
  assert "soft_labels" not in hard.as_dict()
  with pytest.raises(InvalidConfigError, match="do not fit 8 images"):
    ev.evaluate(src.train_images[:8], src.train_labels[:8], src, model="mlp",
                protocol=FAST, repetitions=1, show_progress=False, soft_labels=soft)


def test_teacher_relabelling_is_cached_and_labels_the_formed_images(tmp_path):
  from tfcondense import relabel
  src = quadrant_source(n_per_class=8)
  cfg = relabel.TeacherConfig(epochs=1, model="mlp", batch_size=8, max_steps=6,
                              augmentation="none", temperature=2.0)
  teacher = relabel.train_teacher(src, cfg, cache_dir=str(tmp_path), show_progress=False)
  assert teacher.info["steps"] == 4 and 0 <= teacher.info["test_accuracy"] <= 100
  again = relabel.train_teacher(src, cfg, cache_dir=str(tmp_path), show_progress=False)
  assert again.info == json_roundtrip(teacher.info)
  soft = relabel.relabel_set(src.train_images[:6], teacher)
  np.testing.assert_allclose(soft.values, relabel.logits(again, src.train_images[:6]),
                             rtol=1e-5, atol=1e-6)  # the cached weights are the trained ones
  assert (soft.kind, soft.temperature, soft.loss, soft.per) == ("logits", 2.0, "kl", "formed")
  assert soft.values.shape == (6, 4) and soft.info["teacher"]["source"] == "toy"


def json_roundtrip(obj):
  import json
  return json.loads(json.dumps(obj))
