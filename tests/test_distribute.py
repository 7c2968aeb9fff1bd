"""tf.distribute: strategies, class groups, IDC split over replicas and workers.

The strategy runs live in subprocesses (`distribute_worker.py`): logical CPU devices
must be configured before TensorFlow initialises, and a multi-worker cluster needs one
process per worker. Each compares with the single-process run of the same seed:
MirroredStrategy over two logical CPUs, and MultiWorkerMirroredStrategy with two local
workers on 127.0.0.1 ports; the slow test SIGKILLs one worker mid-run (the chief must
stop with a clear message, and a restart must resume from the last checkpoint).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import apprun
from tfcondense import cluster as cluster_lib
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import UnknownNameError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "distribute_worker.py")
TOL = 1e-5   # observed differences are ~1e-7 (float rounding of the summed batch gradient)
LIMIT = 900  # seconds a subprocess may take: a hang fails, a starved machine does not


def _env(**extra):
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFCONDENSE_PROGRESS="0",
              PYTHONPATH=os.pathsep.join([ROOT, HERE]), **extra)


def _launch_workers(out_dir, tag, ports, *extra):
  procs = []
  for i in range(len(ports)):
    tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                 "task": {"type": "worker", "index": i}}
    with open(out_dir / f"{tag}{i}.log", "w") as log:  # the child keeps its own handle
      procs.append(subprocess.Popen(
          [sys.executable, WORKER, "multi_worker", str(out_dir / f"{tag}{i}.npz"), *extra],
          env=_env(TF_CONFIG=json.dumps(tf_config)), stdout=log, stderr=subprocess.STDOUT))
  return procs


def _stop(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
      p.wait(timeout=30)


# -- in-process: partitions, registry, refusals ------------------------------------------
def test_class_groups_cover_every_class_once_and_balance():
  for classes, replicas in [(10, 2), (10, 3), (4, 4), (3, 5), (100, 8)]:
    groups = cluster_lib.class_groups(classes, replicas)
    assert len(groups) == replicas
    assert sum(groups, []) == list(range(classes))  # contiguous, in order, once each
    sizes = [len(g) for g in groups]
    assert max(sizes) - min(sizes) <= 1
  shards = cluster_lib.batch_shards(64, 3)
  assert shards[0][0] == 0 and shards[-1][1] == 64
  assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))


def test_unknown_strategy_and_method_name_the_known_ones():
  with pytest.raises(UnknownNameError, match="default, mirrored, multi_worker"):
    cluster_lib.make_cluster("parameter_server")
  cluster = cluster_lib.make_cluster("default")
  assert not cluster.distributed and not cluster.multi_worker and cluster.is_chief
  assert cluster.any(True) and not cluster.any(False)
  assert cluster.share([0, 1, 2]) == [0, 1, 2]
  assert cluster.gather_by_index({1: "b", 0: "a"}) == {0: "a", 1: "b"}
  from tfcondense.methods import idc  # noqa: F401  (registers its replicated steps)
  with pytest.raises(UnknownNameError, match="idc, idc_i"):
    cluster.build_method("dm", lambda: pytest.fail("built before the check"))


@pytest.mark.heavy
def test_apps_take_the_strategy_flag():
  out = apprun.run_module("apps.condense", "--strategy", "ring", "--workdir", "unused",
                          cwd=ROOT, env=_env())
  assert out.returncode == 2, out.stderr[-2000:]
  assert "error: unknown distribution 'ring'" in out.stderr
  assert "default, mirrored, multi_worker" in out.stderr and "Traceback" not in out.stderr


def test_multi_worker_needs_a_cluster_description(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(InvalidConfigError, match="TF_CONFIG"):
    cluster_lib.make_cluster("multi_worker")
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
  with pytest.raises(InvalidConfigError, match="not a cluster description"):
    cluster_lib.make_cluster("multi_worker")


def test_options_that_do_not_apply_and_late_logical_cpus_are_refused():
  import tensorflow as tf
  with pytest.raises(InvalidConfigError, match="logical_cpus do"):
    cluster_lib.make_cluster("default", cluster_lib.StrategyOptions(logical_cpus=2))
  tf.config.list_logical_devices()  # TensorFlow is initialised in this process now
  with pytest.raises(InvalidConfigError, match="already initialised"):
    cluster_lib.configure_logical_cpus(2)


def test_learnable_formation_cannot_be_split():
  import tensorflow as tf
  from fixtures import quadrant_source
  from tfcondense import condensation as condense
  src = quadrant_source()
  cfg = condense.make_config("idc", src.name, 1, formation="learnable", outer_iterations=1,
                             inner_iterations=1)
  cluster = cluster_lib.Cluster(tf.distribute.OneDeviceStrategy("/cpu:0"), "mirrored")
  spec = condense.SYNTHESIS.get("idc")
  with pytest.raises(InvalidConfigError, match="learnable formation"):
    cluster.build_method("idc", spec.build, src, cfg, None)


# -- MirroredStrategy over two logical CPUs ------------------------------------------------
@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
  """The tiny IDC run under MirroredStrategy (2 logical CPUs) and alone, one process
  (forked before TensorFlow initialises, tests/apprun.py)."""
  out = tmp_path_factory.mktemp("mirrored") / "run.npz"
  proc = apprun.run_script(WORKER, "mirrored", str(out), "--single", env=_env(),
                           timeout=LIMIT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return dict(np.load(out))


@pytest.mark.heavy
def test_mirrored_two_logical_cpus_equals_single_process(mirrored_run):
  run = mirrored_run
  assert int(run["steps"]) == 4
  moved = np.abs(run["single_images"] - run["init_images"]).max()
  assert moved > 1000 * TOL  # the comparison below is far from vacuous
  np.testing.assert_allclose(run["images"], run["single_images"], rtol=0, atol=TOL)


# -- MultiWorkerMirroredStrategy: two local worker processes over 127.0.0.1 --------------
def _run_workers(tmp_path, tag, *extra):
  procs = _launch_workers(tmp_path, tag, cluster_lib.free_local_ports(2), *extra)
  try:
    codes = [p.wait(timeout=LIMIT) for p in procs]
  finally:
    _stop(procs)
  assert codes == [0, 0], (tmp_path / f"{tag}0.log").read_text()[-3000:]
  return [dict(np.load(tmp_path / f"{tag}{i}.npz")) for i in range(2)]


@pytest.mark.heavy
def test_multi_worker_two_processes_equal_single_process(tmp_path, mirrored_run):
  chief, worker = _run_workers(tmp_path, "w", "--reps", "3")
  assert (int(chief["worker"]), int(worker["worker"])) == (0, 1)
  assert int(chief["steps"]) == 4
  np.testing.assert_array_equal(chief["images"], worker["images"])
  np.testing.assert_allclose(chief["images"], mirrored_run["single_images"], rtol=0, atol=TOL)
  # Evaluation repetitions 0 and 2 ran on worker 0, 1 on worker 1; both hold all three,
  # equal to one process evaluating all three (one test image = 2.5 points).
  np.testing.assert_array_equal(chief["best"], worker["best"])
  from fixtures import quadrant_source
  from tfcondense import evaluation as ev
  from distribute_worker import EVAL
  labels = np.repeat(np.arange(4), 2)
  alone = ev.evaluate(np.clip(chief["images"], 0, 1), labels, quadrant_source(), repetitions=3,
                      show_progress=False, **EVAL)
  assert len(set(alone.best)) > 1  # the repetitions differ, so a mix-up would show
  np.testing.assert_allclose(chief["best"], alone.best, atol=2.6)


@pytest.mark.slow
def test_killed_worker_stops_the_chief_and_a_restart_resumes(tmp_path, mirrored_run):
  workdir = tmp_path / "wd"
  procs = _launch_workers(tmp_path, "a", cluster_lib.free_local_ports(2), "--workdir",
                          str(workdir), "--sleep", "0.5")
  try:
    state = workdir / "checkpoints" / "checkpoint"
    deadline = time.time() + LIMIT
    while time.time() < deadline and procs[0].poll() is None:
      if state.exists() and "ckpt-1" in state.read_text():
        procs[1].send_signal(signal.SIGKILL)
        break
      time.sleep(0.05)
    else:
      pytest.fail("no checkpoint 1 before the run ended: "
                  + (tmp_path / "a0.log").read_text()[-3000:])
    # A dropped connection is reported at once (about 2 s here); the strategy's peer
    # health check (every 30 s, 3 tries) is the fallback.
    rc = procs[0].wait(timeout=300)
    chief_log = (tmp_path / "a0.log").read_text()
  finally:
    _stop(procs)
  assert rc == 2, chief_log[-3000:]
  assert "error: lost contact with another worker" in chief_log, chief_log[-3000:]
  assert "ckpt-1; start every worker again with the same command" in chief_log
  assert "Traceback" not in chief_log
  assert not (tmp_path / "a0.npz").exists()

  chief, worker = _run_workers(tmp_path, "b", "--workdir", str(workdir))
  assert int(chief["resumed_from"]) >= 1 and int(chief["steps"]) == 4
  np.testing.assert_array_equal(chief["images"], worker["images"])
  np.testing.assert_allclose(chief["images"], mirrored_run["single_images"], rtol=0, atol=TOL)
