r"""KIP's sets scored the way the KIP papers score them: by the kernel, not a network.

  python -m benchmarks.kip_kernel      # seconds per set; after benchmarks.methods_fashion

`benchmarks.methods_fashion` evaluates every method's set by training ConvNet-3 on it.
KIP (Nguyen et al., ICLR 2021) learns its images for kernel ridge regression under the
infinite-width fully-connected NTK, and the KIP numbers the papers tabulate (73.5 /
86.8 / 88.0 on Fashion-MNIST at IPC 1 / 10 / 50) are that kernel's test accuracy. To
tell a KIP that does not learn from a KIP whose images do not transfer to a ConvNet,
this script takes each KIP cell of the methods benchmark
(`benchmarks/artifacts/methods_fashion/kip_ipc*`) and reports the KRR test accuracy
(`tfcondense.methods.kip.KIP.test_accuracy`, the cell's own kernel and regulariser, all
10,000 test images) of:

* `init`: the set KIP started from (rebuilt from the cell's config and seed);
* `learnt`: the learnt images as KIP holds them, unclipped (from the cell's last
  checkpoint in `benchmarks/cache/`, while that cache lasts; kept from the previous run
  of this script otherwise);
* `exported`: the artifact, whose pixels are clipped to [0, 1] on export;

beside the cell's ConvNet-3 accuracy. Writes benchmarks/results/kip_kernel_fashion_mnist.json.
"""
from __future__ import annotations

import glob
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402
from benchmarks import methods_fashion  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_OUT = "kip_kernel_fashion_mnist.json"


def main(argv):
  del argv
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import engine  # pylint: disable=g-import-not-at-top
  from tfcondense.methods import kip as kip_lib  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  out_path = os.path.join(_util.RESULTS, _OUT)
  previous = {}
  if os.path.exists(out_path):
    with open(out_path) as f:
      previous = {r["cell"]: r for r in json.load(f).get("rows", [])}
  cells = {d: artifact_lib.load_artifact(d) for d in
           glob.glob(os.path.join(HERE, "artifacts", "methods_fashion", "kip_ipc*"))}
  if not cells:
    print("no KIP cells in benchmarks/artifacts/methods_fashion/; run "
          "`python -m benchmarks.methods_fashion --methods kip` first")
  rows = []
  for cell_dir, art in sorted(cells.items(), key=lambda item: item[1].ipc):
    cell = os.path.basename(cell_dir)
    config = kip_lib.KIPConfig(**art.meta["config"])
    method = kip_lib.KIP(source, config)   # its synthetic set is the seeded initial one
    init = method.test_accuracy()
    exported = method.test_accuracy(
        art.images, kip_lib.centered_one_hot(art.labels, source.num_classes))
    step = engine.restore_last(method, os.path.join(HERE, "cache", "methods_fashion", cell))
    old = previous.get(cell, {})
    if step == art.meta["budget"]["steps"]:
      images = method.synthetic.images.numpy()   # as KIP holds them: unclipped
      learnt = method.test_accuracy(images)
      outside = float(np.mean((images < 0.0) | (images > 1.0)))
    elif old.get("created") == art.meta["created"]:
      learnt, outside = old.get("learnt"), old.get("pixels_outside_unit")
    else:
      learnt = outside = None
    with open(os.path.join(cell_dir, "evaluation.json")) as f:
      convnet = json.load(f)
    rows.append(dict(
        cell=cell, ipc=config.ipc, created=art.meta["created"], steps=art.meta["budget"]["steps"],
        kernel=config.kernel, depth=config.depth, init=init, learnt=learnt, exported=exported,
        pixels_outside_unit=outside, paper=methods_fashion._paper("kip", config.ipc),  # pylint: disable=protected-access
        convnet_mean=convnet["acc_mean"], convnet_std=convnet["acc_std"],
        convnet_protocol=convnet["protocol"]))
    r = rows[-1]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    print(f"{cell} ({r['steps']} steps): kernel test accuracy init {fmt(init)}, learnt "
          f"{fmt(learnt)}, exported {fmt(exported)} (paper {r['paper']}); ConvNet-3 "
          f"{r['convnet_mean']:.2f} +- {r['convnet_std']:.2f}")
  if cells:
    print("wrote", _util.write_json(_OUT, dict(
        machine=_util.machine(), command="python -m benchmarks.kip_kernel",
        accuracy="percent of the 10,000 Fashion-MNIST test images, KRR argmax", rows=rows)))


if __name__ == "__main__":
  app.run(main)
