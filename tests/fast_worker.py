"""Subprocess for the determinism test of the fast IDC arms (issue 39).

Usage: fast_worker.py TMPDIR OUT.npz -- with op determinism on, runs a seeded
pool+representative IDC on the quadrant fixture twice from scratch, and once stopped
after 3 of its 6 steps and resumed from its workdir; writes the three stored image
tensors to OUT.npz as a, b, resumed.
"""
import os
import sys

import numpy as np
import tensorflow as tf

tf.config.experimental.enable_op_determinism()

from fixtures import quadrant_source  # noqa: E402
from tfcondense import condensation as condense, engine  # noqa: E402


def main():
  tmp, out = sys.argv[1], sys.argv[2]
  src = quadrant_source(n_per_class=8)
  kw = dict(outer_iterations=3, inner_iterations=2, real_per_class=8, n_data=16, net_batch=8,
            model_options=(("width", 8),), seed=2, arm="pool+representative", model_pool=2,
            pool_epochs=1, pool_dir=os.path.join(tmp, "pools"), representative_every=1,
            representative_candidates=6)

  def run(workdir=None, max_steps=None):
    opts = engine.RunOptions(workdir=workdir, max_steps=max_steps, show_progress=False,
                             checkpoint_seconds=0)
    return condense.condense("idc", src, 1, options=opts, **kw).artifact.images

  a, b = run(), run()
  workdir = os.path.join(tmp, "w")
  run(workdir, max_steps=3)
  resumed = run(workdir)
  np.savez(out, a=a, b=b, resumed=resumed)


if __name__ == "__main__":
  main()
