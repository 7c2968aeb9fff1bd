r"""Round trip through TFDS: every prebuilt Fashion-MNIST config, loaded and re-evaluated.

  python -m benchmarks.tfds_roundtrip          # about 6 minutes per prebuilt config

For each artifact shipped in datasets_builders/condensed_fashion_mnist/artifacts/, loads
`condensed_fashion_mnist/<config>` with `tfds.load` (a fresh TFDS data_dir under
benchmarks/cache/), trains ConvNet-3 on the loaded `train` split with the evaluator,
using the protocol and repetitions recorded in the artifact's evaluation.json, and
checks that the accuracy matches what the benchmark that produced the artifact
reported (within the larger of the two standard deviations plus 0.5 points: same seeds
and protocol, so only floating-point noise should separate them). Writes
benchmarks/results/tfds_roundtrip.json.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREBUILT = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")


def main(argv):
  del argv
  import datasets_builders  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluate as ev  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  data_dir = os.path.join(HERE, "cache", "tfds_roundtrip")
  configs = sorted(d for d in os.listdir(PREBUILT)
                   if os.path.isfile(os.path.join(PREBUILT, d, "meta.json"))) \
      if os.path.isdir(PREBUILT) else []
  if not configs:
    print(f"no prebuilt artifacts in {PREBUILT}; nothing to check")
  rows = []
  for config in configs:
    reported_path = os.path.join(PREBUILT, config, "evaluation.json")
    if not os.path.exists(reported_path):
      print(f"{config}: no evaluation.json beside the artifact; skipped")
      continue
    with open(reported_path) as f:
      reported = json.load(f)
    name = f"condensed_fashion_mnist/{config}"
    ds = tfds.load(name, split="train", data_dir=data_dir, as_supervised=True)
    images, labels = map(np.stack, zip(*tfds.as_numpy(ds)))
    protocol = ev.get_protocol(reported["protocol"], precision=reported.get("precision"))
    res = ev.evaluate(images, labels.astype(np.int32), source, protocol=protocol,
                      repetitions=reported.get("repetitions") or len(reported["best"]), seed=reported.get("seed", 0),
                      desc=f"eval {config}")
    tolerance = max(res.best_std, reported["acc_std"]) + 0.5
    ok = abs(res.best_mean - reported["acc_mean"]) <= tolerance
    rows.append(dict(config=config, images=len(images), protocol=protocol.name,
                     precision=protocol.precision, reported_mean=reported["acc_mean"],
                     reported_std=reported["acc_std"], measured_mean=res.best_mean,
                     measured_std=res.best_std, tolerance=tolerance, match=bool(ok)))
    print(f"{config}: reported {reported['acc_mean']:.2f} +- {reported['acc_std']:.2f}, via "
          f"tfds.load {res.best_mean:.2f} +- {res.best_std:.2f} -> "
          f"{'match' if ok else 'MISMATCH'}")
  path = _util.write_json("tfds_roundtrip.json", dict(
      machine=_util.machine(), command="python -m benchmarks.tfds_roundtrip", rows=rows,
      all_match=all(r["match"] for r in rows) if rows else None))
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
