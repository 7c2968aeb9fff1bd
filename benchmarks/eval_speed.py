r"""Evaluator speed: ConvNet-3 training on 400 Fashion-MNIST images.

  python -m benchmarks.eval_speed            # about 3 minutes on the 2-core CPU machine

Times SGD steps of batch 64 with the evaluation augmentation (per-sample DSA
`color_crop_cutout_flip_scale_rotate`, one geometric op, then CutMix p=0.5), i.e. the
paper protocol's inner loop, after a warm-up, and extrapolates to 1000 epochs
(ceil(400/64) = 7 steps per epoch) plus the 4 test passes over the 10,000 test images.
The PyTorch reference needs about 35 minutes per 1000 epochs on this machine; the goal
is at most 15. Writes benchmarks/results/eval_speed.json.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 300, "Timed SGD steps (after warm-up).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats; the median is reported.")
_MODEL = flags.DEFINE_string("model", "convnet3", "Model.")
_AUG = flags.DEFINE_string("augmentation", "dsa", "Evaluation augmentation policy.")


def main(argv):
  del argv
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluate as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import methods  # pylint: disable=g-import-not-at-top
  from tfcondense.models import build_model  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  art = methods.select("random", source, ipc=40, seed=0)
  protocol = ev.get_protocol("paper", augmentation=_AUG.value)
  net = build_model(_MODEL.value, source.image_shape, source.num_classes)
  tr = ev.Trainer(net, art.images, art.labels, source.mean, source.std, protocol)
  tr.reset(0)
  t0 = time.perf_counter()
  tr.train(0, 20)  # trace + warm-up
  trace_s = time.perf_counter() - t0
  per_step = []
  for r in range(_REPEATS.value):
    t0 = time.perf_counter()
    tr.train(20 + r * _STEPS.value, _STEPS.value)
    per_step.append((time.perf_counter() - t0) / _STEPS.value)
    print(f"repeat {r}: {per_step[-1] * 1000:.1f} ms per step")
  tr.accuracy(source.test_images[:1000], source.test_labels[:1000])  # warm-up
  t0 = time.perf_counter()
  acc = tr.accuracy(source.test_images, source.test_labels)
  test_s = time.perf_counter() - t0
  step_s = float(np.median(per_step))
  steps_1000 = tr.total_steps
  train_min = step_s * steps_1000 / 60
  total_min = train_min + 4 * test_s / 60
  result = dict(
      machine=_util.machine(), model=_MODEL.value, augmentation=_AUG.value, cutmix=0.5,
      images=len(art.images), batch=tr.batch, steps_per_1000_epochs=steps_1000,
      seconds_per_step=step_s, trace_seconds=trace_s, test_pass_seconds=test_s,
      minutes_per_1000_epochs=total_min, train_minutes_per_1000_epochs=train_min,
      reference_minutes=35.0, goal_minutes=15.0, accuracy_after_timing=acc)
  path = _util.write_json("eval_speed.json", result)
  print(f"{step_s * 1000:.1f} ms per step; 1000 epochs = {steps_1000} steps = "
        f"{train_min:.1f} min training + 4 test passes of {test_s:.1f} s "
        f"= {total_min:.1f} min (reference 35, goal 15). Wrote {path}")


if __name__ == "__main__":
  app.run(main)
