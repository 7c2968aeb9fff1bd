"""Subprocess for the kill-and-resume test: a tiny deterministic IDC run.

Usage: resume_worker.py WORKDIR OUT.npy  -- condenses the quadrant fixture (2 outer x 3
inner iterations, a checkpoint after every step), writes the stored images to OUT.npy
and {"resumed_from": step} to WORKDIR/resumed.json.
"""
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

tf.config.experimental.enable_op_determinism()

from fixtures import quadrant_source  # noqa: E402
from tfcondense import engine  # noqa: E402
from tfcondense.methods import idc  # noqa: E402


class Slow(idc.IDC):
  """Sleeps a little per step so the parent can kill it between checkpoints."""

  def step(self, step):
    out = super().step(step)
    time.sleep(0.3)
    return out


def main():
  workdir, out = sys.argv[1], sys.argv[2]
  cfg = idc.IDCConfig(ipc=1, factor=2, outer_iterations=2, inner_iterations=3,
                      real_per_class=8, n_data=16, net_batch=8, seed=5,
                      # One 8-channel layer: the test is about the checkpoints, and this
                      # network traces and steps in a fraction of ConvNet-3's time.
                      model="convnet", model_options=(("depth", 1), ("width", 8)))
  method = Slow(quadrant_source(), cfg)
  res = engine.run(method, engine.RunOptions(workdir=workdir, checkpoint_seconds=0,
                                             show_progress=False),
                   config=cfg.as_dict())
  with open(os.path.join(workdir, "resumed.json"), "w") as f:
    json.dump({"resumed_from": res.resumed_from}, f)
  np.save(out, method.synthetic.images.numpy())


if __name__ == "__main__":
  main()
