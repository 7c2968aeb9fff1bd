r"""PyTorch itself against our torch-free `.pt` reader and writer (issue 41).

  sudo apt-get install --no-install-recommends python3-torch    # Debian's torch 1.13
  python -m benchmarks.torch_compat                             # about 30 seconds
  python -m benchmarks.torch_compat --torch_python /path/to/python-with-torch

tfcondense writes and reads PyTorch's zip `.pt` layout without torch
(`tfcondense/torchfile.py`); its tests can only check it against files it wrote itself.
This script puts a real torch on both sides, in another interpreter (--torch_python),
since torch is no dependency of the library:

1. Our export (`interop.export_set(..., "pt")`, MTT's folder layout) of shipped sets and
   of a set with logit soft labels and a learned lr is read by `torch.load`, with
   `weights_only=True` (torch's safe unpickler) and without: every file must load as a
   tensor equal, value for value and dtype for dtype, to what our reader reads, and the
   images must be the formed images normalised NCHW.
2. torch writes the field's layouts (`torch.save`): an MTT / DATM folder with a learned
   lr, a DC / DSA / DM `res_*.pt` results dict, IDC's `[images, targets]` data.pt, and a
   tensor that is a view into a larger storage (as `images[10:30]` saves); our importers
   must read them back exactly.

Writes benchmarks/results/torch_compat.json (each check, the torch version, the
machine) and exits non-zero if a check fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHIPPED = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
OUT = "torch_compat.json"

_TORCH_PYTHON = flags.DEFINE_string("torch_python", "/usr/bin/python3",
                                    "A Python interpreter that can import torch.")
_CONFIGS = flags.DEFINE_list("configs", ["idc_ipc10", "dm_ipc1"], "Shipped sets to export.")

# Runs under --torch_python: loads every .pt below argv[1]'s folders, saves what torch
# read as .npy beside them, and writes the field's layouts from argv[2]'s arrays.
_TORCH_SIDE = r'''
import json, os, sys
import numpy as np
import torch
work, exported = sys.argv[1], json.loads(sys.argv[2])
report = dict(torch=torch.__version__, loaded={})
for folder in exported:
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".pt"):
      continue
    path = os.path.join(folder, name)
    safe = torch.load(path, weights_only=True)
    plain = torch.load(path)
    assert isinstance(safe, torch.Tensor) and torch.equal(safe, plain), path
    np.save(path[:-3] + ".torch.npy", safe.numpy())
    report["loaded"][path] = [list(safe.shape), str(safe.dtype)]
images = torch.from_numpy(np.load(os.path.join(work, "field_images.npy")))
labels = torch.from_numpy(np.load(os.path.join(work, "field_labels.npy")))
big = torch.from_numpy(np.load(os.path.join(work, "field_big.npy")))
mtt = os.path.join(work, "field_mtt")
os.makedirs(mtt, exist_ok=True)
torch.save(images.clone(), os.path.join(mtt, "images_best.pt"))
torch.save(labels, os.path.join(mtt, "labels_best.pt"))
torch.save(torch.tensor(0.0321), os.path.join(mtt, "lr_best.pt"))
torch.save({"data": [[images.clone(), labels.clone()]],
            "accs_all_exps": {"ConvNet": [0.70, 0.71]}},
           os.path.join(work, "res_DM_FashionMNIST_ConvNet_2ipc.pt"))
torch.save([images[:10].clone(), labels[:10].clone()], os.path.join(work, "data.pt"))
torch.save(big[10:30], os.path.join(work, "view.pt"))
print(json.dumps(report))
'''


def _export(work: str, configs) -> dict:
  """Part 1's files: each config's MTT folder, and one with soft labels and an lr;
  returns {folder: (formed images, labels, soft values or None, lr or None)}."""
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import interop, synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense import soft_labels as soft_lib  # pylint: disable=g-import-not-at-top
  expected = {}
  for name in configs:
    src = os.path.join(SHIPPED, name)
    folder = interop.export_set(src, os.path.join(work, f"ours_{name}"), "pt")
    x, y = synthetic.formed_from_artifact(artifact_lib.load_artifact(src))
    expected[folder] = (x, y, None, None)
  base = artifact_lib.load_artifact(os.path.join(SHIPPED, configs[-1]))
  n, classes = len(base.images), int(base.labels.max()) + 1
  soft = soft_lib.SoftLabels(np.random.default_rng(0).normal(size=(n, classes)),
                             kind="logits", temperature=4.0, loss="kl")
  art_dir = os.path.join(work, "soft_artifact")
  artifact_lib.save_artifact(art_dir, base.images, base.labels,
                             dict(base.meta, learned_lr=0.0123), soft_labels=soft)
  folder = interop.export_set(art_dir, os.path.join(work, "ours_soft"), "pt")
  x, y = synthetic.formed_from_artifact(artifact_lib.load_artifact(art_dir))
  expected[folder] = (x, y, soft.values, 0.0123)
  return expected


def _check_ours(expected: dict, checks: dict) -> None:
  """Part 1: torch's reading == ours; images == formed images normalised."""
  from tfcondense import interop, torchfile  # pylint: disable=g-import-not-at-top
  (mean,), (std,) = interop.source_statistics("fashion_mnist")
  for folder, (x, y, soft, lr) in expected.items():
    tag = os.path.basename(folder)
    for name in sorted(os.listdir(folder)):
      if not name.endswith(".pt"):
        continue
      ours = np.asarray(torchfile.load(os.path.join(folder, name)))
      theirs = np.load(os.path.join(folder, name[:-3] + ".torch.npy"))
      checks[f"{tag}/{name}: torch.load == our reader"] = bool(
          ours.dtype == theirs.dtype and ours.shape == theirs.shape
          and np.array_equal(ours, theirs))
    read = lambda n, d=folder: np.load(os.path.join(d, n + ".torch.npy"))  # noqa: E731
    diff = float(np.abs(read("images_best").transpose(0, 2, 3, 1) * std + mean - x).max())
    checks[f"{tag}: images are the formed images normalised NCHW (max abs diff "
           f"{diff:.1e} <= 1e-6)"] = diff <= 1e-6
    checks[f"{tag}: labels"] = bool(np.array_equal(read("labels_best"), y))
    if soft is not None:
      checks[f"{tag}: soft labels"] = bool(np.array_equal(read("soft_labels_best"), soft))
      checks[f"{tag}: learned lr"] = bool(abs(float(read("lr_best")) - lr) < 1e-7)


def _check_field(work: str, checks: dict) -> None:
  """Part 2: the files torch wrote, through our importers."""
  from tfcondense import interop, torchfile  # pylint: disable=g-import-not-at-top
  images = np.load(os.path.join(work, "field_images.npy"))
  labels = np.load(os.path.join(work, "field_labels.npy"))
  mean, std = (np.asarray(s, np.float64) for s in interop.source_statistics("fashion_mnist"))
  for fmt, path, n, options in (
      ("mtt", "field_mtt", 20, {}),
      ("vico", "res_DM_FashionMNIST_ConvNet_2ipc.pt", 20, {}),
      # IDC's own data.pt holds [0, 1] pixels; this one is normalised, so say so.
      ("idc", "data.pt", 10, dict(normalized=True))):
    art = interop.import_set(os.path.join(work, path), fmt, "fashion_mnist", **options)
    want = (images[:n].transpose(0, 2, 3, 1).astype(np.float64) * std + mean).astype(np.float32)
    checks[f"import {fmt} of torch.save's file: images and labels exact"] = bool(
        np.array_equal(art.images, want) and np.array_equal(art.labels, labels[:n]))
    if fmt == "mtt":
      checks["import mtt: learned lr"] = abs(art.meta["learned_lr"] - 0.0321) < 1e-7
  view = np.asarray(torchfile.load(os.path.join(work, "view.pt")))
  big = np.load(os.path.join(work, "field_big.npy"))
  checks["a saved view into a larger storage reads as the view"] = bool(
      np.array_equal(view, big[10:30]))


def _probe_torch(python: str) -> None:
  """Fails fast, in one line, without an interpreter that imports torch."""
  try:
    proc = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True,
                          check=False, timeout=300)
  except FileNotFoundError:
    sys.exit(f"torch_compat: no interpreter {python}; pass --torch_python")
  if proc.returncode != 0:
    sys.exit(f"torch_compat: {python} cannot import torch; on Debian: apt-get install "
             "--no-install-recommends python3-torch, or pass --torch_python")


def main(argv):
  del argv
  _probe_torch(_TORCH_PYTHON.value)
  work = tempfile.mkdtemp(prefix="torch_compat_")
  rng = np.random.default_rng(1)
  from tfcondense import interop  # pylint: disable=g-import-not-at-top
  (mean,), (std,) = interop.source_statistics("fashion_mnist")
  np.save(os.path.join(work, "field_images.npy"),
          ((rng.uniform(size=(20, 1, 28, 28)) - mean) / std).astype(np.float32))
  np.save(os.path.join(work, "field_labels.npy"), np.repeat(np.arange(10), 2).astype(np.int64))
  np.save(os.path.join(work, "field_big.npy"),
          ((rng.uniform(size=(40, 1, 28, 28)) - mean) / std).astype(np.float32))
  expected = _export(work, list(_CONFIGS.value))
  side = os.path.join(work, "torch_side.py")
  with open(side, "w") as f:
    f.write(_TORCH_SIDE)
  proc = subprocess.run([_TORCH_PYTHON.value, side, work, json.dumps(list(expected))],
                        capture_output=True, text=True, check=False, timeout=600)
  if proc.returncode != 0:
    sys.exit(f"torch_compat: the torch side failed:\n{proc.stderr[-3000:]}")
  report = json.loads(proc.stdout.strip().splitlines()[-1])
  checks: dict = {}
  _check_ours(expected, checks)
  _check_field(work, checks)
  for name, ok in checks.items():
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
  payload = dict(command="python -m benchmarks.torch_compat", machine=_util.machine(),
                 torch=report["torch"], torch_python=_TORCH_PYTHON.value,
                 loaded_by_torch={os.path.relpath(k, work): v
                                  for k, v in report["loaded"].items()},
                 checks=checks, all_pass=all(checks.values()))
  print(f"torch {report['torch']}: {sum(checks.values())} of {len(checks)} checks pass; "
        f"wrote {_util.write_json(OUT, payload)}")
  if not payload["all_pass"]:
    sys.exit(f"torch_compat: checks failed; the files are kept in {work}")
  shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
