"""Choosing the faster network precision for the machine."""
import pytest

from tfcondense import evaluate as ev
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
