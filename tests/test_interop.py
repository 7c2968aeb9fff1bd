"""Importers of the field's released sets and the PyTorch export, on hand-written files.

The .pt fixtures are written here the way torch.save writes them (a pickle whose
tensors are `torch._utils._rebuild_tensor_v2` calls on persistent-id storages, in the
zip layout or the legacy stream), through a stand-in `torch` module that exists only
while writing: reading needs no torch.
"""
import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from tfcondense import artifact as artifact_lib
from tfcondense import interop
from tfcondense import soft_labels as soft_lib
from tfcondense import torchfile
from tfcondense.errors import (InvalidConfigError, SourceUnavailableError, TfcondenseError,
                               UnsafePickleError)

FASHION = ((0.2861,), (0.3530,))
CIFAR = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage"}


class _Tensor:
  """Pickles as torch pickles a contiguous CPU tensor."""

  def __init__(self, array):
    self.array = np.ascontiguousarray(array)

  def __reduce__(self):
    shape = self.array.shape
    stride = tuple(int(s) // self.array.itemsize for s in self.array.strides)
    return (sys.modules["torch._utils"]._rebuild_tensor_v2,
            (_StorageRef(self.array), 0, shape, stride, False, collections.OrderedDict()))


class _StorageRef:
  def __init__(self, array):
    self.array = array


class _TorchPickler(pickle.Pickler):
  """torch.save's pickler: storages become persistent ids, their bytes kept aside."""

  def __init__(self, f, legacy=False):
    super().__init__(f, protocol=2)
    self.legacy = legacy
    self.storages = []

  def persistent_id(self, obj):
    if not isinstance(obj, _StorageRef):
      return None
    key = str(len(self.storages))
    self.storages.append(obj.array)
    cls = getattr(sys.modules["torch"], _STORAGE_NAMES[obj.array.dtype])
    pid = ("storage", cls, key, "cpu", int(obj.array.size))
    return pid + (None,) if self.legacy else pid


@pytest.fixture(name="fake_torch")
def _fake_torch(monkeypatch):
  """Installs a stand-in `torch` for pickling by reference; `save(obj, path, legacy)`."""
  torch = types.ModuleType("torch")
  utils = types.ModuleType("torch._utils")

  def _rebuild_tensor_v2(*args):  # only ever pickled by reference
    raise AssertionError(args)

  _rebuild_tensor_v2.__module__ = "torch._utils"
  _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  for name in _STORAGE_NAMES.values():
    setattr(torch, name, type(name, (), {"__module__": "torch"}))
  monkeypatch.setitem(sys.modules, "torch", torch)
  monkeypatch.setitem(sys.modules, "torch._utils", utils)

  def save(obj, path, legacy=False):
    buf = io.BytesIO()
    if legacy:
      for header in (torchfile.TORCH_MAGIC_NUMBER, torchfile.TORCH_PROTOCOL_VERSION,
                     {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, buf, protocol=2)
    pickler = _TorchPickler(buf, legacy)
    pickler.dump(obj)
    if legacy:
      pickle.dump([str(i) for i in range(len(pickler.storages))], buf, protocol=2)
      for array in pickler.storages:
        buf.write(struct.pack("<q", array.size) + array.tobytes())
      with open(path, "wb") as f:
        f.write(buf.getvalue())
      return
    stem = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w") as z:
      z.writestr(f"{stem}/data.pkl", buf.getvalue())
      for i, array in enumerate(pickler.storages):
        z.writestr(f"{stem}/data/{i}", array.tobytes())
      z.writestr(f"{stem}/version", "3\n")

  return save


def _set(rng, n_classes=3, ipc=2, shape=(1, 4, 4)):
  """Pixels in [0, 1] NCHW, class-major labels."""
  x = rng.uniform(0, 1, (n_classes * ipc,) + shape).astype(np.float32)
  y = np.repeat(np.arange(n_classes), ipc)
  return x, y


def _normalise(x, stats):
  mean, std = (np.asarray(s, np.float32).reshape(1, -1, 1, 1) for s in stats)
  return ((x - mean) / std).astype(np.float32)


def test_vico_results_file(tmp_path, fake_torch):
  rng = np.random.default_rng(0)
  sets = [_set(rng) for _ in range(2)]
  obj = {"data": [[_Tensor(_normalise(x, FASHION)), _Tensor(y.astype(np.int64))]
                  for x, y in sets],
         "accs_all_exps": {"ConvNet": [0.71, 0.70]}}
  path = tmp_path / "res_DM_FashionMNIST_ConvNet_2ipc.pt"
  fake_torch(obj, path)
  del sys.modules["torch"], sys.modules["torch._utils"]  # reading needs no torch
  art = interop.import_set(str(path), "vico", "fashion_mnist", experiment=1,
                           out_dir=str(tmp_path / "art"))
  np.testing.assert_allclose(art.images, sets[1][0].transpose(0, 2, 3, 1), atol=1e-6)
  np.testing.assert_array_equal(art.labels, sets[1][1])
  meta = artifact_lib.load_artifact(str(tmp_path / "art")).meta
  assert (meta["method"], meta["ipc"], meta["factor"], meta["source"]) == \
      ("dm", 2, 1, "fashion_mnist")
  imp = meta["import"]
  assert imp["format"] == "vico" and imp["files"] == [path.name]
  assert imp["experiment"] == 1 and imp["experiments"] == 2 and imp["model"] == "ConvNet"
  assert imp["reported_accuracies"] == {"ConvNet": [0.71, 0.70]}
  assert imp["normalized"] and len(imp["sha256"][path.name]) == 64
  with pytest.raises(InvalidConfigError, match="holds 2 experiment"):
    interop.import_set(str(path), "vico", "fashion_mnist", experiment=2)
  with pytest.raises(InvalidConfigError, match="2 images per class, expected 5"):
    interop.import_set(str(path), "vico", "fashion_mnist", ipc=5)


def test_mtt_and_datm_folders_with_learned_lr_and_soft_labels(tmp_path, fake_torch):
  rng = np.random.default_rng(1)
  x, y = _set(rng, shape=(3, 4, 4))
  logits = rng.normal(size=(6, 3)).astype(np.float32) + 4 * np.eye(3, dtype=np.float32)[y]
  mtt, datm = tmp_path / "mtt", tmp_path / "datm"
  for folder, labels in ((mtt, y.astype(np.int64)), (datm, logits)):
    folder.mkdir()
    fake_torch(_Tensor(_normalise(x, CIFAR)), folder / "images_best.pt")
    fake_torch(_Tensor(labels), folder / "labels_best.pt")
    fake_torch(_Tensor(np.array(0.0125, np.float32)), folder / "lr_best.pt")
  del sys.modules["torch"], sys.modules["torch._utils"]
  art = interop.import_set(str(mtt), "mtt", "cifar10")
  np.testing.assert_allclose(art.images, x.transpose(0, 2, 3, 1), atol=1e-6)
  assert art.soft_labels is None and art.meta["learned_lr"] == pytest.approx(0.0125)
  assert art.meta["method"] == "mtt" and art.meta["ipc"] == 2
  soft = interop.import_set(str(datm / "images_best.pt"), "mtt", "cifar10", method="datm",
                            temperature=2.0, out_dir=str(tmp_path / "art"))
  np.testing.assert_array_equal(soft.labels, y)  # argmax of the logits
  back = artifact_lib.load_artifact(str(tmp_path / "art"))
  assert (back.soft_labels.kind, back.soft_labels.temperature, back.soft_labels.loss) == \
      ("logits", 2.0, "kl")
  np.testing.assert_array_equal(back.soft_labels.values, logits)
  assert back.meta["method"] == "datm"
  assert back.meta["storage"]["soft_label_bytes"] == logits.nbytes
  with pytest.raises(SourceUnavailableError, match="no labels_best.pt"):
    os.remove(mtt / "labels_best.pt")
    interop.import_set(str(mtt), "mtt", "cifar10")


def test_idc_data_pt_in_the_legacy_stream_is_decoded_by_its_factor(tmp_path, fake_torch):
  rng = np.random.default_rng(2)
  x, y = _set(rng, n_classes=2, ipc=1, shape=(1, 8, 8))
  path = tmp_path / "data.pt"
  fake_torch([_Tensor(x), _Tensor(y.astype(np.int64))], path, legacy=True)
  del sys.modules["torch"], sys.modules["torch._utils"]
  art = interop.import_set(str(path), "idc", "fashion_mnist")
  np.testing.assert_array_equal(art.images, x.transpose(0, 2, 3, 1))  # unnormalised
  assert art.meta["factor"] == 2 and art.meta["formation"]["name"] == "uniform"
  images, labels, _ = soft_lib.training_set(art)
  assert images.shape == (8, 8, 8, 1) and list(labels) == [0] * 4 + [1] * 4
  with pytest.raises(InvalidConfigError, match="pass normalized=False"):
    interop.import_set(str(path), "idc", "fashion_mnist", normalized=True,
                       mean=(0.5,), std=(10.0,))


def test_kip_npz_with_shifted_one_hot_labels_and_zca(tmp_path):
  rng = np.random.default_rng(3)
  x, y = _set(rng, shape=(4, 4, 3))  # NHWC
  onehot = np.eye(3, dtype=np.float32)[y] - 1.0 / 3  # KIP centres its one-hot labels
  mean, std = (np.asarray(s, np.float32) for s in CIFAR)
  path = tmp_path / "kip_cifar10.npz"
  np.savez(path, images=(x - mean) / std, labels=onehot)
  art = interop.import_set(str(path), "kip", "cifar10")
  np.testing.assert_allclose(art.images, x, atol=1e-6)
  np.testing.assert_array_equal(art.labels, y)
  assert art.soft_labels is None and art.meta["method"] == "kip"
  whitened = rng.normal(0, 3, x.shape).astype(np.float32)
  np.savez(path, support_images=whitened, support_labels=onehot)
  art = interop.import_set(str(path), "kip", "cifar10", zca=True)
  np.testing.assert_array_equal(art.images, whitened)  # kept as they are
  assert art.meta["import"]["zca"] is True and "ZCA" in art.meta["import"]["note"]
  # Every evaluation path decodes through training_set, which refuses whitened images.
  with pytest.raises(InvalidConfigError, match="ZCA-whitened images"):
    soft_lib.training_set(art)
  smooth = np.full((6, 3), 0.05, np.float32) + 0.85 * np.eye(3, dtype=np.float32)[y]
  np.savez(path, images=(x - mean) / std, labels=smooth)
  assert interop.import_set(str(path), "kip", "cifar10").soft_labels.kind == "probs"
  np.savez(path, images=(x - mean) / std, labels=np.array([0, 0, 0, 1, 1, 2]))
  with pytest.raises(InvalidConfigError, match=r"different numbers of images \[3, 2, 1\]"):
    interop.import_set(str(path), "kip", "cifar10")


def test_a_pickle_calling_anything_else_is_refused_in_one_line(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

  folder = tmp_path / "mtt"
  folder.mkdir()
  with zipfile.ZipFile(folder / "images_best.pt", "w") as z:
    z.writestr("images_best/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    z.writestr("images_best/version", "3\n")
  (folder / "labels_best.pt").write_bytes((folder / "images_best.pt").read_bytes())
  with pytest.raises(UnsafePickleError) as info:
    interop.import_set(str(folder), "mtt", "cifar10")
  message = str(info.value)
  assert "refusing to load posix.system" in message and "\n" not in message
  assert isinstance(info.value, TfcondenseError) and isinstance(info.value,
                                                                pickle.UnpicklingError)
  assert not (tmp_path / "owned").exists()
  with pytest.raises(Exception, match="unknown import format 'pth'; known import formats: "
                                      "idc, kip, mtt, npz, vico"):
    interop.import_set(str(folder), "pth", "cifar10")


def _independent_torch_load(path):
  """What torch.load does with a zip file, written apart from tfcondense.torchfile."""
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    top = {n.split("/")[0] for n in names}
    assert len(top) == 1 and z.read(f"{top.pop()}/version") == b"3\n"
    prefix = names[0].split("/")[0]
    for info in z.infolist():  # torch aligns data to 64 bytes for mmap
      assert (info.header_offset + 30 + len(info.filename) + len(info.extra)) % 64 == 0
    dtypes = {"FloatStorage": np.float32, "LongStorage": np.int64}

    class Unpickler(pickle.Unpickler):
      def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
          return lambda st, off, size, stride, *rest: (
              np.lib.stride_tricks.as_strided(st[off:], size, [s * st.itemsize for s in stride])
              .copy() if size else np.array(st[off]))
        if (module, name) == ("collections", "OrderedDict"):
          return collections.OrderedDict
        if module == "torch" and name in dtypes:
          return name  # a storage class: its name picks the dtype below
        raise AssertionError((module, name))

      def persistent_load(self, pid):
        kind, cls, key, location, numel = pid
        assert kind == "storage" and location == "cpu"
        data = np.frombuffer(z.read(f"{prefix}/data/{key}"), dtypes[cls])
        assert len(data) == numel
        return data

    return Unpickler(io.BytesIO(z.read(f"{prefix}/data.pkl"))).load()


def test_export_to_the_mtt_layout_and_npz_round_trips(tmp_path):
  rng = np.random.default_rng(4)
  x, y = _set(rng, shape=(4, 4, 1))
  soft = soft_lib.SoftLabels(rng.normal(size=(6, 3)), kind="logits", temperature=4.0,
                             loss="kl")
  src = str(tmp_path / "art")
  artifact_lib.save_artifact(src, x, y, dict(source="fashion_mnist", method="dm", ipc=2,
                                             learned_lr=0.01), soft_labels=soft)
  out = interop.export_set(src, str(tmp_path / "pt"), "pt")
  images = _independent_torch_load(os.path.join(out, "images_best.pt"))
  assert images.shape == (6, 1, 4, 4) and images.dtype == np.float32
  np.testing.assert_allclose(images, _normalise(x.transpose(0, 3, 1, 2), FASHION), atol=1e-6)
  np.testing.assert_array_equal(_independent_torch_load(os.path.join(out, "labels_best.pt")),
                                y)
  lr = _independent_torch_load(os.path.join(out, "lr_best.pt"))
  assert lr.shape == () and float(lr) == pytest.approx(0.01)
  back = interop.import_set(out, "mtt", "fashion_mnist")
  np.testing.assert_allclose(back.images, x, atol=1e-6)
  np.testing.assert_array_equal(back.labels, y)
  np.testing.assert_array_equal(back.soft_labels.values, soft.values)
  assert (back.soft_labels.kind, back.soft_labels.temperature) == ("logits", 4.0)
  assert back.meta["method"] == "dm" and back.meta["learned_lr"] == pytest.approx(0.01)
  npz = interop.export_set(src, str(tmp_path / "set"), "npz")
  assert npz.endswith("set.npz")
  with np.load(npz, allow_pickle=False) as z:
    np.testing.assert_array_equal(z["images"], x)
  again = interop.import_set(npz, "npz", "fashion_mnist")
  np.testing.assert_array_equal(again.images, x)  # no normalisation on the way: exact
  np.testing.assert_array_equal(again.soft_labels.values, soft.values)


def test_a_factor_two_set_exports_its_formed_images(tmp_path):
  rng = np.random.default_rng(5)
  x, y = _set(rng, n_classes=2, ipc=1, shape=(8, 8, 1))
  src = str(tmp_path / "idc")
  artifact_lib.save_artifact(src, x, y, dict(source="fashion_mnist", method="idc", ipc=1,
                                             factor=2))
  out = interop.export_set(src, str(tmp_path / "pt"), "pt")
  back = interop.import_set(out, "mtt", "fashion_mnist")
  formed, labels, _ = soft_lib.training_set(artifact_lib.load_artifact(src))
  np.testing.assert_allclose(back.images, formed, atol=1e-6)
  np.testing.assert_array_equal(back.labels, labels)
  assert (back.meta["method"], back.meta["ipc"], back.meta["factor"]) == ("idc", 4, 1)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="dataset-fashion-mnist not installed")
def test_export_then_evaluate_import_on_the_command_line(tmp_path):
  """apps.export writes MTT's layout; apps.evaluate --import reads and evaluates it, and
  trains a soft-label artifact on its soft labels (about 5 minutes on 2 busy cores)."""
  import json
  import subprocess
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TFCONDENSE_PROGRESS="0")
  run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=root, env=env,  # noqa
                                  text=True, capture_output=True, timeout=900)
  shipped = "datasets_builders/condensed_fashion_mnist/artifacts/dm_ipc1"
  out = run("apps.export", "--artifact", shipped, "--out", str(tmp_path / "mtt"))
  assert out.returncode == 0, out.stderr
  art = artifact_lib.load_artifact(os.path.join(root, shipped))
  soft = soft_lib.SoftLabels(np.eye(10, dtype=np.float32)[art.labels] * 0.8 + 0.02)
  artifact_lib.save_artifact(str(tmp_path / "soft"), art.images, art.labels, art.meta,
                             soft_labels=soft)
  rows_path = tmp_path / "rows.json"
  out = run("apps.evaluate", "--source", "fashion_mnist", "--import", str(tmp_path / "mtt"),
            "--format", "mtt", "--import_dir", str(tmp_path / "imported"), "--artifact",
            str(tmp_path / "soft"), "--protocol", "smoke", "--repetitions", "1",
            "--limit_per_class", "20", "--output", str(rows_path))
  assert out.returncode == 0, out.stderr
  rows = json.loads(rows_path.read_text())["rows"]
  by_method = {r["method"]: r for r in rows}
  assert sorted(by_method) == ["dm", "dm+soft"] and "soft_labels" not in by_method["dm"]
  assert by_method["dm+soft"]["soft_labels"] == dict(kind="probs", loss="ce", temperature=1.0)
  assert by_method["dm+soft"]["key"] == "soft:soft"
  assert "imported " in out.stdout and "| dm+soft | 1 |" in out.stdout
  bad = run("apps.evaluate", "--source", "fashion_mnist", "--import", "x.pt")
  assert bad.returncode == 2 and "--import needs --format" in bad.stderr


def test_malformed_torch_files_fail_in_one_line(tmp_path):
  path = tmp_path / "bad.pt"
  for payload in (b"\x80\x02ctorch\nFloatStorage\n)R.",  # a storage class called
                  b"\x80\x02}q\x00(X\x01\x00\x00\x00a"):  # truncated
    with zipfile.ZipFile(path, "w") as z:
      z.writestr("bad/data.pkl", payload)
    with pytest.raises(SourceUnavailableError, match="not a readable torch.save file"):
      torchfile.load(str(path))
  path.write_bytes(b"junk")
  with pytest.raises(SourceUnavailableError, match="not a torch.save file"):
    torchfile.load(str(path))
  with pytest.raises(SourceUnavailableError, match="not found"):
    torchfile.load(str(tmp_path / "missing.pt"))
