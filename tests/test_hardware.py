"""Choosing the faster network precision for the machine, and the machine record."""
import os

import pytest

from tfcondense import evaluation as ev
from tfcondense import hardware
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import dc, dm, idc


def test_cpu_flags_parsed_from_cpuinfo(tmp_path):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx512f amx_bf16\n")
  assert {"fpu", "avx512f", "amx_bf16"} <= hardware.cpu_flags(str(info))
  assert hardware.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("flags,expected", [
    ({"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ({"avx512f", "amx_tile", "amx_bf16"}, "mixed_bfloat16"),
    ({"avx512f", "avx2"}, "float32"),  # the Intel Xeon where bfloat16 ran 2.9x slower
    (set(), "float32"),
])
def test_fastest_cpu_precision_follows_native_bfloat16(flags, expected):
  assert hardware.fastest_cpu_precision(flags) == expected


def test_resolve_precision(monkeypatch):
  assert hardware.resolve_precision("float32") == "float32"
  assert hardware.resolve_precision("mixed_bfloat16") == "mixed_bfloat16"
  monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: frozenset({"avx512_bf16"}))
  assert hardware.resolve_precision("auto", consider_gpu=False) == "mixed_bfloat16"
  monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2"}))
  assert hardware.resolve_precision("auto", consider_gpu=False) == "float32"
  with pytest.raises(InvalidConfigError, match="auto"):
    hardware.resolve_precision("float16")


def test_protocol_precision_auto_resolves(monkeypatch):
  monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: frozenset())
  monkeypatch.setattr(hardware, "gpu_has_fast_bfloat16", lambda gpus=None: False)
  assert ev.get_protocol("cpu", precision="auto").precision == "float32"
  assert ev.get_protocol("cpu", precision="mixed_bfloat16").precision == "mixed_bfloat16"


def test_auto_decides_by_the_visible_gpu(monkeypatch):
  import tensorflow as tf
  fake = ["GPU:0"]
  seen = []
  monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake)
  monkeypatch.setattr(hardware, "cpu_flags", lambda cpuinfo=None: frozenset())
  monkeypatch.setattr(hardware, "gpu_has_fast_bfloat16",
                      lambda gpus=None: seen.append(gpus) or True)
  assert hardware.resolve_precision("auto") == "mixed_bfloat16"
  assert seen == [fake]  # the devices listed once, passed on
  assert hardware.resolve_precision("auto", consider_gpu=False) == "float32"


@pytest.mark.parametrize("config", [dc.DCConfig, dm.DMConfig, idc.IDCConfig])
def test_method_configs_accept_only_known_precisions(config):
  for precision in hardware.PRECISIONS:
    config(precision=precision).check()
  with pytest.raises(InvalidConfigError, match="mixed_bfloat16"):
    config(precision="auto").check()  # "auto" is resolved before a config is built


# ---------------------------------------------------------------- the machine record
def test_machine_names_cpu_cores_gpus_and_tensorflow(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu\n")
  assert hardware.machine(cpuinfo=str(info), gpus=[]) == dict(
      cpu="AMD EPYC 9B14", cores=os.cpu_count(), gpus=[], tensorflow=tf.__version__)
  unknown = hardware.machine(cpuinfo=str(tmp_path / "missing"), gpus=[])
  assert unknown["cpu"]  # platform's name where cpuinfo cannot be read
  assert hardware.machine()["gpus"] == [
      tf.config.experimental.get_device_details(d).get("device_name", d.name)
      for d in tf.config.list_physical_devices("GPU")]


def test_condensed_and_selected_sets_record_the_machine():
  from fixtures import quadrant_source  # pylint: disable=g-import-not-at-top
  from test_faults import TINY  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import engine, methods  # pylint: disable=g-import-not-at-top
  here = hardware.machine()
  assert set(here) == {"cpu", "cores", "gpus", "tensorflow"}
  assert methods.select("random", quadrant_source(), 1).meta["machine"] == here
  made = condense_lib.condense("idc_i", quadrant_source(), 1, **TINY,
                               options=engine.RunOptions(max_steps=0, show_progress=False))
  assert made.artifact.meta["machine"] == here


def test_benchmarks_record_the_same_machine():
  import datetime  # pylint: disable=g-import-not-at-top
  from benchmarks import _util  # pylint: disable=g-import-not-at-top
  assert _util.machine() == dict(hardware.machine(),
                                 date=datetime.date.today().isoformat())
