r"""Round trip through PyTorch's layout: every shipped Fashion-MNIST set exported to MTT's
`.pt` files, imported back without torch, and re-evaluated (issue 41).

  python -m benchmarks.mtt_roundtrip                       # about 6 minutes per set
  python -m benchmarks.mtt_roundtrip --configs idc_ipc10,dm_ipc10
  python -m benchmarks.mtt_roundtrip --evaluate=false      # the file check alone (seconds)

For each artifact in datasets_builders/condensed_fashion_mnist/artifacts/: writes it with
`tfcondense.interop.export_set(..., "pt")` under benchmarks/cache/mtt_roundtrip/<config>
(the formed images normalised NCHW in images_best.pt, labels_best.pt, ...), reads that
folder back with `import_set(..., "mtt")`, checks the images (largest absolute
difference to the formed images; float32 normalise / un-normalise leaves ~1e-7) and
labels, then trains ConvNet-3 on the imported set with the protocol, precision, seed
and repetitions of the artifact's evaluation.json and checks the accuracy against the
reported one (within the larger standard deviation plus 0.5 points, as
benchmarks/tfds_roundtrip.py). Writes benchmarks/results/mtt_roundtrip.json after every
set; a rerun skips the sets already there whose reported accuracy has not changed.
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
SHIPPED = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
CACHE = os.path.join(HERE, "cache", "mtt_roundtrip")
OUT = "mtt_roundtrip.json"
_CONFIGS = flags.DEFINE_list("configs", None, "Configs to check (default: every shipped one).")
_EVALUATE = flags.DEFINE_bool("evaluate", True, "Also re-evaluate the imported sets.")


def main(argv):
  del argv
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import interop  # pylint: disable=g-import-not-at-top
  from tfcondense import soft_labels  # pylint: disable=g-import-not-at-top

  configs = _util.shipped_configs(SHIPPED, _CONFIGS.value)
  path = os.path.join(_util.RESULTS, OUT)
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      rows = json.load(f).get("rows", [])
  source = data.load_source("fashion_mnist") if _EVALUATE.value else None

  def save():
    return _util.write_json(OUT, dict(
        machine=_util.machine(), command="python -m benchmarks.mtt_roundtrip", rows=rows,
        all_match=all(r.get("match", r["arrays_match"]) for r in rows) if rows else None))

  for config in configs:
    with open(os.path.join(SHIPPED, config, "evaluation.json")) as f:
      reported = json.load(f)
    if any(r["config"] == config and r["reported_mean"] == reported["acc_mean"]
           and ("match" in r or not _EVALUATE.value) for r in rows):
      print(f"{config}: already checked in {path}")
      continue
    rows = [r for r in rows if r["config"] != config]
    art = artifact_lib.load_artifact(os.path.join(SHIPPED, config))
    formed, labels, _ = soft_labels.training_set(art)
    out = interop.export_set(os.path.join(SHIPPED, config), os.path.join(CACHE, config), "pt")
    back = interop.import_set(out, "mtt", "fashion_mnist")
    diff = float(np.max(np.abs(back.images - formed)))
    row = dict(config=config, images=int(len(formed)), max_abs_pixel_difference=diff,
               arrays_match=bool(diff <= 1e-6 and np.array_equal(back.labels, labels)),
               reported_mean=reported["acc_mean"], reported_std=reported["acc_std"])
    if _EVALUATE.value:
      protocol = ev.get_protocol(reported["protocol"], precision=reported.get("precision"))
      res = ev.evaluate(back.images, back.labels, source, protocol=protocol,
                        repetitions=reported.get("repetitions") or len(reported["best"]),
                        seed=reported.get("seed", 0), desc=f"eval {config}")
      tolerance = max(res.best_std, reported["acc_std"]) + 0.5
      row.update(protocol=protocol.name, precision=protocol.precision,
                 measured_mean=res.best_mean, measured_std=res.best_std,
                 tolerance=tolerance,
                 match=bool(abs(res.best_mean - reported["acc_mean"]) <= tolerance))
    rows.append(dict(row, machine=_util.machine()))
    save()
    print(f"{config}: max |difference| {diff:.2e}, arrays "
          f"{'match' if row['arrays_match'] else 'DIFFER'}" + (
              f"; reported {reported['acc_mean']:.2f}, imported {row['measured_mean']:.2f} "
              f"-> {'match' if row['match'] else 'MISMATCH'}" if _EVALUATE.value else ""))
  print(f"wrote {save()}")


if __name__ == "__main__":
  app.run(main)
