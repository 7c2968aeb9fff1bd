"""Continual learning: head growth, distillation, memory budget, data isolation, resume."""
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import quadrant_source
from tfcondense import continual
from tfcondense.continual import memory
from tfcondense.data.store import SourceData
from tfcondense.errors import InvalidConfigError
from tfcondense.models import build_model
from tfcondense.registry import UnknownNameError

SMOKE = continual.get_protocol("smoke")
# The quadrant classes are not symmetric under a horizontal flip.
TINY = dict(protocol=SMOKE, flip=False)

CALLS = []  # (class_names, train_images, train_labels) received by the spy strategy


if "spy_test" not in memory.EXEMPLARS:
  @memory.EXEMPLARS.register("spy_test")
  def _spy(source, ipc, seed, config, workdir):
    CALLS.append((source.class_names, np.array(source.train_images),
                  np.array(source.train_labels)))
    return memory.get_strategy("random")(source, ipc, seed, config, workdir)


@pytest.fixture(autouse=True)
def _reset_calls():
  CALLS.clear()


def test_growth_keeps_old_logits_and_adds_fresh_columns():
  x = tf.random.stateless_normal([3, 16, 16, 1], [1, 2])
  old = build_model("convnet3", (16, 16, 1), 2, seed=0)
  grown = continual.grow_classifier(
      old, 3, lambda n: build_model("convnet3", (16, 16, 1), n, seed=7))
  z_old, z_new = old(x).numpy(), grown(x).numpy()
  assert z_new.shape == (3, 5)
  np.testing.assert_allclose(z_new[:, :2], z_old, rtol=1e-5, atol=1e-5)
  k_old = old.get_layer("classifier").kernel.numpy()
  k_new = grown.get_layer("classifier").kernel.numpy()
  np.testing.assert_array_equal(k_new[:, :2], k_old)
  assert not np.allclose(k_new[:, 2:], 0.0)  # new columns are freshly initialised
  assert grown is not old and old.output.shape[-1] == 2  # the teacher is untouched


def test_distillation_loss_hand_example():
  # T = 2; teacher old logits [0, 2 ln 3] -> p = softmax([0, ln 3]) = [1/4, 3/4];
  # student old logits [0, 0] -> q = [1/2, 1/2] (its new-class logit 5 is ignored).
  # KL(p || q) = 1/4 ln(1/2) + 3/4 ln(3/2); loss = T^2 * batch mean, second row KL 0.
  teacher = tf.constant([[0.0, 2 * math.log(3.0)], [1.0, -1.0]])
  student = tf.constant([[0.0, 0.0, 5.0], [1.0, -1.0, 3.0]])
  kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
  expected = 4.0 * (kl + 0.0) / 2
  got = float(continual.distillation_loss(student, teacher, temperature=2.0))
  assert got == pytest.approx(expected, rel=1e-5)
  assert expected == pytest.approx(0.261624, abs=1e-5)
  # The reference's form: element-mean KL over B * n_old entries, * T^2 * n_old.
  p = tf.nn.softmax(teacher / 2.0)
  log_q = tf.nn.log_softmax(student[:, :2] / 2.0)
  reference = float(tf.reduce_mean(p * (tf.math.log(p) - log_q))) * 4.0 * 2
  assert got == pytest.approx(reference, rel=1e-5)
  # Per-task blocks: the KL of each block's own softmax, summed.
  blocks = float(continual.distillation_loss(student, teacher, 2.0, blocks=[(0, 1), (1, 2)]))
  assert blocks == pytest.approx(0.0, abs=1e-6)  # one-column softmaxes are all 1


def test_classification_loss_restricts_softmax_to_the_task_block():
  logits = tf.constant([[2.0, 0.0, 9.0, -1.0]])
  groups = tf.constant([0, 0, 1, 1])
  y = tf.constant([0])
  masked = float(continual.classification_loss(logits, y, y, 1.0, groups))
  assert masked == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), rel=1e-5)
  plain = float(continual.classification_loss(logits, y, y, 1.0))
  assert plain > masked + 5  # without heads the class-1 logit of 9 dominates


def test_class_order_and_cifar100_split_without_data():
  order = continual.make_class_order(100, seed=0)
  groups = continual.split_classes(order, 5, num_classes=100)
  assert [len(g) for g in groups] == [20] * 5
  assert sorted(c for g in groups for c in g) == list(range(100))
  assert continual.make_class_order(100, seed=0) == order
  assert continual.make_class_order(100, seed=1) != order
  assert order != tuple(range(100))
  with pytest.raises(InvalidConfigError, match="3 steps do not divide the 100 classes"):
    continual.split_classes(order, 3)
  with pytest.raises(InvalidConfigError, match="repeats a class"):
    continual.split_classes((0, 1, 1, 2), 2)


def _fake(name, shape, classes=3, n=4, value=0.5):
  x = np.full((classes * n,) + shape, value, np.float32)
  y = np.repeat(np.arange(classes), n).astype(np.int32)
  c = shape[-1]
  return SourceData(name=name, train_images=x, train_labels=y, test_images=x[:classes],
                    test_labels=y[::n], class_names=tuple(map(str, range(classes))),
                    mean=(0.4,) * c, std=(0.2,) * c)


def test_task_sequence_brings_svhn_mnist_usps_shapes_to_one_without_data():
  shapes = {"svhn_cropped": (32, 32, 3), "mnist": (28, 28, 1), "usps": (16, 16, 1)}
  loaded = []

  def loader(name, **options):
    loaded.append((name, options))
    return _fake(name, shapes[name])

  tasks = continual.task_sequence(continual.DIGIT_TASKS, loader=loader, limit_per_class=4)
  assert [n for n, _ in loaded] == ["svhn_cropped", "mnist", "usps"]
  assert loaded[0][1] == {"limit_per_class": 4}
  assert [t.image_shape for t in tasks] == [(32, 32, 3)] * 3
  assert [t.name for t in tasks] == list(continual.DIGIT_TASKS)
  np.testing.assert_allclose(tasks[1].train_images, 0.5, atol=1e-6)  # gray repeated
  assert tasks[2].mean == (0.4, 0.4, 0.4)
  gray = continual.harmonize([_fake("a", (8, 8, 3))], image_shape=(8, 8, 1))[0]
  assert gray.image_shape == (8, 8, 1) and gray.mean == pytest.approx((0.4,))


def test_bad_input_fails_before_any_training(tmp_path):
  src = quadrant_source()
  with pytest.raises(InvalidConfigError, match="cannot hold one image per class"):
    continual.ContinualConfig(memory_ipc=0, strategy="spy_test")
  with pytest.raises(UnknownNameError, match="unknown exemplar method 'idcc'.*herding"):
    continual.ContinualConfig(strategy="idcc")
  cfg = continual.ContinualConfig(memory_ipc=2, strategy="spy_test", **TINY)
  with pytest.raises(InvalidConfigError, match="3 steps do not divide the 4 classes"):
    continual.ClassIncrementalLearner(src, cfg, steps=3, run_dir=str(tmp_path / "a"))
  big = continual.ContinualConfig(memory_ipc=21, strategy="spy_test", **TINY)
  with pytest.raises(InvalidConfigError, match="IPC 21 exceeds the 20 images"):
    continual.ClassIncrementalLearner(src, big, steps=2)
  bad = continual.ContinualConfig(
      memory_ipc=2, strategy="idc", exemplars=continual.ExemplarConfig(
          condense_overrides={"no_such_field": 1}), **TINY)
  with pytest.raises(InvalidConfigError, match="no setting"):
    continual.ClassIncrementalLearner(src, bad, steps=2)
  assert CALLS == [] and not os.path.exists(tmp_path / "a")


@pytest.mark.heavy
def test_condensed_and_selected_exemplars_share_one_stored_pixel_budget():
  src = quadrant_source().subset([3, 1])
  budget = continual.ExemplarConfig(steps=1, inner_iterations=1,
                                    condense_overrides={"n_data": 16})
  idc = continual.build_exemplars("idc", src, 2, seed=0, config=budget)
  rnd = continual.build_exemplars("random", src, 2, seed=0, config=budget)
  assert idc.storage()["stored_pixels"] == rnd.storage()["stored_pixels"] == 2 * 2 * 256
  assert idc.storage()["formed_images"] == 16 and rnd.storage()["formed_images"] == 4
  x, y = idc.formed()
  assert x.shape == (16, 16, 16, 1) and sorted(set(y.tolist())) == [0, 1]
  glob = idc.relabel([5, 7])
  assert sorted(set(glob.labels.tolist())) == [5, 7]
  with pytest.raises(InvalidConfigError, match="over the budget"):
    memory.check_budget(idc, 2, 1, (16, 16, 1), "idc")


@pytest.mark.heavy
def test_resume_after_two_steps_and_memory_sees_only_its_classes(tmp_path):
  src = quadrant_source()
  cfg = continual.ContinualConfig(memory_ipc=2, strategy="spy_test", **TINY)
  run_dir = str(tmp_path / "run")
  first = continual.ClassIncrementalLearner(src, cfg, steps=4, order_seed=3,
                                            run_dir=run_dir, show_progress=False)
  part = first.run(until=2)
  assert len(part.steps) == 2 and len(CALLS) == 2
  order = first.class_order
  # Each memory build got exactly its step's class subset and nothing else.
  for t, (names, images, labels) in enumerate(CALLS):
    c = order[t]
    assert names == (src.class_names[c],)
    np.testing.assert_array_equal(images, src.train_images[src.train_labels == c])
    assert set(labels.tolist()) == {0}
  x = tf.constant(src.normalize(src.test_images[:4]))
  z_first = first.model(x).numpy()

  second = continual.ClassIncrementalLearner(src, cfg, steps=4, order_seed=3,
                                             run_dir=run_dir, show_progress=False)
  assert second.finished_steps == 2 and len(second.memory) == 2
  np.testing.assert_allclose(second.model(x).numpy(), z_first, rtol=1e-5, atol=1e-5)
  full = second.run()
  assert len(CALLS) == 4  # steps 0 and 1 were not rebuilt
  assert [n for n, _, _ in CALLS[2:]] == [(src.class_names[order[2]],),
                                          (src.class_names[order[3]],)]
  assert [s["step"] for s in full.steps] == [0, 1, 2, 3]
  assert full.steps[:2] == part.steps
  assert [s["seen_classes"] for s in full.steps] == [1, 2, 3, 4]
  assert [len(s["group_accuracy"]) for s in full.steps] == [1, 2, 3, 4]
  assert full.steps[-1]["memory"]["stored_images"] == 8
  other = continual.ContinualConfig(memory_ipc=3, strategy="spy_test", **TINY)
  with pytest.raises(InvalidConfigError, match="different settings"):
    continual.ClassIncrementalLearner(src, other, steps=4, order_seed=3, run_dir=run_dir)


@pytest.mark.heavy
def test_two_step_task_incremental_run_end_to_end(tmp_path):
  # Two tasks of different shapes and channels: one head per task after harmonising.
  a = quadrant_source(name="toy_a").subset([0, 3])
  b = quadrant_source(size=8, channels=3, seed=1, name="toy_b").subset([1, 2])
  cfg = continual.ContinualConfig(memory_ipc=2, strategy="random", **TINY)
  learner = continual.TaskIncrementalLearner([a, b], cfg, show_progress=False)
  result = learner.run()
  assert learner.image_shape == (16, 16, 3) and learner.train_on == "memory+current"
  assert [s["seen_classes"] for s in result.steps] == [2, 4]
  last = result.steps[-1]
  assert last["train_images"] == 2 * 2 + 40  # task a's memory + task b's full data
  assert len(last["group_accuracy"]) == 2
  assert all(0.0 <= acc <= 100.0 for acc in result.accuracies)
  assert last["accuracy"] == pytest.approx(np.mean(last["group_accuracy"]))
  png = continual.plot_accuracy([result], str(tmp_path / "acc.png"), title="tiny")
  assert os.path.getsize(png) > 1000
