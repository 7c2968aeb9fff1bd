r"""Round trip through TFDS: every prebuilt Fashion-MNIST config, loaded and re-evaluated.

  python -m benchmarks.tfds_roundtrip          # about 6 minutes per prebuilt config
  python -m benchmarks.tfds_roundtrip --configs idc_ipc10,dm_ipc10

For each artifact shipped in datasets_builders/condensed_fashion_mnist/artifacts/, loads
`condensed_fashion_mnist/<config>` with `tfds.load` (a fresh TFDS data_dir under
benchmarks/cache/), trains ConvNet-3 on the loaded `train` split with the evaluator,
using the protocol and repetitions recorded in the artifact's evaluation.json, and
checks that the accuracy matches what the benchmark that produced the artifact
reported (within the larger of the two standard deviations plus 0.5 points: same seeds
and protocol, so only floating-point noise should separate them). Writes
benchmarks/results/tfds_roundtrip.json after every config; a re-run skips the configs
already there whose reported accuracy has not changed (resumable over sessions).
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREBUILT = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
_OUT = "tfds_roundtrip.json"
_CONFIGS = flags.DEFINE_list("configs", None, "Configs to check (default: every prebuilt one).")


def main(argv):
  del argv
  import datasets_builders  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  data_dir = os.path.join(HERE, "cache", "tfds_roundtrip")
  configs = _util.shipped_configs(PREBUILT, _CONFIGS.value)
  if not configs:
    print(f"no prebuilt artifacts in {PREBUILT}; nothing to check")
  out_path = os.path.join(_util.RESULTS, _OUT)
  rows = []
  if os.path.exists(out_path):
    with open(out_path) as f:
      rows = json.load(f).get("rows", [])

  def save():
    return _util.write_json(_OUT, dict(
        machine=_util.machine(), command="python -m benchmarks.tfds_roundtrip", rows=rows,
        all_match=all(r["match"] for r in rows) if rows else None,
        missing=sorted(set(os.listdir(PREBUILT)) - {r["config"] for r in rows}
                       - {"README.md"})))

  for config in configs:
    reported_path = os.path.join(PREBUILT, config, "evaluation.json")
    if not os.path.exists(reported_path):
      print(f"{config}: no evaluation.json beside the artifact; skipped")
      continue
    with open(reported_path) as f:
      reported = json.load(f)
    if any(r["config"] == config and r["reported_mean"] == reported["acc_mean"] for r in rows):
      print(f"{config}: already checked in {out_path}")
      continue
    rows = [r for r in rows if r["config"] != config]
    name = f"condensed_fashion_mnist/{config}"
    ds = tfds.load(name, split="train", data_dir=data_dir, as_supervised=True)
    images, labels = map(np.stack, zip(*tfds.as_numpy(ds)))
    protocol = ev.get_protocol(reported["protocol"], precision=reported.get("precision"))
    res = ev.evaluate(images, labels.astype(np.int32), source, protocol=protocol,
                      repetitions=reported.get("repetitions") or len(reported["best"]),
                      seed=reported.get("seed", 0),
                      desc=f"eval {config}")
    tolerance = max(res.best_std, reported["acc_std"]) + 0.5
    ok = abs(res.best_mean - reported["acc_mean"]) <= tolerance
    rows.append(dict(config=config, images=len(images), protocol=protocol.name,
                     precision=protocol.precision, reported_mean=reported["acc_mean"],
                     reported_std=reported["acc_std"], measured_mean=res.best_mean,
                     measured_std=res.best_std, tolerance=tolerance, match=bool(ok),
                     machine=_util.machine()))
    save()
    print(f"{config}: reported {reported['acc_mean']:.2f} +- {reported['acc_std']:.2f}, via "
          f"tfds.load {res.best_mean:.2f} +- {res.best_std:.2f} -> "
          f"{'match' if ok else 'MISMATCH'}")
  print(f"wrote {save()}")


if __name__ == "__main__":
  app.run(main)
