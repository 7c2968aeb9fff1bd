r"""IDC condensation throughput with 1 and 2 workers under tf.distribute, and agreement.

  python -m benchmarks.scaling       # about 15 minutes on the 2-core CPU machine (idle)
  python -m benchmarks.scaling --smoke --output /tmp/scaling.json   # 1 step, tiny, ~2 min
  python -m benchmarks.scaling --setups single,gpus --iterations 10 --warmup 2 \
      --output benchmarks/results/scaling_gpu.json           # on a GPU machine, ~2 min

IDC on Fashion-MNIST at the `benchmarks.idc_step` configuration (IPC 10, factor 2,
ConvNet-3, 64 real images per class, 8 network steps of 64), one inner iteration =
10 class matching steps + 8 network steps. Each set-up runs in its own process(es)
(logical devices and collectives must be set up before TensorFlow starts), runs
--warmup untimed then --iterations timed inner iterations from the same seed, and
reports the median seconds per inner iteration:

* ``single``: one process, default strategy (the unchanged code path);
* ``mirrored1``: MirroredStrategy over the one CPU (the distributed code path's
  overhead alone);
* ``mirrored2``: MirroredStrategy over 2 logical CPUs (two replicas, one process);
* ``multi_worker2``: MultiWorkerMirroredStrategy, 2 local worker processes over
  127.0.0.1, each limited to cores / 2 intra-op threads;
* ``gpus`` (on a GPU machine): MirroredStrategy over every GPU, and ``single`` then
  runs on GPU 0 (compare them with `--setups single,gpus`).

and the largest absolute difference between each set-up's stored images and the
single process's after the same iterations (it should stay at float rounding,
~1e-6). On 2 cores expect no speed-up (the replicas share the cores): the numbers
measure correctness and the cost of splitting. Writes --output
(benchmarks/results/scaling.json by default; --smoke writes only where --output says).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

_SETUPS = flags.DEFINE_list("setups", ["single", "mirrored1", "mirrored2", "multi_worker2"],
                            "Set-ups to time (single, mirrored1, mirrored2, multi_worker2, gpus).")
_ITERS = flags.DEFINE_integer("iterations", 5, "Timed inner iterations per set-up.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed inner iterations first (tracing).")
_SMOKE = flags.DEFINE_bool("smoke", False,
                           "Tiny run (120 images per class, IPC 1, small batches, 1 timed "
                           "iteration, no warm-up) to check the script end to end.")
_OUTPUT = flags.DEFINE_string("output", None,
                              "JSON path (default benchmarks/results/scaling.json; none with "
                              "--smoke).")
_TIMEOUT = flags.DEFINE_integer("timeout", 1800, "Seconds one set-up may take.")
# Internal: one set-up's process.
_ROLE = flags.DEFINE_string("role", None, "(internal) run one set-up and write --role_out.")
_ROLE_OUT = flags.DEFINE_string("role_out", None, "(internal) where a set-up writes.")
_THREADS = flags.DEFINE_integer("threads", 0, "(internal) intra-op threads (0: TF's default).")

_SETUP_STRATEGY = {"single": ("default", 0), "mirrored1": ("mirrored", 1),
                   "mirrored2": ("mirrored", 2), "multi_worker2": ("multi_worker", 0),
                   "gpus": ("mirrored", 0)}


def _counts():
  """(warmup, timed iterations): --smoke means 0 and 1 unless given."""
  f = flags.FLAGS
  if _SMOKE.value:
    return (_WARMUP.value if f["warmup"].present else 0,
            _ITERS.value if f["iterations"].present else 1)
  return _WARMUP.value, _ITERS.value


def _config():
  if _SMOKE.value:
    return dict(source=dict(name="fashion_mnist", limit_per_class=120), ipc=1,
                overrides=dict(real_per_class=16, n_data=32, net_batch=16))
  return dict(source=dict(name="fashion_mnist"), ipc=10, overrides={})


def _run_role(setup: str, out: str) -> None:
  """One set-up: make the strategy first, then time the inner iterations."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcondense import cluster as cluster_lib  # pylint: disable=g-import-not-at-top
  if _THREADS.value:
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  name, cpus = _SETUP_STRATEGY[setup]
  cluster = cluster_lib.make_cluster(name, cluster_lib.StrategyOptions(logical_cpus=cpus))
  from tfcondense import condensation as condense, data  # pylint: disable=g-import-not-at-top
  cfg_d = _config()
  src = data.load_source(cfg_d["source"]["name"], **{
      k: v for k, v in cfg_d["source"].items() if k != "name"})
  warmup, iterations = _counts()
  total = warmup + iterations
  cfg = condense.make_config("idc", src.name, cfg_d["ipc"], factor=2, outer_iterations=1,
                             inner_iterations=max(total, 1), **cfg_d["overrides"])
  spec = condense.SYNTHESIS.get("idc")
  if cluster.distributed:
    method = cluster.build_method("idc", spec.build, src, cfg, None)
  else:
    method = spec.build(src, cfg, None)
  times = []
  for step in range(total):
    t0 = time.perf_counter()
    float(method.step(step)["loss"])
    times.append(time.perf_counter() - t0)
  result = dict(setup=setup, describe=cluster.describe(), replicas=cluster.num_replicas,
                workers=cluster.num_workers, all_seconds=times,
                timed_seconds=times[warmup:], threads=_THREADS.value or None)
  if cluster.is_chief:
    np.save(out + ".npy", method.synthetic.images.numpy())
    with open(out, "w") as f:
      json.dump(result, f)


def _launch(setup: str, out: str) -> dict:
  """Runs one set-up in fresh process(es); returns its chief's JSON (+ images)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  base = [sys.executable, "-m", "benchmarks.scaling", "--role", setup, "--role_out", out,
          f"--iterations={_counts()[1]}", f"--warmup={_counts()[0]}",
          f"--smoke={_SMOKE.value}"]
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  env.pop("TF_CONFIG", None)
  t0 = time.perf_counter()
  if setup == "multi_worker2":
    from tfcondense import cluster as cluster_lib  # pylint: disable=g-import-not-at-top
    ports = cluster_lib.free_local_ports(2)
    threads = max(1, (os.cpu_count() or 2) // 2)
    procs = []
    for i in range(2):
      tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                   "task": {"type": "worker", "index": i}}
      procs.append(subprocess.Popen(base + [f"--threads={threads}"], cwd=root,
                                    env=dict(env, TF_CONFIG=json.dumps(tf_config))))
    try:
      codes = [p.wait(timeout=_TIMEOUT.value) for p in procs]
    finally:
      for p in procs:
        if p.poll() is None:
          p.kill()
  else:
    codes = [subprocess.run(base, cwd=root, env=env, timeout=_TIMEOUT.value).returncode]
  if any(codes):
    raise RuntimeError(f"set-up {setup} failed with exit codes {codes}")
  with open(out) as f:
    result = json.load(f)
  result["process_seconds"] = time.perf_counter() - t0
  result["images"] = np.load(out + ".npy")
  return result


def main(argv):
  del argv
  if _ROLE.value:
    _run_role(_ROLE.value, _ROLE_OUT.value)
    sys.stdout.flush()
    os._exit(0)  # pylint: disable=protected-access  # collective threads may linger
  unknown = sorted(set(_SETUPS.value) - set(_SETUP_STRATEGY))
  if unknown:
    raise app.UsageError(f"unknown set-ups {unknown}; known: {sorted(_SETUP_STRATEGY)}")
  runs = {}
  with tempfile.TemporaryDirectory() as tmp:
    for setup in _SETUPS.value:
      print(f"{setup}: starting", flush=True)
      runs[setup] = _launch(setup, os.path.join(tmp, f"{setup}.json"))
      r = runs[setup]
      print(f"{setup}: {r['describe']}; seconds per inner iteration "
            f"{[round(t, 2) for t in r['all_seconds']]}", flush=True)
  ref = runs.get("single")
  rows = {}
  for setup, r in runs.items():
    med = float(np.median(r["timed_seconds"])) if r["timed_seconds"] else None
    rows[setup] = dict(
        describe=r["describe"], replicas=r["replicas"], workers=r["workers"],
        threads_per_worker=r["threads"], seconds_per_inner_iteration=med,
        inner_iterations_per_minute=60.0 / med if med else None,
        all_seconds=r["all_seconds"], first_iteration_seconds=r["all_seconds"][0],
        process_seconds=r["process_seconds"],
        max_abs_difference_vs_single=(float(np.abs(r["images"] - ref["images"]).max())
                                      if ref is not None else None))
  base_s = rows.get("single", {}).get("seconds_per_inner_iteration")
  for setup, row in rows.items():
    s = row["seconds_per_inner_iteration"]
    row["speedup_vs_single"] = base_s / s if base_s and s else None
    print(f"{setup:14s} {row['describe']}: "
          + (f"{s:.2f} s per inner iteration ({row['inner_iterations_per_minute']:.1f}/min), "
             f"x{row['speedup_vs_single']:.2f} vs single" if s and row['speedup_vs_single']
             else "no timed iteration")
          + (f", max |difference| vs single {row['max_abs_difference_vs_single']:.2e}"
             if row["max_abs_difference_vs_single"] is not None else ""))
  cfg = _config()
  result = dict(machine=_util.machine(),
                command=" ".join(["python -m benchmarks.scaling"] + sys.argv[1:]),
                configuration=dict(source=cfg["source"], ipc=cfg["ipc"], factor=2,
                                   model="convnet3", method="idc", **cfg["overrides"]),
                iterations=_counts()[1], warmup=_counts()[0], setups=rows)
  output = _OUTPUT.value or (None if _SMOKE.value else os.path.join(_util.RESULTS,
                                                                     "scaling.json"))
  if output:
    print(f"wrote {_util.write_json_to(output, result)}")


if __name__ == "__main__":
  app.run(main)
