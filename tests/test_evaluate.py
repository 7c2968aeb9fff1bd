"""The train-from-scratch evaluator."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import quadrant_source
from tfcondense import evaluation as ev
from tfcondense import training
from tfcondense.errors import InvalidConfigError, NonFiniteLossError

FAST = ev.Protocol(name="test", epochs=None, steps=40, batch_size=16, num_evals=2,
                   augmentation="none", cutmix_prob=0.0)


def test_named_protocols_and_overrides():
  assert ev.get_protocol("paper").total_steps(400) == 1000 * 7  # ceil(400/64) per epoch
  assert ev.get_protocol("paper").total_steps(10) == 1000  # batch capped at the set size
  assert ev.get_protocol("cpu", steps=12).total_steps(400) == 12
  # cpu grows with the set between 1,000 and 3,200 steps; a given length replaces that.
  assert [ev.get_protocol("cpu").total_steps(n) for n in (10, 100, 400, 500, 2000)] == [
      1000, 1000, 2800, 3200, 3200]
  assert ev.get_protocol("cpu", epochs=5).total_steps(400) == 35
  assert ev.get_protocol("cpu", epochs=5, min_steps=50).total_steps(400) == 50
  with pytest.raises(InvalidConfigError, match="known: paper, cpu"):
    ev.get_protocol("fast")


FASHION_STATS = dict(mean=(0.2861,), std=(0.3530,))


def _fill_blocks(protocol, n=256, side=28, block=6):
  """Fraction of constant images the protocol's augmentation leaves with a block x block
  square of the fill colour (the normalised zero that cutout, crop, scale and rotate fill
  with). Crop / scale / rotate fill at most 4-pixel strips or corner triangles of a
  28 x 28 image; a cutout square is 14 x 14 (at least 7 x 7 at a corner)."""
  policy = training.make_augmentation(protocol, (side, side, 1), flip=True, **FASHION_STATS)
  x = tf.fill([n, side, side, 1], 0.8)  # normalised ~1.46; brightness moves it by <= 0.5
  out = (policy(x, tf.constant([3, 4], tf.int64)).numpy()[..., 0] - 0.2861) / 0.3530
  fill = (np.abs(out) < 0.3).astype(np.float32)
  pooled = tf.nn.pool(fill[..., None], [block, block], "AVG", padding="VALID").numpy()
  return float(np.mean((pooled >= 1.0 - 1e-6).any(axis=(1, 2, 3))))


@pytest.mark.heavy
def test_no_protocol_blanks_a_square_under_cutmix_unless_asked():
  """The IDC reference drops cutout from DSA when CutMix is on (98% of images lost a
  quarter of their area to a 14 x 14 block before protocol version 2)."""
  checked = 0
  for name, protocol in ev.PROTOCOLS.items():
    if protocol.augmentation == "dsa" and protocol.cutmix_prob > 0:
      assert protocol.dsa_strategy() == "color_crop_flip_scale_rotate", name
      assert _fill_blocks(protocol) == 0.0, name
      checked += 1
  assert checked >= 4  # paper, cpu, quick, smoke
  cutout = ev.get_protocol("cpu", strategy=ev.DSA_WITH_CUTOUT)
  assert _fill_blocks(cutout) > 0.5  # on request, cutout is back
  no_cutmix = ev.get_protocol("cpu", cutmix_prob=0.0)
  assert no_cutmix.dsa_strategy() == ev.DSA_WITH_CUTOUT  # the reference keeps it then
  assert _fill_blocks(no_cutmix) > 0.5


def test_the_recipe_is_spelled_out_and_recorded():
  assert ev.recipe(ev.get_protocol("cpu"), "fashion_mnist") == \
      "dsa(color_crop_flip_scale_rotate)+cutmix(0.5)"
  assert ev.recipe(ev.get_protocol("cpu"), "digits") == \
      "dsa(color_crop_scale_rotate)+cutmix(0.5)"  # no flip on digits
  assert ev.recipe(ev.get_protocol("light"), "fashion_mnist") == "crop_flip"
  assert "dsa(color_crop_flip_scale_rotate)+cutmix(0.5)" in ev.get_protocol("cpu").describe()
  with pytest.raises(InvalidConfigError, match="needs augmentation 'dsa'"):
    ev.get_protocol("light", strategy="color")
  src = quadrant_source()
  res = ev.evaluate(src.train_images[:8], src.train_labels[:8], src, protocol=FAST,
                    repetitions=1, model="mlp", show_progress=False)
  row = res.as_dict()
  assert row["augmentation_spec"] == "none" and row["protocol_version"] == ev.PROTOCOL_VERSION
  assert ev.row_recipe(dict(augmentation="dsa")) == "dsa (v1)"  # an old row says so
  assert ev.row_version(dict(augmentation="dsa")) == 1


def test_epochs_with_a_floor_and_a_ceiling_of_steps():
  p = ev.Protocol(epochs=10, min_steps=100, max_steps=500)
  assert [p.total_steps(n) for n in (64, 640, 6400)] == [100, 100, 500]
  assert p.total_steps(1280) == 200
  assert "10 epochs (>= 100, <= 500 steps)" in p.describe()
  with pytest.raises(InvalidConfigError, match="min_steps must be at least 1"):
    ev.Protocol(epochs=10, min_steps=0)


@pytest.mark.heavy
def test_evaluate_learns_a_separable_task_and_is_deterministic():
  src = quadrant_source(n_per_class=16, n_test=10)
  r1 = ev.evaluate(src.train_images, src.train_labels, src, model="convnet3",
                   protocol=FAST, repetitions=2, seed=0, show_progress=False)
  assert r1.best_mean >= 90.0, r1
  assert len(r1.best) == 2 and r1.steps == 40
  r2 = ev.evaluate(src.train_images, src.train_labels, src, model="convnet3",
                   protocol=FAST, repetitions=2, seed=0, show_progress=False)
  assert r1.best == r2.best and r1.last == r2.last


@pytest.mark.heavy
def test_a_kept_trainer_gives_what_a_fresh_one_gives(monkeypatch):
  src = quadrant_source(n_per_class=4, n_test=10)
  sets = [(src.train_images[::-1], src.train_labels[::-1]),
          (1.0 - src.train_images, src.train_labels)]
  p = ev.get_protocol("smoke", augmentation="dsa", cutmix_prob=0.5, steps=8)

  def run(x, y):
    r = ev.evaluate(x, y, src, protocol=p, repetitions=2, seed=3, show_progress=False)
    return r.best, r.last

  fresh = []
  for x, y in sets:
    ev.clear_trainer_cache()
    fresh.append(run(x, y))
  ev.clear_trainer_cache()
  kept = [run(*sets[0]), run(*sets[1]), run(*sets[0])]
  assert len(ev._TRAINERS) == 1  # one graph served all three  # pylint: disable=protected-access
  assert kept == [fresh[0], fresh[1], fresh[0]]
  assert fresh[0] != fresh[1]
  # Another size is another graph.
  run(*(a[:8] for a in sets[0]))
  assert len(ev._TRAINERS) == 2  # pylint: disable=protected-access
  trainer = next(iter(ev._TRAINERS.values()))  # pylint: disable=protected-access
  with pytest.raises(InvalidConfigError, match="traced for 16 images"):
    trainer.load(src.train_images[:8], src.train_labels[:8])
  fixed = training.Trainer(trainer.model, src.train_images[:8], src.train_labels[:8],
                           src.mean, src.std, p)
  with pytest.raises(InvalidConfigError, match="swappable=False"):
    fixed.load(src.train_images[:8], src.train_labels[:8])
  # A large set is not kept.
  monkeypatch.setattr(ev, "TRAINER_CACHE_MAX_BYTES", 1000)
  run(*(a[:4] for a in sets[0]))
  assert len(ev._TRAINERS) == 2  # pylint: disable=protected-access


def test_only_models_whose_state_initialize_resets_are_kept():
  import keras  # pylint: disable=g-import-not-at-top
  from tfcondense import models  # pylint: disable=g-import-not-at-top
  dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                            keras.layers.BatchNormalization()])
  assert models.resets_all_state(dense)
  dropout = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.Dropout(0.5)])
  assert not models.resets_all_state(dropout)  # its seed generator is not redrawn


@pytest.mark.heavy
def test_evaluate_with_augmentation_and_cutmix_runs():
  src = quadrant_source(n_per_class=4, n_test=4)
  p = ev.get_protocol("smoke", augmentation="dsa", cutmix_prob=1.0)
  runs = [ev.evaluate(src.train_images, src.train_labels, src, protocol=q, repetitions=1,
                      show_progress=False)
          for q in (p, p, dataclasses.replace(p, augmentation="none", cutmix_prob=0.0))]
  r = runs[0]
  assert r.augmentation == "dsa" and r.num_images == 16 and r.steps == 4
  # The recipe that ran is recorded (the reference's rule: no cutout under CutMix).
  assert r.augmentation_spec == runs[2].augmentation_spec.replace(
      "none", "dsa(color_crop_flip_scale_rotate)+cutmix(1)")
  assert r.best == runs[1].best and r.last == runs[1].last  # seeded, augmentation included


@pytest.mark.heavy
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


@pytest.mark.heavy
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


def test_compare_redoes_rows_made_with_another_recipe(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top
  src = quadrant_source()
  path = str(tmp_path / "rows.json")
  kw = dict(model="mlp", protocol=FAST, repetitions=1, results_path=path,
            show_progress=False, log=lambda *a: None)
  cells = [experiment.Cell("random", 2)]
  rows = experiment.compare(src, cells, **kw)
  assert len(rows) == 1 and rows[0]["augmentation_spec"] == "none"
  assert len(experiment.compare(src, cells, **kw)) == 1  # done: skipped
  with open(path) as f:
    stored = json.load(f)
  for row in stored["rows"]:  # as protocol version 1 wrote it
    del row["augmentation_spec"], row["protocol_version"]
  with open(path, "w") as f:
    json.dump(stored, f)
  rows = experiment.compare(src, cells, **kw)
  assert len(rows) == 2 and rows[-1]["protocol_version"] == ev.PROTOCOL_VERSION
  assert "none (v1)" in experiment.format_table(rows)


def test_compare_redoes_a_cell_whose_length_rule_changed_and_supersedes_old_rows(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top
  src = quadrant_source()
  path = str(tmp_path / "rows.json")
  grow = dataclasses.replace(FAST, steps=None, epochs=4, min_steps=2)  # 8 images: 4 steps
  kw = dict(model="mlp", repetitions=1, results_path=path, show_progress=False,
            log=lambda *a: None)
  cells = [experiment.Cell("random", 2)]
  assert experiment.compare(src, cells, protocol=grow, **kw)[0]["steps"] == 4
  assert len(experiment.compare(src, cells, protocol=grow, **kw)) == 1  # done
  longer = dataclasses.replace(grow, min_steps=6)  # same name and recipe, new length rule
  rows = experiment.compare(src, cells, protocol=longer, **kw)
  assert [r["steps"] for r in rows] == [6]  # measured again, the stale row replaced
  # A version-1 row of the protocol moves aside, with the reason, and is never "done".
  with open(path) as f:
    stored = json.load(f)
  del stored["rows"][0]["protocol_version"]
  with open(path, "w") as f:
    json.dump(stored, f)
  assert experiment.supersede_old_rows(path, [FAST.name]) == 1
  assert experiment.supersede_old_rows(path, [FAST.name]) == 0
  experiment.write_rows(path, [], {"h": 1})  # rewriting rows keeps the superseded ones
  with open(path) as f:
    stored = json.load(f)
  assert stored["rows"] == [] and len(stored["superseded_rows"]) == 1
  assert "protocol version 1" in stored["superseded_rows"][0]["superseded_because"]
