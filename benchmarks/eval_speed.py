r"""Evaluator speed: ConvNet-3 training on 400 Fashion-MNIST images.

  python -m benchmarks.eval_speed            # about 15 minutes on the 2-core CPU machine

Times, side by side in float32 and mixed bfloat16, SGD steps of batch 64 with the
evaluation augmentation (per-sample DSA `color_crop_cutout_flip_scale_rotate`, one
geometric op, then CutMix p=0.5), i.e. the
paper protocol's inner loop, after a warm-up, and extrapolates to 1000 epochs
(ceil(400/64) = 7 steps per epoch) plus the 4 test passes over the 10,000 test images.
The PyTorch reference needs about 35 minutes per 1000 epochs on this machine; the goal
is at most 15. Then evaluates the same 400 images with the `cpu` protocol in each
precision, so the accuracy cost of bfloat16 is measured too. Writes
benchmarks/results/eval_speed.json.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 300, "Timed SGD steps per repeat (after warm-up).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats per precision; the median counts.")
_MODEL = flags.DEFINE_string("model", "convnet3", "Model.")
_AUG = flags.DEFINE_string("augmentation", "dsa", "Evaluation augmentation policy.")
_PRECISIONS = flags.DEFINE_list("precision", ["float32", "mixed_bfloat16"],
                                "Precisions to time side by side.")
_ACC_REPS = flags.DEFINE_integer("accuracy_repetitions", 3,
                                 "Also evaluate the 400 images with the `cpu` protocol in each "
                                 "precision with this many repetitions (0: skip).")


def main(argv):
  del argv
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  from tfcondense import training  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  art = api.condense("random", source, ipc=40, seed=0).artifact
  trainers = {}
  for precision in _PRECISIONS.value:
    protocol = ev.get_protocol("paper", augmentation=_AUG.value, precision=precision)
    net = training.build_with_precision(precision, _MODEL.value, source.image_shape,
                                        source.num_classes)
    tr = training.Trainer(net, art.images, art.labels, source.mean, source.std, protocol)
    tr.reset(0)
    t0 = time.perf_counter()
    tr.train(0, 20)  # trace + warm-up
    trainers[precision] = (tr, time.perf_counter() - t0)
  per_step = {p: [] for p in trainers}
  for r in range(_REPEATS.value):  # interleaved, so drifts in machine load hit both
    for precision, (tr, _) in trainers.items():
      t0 = time.perf_counter()
      tr.train(20 + r * _STEPS.value, _STEPS.value)
      per_step[precision].append((time.perf_counter() - t0) / _STEPS.value)
      print(f"{precision} repeat {r}: {per_step[precision][-1] * 1000:.1f} ms per step")
  rows = {}
  for precision, (tr, trace_s) in trainers.items():
    tr.accuracy(source.test_images[:1000], source.test_labels[:1000])  # warm-up
    t0 = time.perf_counter()
    tr.accuracy(source.test_images, source.test_labels)
    test_s = time.perf_counter() - t0
    step_s = float(np.median(per_step[precision]))
    train_min = step_s * tr.total_steps / 60
    rows[precision] = dict(
        seconds_per_step=step_s, all_seconds_per_step=per_step[precision],
        trace_seconds=trace_s, test_pass_seconds=test_s,
        train_minutes_per_1000_epochs=train_min,
        minutes_per_1000_epochs=train_min + 4 * test_s / 60)
    print(f"{precision}: {step_s * 1000:.1f} ms per step; 1000 epochs = {tr.total_steps} "
          f"steps = {train_min:.1f} min training + 4 test passes of {test_s:.1f} s = "
          f"{rows[precision]['minutes_per_1000_epochs']:.1f} min (reference 35, goal 15)")
  if _ACC_REPS.value:
    for precision in trainers:
      res = ev.evaluate(art.images, art.labels, source, protocol=ev.get_protocol(
          "cpu", augmentation=_AUG.value, precision=precision),
                        repetitions=_ACC_REPS.value, model=_MODEL.value)
      rows[precision].update(cpu_protocol_acc_mean=res.best_mean, cpu_protocol_acc_std=res.best_std,
                             cpu_protocol_eval_seconds=res.seconds)
      print(f"{precision}: cpu protocol accuracy on the 400 images {res}")
  best = min(rows, key=lambda p: rows[p]["minutes_per_1000_epochs"])
  result = dict(
      machine=_util.machine(), command="python -m benchmarks.eval_speed", model=_MODEL.value,
      augmentation=_AUG.value, cutmix=0.5, images=len(art.images), batch=64,
      steps_per_1000_epochs=trainers[best][0].total_steps, precisions=rows,
      minutes_per_1000_epochs=rows[best]["minutes_per_1000_epochs"], fastest_precision=best,
      reference_minutes=35.0, goal_minutes=15.0)
  if len(rows) > 1 and "float32" in rows:
    result["speedup_vs_float32"] = {p: rows["float32"]["seconds_per_step"] / r["seconds_per_step"]
                                    for p, r in rows.items()}
  path = _util.write_json("eval_speed.json", result)
  print(f"fastest: {best}, {result['minutes_per_1000_epochs']:.1f} min per 1000 epochs. "
        f"Wrote {path}")


if __name__ == "__main__":
  app.run(main)
