"""Fault injection (issue 44): kills, signals, corrupt and garbled checkpoints, NaN
states, read-only / full / wrong workdirs and bad flags of apps.condense.

Each test names the fault it injects and checks what the user is left with: nothing
lost, nothing silently wrong, one clear line where the run cannot go on. The table in
README.md ("Reliability") lists the same cases.
"""
import contextlib
import glob
import json
import os
import signal
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from test_apps import run_app
from tfcondense import condensation as condense_lib
from tfcondense import engine, formation
from tfcondense import synthetic as synthetic_lib
from tfcondense.errors import (CorruptArtifactError, InvalidConfigError, NonFiniteLossError,
                               RunInterruptedError, WorkdirError)
from tfcondense.methods import idc

HERE = os.path.dirname(os.path.abspath(__file__))
# A one-layer, 8-channel ConvNet: the faults are in the loop, and it traces in seconds.
TINY = dict(outer_iterations=2, inner_iterations=2, real_per_class=8, n_data=16, net_batch=8,
            model="convnet", model_options=(("depth", 1), ("width", 8)))
# The same network as TINY, given as a user would (--set): it traces in a third of the time.
DIGITS_IDC = ("--source", "digits", "--method", "idc", "--ipc", "1", "--outer_iterations",
              "1", "--inner_iterations", "4", "--set", "real_per_class=8", "--set",
              "n_data=16", "--set", "net_batch=8", "--set", "model='convnet'", "--set",
              "model_options=(('depth', 1), ('width', 8))")


def _opts(workdir, **kw):
  return engine.RunOptions(workdir=str(workdir), show_progress=False, checkpoint_seconds=0,
                           **kw)


def _method(src=None, **kw):
  cfg = dict(TINY, factor=1)
  cfg.update(kw)
  return idc.IDC(src or quadrant_source(), idc.IDCConfig(ipc=1, **cfg))


class _Drift:
  """The engine's side of a method at no tracing cost, for the faults of the engine
  itself (checkpoints, signals, workdirs): IDC's state layout (synthetic images and
  their momentum, a network and its momentum) and a momentum SGD step toward a per-step
  stateless draw, so a resume that lost any of that state ends elsewhere. IDC under the
  same engine is tested by the tests below that condense and by test_idc.py's kill test.
  """

  total_steps = 4

  def __init__(self):
    src = quadrant_source()
    self.synthetic = synthetic_lib.SyntheticSet.initialize(
        src, 1, formation.make_formation("identity", 1), init="noise", seed=0)
    self._momentum = tf.Variable(tf.zeros_like(self.synthetic.images))
    self._net = [tf.Variable(tf.ones([3, 3, 1, 2])), tf.Variable(tf.zeros([2]))]
    self._net_momentum = [tf.Variable(tf.zeros_like(v)) for v in self._net]

  def step(self, step):
    target = tf.random.stateless_uniform(self.synthetic.images.shape, [7, step])
    grad = self.synthetic.images - target
    self._momentum.assign(0.5 * self._momentum + grad)
    self.synthetic.images.assign_sub(0.1 * self._momentum)
    for m, v in zip(self._net_momentum, self._net):
      m.assign(0.9 * m + 0.01 * v)
      v.assign_sub(m)
    return {"loss": tf.reduce_mean(tf.square(grad))}

  def checkpoint_items(self):
    return {"synthetic": self.synthetic.trainable_variables,
            "synthetic_momentum": self._momentum, "network": self._net,
            "network_momentum": self._net_momentum}

  def image_summaries(self):
    return {"stored": tf.convert_to_tensor(self.synthetic.images)}


def _checkpoints(workdir):
  return sorted(os.path.basename(p)[:-len(".index")]
                for p in glob.glob(os.path.join(str(workdir), "checkpoints", "ckpt-*.index")))


def _all_finite(workdir):
  """Every checkpoint on disk restored into a fresh method holds only finite values."""
  for name in _checkpoints(workdir):
    m = _Drift()
    ckpt, _, _ = engine._checkpoint(m)  # pylint: disable=protected-access
    ckpt.restore(os.path.join(str(workdir), "checkpoints", name)).expect_partial()
    for v in tf.nest.flatten(m.checkpoint_items()):
      assert np.isfinite(np.asarray(v)).all(), name
  return True


# ---------------------------------------------------------------- NaN
@pytest.mark.heavy
def test_a_nonfinite_state_is_never_saved(tmp_path):
  """The loss of a step is computed before its data update, so a finite loss can come
  with an infinite state: that state must not become the 'last good' checkpoint."""
  m = _Drift()
  step = m.step

  def diverging(s):
    out = step(s)  # loss still finite
    if s == 1:
      m.synthetic.images.assign(tf.fill(m.synthetic.images.shape, float("inf")))
    return out

  m.step = diverging
  with pytest.raises(NonFiniteLossError, match=r"state \(synthetic\).*ckpt-1"):
    engine.run(m, _opts(tmp_path))
  assert _checkpoints(tmp_path) == ["ckpt-1"] and _all_finite(tmp_path)


@pytest.mark.heavy
def test_a_nan_stop_resumes_with_a_smaller_lr_that_is_recorded(tmp_path):
  src = quadrant_source()
  condense_lib.condense("idc_i", src, 1, options=_opts(tmp_path, max_steps=1),
                        lr_img=1e-3, **TINY)
  with pytest.raises(InvalidConfigError) as e:  # the field is named, one line each
    condense_lib.condense("idc_i", src, 1, options=_opts(tmp_path), lr_img=1e-5, **TINY)
  assert "\n  config.lr_img: 0.001 there, 1e-05 now" in str(e.value)
  assert len(str(e.value)) < 300  # no dump of the two configs
  res = condense_lib.condense("idc_i", src, 1, lr_img=1e-5, **TINY,
                              options=_opts(tmp_path, allow_changes=("lr_img",)))
  assert res.run.resumed_from == 1 and res.run.steps == 4
  assert res.run.changes == (("config.lr_img", 1e-3, 1e-5),)
  with open(tmp_path / "config.json") as f:
    record = json.load(f)
  assert record["config"]["lr_img"] == 1e-5
  assert record["changes"] == [dict(field="config.lr_img", to=1e-5, at_step=1,
                                    **{"from": 1e-3})]
  assert res.artifact.meta["changes"] == [dict(field="config.lr_img", before=1e-3,
                                               after=1e-5)]


# ---------------------------------------------------------------- resume
@pytest.fixture(scope="module")
def two_checkpoint_run(tmp_path_factory):
  """A workdir of a 2-step run (checkpoints 1 and 2) and the images after step 1 of an
  uninterrupted run, made once for the module's resume tests."""
  workdir = tmp_path_factory.mktemp("two_checkpoints")
  engine.run(_Drift(), _opts(workdir, max_steps=2, keep_checkpoints=3))
  assert _checkpoints(workdir) == ["ckpt-1", "ckpt-2"]
  one = _Drift()
  engine.run(one, _opts(tmp_path_factory.mktemp("one_step"), max_steps=1))
  return workdir, one.synthetic.images.numpy()


@pytest.fixture
def _two_checkpoints(two_checkpoint_run):
  """Copies the 2-step workdir into `workdir` (each test damages its own copy)."""
  def copy(workdir):
    shutil.copytree(two_checkpoint_run[0], workdir, dirs_exist_ok=True)
  return copy


@pytest.mark.heavy
def test_a_garbled_state_file_resumes_from_the_newest_checkpoint(tmp_path, _two_checkpoints):
  _two_checkpoints(tmp_path)
  (tmp_path / "checkpoints" / "checkpoint").write_text("model_checkpoint_path: {{{ garbage")
  r = engine.run(_Drift(), _opts(tmp_path, max_steps=3, keep_checkpoints=3))
  assert (r.resumed_from, r.steps) == (2, 3)  # not a silent restart from step 0
  assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("ckpt-3")
  assert _checkpoints(tmp_path) == ["ckpt-1", "ckpt-2", "ckpt-3"]  # none overwritten


@pytest.mark.heavy
@pytest.mark.parametrize("damage", ["truncate_data", "garble_index", "delete_data"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, damage,
                                                              _two_checkpoints,
                                                              two_checkpoint_run):
  _two_checkpoints(tmp_path)
  ck = tmp_path / "checkpoints"
  data = glob.glob(str(ck / "ckpt-2.data-*"))[0]
  if damage == "truncate_data":  # gave IndexError: Read less bytes than requested
    with open(data, "r+b") as f:
      f.truncate(3)
  elif damage == "garble_index":
    (ck / "ckpt-2.index").write_bytes(b"\x00garbage" * 8)
  else:
    os.remove(data)
  m = _Drift()
  r = engine.run(m, _opts(tmp_path, max_steps=1))
  assert (r.resumed_from, r.steps) == (1, 1)
  np.testing.assert_array_equal(m.synthetic.images.numpy(), two_checkpoint_run[1])
  assert glob.glob(str(ck / "corrupt" / "ckpt-2.index.*"))  # kept aside, not deleted
  assert _checkpoints(tmp_path) == ["ckpt-1"]
  r = engine.run(_Drift(), _opts(tmp_path, max_steps=3))  # and the run goes on
  assert (r.resumed_from, r.steps) == (1, 3)


@pytest.mark.heavy
def test_no_readable_checkpoint_is_one_clear_error(tmp_path, _two_checkpoints):
  _two_checkpoints(tmp_path)
  for data in glob.glob(str(tmp_path / "checkpoints" / "ckpt-*.data-*")):
    with open(data, "r+b") as f:
      f.truncate(3)
  with pytest.raises(CorruptArtifactError,
                     match=r"cannot restore any checkpoint in .*ckpt-2: IndexError") as e:
    engine.run(_Drift(), _opts(tmp_path))
  assert "\n" not in str(e.value)


@pytest.mark.heavy
def test_temporary_folders_of_killed_writes_are_removed(tmp_path):
  engine.run(_Drift(), _opts(tmp_path, max_steps=1))
  left = [tmp_path / "checkpoints" / "ckpt-2_temp", tmp_path / ".tmp-artifact-x1y2",
          tmp_path / "artifact.old-.tmp-artifact-z"]
  for path in left:
    path.mkdir()
    (path / "part-00000").write_bytes(b"x" * 1000)
  (tmp_path / ".tmp-abc.json").write_text("{")
  engine.run(_Drift(), _opts(tmp_path, max_steps=2))
  assert not any(p.exists() for p in left) and not (tmp_path / ".tmp-abc.json").exists()


def test_an_artifact_write_removes_what_a_killed_write_left(tmp_path):
  from tfcondense.artifact import save_artifact  # pylint: disable=g-import-not-at-top
  left = [tmp_path / ".tmp-art-k1ll3d", tmp_path / "art.old-.tmp-art-k1ll3d"]
  for path in left:
    path.mkdir()
  other = tmp_path / ".tmp-other-abc"  # another target's: not ours to remove
  other.mkdir()
  save_artifact(str(tmp_path / "art"), np.zeros((4, 16, 16, 1), np.float32),
                np.arange(4), dict(source="toy", method="random", ipc=1))
  assert not any(p.exists() for p in left) and other.exists()


@pytest.mark.heavy
def test_the_guard_covers_the_data_and_determinism(tmp_path, monkeypatch):
  opts = _opts(tmp_path, max_steps=1)
  condense_lib.condense("idc_i", quadrant_source(), 1, options=opts, **TINY)
  with pytest.raises(InvalidConfigError, match=r"data\.sha1: .*\n  data\.train_images: 80 "
                                               r"there, 40 now"):
    condense_lib.condense("idc_i", quadrant_source(n_per_class=10), 1, options=opts, **TINY)
  with pytest.raises(InvalidConfigError, match=r"data\.sha1"):  # same size, other pixels
    condense_lib.condense("idc_i", quadrant_source(seed=1), 1, options=opts, **TINY)
  monkeypatch.setattr(engine, "_op_determinism", lambda: True)
  with pytest.raises(InvalidConfigError, match=r"runtime\.op_determinism: false there, "
                                               r"true now"):
    condense_lib.condense("idc_i", quadrant_source(), 1, options=opts, **TINY)
  with pytest.raises(InvalidConfigError, match=r"config\.precision"):
    condense_lib.condense("idc_i", quadrant_source(), 1, options=opts,
                          precision="mixed_bfloat16", **TINY)


@pytest.mark.heavy
def test_a_workdir_of_an_older_version_still_resumes(tmp_path):
  opts = _opts(tmp_path, max_steps=1)
  condense_lib.condense("idc_i", quadrant_source(), 1, options=opts, **TINY)
  path = tmp_path / "config.json"
  record = json.loads(path.read_text())
  del record["data"], record["runtime"]  # what older versions recorded
  path.write_text(json.dumps(record))
  r = condense_lib.condense("idc_i", quadrant_source(), 1, options=_opts(tmp_path), **TINY)
  assert r.run.resumed_from == 1 and "data" in json.loads(path.read_text())


# ---------------------------------------------------------------- signals
@pytest.mark.heavy
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_stops(tmp_path, sig):
  def send(step, scalars):
    del scalars
    if step == 2:
      os.kill(os.getpid(), sig)

  opts = engine.RunOptions(workdir=str(tmp_path), show_progress=False,
                           checkpoint_seconds=1e9)  # no save but the one the signal makes
  with pytest.raises(RunInterruptedError, match=rf"{sig.name} after step 2; saved .*ckpt-2"):
    engine.run(_Drift(), opts, on_step=send)
  assert _checkpoints(tmp_path) == ["ckpt-2"]
  assert signal.getsignal(sig) is not None  # the handler was put back
  r = engine.run(_Drift(), opts)
  assert (r.resumed_from, r.steps) == (2, 4)


# ---------------------------------------------------------------- the workdir
@contextlib.contextmanager
def _tmpfs(path, size, read_only=False):
  """A tiny tmpfs at `path` (skips where this process may not mount)."""
  path.mkdir()
  opts = f"size={size}" + (",ro" if read_only else "")
  if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs",
                                          str(path)], capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.heavy
def test_a_full_disk_leaves_one_line_and_no_temporary_folder(tmp_path):
  def fill(step, scalars):  # the disk fills up during the first step
    del step, scalars
    with open(disk / "filler", "ab", buffering=0) as f, contextlib.suppress(OSError):
      while True:
        f.write(b"x" * 4096)

  with _tmpfs(tmp_path / "disk", "1m") as disk:
    with pytest.raises(WorkdirError, match="cannot write a checkpoint") as e:
      engine.run(_Drift(), _opts(disk / "w"), on_step=fill)
    assert "\n" not in str(e.value)
    assert not glob.glob(str(disk / "w" / "checkpoints" / "*_temp"))


@pytest.mark.heavy
def test_a_failing_save_leaves_one_line_and_no_temporary_folder(tmp_path, monkeypatch):
  def full(self, checkpoint_number=None):
    os.makedirs(os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp"))
    raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

  monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
  with pytest.raises(WorkdirError, match="No space left on device.*Free space"):
    engine.run(_Drift(), _opts(tmp_path, max_steps=1))
  assert not glob.glob(str(tmp_path / "checkpoints" / "*_temp"))


def test_a_read_only_workdir_is_one_line(tmp_path):
  with _tmpfs(tmp_path / "ro", "64k", read_only=True) as ro:
    with pytest.raises(WorkdirError, match=r"cannot write in .*ro/w"):
      engine.check_writable(str(ro / "w"))
    with pytest.raises(WorkdirError, match=r"cannot write in .*ro/w"):
      engine.run(_Drift(), _opts(ro / "w"))


def test_an_os_error_on_the_workdir_is_one_line(tmp_path, monkeypatch):
  def refuse(path, obj, sort_keys=True):
    raise OSError(30, "Read-only file system", path)

  monkeypatch.setattr(engine.atomic, "write_json", refuse)
  with pytest.raises(WorkdirError, match="cannot write in .*: Read-only file system") as e:
    engine.run(_Drift(), _opts(tmp_path / "w"))
  assert "\n" not in str(e.value)
  monkeypatch.setattr(engine.os, "access", lambda *a: False)
  with pytest.raises(WorkdirError, match="not writable"):
    engine.check_writable(str(tmp_path / "w2"))


def test_a_workdir_that_is_a_file(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(WorkdirError, match="is a file, not a folder"):
    engine.run(_Drift(), _opts(tmp_path / "f"))
  with pytest.raises(WorkdirError, match="is a file, not a folder"):
    engine.check_writable(str(tmp_path / "f" / "sub"))


# ---------------------------------------------------------------- bad settings
def test_run_options_refuse_negative_budgets():
  for field in ("minutes", "max_steps", "checkpoint_seconds"):
    with pytest.raises(InvalidConfigError, match=f"{field} must be at least 0"):
      engine.RunOptions(**{field: -1})
  assert engine.RunOptions(max_steps=0).max_steps == 0  # 0 = the initialisation


def test_config_values_are_type_checked_before_anything_runs():
  with pytest.raises(InvalidConfigError, match=r"real_per_class takes int, got str 'abc'"):
    condense_lib.make_config("idc", "digits", 1, real_per_class="abc")
  with pytest.raises(InvalidConfigError, match="lr_img takes"):
    condense_lib.make_config("idc", "digits", 1, lr_img="fast")
  with pytest.raises(InvalidConfigError, match="cutmix_prob takes float"):
    condense_lib.make_config("idc", "digits", 1, cutmix_prob=True)
  cfg = condense_lib.make_config("idc", "digits", 1, lr_img=1, pretrained=[])
  assert cfg.lr_img == 1 and cfg.pretrained == ()


def test_a_factor_near_the_image_side_is_refused():
  form = formation.make_formation("uniform", 9)
  with pytest.raises(InvalidConfigError, match="factor 9 cuts the 16-pixel height .* "
                                               "use factor <= 8"):
    form.check_image_shape((16, 16, 1))
  formation.make_formation("uniform", 8).check_image_shape((16, 16, 1))
  formation.make_formation("time", 40).check_image_shape((128, 64, 1))  # cuts H only
  with pytest.raises(InvalidConfigError, match="width"):
    formation.make_formation("time", 40, axis=2).check_image_shape((128, 64, 1))
  with pytest.raises(InvalidConfigError, match="factor 1000"):
    _method(factor=1000)


def _nothing_written(path):
  return not os.path.exists(path) or not os.listdir(path)


@pytest.mark.parametrize("flags,message", [
    (("--set", "real_per_class=abc"), "real_per_class takes int, got str 'abc'"),
    (("--factor", "1000"), "factor 1000 cuts the 16-pixel"),
    (("--minutes", "-1"), "minutes must be at least 0"),
    (("--max_steps", "-3"), "max_steps must be at least 0"),
    (("--evaluate", "--repetitions", "0"), "--repetitions must be at least 1"),
    (("--evaluate", "--eval_precision", "float32", "--protocol", "quick",
      "--limit_per_class", "0"), "--limit_per_class must be at least 1"),
])
@pytest.mark.heavy
def test_condense_bad_flags_fail_before_any_work(tmp_path, flags, message):
  workdir = tmp_path / "w"
  t0 = time.time()
  out = run_app("apps.condense", *DIGITS_IDC, "--workdir", str(workdir), *flags)
  assert out.returncode == 2, out.stderr
  assert "error: " in out.stderr and message in out.stderr, out.stderr
  assert "Traceback" not in out.stderr
  assert _nothing_written(workdir)
  assert time.time() - t0 < 60  # refused at start, not after a condensation


@pytest.mark.heavy
def test_condense_workdir_that_is_a_file_is_one_line(tmp_path):
  (tmp_path / "f").write_text("x")
  out = run_app("apps.condense", *DIGITS_IDC, "--workdir", str(tmp_path / "f"))
  assert out.returncode == 2 and "is a file, not a folder" in out.stderr, out.stderr
  assert "Traceback" not in out.stderr


# ---------------------------------------------------------------- kill points (slow)
def _wait_for(predicate, proc, seconds):
  deadline = time.time() + seconds
  while time.time() < deadline and proc.poll() is None:
    if predicate():
      return True
    time.sleep(0.05)
  return False


@pytest.mark.slow
def test_ctrl_c_saves_and_the_rerun_reports_what_it_did(tmp_path):
  """The app as a user runs it: Ctrl-C during the run, rerun, rerun when done."""
  workdir = tmp_path / "w"
  args = [sys.executable, "-m", "apps.condense", *DIGITS_IDC, "--workdir", str(workdir),
          "--checkpoint_seconds", "1000"]
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  root = os.path.dirname(HERE)
  proc = subprocess.Popen(args, cwd=root, env=env, stderr=subprocess.PIPE, text=True)
  assert _wait_for(lambda: glob.glob(str(workdir / "tensorboard" / "*")), proc, 240)
  time.sleep(1.0)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 130, err
  last = err.strip().splitlines()[-1]
  assert last.startswith("interrupted: stopped by SIGINT after step 1; saved ") and \
      "Traceback" not in err, err
  out = run_app("apps.condense", *DIGITS_IDC, "--workdir", str(workdir), "--max_steps", "3")
  assert out.returncode == 0, out.stderr
  assert "resumed at 1" in out.stdout and "s of this session went to tracing" in out.stdout
  out = run_app("apps.condense", *DIGITS_IDC, "--workdir", str(workdir), "--max_steps", "3")
  assert "no iteration run this session" in out.stdout and "nan" not in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", ["ckpt-1", "ckpt-4"])
def test_sigkill_at_several_points_resumes_bit_identical(tmp_path, kill_after):
  from test_idc import _worker  # pylint: disable=g-import-not-at-top
  cmd, env = _worker(str(tmp_path / "a"), str(tmp_path / "a.npy"))
  subprocess.run(cmd, env=env, check=True, timeout=300)
  cmd, env = _worker(str(tmp_path / "b"), str(tmp_path / "b.npy"))
  proc = subprocess.Popen(cmd, env=env)
  state = tmp_path / "b" / "checkpoints" / "checkpoint"
  assert _wait_for(lambda: state.exists() and kill_after in state.read_text(), proc, 240)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  subprocess.run(cmd, env=env, check=True, timeout=300)
  np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.heavy
def test_resumed_sessions_report_their_tracing_time(tmp_path):
  r = engine.run(_Drift(), _opts(tmp_path, max_steps=3))
  assert r.warmup_seconds is not None and r.warmup_seconds >= 0
  r = engine.run(_Drift(), _opts(tmp_path, max_steps=3))  # nothing left to do
  assert r.last_loss is None and r.warmup_seconds is None and r.resumed_from == 3

