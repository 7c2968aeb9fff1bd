"""Subprocess for the tf.distribute tests: a tiny IDC run under a strategy.

Usage: distribute_worker.py STRATEGY OUT.npz [--workdir DIR] [--sleep S] [--reps N]
  [--single]

Makes the strategy first (mirrored: two logical CPUs; multi_worker: the cluster in
TF_CONFIG), condenses the quadrant fixture with IDC (2 outer x 2 inner iterations,
a checkpoint after every step when --workdir is given), evaluates the result with
--reps repetitions spread over the workers, and writes to OUT.npz: the stored-image
variable, the run's steps / resumed_from, and the evaluation's best / last
accuracies. --single also writes the same run under the default strategy
(`single_*` keys) from this process. Library errors print one line and exit with
status 2, as the apps do.
"""
import argparse
import os
import sys
import time
import traceback

from tfcondense import cluster as cluster_lib

TINY = dict(outer_iterations=2, inner_iterations=2, real_per_class=8, n_data=16, net_batch=8,
            seed=3)
EVAL = dict(protocol="smoke", seed=0)


def run(args, cluster):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from fixtures import quadrant_source  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation as condense, engine  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense.methods import idc  # pylint: disable=g-import-not-at-top

  class Slow(idc.IDC):
    """Sleeps a little per step so the parent can kill a worker between checkpoints."""

    def step(self, step):
      out = super().step(step)
      time.sleep(args.sleep)
      return out

  src = quadrant_source()
  cfg = condense.make_config("idc", src.name, 2, **TINY)
  build = lambda s, c, o: Slow(s, c)  # noqa: E731
  if cluster.distributed:
    method = cluster.build_method("idc", build, src, cfg, None)
  else:
    method = build(src, cfg, None)
  init = method.synthetic.images.numpy()
  opts = engine.RunOptions(workdir=args.workdir, checkpoint_seconds=0, show_progress=False)
  res = engine.run(method, opts, config=cfg.as_dict(), cluster=cluster)
  images = method.synthetic.images.numpy()
  out = dict(images=images, init_images=init, steps=res.steps, resumed_from=res.resumed_from,
             worker=cluster.worker_index)
  if args.reps:
    result = ev.evaluate(np.clip(images, 0, 1), method.synthetic.labels.numpy(), src,
                         repetitions=args.reps, show_progress=False, cluster=cluster,
                         **EVAL)
    out.update(best=np.array(result.best), last=np.array(result.last))
  if args.single:
    single = idc.IDC(src, cfg)
    engine.run(single, engine.RunOptions(show_progress=False))
    out["single_images"] = single.synthetic.images.numpy()
  np.savez(args.out, **out)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("strategy")
  parser.add_argument("out")
  parser.add_argument("--workdir", default=None)
  parser.add_argument("--sleep", type=float, default=0.0)
  parser.add_argument("--reps", type=int, default=0)
  parser.add_argument("--timeout", type=float, default=None)
  parser.add_argument("--single", action="store_true")
  args = parser.parse_args()
  from tfcondense.errors import TfcondenseError  # pylint: disable=g-import-not-at-top
  options = cluster_lib.StrategyOptions(
      logical_cpus=2 if args.strategy == "mirrored" else 0, timeout_seconds=args.timeout)
  # Every exit is os._exit: the process must go down with its collective server, or a
  # peer would wait for it in a collective.
  try:
    run(args, cluster_lib.make_cluster(args.strategy, options))
  except TfcondenseError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    os._exit(2)  # pylint: disable=protected-access
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access
  sys.stdout.flush()
  os._exit(0)  # pylint: disable=protected-access


if __name__ == "__main__":
  main()
