"""DC-BENCH suites, NAS-Bench-201 cells and parser, cell store, report, app (issue 6)."""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
import types
import zipfile

import numpy as np
import pytest

from tests import apprun
from tfcondense.bench import budgets, nas, report
from tfcondense.bench.store import CellStore
from tfcondense.errors import InvalidConfigError, SourceUnavailableError, TfcondenseError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
ALL_CONV = "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|conv3x3~0|conv3x3~1|conv3x3~2|"


# -- budgets ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", budgets.BUDGETS.names())
def test_every_budget_names_only_registered_things(name):
  b = budgets.BUDGETS.get(name)
  budgets.check_budget(b)
  for field in ("eval_protocol", "sweep_protocol", "nas_protocol", "nas_full_protocol",
                "init_protocol"):
    p = b.protocol(field, augmentation="none")
    assert p.augmentation == "none" and (p.steps is None) != (p.epochs is None)


def test_budget_check_names_the_bad_entry_and_protocols_resolve():
  import dataclasses
  small = budgets.BUDGETS.get("small")
  with pytest.raises(InvalidConfigError, match="unknown model 'resnet11'.*resnet10"):
    budgets.check_budget(dataclasses.replace(small, transfer_models=("resnet11",)))
  with pytest.raises(InvalidConfigError, match="unknown augmentation 'flipflop'"):
    budgets.check_budget(dataclasses.replace(small, augmentations=("flipflop",)))
  assert small.protocol("eval_protocol").steps == 8
  assert small.condense_overrides("dm")["iterations"] == 4
  assert small.condense_overrides("idc") == {}
  paper = budgets.BUDGETS.get("paper").protocol("eval_protocol")
  assert (paper.epochs, paper.steps, paper.batch_size, tuple(paper.milestones)) == (
      1000, None, 256, (0.5,))
  assert set(budgets.BUDGETS.get("cpu").transfer_models) == set(budgets.TRANSFER_MODELS)


def test_cpu_budget_precision_is_the_same_on_every_machine():
  # The real run's cells are made over many sessions on whichever CPU is lent; a
  # per-machine precision would give cells of one run specs that never match.
  cpu = budgets.BUDGETS.get("cpu")
  fields = ("eval_protocol", "sweep_protocol", "nas_protocol", "nas_full_protocol",
            "init_protocol")
  assert {cpu.protocol(f).precision for f in fields} == {"float32"}
  assert cpu.condense_precision == "float32"


# -- NAS-Bench-201 architectures --------------------------------------------------------

def test_arch_strings_parse_canonicalise_and_enumerate():
  from tfcondense.models import nas201
  assert nas201.arch_str(ALL_CONV) == ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                       "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
  assert nas201.parse_arch(RESNET)[2] == (("skip_connect", 0), ("none", 1),
                                          ("skip_connect", 2))
  archs = nas201.all_archs()
  assert len(archs) == len(set(archs)) == 15625
  for i in (0, 1, 4, 5, 777, 15624):
    assert nas201.arch_from_index(i) == archs[i] and nas201.arch_index(archs[i]) == i
  for bad, msg in (("|conv3x3~0|+|conv3x3~0|", "3 '\\+'-separated"),
                   ("|conv5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS"),
                   ("|skip~0|+|none~0|none~0|+|none~0|none~1|none~2|", "node 2")):
    with pytest.raises(InvalidConfigError, match=msg):
      nas201.parse_arch(bad)
  sample = nas201.sample_archs(30, seed=3)
  assert sample == nas201.sample_archs(30, seed=3) != nas201.sample_archs(30, seed=4)
  assert len(set(sample)) == 30
  assert nas201.is_degenerate("|conv3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
  assert nas201.is_degenerate("|none~0|+|none~0|none~1|+|none~0|none~1|conv3x3~2|")
  assert not nas201.is_degenerate(RESNET)


def test_largest_nas201_network_has_nas_bench_201s_parameter_count():
  from tfcondense.models import build_model
  # NAS-Bench-201 (C=16, N=5, CIFAR-10): the all-3x3 cell gives its largest network,
  # 1.531546 M parameters (ReLUConvBN without bias, BN affine, residual reductions).
  model = build_model("nas201", (32, 32, 3), 10, arch=ALL_CONV)
  assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 1_531_546


def _cell_model(arch, channels=4, size=6):
  import keras
  from tfcondense.models import initialize, nas201
  x = keras.Input((size, size, channels))
  model = keras.Model(x, nas201.cell(x, arch, name="c"))
  initialize(model, 0)
  return model


def test_skip_edges_are_identities_and_nodes_sum_their_inputs():
  x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
  only_skips = _cell_model("|skip~0|+|none~0|skip~1|+|none~0|none~1|skip~2|")
  np.testing.assert_allclose(only_skips(x).numpy(), x)
  # n1 = x, n2 = x + n1 = 2x, n3 = n2: the sum of the two skip paths.
  doubled = _cell_model("|skip~0|+|skip~0|skip~1|+|none~0|none~1|skip~2|")
  np.testing.assert_allclose(doubled(x).numpy(), 2 * x, rtol=1e-6)
  # n3 = x + n1 + n2 = 4x
  np.testing.assert_allclose(
      _cell_model("|skip~0|+|skip~0|skip~1|+|skip~0|skip~1|skip~2|")(x).numpy(), 4 * x,
      rtol=1e-6)
  assert not only_skips.trainable_weights


def test_avg_pool_edge_ignores_padding_like_count_include_pad_false():
  x = np.random.default_rng(1).uniform(size=(1, 5, 5, 2)).astype("float32")
  y = _cell_model("|avg_pool_3x3~0|+|none~0|skip~1|+|none~0|none~1|skip~2|", 2, 5)(x)
  ref = np.zeros_like(x)
  for i in range(5):
    for j in range(5):
      ref[0, i, j] = x[0, max(0, i - 1):i + 2, max(0, j - 1):j + 2].mean(axis=(0, 1))
  np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-6)


def test_convolutions_on_dead_nodes_are_pruned():
  import keras
  # n1 is dead (none), so conv3x3(n1) is never built; n2 = conv3x3(x); n3 = skip(n2).
  model = _cell_model("|none~0|+|conv3x3~0|conv3x3~1|+|none~0|none~1|skip~2|", channels=4)
  convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D)]
  assert len(convs) == 1 and convs[0].name == "c_e20_conv"
  assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 9 * 16 + 2 * 4
  full = _cell_model(ALL_CONV, channels=4)
  assert len([x for x in full.layers if isinstance(x, keras.layers.Conv2D)]) == 6


@pytest.mark.parametrize("arch", [
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|conv3x3~0|+|conv3x3~0|conv3x3~1|+|none~0|none~1|none~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|conv3x3~2|"])
def test_a_cell_cut_off_from_its_input_gives_a_constant_network(arch):
  from tfcondense.models import build_model
  model = build_model("nas201", (16, 16, 1), 5, arch=arch, channels=4, cells_per_stage=1)
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=(3, 16, 16, 1)).astype("float32") for _ in range(2))
  np.testing.assert_allclose(model(a, training=False).numpy(),
                             model(b, training=False).numpy(), atol=1e-6)
  live = build_model("nas201", (16, 16, 1), 5, arch=RESNET, channels=4, cells_per_stage=1)
  assert not np.allclose(live(a, training=False).numpy(), live(b, training=False).numpy())


# -- rank statistics ----------------------------------------------------------------------

def test_rank_correlation_matches_scipy_and_handles_ties_and_constants():
  from scipy import stats
  rng = np.random.default_rng(0)
  archs = [f"a{i}" for i in range(12)]
  truth = dict(zip(archs, rng.uniform(50, 90, 12)))
  proxy = {a: v + rng.normal(0, 8) for a, v in truth.items()}
  got = nas.rank_correlation(proxy, truth, top_k=3)
  t, p = [truth[a] for a in sorted(archs)], [proxy[a] for a in sorted(archs)]
  assert got["n"] == 12
  assert got["spearman"] == pytest.approx(stats.spearmanr(p, t).statistic)
  assert got["kendall"] == pytest.approx(stats.kendalltau(p, t).statistic)
  assert nas.rank_correlation(truth, truth)["spearman"] == pytest.approx(1.0)
  reverse = {a: -v for a, v in truth.items()}
  out = nas.rank_correlation(reverse, truth, top_k=4)
  assert out["spearman"] == pytest.approx(-1.0) and out["top_k_overlap"] == 0.0
  # Top-k: the proxy keeps 2 of the true best 3.
  t3 = {"a": 9.0, "b": 8.0, "c": 7.0, "d": 1.0, "e": 0.0}
  p3 = {"a": 9.0, "b": 1.0, "c": 7.0, "d": 8.0, "e": 0.0}
  assert nas.rank_correlation(p3, t3, top_k=3)["top_k_overlap"] == pytest.approx(2 / 3)
  flat = nas.rank_correlation({a: 10.0 for a in archs}, truth)
  assert flat["spearman"] is None and flat["kendall"] is None
  assert nas.ranks({"x": 1.0, "y": 3.0, "z": 3.0}) == {"x": 3.0, "y": 1.5, "z": 1.5}


# -- NAS-Bench-201 results files ---------------------------------------------------------

def _fake_benchmark(with_tensors: bool):
  """A NAS-Bench-201 object with 3 archs (2 seeds on cifar10, 1 on cifar100)."""
  archs = [RESNET, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
           "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|none~1|nor_conv_3x3~2|"]
  weights = _FakeTensor() if with_tensors else None

  def trial(acc, dataset, seed, setname):
    return {"name": dataset, "seed": seed, "epochs": 200, "net_state_dict": weights,
            "eval_names": [setname], "eval_acc1es": {f"{setname}@199": acc,
                                                     f"{setname}@11": acc - 20},
            "train_acc1es": {199: 99.0}}

  infos = {}
  for i, arch in enumerate(archs):
    base = 90.0 - 30 * i
    full = {"arch_index": i, "arch_str": arch, "clear_net_done": False,
            "dataset_seed": {"cifar10": [777, 888], "cifar100": [777]},
            "all_results": {("cifar10", 777): trial(base, "cifar10", 777, "ori-test"),
                            ("cifar10", 888): trial(base + 1, "cifar10", 888, "ori-test"),
                            ("cifar100", 777): trial(base - 10, "cifar100", 777, "x-test")}}
    infos[i] = {"full": full, "less": dict(full, dataset_seed={})}
  return {"meta_archs": archs, "arch2infos": infos, "evaluated_indexes": [0, 1, 2]}, archs


class _FakeTensor:
  """Pickles like a torch tensor: a torch._utils._rebuild_tensor_v2 call on a storage."""

  def __reduce__(self):
    return (sys.modules["torch._utils"]._rebuild_tensor_v2,
            (_FakeStorage(), 0, (2, 2), (2, 1), False, {}))


class _FakeStorage:
  pass


def _install_fake_torch(monkeypatch):
  torch = types.ModuleType("torch")
  utils = types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):  # never called: only pickled by reference
    raise AssertionError(args)

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  float_storage = type("FloatStorage", (), {"__module__": "torch"})
  torch.FloatStorage = float_storage
  torch._utils = utils
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)
  return float_storage


class _TorchPickler(pickle.Pickler):
  """torch.save's persistent ids for storages: ('storage', type, key, location, numel)."""

  storage_type = None

  def persistent_id(self, obj):
    if isinstance(obj, _FakeStorage):
      return ("storage", self.storage_type, "0", "cpu", 4)
    return None


def _torch_save_legacy(obj, path, storage_type):
  with open(path, "wb") as f:
    for header in (nas.TORCH_MAGIC_NUMBER, nas.TORCH_PROTOCOL_VERSION,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 8}}):
      pickle.dump(header, f, protocol=2)
    pickler = _TorchPickler(f, protocol=2)
    pickler.storage_type = storage_type
    pickler.dump(obj)
    pickle.dump(["0"], f, protocol=2)
    f.write(b"\x00" * 16)  # the storage bytes follow the pickles


def test_nasbench201_files_are_parsed_without_torch(tmp_path, monkeypatch):
  storage_type = _install_fake_torch(monkeypatch)
  obj, archs = _fake_benchmark(with_tensors=True)
  legacy = tmp_path / "NAS-Bench-201-v1_0-e61699.pth"
  _torch_save_legacy(obj, legacy, storage_type)
  zipped = tmp_path / "zipped.pth"
  import io
  buf = io.BytesIO()
  p = _TorchPickler(buf, protocol=2)
  p.storage_type = storage_type
  p.dump(obj)
  with zipfile.ZipFile(zipped, "w") as z:
    z.writestr("zipped/data.pkl", buf.getvalue())
    z.writestr("zipped/version", "3\n")
    z.writestr("zipped/data/0", b"\x00" * 16)
  monkeypatch.delitem(sys.modules, "torch")  # reading needs no torch
  monkeypatch.delitem(sys.modules, "torch._utils")
  for path in (legacy, zipped):
    acc = nas.load_nasbench201(str(path), "cifar10")
    assert acc == pytest.approx({archs[0]: 90.5, archs[1]: 60.5, archs[2]: 30.5})
  assert nas.load_nasbench201(str(legacy), "cifar100")[archs[0]] == pytest.approx(80.0)
  assert nas.load_nasbench201(str(legacy), "cifar10", epoch=11)[archs[2]] == pytest.approx(10.5)
  # One architecture's archive file ({'full': ..., 'less': ...}).
  single = tmp_path / "000001-FULL.pth"
  with open(single, "wb") as f:
    for header in (nas.TORCH_MAGIC_NUMBER, nas.TORCH_PROTOCOL_VERSION, {}):
      pickle.dump(header, f, protocol=2)
    pickle.dump(_fake_benchmark(False)[0]["arch2infos"][1], f, protocol=2)
  assert nas.load_nasbench201(str(single)) == pytest.approx({archs[1]: 60.5})


def test_results_files_in_json_csv_and_refused_pickles(tmp_path):
  (tmp_path / "gt.json").write_text(json.dumps({ALL_CONV: 91.5, RESNET: 90.0}))
  got = nas.load_nasbench201(str(tmp_path / "gt.json"))
  from tfcondense.models import nas201
  assert got == {nas201.arch_str(ALL_CONV): 91.5, RESNET: 90.0}
  (tmp_path / "gt.csv").write_text(f"arch,accuracy\n{RESNET},88.25\n")
  assert nas.load_nasbench201(str(tmp_path / "gt.csv")) == {RESNET: 88.25}

  class Evil:
    def __reduce__(self):
      return (os.system, ("echo owned",))

  with open(tmp_path / "evil.pth", "wb") as f:
    for header in (nas.TORCH_MAGIC_NUMBER, nas.TORCH_PROTOCOL_VERSION, {}):
      pickle.dump(header, f, protocol=2)
    pickle.dump({"arch2infos": Evil()}, f, protocol=2)
  with pytest.raises(pickle.UnpicklingError, match="refusing to load posix.system"):
    nas.load_nasbench201(str(tmp_path / "evil.pth"))
  (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
  with pytest.raises(SourceUnavailableError, match="not a torch.save file"):
    nas.load_nasbench201(str(tmp_path / "junk.pth"))
  with pytest.raises(SourceUnavailableError, match="not found"):
    nas.load_nasbench201(str(tmp_path / "missing.pth"))


# -- cell store ---------------------------------------------------------------------------

def test_cell_store_is_atomic_guards_settings_and_finds_twins(tmp_path):
  store = CellStore(str(tmp_path))
  spec = {"kind": "evaluate", "set": {"method": "dm", "ipc": 10}, "milestones": (0.5,)}
  assert store.get("fm", "augmentation", "dm_ipc10_dsa", spec) is None
  store.put("fm", "augmentation", "dm_ipc10_dsa", spec, {"acc_mean": 80.0}, budget="cpu")
  cell = store.get("fm", "augmentation", "dm_ipc10_dsa", spec)
  assert cell["result"] == {"acc_mean": 80.0} and cell["budget"] == "cpu"
  path = store.path("fm", "augmentation", "dm_ipc10_dsa")
  assert sorted(os.listdir(os.path.dirname(path))) == ["dm_ipc10_dsa.json"]  # no temp files
  assert os.stat(path).st_mode & 0o044  # readable by a web server, not mkstemp's 0600
  other = dict(spec, set={"method": "dm", "ipc": 50})
  with pytest.raises(InvalidConfigError, match="other settings \\(differing: set\\)"):
    store.get("fm", "augmentation", "dm_ipc10_dsa", other)
  assert store.find_equal(spec)["key"] == "dm_ipc10_dsa"
  assert store.find_equal(other) is None
  assert [c["key"] for c in store.cells("fm")] == ["dm_ipc10_dsa"]
  assert store.sources() == ["fm"]


def test_cells_of_protocol_version_1_are_recomputed_only_where_the_recipe_changed(tmp_path):
  store = CellStore(str(tmp_path))
  v1 = {k: v for k, v in _PROTOCOL.items()}  # no "strategy": made before version 2
  v2 = dict(_PROTOCOL, strategy=None, min_steps=None, max_steps=None)

  def spec(protocol):
    return {"kind": "evaluate", "set": {"method": "dm", "ipc": 10}, "protocol": protocol}

  store.put("fm", "augmentation", "dsa_cutmix", spec(v1), {"acc_mean": 80.0})
  assert store.get("fm", "augmentation", "dsa_cutmix", spec(v2)) is None  # lost cutout
  assert store.find_equal(spec(v2)) is None
  v1_none = dict(v1, augmentation="none")
  store.put("fm", "augmentation", "none_cutmix", spec(v1_none), {"acc_mean": 70.0})
  cell = store.get("fm", "augmentation", "none_cutmix", spec(dict(v2, augmentation="none")))
  assert cell["result"] == {"acc_mean": 70.0}  # same recipe: kept
  v1_plain = dict(v1, cutmix_prob=0.0)  # DSA without CutMix kept cutout in both versions
  store.put("fm", "augmentation", "dsa_plain", spec(v1_plain), {"acc_mean": 75.0})
  assert store.get("fm", "augmentation", "dsa_plain", spec(dict(v2, cutmix_prob=0.0)))
  with pytest.raises(InvalidConfigError, match="other settings"):  # a real change still
    store.get("fm", "augmentation", "dsa_cutmix", spec(dict(v2, lr=0.1)))
  assert "evaluation protocol v1" in report.describe_protocol(v1)
  assert "dsa (color_crop_cutout_flip_scale_rotate)" in report.describe_protocol(v1)
  assert "dsa (color_crop_flip_scale_rotate) augmentation" in report.describe_protocol(v2)
  assert "evaluation protocol v2" in report.describe_protocol(v2)


# -- report -------------------------------------------------------------------------------

_PROTOCOL = {"name": "quick", "epochs": None, "steps": 300, "batch_size": 64, "lr": 0.01,
             "momentum": 0.9, "weight_decay": 5e-4, "milestones": [2 / 3, 5 / 6],
             "gamma": 0.2, "augmentation": "dsa", "cutmix_prob": 0.5, "num_evals": 1,
             "precision": "mixed_bfloat16"}


def _fabricate_cells(root):
  """Cells of every suite, shaped as BenchContext writes them (no TensorFlow)."""
  store = CellStore(str(root))
  view = {"source": "toy", "train_per_class": None, "test_per_class": None}

  def ev(suite, key, method, ipc, acc, aug="dsa", model="convnet3", result=None,
         **extra_spec):
    spec = dict(kind="evaluate", set=dict(method=method, ipc=ipc, **extra_spec.pop("set", {})),
                model=model, protocol=dict(_PROTOCOL, augmentation=aug), repetitions=2,
                seed=0, view=view, **extra_spec)
    res = dict(method=method, ipc=ipc, model=model, augmentation=aug, acc_mean=acc,
               acc_std=0.5, last_mean=acc - 1, last_std=0.5, protocol="quick",
               **(result or {}))
    store.put("toy", suite, key, spec, res, budget="cpu")

  table = {"random": {1: 50.0, 10: 70.0, 50: 80.0}, "kcenter": {1: 60.0, 10: 75.0, 50: 82.0},
           "dm": {1: 65.0, 10: 78.0, 50: 81.0}}
  bonus = {"none": -4.0, "imagenet": 1.0, "dsa": 2.0, "autoaugment": 0.5, "randaugment": 1.5}
  # How the DM sets were made, each recorded the three ways a cell can carry it: an
  # imported set's budget (spec), a suite-made set's (result), a minutes cap alone.
  made_by = {1: dict(set=dict(budget=dict(steps=686, total_steps=20000, minutes=20.01))),
             10: dict(result=dict(set_budget=dict(steps=91, total_steps=20000, minutes=15.03,
                                                  seconds=901.5, stopped="budget"))),
             50: dict(set=dict(minutes=15.0))}
  for m, per in table.items():
    for ipc, acc in per.items():
      ev("compression", f"{m}_ipc{ipc}", m, ipc, acc + 2.0,
         **(made_by[ipc] if m == "dm" else {}))
      if ipc == 10:
        for aug, b in bonus.items():
          ev("augmentation", f"{m}_ipc10_{aug}", m, 10, acc + b, aug=aug)
        for k, model in enumerate(("mlp", "convnet3", "resnet10", "vit")):
          ev("transfer", f"{m}_ipc10_{model}", m, 10, acc - 5 * k, model=model)
  ev("compression", "full", "full", None, 90.0)
  cell = "|{0}~0|+|{0}~0|{0}~1|+|{0}~0|{0}~1|{0}~2|".format
  ops = ("none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect")
  truth = {arch: 60.0 + i for i, arch in enumerate([cell(o) for o in ops] + [RESNET])}
  proxy = {"random": [1, 0, 3, 2, 5, 4], "dm": [5, 4, 3, 2, 1, 0]}
  for i, arch in enumerate(truth):
    store.put("toy", "nas", f"truth_arch{i:05d}",
              dict(kind="evaluate", set={"method": "full"}, model="nas201",
                   model_kwargs={"arch": arch, "channels": 16, "cells_per_stage": 1},
                   protocol=_PROTOCOL, repetitions=1, view=view),
              dict(method="full", ipc=None, last_mean=truth[arch], acc_mean=truth[arch],
                   acc_std=0.0), budget="cpu")
    for m, order in proxy.items():
      store.put("toy", "nas", f"{m}_ipc10_arch{i:05d}",
                dict(kind="evaluate", set={"method": m, "ipc": 10}, model="nas201",
                     model_kwargs={"arch": arch, "channels": 16, "cells_per_stage": 1},
                     protocol=_PROTOCOL, repetitions=1, view=view),
                dict(method=m, ipc=10, last_mean=40.0 + order[i], acc_mean=40.0 + order[i],
                     acc_std=0.0), budget="cpu")
  for init, accs in (("random", (50, 60, 70)), ("kcenter", (60, 70, 72)),
                     ("noise", (10, 40, 65))):
    for it, acc in zip((0, 100, 400), accs):
      ev("init", f"dm_{init}_ipc10_it{it:06d}", "dm", 10, float(acc),
         set=dict(init=init, iteration=it))
  for m, sec in (("kcenter", 0.01), ("dm", 0.3), ("idc", 3.6)):
    store.put("toy", "cost", f"{m}_ipc10", dict(kind="cost", method=m, ipc=10),
              dict(method=m, ipc=10, seconds_per_iteration=sec, unit="iteration",
                   memory_mb=123.0, isolated=True, dcbench_a100_cifar10_seconds=None),
              budget="cpu")
  return truth, proxy


def test_init_chart_floors_only_an_initialisation_far_below_the_rest(tmp_path):
  from tfcondense.bench import plots
  noise = [(0, 9.9), (50, 71.7), (1500, 78.8)]
  random = [(0, 75.9), (50, 79.1), (1500, 80.1)]
  # The chance-level noise initialisation goes; the lowest kept point sets the floor.
  assert plots.off_scale_floor(noise + random) == pytest.approx(71.7 - 3.0)
  # Nothing is that far below: no floor, even when an init scores under later points.
  assert plots.off_scale_floor(random) is None
  assert plots.off_scale_floor([(0, 60.0), (50, 74.0)]) is None
  assert plots.off_scale_floor([(0, 10.0)]) is None
  # A later point is never floored, however low.
  assert plots.off_scale_floor([(0, 70.0), (50, 12.0), (100, 75.0)]) is None
  png = plots.init_curves({"dm": {"noise": [p + (0.5,) for p in noise],
                                  "random": [p + (0.5,) for p in random]}},
                          str(tmp_path / "init.png"), "t")
  assert os.path.getsize(png) > 0


@pytest.mark.heavy
def test_report_derives_dcbench_numbers_from_cells(tmp_path):
  from scipy import stats
  truth, proxy = _fabricate_cells(tmp_path)
  paths = report.build_report(str(tmp_path))
  assert paths.cells == 10 + 15 + 12 + 18 + 9 + 3  # compression ... cost, as fabricated
  names = sorted(os.path.basename(p) for p in paths.images)
  assert names == sorted(f"{s}_toy.png" for s in ("augmentation", "compression", "transfer",
                                                  "nas", "init", "cost"))
  md = open(paths.markdown).read()
  page = open(paths.html).read()
  # Augmentation (Table 1): dm@10 = 78 + bonus; average excludes none; best names policy.
  assert "| dm | 10 | 74.00 | 79.00 | 80.00 | 78.50 | 79.50 | 74.00 | 79.25 | 80.00 (dsa) |" in md
  assert "helped 3 of 3 sets (best policy minus none: +6.00 to +6.00 points)" in md
  # Compression: synthesis (dm) beats selection at IPC 1 and 10, not at 50.
  assert "| best synthesis − best selection | +5.00 | +3.00 | -1.00 |" in md
  assert "Synthesis beat the best selection at IPC 1, 10; from IPC 50 on" in md
  # ... and says what condensation made each synthesis set (selection rows have none).
  assert ("| dm | 686 of 20000 it, 20 min | 91 of 20000 it, 15 min | "
          "15 min cap (iterations not recorded) |") in md
  assert "<td>91 of 20000 it, 15 min</td>" in page
  made_table = md.split("Condensation behind each synthesis set")[1].split("\n\n")[1]
  assert [s.split(" | ")[0] for s in made_table.splitlines()[2:]] == ["| dm"]
  # Transfer average over non-ConvNet models: mlp, resnet10, vit = acc, acc-10, acc-15.
  assert "| kcenter | 10 | 75.00 ± 0.50 | 70.00 ± 0.50 | 65.00 ± 0.50 | 60.00 ± 0.50 | " \
         "66.67 |" in md
  # NAS: Spearman against the ground truth as scipy computes it.
  for m, order in proxy.items():
    rho = stats.spearmanr([40.0 + o for o in order], list(truth.values())).statistic
    assert f"| {m}@10 | 6 | {rho:.2f} (p" in md
    # The all-`none` cell (first) is degenerate: the trainable column leaves it out.
    rho5 = stats.spearmanr([40.0 + o for o in order[1:]], list(truth.values())[1:]).statistic
    assert re.search(rf"\| {m}@10 \|.*\| {rho5:.2f} \(p [^,]+, 5 archs\) \|", md)
  # Initialisation: K-Center reaches random init's final 70 after 100 of 400 iterations.
  assert "dm: kcenter init reached random init's final 70.00 after 100 of 400" in md
  # Leaderboard per IPC, sorted by best accuracy, in both files.
  assert "*IPC 10*" in md and "<caption>IPC 10</caption>" in page
  lead = md.split("*IPC 10*")[1].strip().split("\n\n")[0].splitlines()
  assert lead[2].startswith("| **dm** |") and lead[4].startswith("| random |")
  assert page.count("<img ") == 6 and "data-images-loaded" in page
  # Progress against budget cpu (the fabricated cells say cpu): a partial report says so.
  assert "| Cost | 3 | 24 | 12% |" in md
  assert f"Partial report: {paths.cells} of the 424 cells of budget cpu" in md
  assert "--suite augmentation,compression,transfer,nas,init,cost`" in md


def test_transfer_average_only_over_networks_every_set_has(tmp_path):
  # A partial transfer run: random on four networks, kcenter so far on two. Averaging
  # each set over its own networks would put random's weak ResNet-152 against kcenter's
  # MLP alone; the average must use the networks both have (mlp) and say so.
  store = CellStore(str(tmp_path))
  view = {"source": "toy", "train_per_class": None, "test_per_class": None}
  accs = {("random", "mlp"): 70.0, ("random", "convnet3"): 75.0,
          ("random", "resnet152"): 40.0, ("random", "vit"): 50.0,
          ("kcenter", "mlp"): 72.0, ("kcenter", "convnet3"): 77.0}
  for (m, model), acc in accs.items():
    spec = dict(kind="evaluate", set=dict(method=m, ipc=10), model=model,
                protocol=_PROTOCOL, repetitions=2, seed=0, view=view)
    store.put("toy", "transfer", f"{m}_ipc10_{model}", spec,
              dict(method=m, ipc=10, model=model, augmentation="dsa", acc_mean=acc,
                   acc_std=0.5, last_mean=acc, last_std=0.5, protocol="quick"),
              budget="cpu")
  md = open(report.build_report(str(tmp_path)).markdown).read()
  assert re.search(r"\| random \| 10 \|.*\| 50\.00 ± 0\.50 \| 70\.00 \|", md)
  assert re.search(r"\| kcenter \| 10 \|.*\| – \| – \| 72\.00 \|", md)
  assert "here over the 1 of 3 that every set has been trained on so far (mlp)" in md
  assert "transfer average over mlp: the networks every set has been trained on" in md
  # Once every set has every network, the average is over all non-ConvNet ones.
  for model, acc in (("resnet152", 44.0), ("vit", 54.0)):
    spec = dict(kind="evaluate", set=dict(method="kcenter", ipc=10), model=model,
                protocol=_PROTOCOL, repetitions=2, seed=0, view=view)
    store.put("toy", "transfer", f"kcenter_ipc10_{model}", spec,
              dict(method="kcenter", ipc=10, model=model, augmentation="dsa", acc_mean=acc,
                   acc_std=0.5, last_mean=acc, last_std=0.5, protocol="quick"),
              budget="cpu")
  md = open(report.build_report(str(tmp_path)).markdown).read()
  assert re.search(r"\| kcenter \| 10 \|.*\| 54\.00 ± 0\.50 \| 56\.67 \|", md)
  assert "so far" not in md


def test_expected_cells_skip_ipcs_above_the_class_size():
  cpu = budgets.get_budget("cpu")
  full = budgets.expected_cells(cpu)
  assert full == {"augmentation": 120, "compression": 25, "transfer": 54, "nas": 180,
                  "init": 21, "cost": 24}
  small_source = budgets.expected_cells(cpu, class_size=9)  # only IPC 1 fits
  assert small_source == {"augmentation": 40, "compression": 5, "transfer": 0, "nas": 30,
                          "init": 0, "cost": 8}


@pytest.mark.heavy
@pytest.mark.skipif(report.find_chromium() is None,
                    reason="headless Chromium missing: install Debian's `chromium` "
                           "(scripts/setup.sh does)")
def test_report_renders_in_headless_chromium(tmp_path):
  import matplotlib.image as mpimg
  _fabricate_cells(tmp_path)
  paths = report.build_report(str(tmp_path))
  dom = report.rendered_dom(paths.html)
  assert 'data-images-total="6"' in dom and 'data-images-loaded="6"' in dom, dom[-400:]
  assert dom.count("<table>") >= 7 and "NAS ranking" in dom
  png = report.screenshot(paths.html, str(tmp_path / "shot.png"), width=1200, height=2400)
  shot = mpimg.imread(png)[..., :3]
  assert shot.shape[:2] == (2400, 1200)
  ink = (shot.mean(-1) < 0.9).mean()      # text, tables and charts
  coloured = (shot.std(-1) > 0.1).mean()  # the charts' colours
  assert ink > 0.03 and coloured > 0.005, (ink, coloured)
  # The check can fail: a missing chart is reported as not loaded.
  os.remove(os.path.join(os.path.dirname(paths.html), "nas_toy.png"))
  assert 'data-images-loaded="5"' in report.rendered_dom(paths.html)


def test_report_without_cells_says_what_to_run(tmp_path):
  with pytest.raises(FileNotFoundError, match="python -m apps.bench --suite all"):
    report.build_report(str(tmp_path))


def test_report_and_budgets_import_without_tensorflow():
  code = ("import sys; import tfcondense.bench.report, tfcondense.bench.budgets; "
          "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=ROOT, check=True)
  assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_cost_in_its_own_process_reports_time_and_memory(tmp_path):
  if not os.path.isdir(FASHION):
    pytest.skip("dataset-fashion-mnist not installed")
  from tfcondense.bench import cost
  res = cost.measure_isolated("fashion_mnist", "dm", 1, source_view=dict(
      train_per_class=10, test_per_class=5), steps=2, warmup=1, cache_dir=str(tmp_path),
      overrides=dict(iterations=4, real_per_class=10, strategy="color_crop"))
  assert res["unit"] == "iteration" and len(res["all_seconds"]) == 2
  assert 0 < res["seconds_per_iteration"] < 60 and res["memory_mb"] >= 0
  assert res["peak_rss_mb"] >= res["baseline_rss_mb"] > 100  # TensorFlow is loaded
  assert res["config"]["strategy"] == "color_crop"
  with pytest.raises(TfcondenseError, match="failed in its process"):
    cost.measure_isolated("fashion_mnist", "dm", 50, source_view=dict(train_per_class=10))


# -- the app, end to end ----------------------------------------------------------------

def _run(*args, cwd, timeout=1800):
  env = dict(os.environ, TFCONDENSE_PROGRESS="0",
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  t0 = time.time()
  out = apprun.run_module("apps.bench", *args, cwd=cwd, env=env, timeout=timeout)
  return out, time.time() - t0


@pytest.mark.heavy
def test_app_help_and_bad_input():
  out, _ = _run("--help", cwd=ROOT)
  assert out.returncode in (0, 1)
  assert "python -m apps.bench --suite all --source fashion_mnist --budget small" in out.stdout
  assert "--budget cpu" in out.stdout
  for flag in ("--suite", "--source", "--budget", "--out", "--work_dir",
               "--nas_ground_truth", "--[no]screenshot", "--[no]report"):
    assert flag in out.stdout, flag
  out, _ = _run("--suite", "augmentaton", cwd=ROOT)
  assert out.returncode == 2 and "unknown bench suite 'augmentaton'" in out.stderr
  assert "Traceback" not in out.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
  """The issue's command, verbatim, in a fresh directory (outputs under ./runs/)."""
  if not os.path.isdir(FASHION):
    pytest.skip("dataset-fashion-mnist not installed")
  cwd = tmp_path_factory.mktemp("bench")
  out, seconds = _run("--suite", "all", "--source", "fashion_mnist", "--budget", "small",
                      cwd=str(cwd))
  assert out.returncode == 0, out.stderr[-3000:]
  return cwd, out, seconds


EXPECTED_CELLS = {"augmentation": 10, "compression": 7, "transfer": 4, "nas": 6, "init": 6,
                  "cost": 2}


@pytest.mark.heavy
def test_small_budget_runs_every_suite_and_writes_the_report(small_run):
  cwd, out, seconds = small_run
  root = cwd / "runs" / "bench" / "small"
  counts = {s: len(os.listdir(root / "cells" / "fashion_mnist" / s)) for s in EXPECTED_CELLS}
  assert counts == EXPECTED_CELLS, out.stdout[-2000:]
  shared = json.loads((root / "cells" / "fashion_mnist" / "transfer" /
                       "dm_ipc1_convnet3.json").read_text())
  assert shared["copied_from"] == "augmentation/dm_ipc1_dsa"  # evaluated once
  swept = json.loads((root / "cells" / "fashion_mnist" / "compression" /
                      "dm_ipc1.json").read_text())["result"]
  assert swept["set_budget"]["steps"] == 4 and swept["set_budget"]["stopped"] == "done"
  assert "set_budget" not in json.loads((root / "cells" / "fashion_mnist" / "compression" /
                                         "random_ipc1.json").read_text())["result"]
  cost_cell = json.loads((root / "cells" / "fashion_mnist" / "cost" / "dm_ipc1.json").read_text())
  assert cost_cell["result"]["seconds_per_iteration"] > 0
  rep = root / "report"
  pngs = sorted(p for p in os.listdir(rep) if p.endswith(".png"))
  assert pngs == sorted(f"{s}_fashion_mnist.png" for s in EXPECTED_CELLS)
  md = (rep / "summary.md").read_text()
  for title in ("Leaderboard", "Augmentation at evaluation", "Compression ratio",
                "Transfer across architectures", "NAS ranking", "Initialisation", "Cost"):
    assert f"### {title}" in md, title
  assert "| dm@1 | 3 |" in md  # NAS: 3 architectures ranked on the DM set
  # The progress table counts what the suites wrote against the budget's own count.
  assert budgets.expected_cells(budgets.get_budget("small"), class_size=10) == EXPECTED_CELLS
  assert "| NAS ranking | 6 | 6 | done |" in md
  assert "Complete: all 35 cells of budget small." in md
  assert (rep / "index.html").read_text().count("<img ") == 6
  assert os.path.exists(root / "work" / "sets" / "dm_ipc1" / "stored.png")
  print(f"small budget end to end: {seconds:.0f} s")


def test_cost_times_warmup_apart_and_long_iterations_stop_early(monkeypatch):
  from tfcondense.bench import cost
  calls = []
  times = cost.time_iterations(calls.append, warmup=2, steps=3)
  assert calls == [0, 1, 2, 3, 4] and len(times) == 3 and min(times) >= 0
  calls.clear()
  # A clock that each call advances by 0.02 s (a real sleep is late on a busy machine).
  clock = [0.0]
  monkeypatch.setattr(cost.time, "perf_counter", lambda: clock[0])

  def step(i):
    calls.append(i)
    clock[0] += 0.02

  times = cost.time_iterations(step, warmup=1, steps=5, stop_after=0.03)
  assert calls == [0, 1, 2] and times == pytest.approx([0.02, 0.02])  # 0.04 s passes 0.03
  assert len(cost.time_iterations(calls.append, 0, 5, stop_after=0.0)) == 1


@pytest.mark.heavy
def test_cost_benchmark_rows_come_from_the_bench_cost_cells(small_run):
  from tfcondense.bench import cost
  cwd, _, _ = small_run
  root = cwd / "runs" / "bench" / "small"
  cells = sorted((root / "cells" / "fashion_mnist" / "cost").glob("*.json"))
  rows = cost.rows_from_bench(str(root))
  assert [r["method"] for r in rows] == ["kcenter", "dm"]  # selection first, as Table 8
  by_cell = {r["bench_cell"]: r for r in rows}
  assert sorted(by_cell) == [p.stem for p in cells]
  for p in cells:
    r, cell = by_cell[p.stem], json.loads(p.read_text())
    assert (r["method"], r["ipc"]) == (cell["spec"]["method"], cell["spec"]["ipc"])
    assert r["seconds_per_iteration"] == cell["result"]["seconds_per_iteration"] > 0
    assert r["precision"] == cell["spec"]["precision"]
  assert cost.rows_from_bench(str(root / "nowhere")) == []


@pytest.mark.heavy
def test_rerun_computes_only_missing_cells_and_refuses_other_settings(small_run):
  cwd, _, _ = small_run
  cells = cwd / "runs" / "bench" / "small" / "cells" / "fashion_mnist"
  gone = [cells / "augmentation" / "random_ipc1_imagenet.json",
          sorted((cells / "nas").glob("dm_ipc1_arch*.json"))[0]]
  before = {p: p.stat().st_mtime_ns for p in cells.glob("*/*.json") if p not in gone}
  for p in gone:
    p.unlink()
  out, _ = _run("--suite", "all", "--source", "fashion_mnist", "--budget", "small",
                "--noreport", cwd=str(cwd))
  assert out.returncode == 0, out.stderr[-3000:]
  assert all(p.exists() for p in gone)
  assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing else rewritten
  evaluated = [s for s in out.stdout.splitlines() if " over 1 runs; " in s]
  assert sorted(s.split(":")[0] for s in evaluated) == [
      "augmentation random_ipc1_imagenet", f"nas {gone[1].stem}"]
  assert "condensed" not in out.stdout and "selected" not in out.stdout
  out, _ = _run("--suite", "augmentation", "--source", "fashion_mnist", "--budget", "small",
                "--seed", "1", cwd=str(cwd))
  assert out.returncode == 2 and "made with other settings" in out.stderr, out.stderr[-800:]
  out, _ = _run("report", cwd=str(cwd))
  assert out.returncode == 0 and "report:" in out.stdout and "(35 cells, 6 charts)" in out.stdout


def test_a_set_is_made_only_when_a_cell_needs_its_images():
  from tfcondense.bench import context  # pylint: disable=g-import-not-at-top
  calls = []

  def make():
    calls.append(1)
    return np.zeros((2, 4, 4, 1), np.float32), np.array([0, 1]), {"m": 1}

  cset = context.CondensedSet("dm", 1, None, None, {"method": "dm"}, make=make)
  assert not cset.made and calls == [] and cset.spec == {"method": "dm"}
  assert cset.images.shape == (2, 4, 4, 1) and list(cset.labels) == [0, 1]
  assert cset.meta == {"m": 1} and cset.made and calls == [1]  # made once
  with pytest.raises(ValueError, match="needs images"):
    context.CondensedSet("dm", 1, None, None, {})


@pytest.mark.heavy
def test_stored_cells_need_no_set_a_fresh_work_dir_makes_nothing(small_run, tmp_path):
  # A fresh checkout of a benchmark spread over sessions: the cells are committed, the
  # work directory (sets, checkpoints) is gone. Nothing may be selected or condensed.
  cwd, _, _ = small_run
  fresh = tmp_path / "fresh_work"
  out, _ = _run("--suite", "all", "--source", "fashion_mnist", "--budget", "small",
                "--work_dir", str(fresh), "--noreport", cwd=str(cwd))
  assert out.returncode == 0, out.stderr[-3000:]
  assert "selected" not in out.stdout and "condensed" not in out.stdout, out.stdout[-2000:]
  assert " over 1 runs; " not in out.stdout  # no evaluation either
  assert not (fresh / "sets").exists() and not (fresh / "condense").exists()


@pytest.mark.heavy
def test_sets_from_evaluates_a_set_made_elsewhere_and_refuses_the_wrong_one(small_run, tmp_path):
  cwd, _, _ = small_run
  sets = cwd / "runs" / "bench" / "small" / "work" / "sets"
  pattern = str(sets / "{method}_ipc{ipc}")
  out, _ = _run("--suite", "transfer", "--source", "fashion_mnist", "--budget", "small",
                "--out", str(tmp_path / "b"), "--sets_from", pattern, "--noreport",
                cwd=str(cwd))  # transfer: the smallest suite that evaluates dm@1 (4 cells)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"read dm@1 from {sets / 'dm_ipc1'}" in out.stdout
  assert "condensed dm@1" not in out.stdout  # no condensation: the set was read
  cell = json.loads((tmp_path / "b" / "cells" / "fashion_mnist" / "transfer" /
                     "dm_ipc1_mlp.json").read_text())
  assert len(cell["spec"]["set"]["imported"]) == 16  # the images' digest keys the cell
  # A pattern that finds another method's set, and one with an unknown placeholder.
  from tfcondense.bench import context  # pylint: disable=g-import-not-at-top
  ctx = context.BenchContext("fashion_mnist", "small", str(tmp_path / "c"),
                             sets_from=str(sets / "random_ipc{ipc}"), show_progress=False)
  with pytest.raises(InvalidConfigError, match="holds random@1 of fashion_mnist, not dm@1"):
    ctx.condensed("dm", 1)
  with pytest.raises(InvalidConfigError, match="only {method} and {ipc}"):
    context.BenchContext("fashion_mnist", "small", str(tmp_path / "d"), sets_from="x/{name}")
