r"""Gathers the prebuilt Fashion-MNIST artifacts that ship inside `datasets_builders`.

  python -m benchmarks.prebuilt                 # seconds; run after the benchmarks below
  python -m benchmarks.prebuilt --check         # list what is there and what is missing
  python -m benchmarks.prebuilt --evaluate cpu,light   # re-evaluate the shipped sets (hours)

Copies, for each config of the prebuilt grid (Random, K-Center, DM, IDC-I, IDC at IPC 1 /
10 / 50), the artifact one of our benchmark runs produced, with its evaluation.json
(the accuracy the TFDS metadata reports and `benchmarks/tfds_roundtrip.py` re-checks),
into datasets_builders/condensed_fashion_mnist/artifacts/<method>_ipc<ipc>/:

* random, kcenter: selected again here with the seed and embedding cache of
  `benchmarks/baselines.py` (both are deterministic given them), the evaluation copied
  from that benchmark's row in benchmarks/results/baselines_fashion_mnist.json;
* idc, idc_i: benchmarks/artifacts/fashion_mnist_<method>_ipc<ipc>/ from
  `benchmarks/idc_fashion.py` (evaluation.json beside it, or its row in
  idc_fashion_mnist.json);
* dm: benchmarks/artifacts/methods_fashion/dm_ipc<ipc>_<minutes>min/ from
  `benchmarks/methods_fashion.py` (the longest budget run).

Every copy is atomic (a temporary directory renamed into place); a config whose
benchmark has not run yet is reported as missing and left out.

`--evaluate P1,P2` re-evaluates the shipped sets in place under the named protocols
(current protocol version, 3 repetitions, mixed bfloat16): DM, IDC-I and IDC through
`tfcondense.experiment.compare` into benchmarks/results/prebuilt_fashion_mnist.json
(finished cells are skipped, so it resumes), Random and K-Center from their rows in
baselines_fashion_mnist.json (the same deterministic selection; run
`benchmarks.baselines --protocol P` first). Each set's evaluation.json then holds the
first protocol's result, with every protocol's under `by_protocol`.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402
from tfcondense import atomic  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PREBUILT = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
_METHODS = flags.DEFINE_list("methods", ["random", "kcenter", "dm", "idc_i", "idc"],
                             "Methods of the prebuilt grid.")
_IPCS = flags.DEFINE_list("ipcs", ["1", "10", "50"], "Images per class.")
_CHECK = flags.DEFINE_bool("check", False, "Only report what is present and missing.")
_EVALUATE = flags.DEFINE_list(
    "evaluate", [], "Re-evaluate the shipped sets under these protocols (the first is the "
    "one evaluation.json reports) instead of copying benchmark outputs.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Evaluation repetitions (with --evaluate).")
_FORCE = flags.DEFINE_bool("force", False,
                           "Re-select Random / K-Center sets already shipped (by default they "
                           "are kept: re-selecting gives the same images but records the "
                           "cached embedding's seconds as the selection budget).")


def _rows(name):
  path = os.path.join(_util.RESULTS, name)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return json.load(f)["rows"]


def _copy_atomic(src_dir, dst_dir, evaluation):
  """Copies an artifact directory and writes its evaluation.json, all or nothing."""
  with atomic.replacing_dir(dst_dir) as tmp:
    for name in ("images.npy", "labels.npy", "meta.json", "formation.npz"):
      if os.path.exists(os.path.join(src_dir, name)):
        shutil.copy2(os.path.join(src_dir, name), os.path.join(tmp, name))
    atomic.write_json(os.path.join(tmp, "evaluation.json"), evaluation)


def _evaluation_from_row(row, source_file):
  """evaluation.json fields (tfcondense.evaluation.Result.as_dict()) from a benchmark row."""
  keys = ("acc_mean", "acc_std", "last_mean", "last_std", "best", "last", "protocol",
          "precision", "model", "augmentation", "augmentation_spec", "protocol_version",
          "num_images", "steps", "repetitions")
  out = {k: row[k] for k in keys if k in row}
  out.setdefault("model", "convnet3")
  out.setdefault("repetitions", len(row.get("best", [])) or None)
  out.update(seed=0, source="fashion_mnist", from_benchmark=source_file)
  return out


def _selection(method, ipc, source):
  """(artifact dir, evaluation) for a selection baseline, re-selected as baselines.py did."""
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  row = next((r for r in _rows("baselines_fashion_mnist.json")
              if r["method"] == method and r["ipc"] == ipc and r["protocol"] == "cpu"), None)
  if row is None:
    return None, "no row in baselines_fashion_mnist.json (run benchmarks.baselines)"
  if source is None:
    return "(selected on demand)", None
  art = api.condense(method, source, ipc, seed=0, cache_dir=os.path.join(HERE, "cache"),
                     show_progress=False).artifact
  tmp = tempfile.mkdtemp(prefix="prebuilt-")
  artifact_lib.save_artifact(os.path.join(tmp, "a"), art.images, art.labels, art.meta)
  return os.path.join(tmp, "a"), _evaluation_from_row(
      row, "benchmarks/results/baselines_fashion_mnist.json")


def _synthesis(method, ipc):
  """(artifact dir, evaluation) for a synthesis method from its benchmark's outputs."""
  if method in ("idc", "idc_i"):
    art_dir = os.path.join(HERE, "artifacts", f"fashion_mnist_{method}_ipc{ipc}")
    rows = [r for r in _rows("idc_fashion_mnist.json")
            if r["method"] == method and r["ipc"] == ipc and r["protocol"] == "cpu"]
    bench = "benchmarks/results/idc_fashion_mnist.json"
  else:
    dirs = sorted(glob.glob(os.path.join(HERE, "artifacts", "methods_fashion",
                                         f"{method}_ipc{ipc}_*min")),
                  key=lambda d: float(d.split("_")[-1].split("min")[0]))
    art_dir = dirs[-1] if dirs else os.path.join(
        HERE, "artifacts", "methods_fashion", f"{method}_ipc{ipc}_<minutes>min")
    rows = [r for r in _rows("methods_fashion_mnist.json")
            if r["method"] == method and r["ipc"] == ipc]
    bench = "benchmarks/results/methods_fashion_mnist.json"
  if not os.path.isfile(os.path.join(art_dir, "meta.json")):
    return None, f"no artifact yet ({os.path.relpath(art_dir, ROOT)})"
  ev_path = os.path.join(art_dir, "evaluation.json")
  if os.path.exists(ev_path):
    with open(ev_path) as f:
      evaluation = dict(json.load(f), from_benchmark=bench)
  elif rows:
    evaluation = _evaluation_from_row(rows[-1], bench)
  else:
    return None, f"artifact without an evaluation (no row in {bench})"
  return art_dir, evaluation


def _evaluate_shipped(protocol_names):
  """Re-evaluates every shipped config under `protocol_names` (see the module doc)."""
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top
  source = data.load_source("fashion_mnist")
  results = os.path.join(_util.RESULTS, "prebuilt_fashion_mnist.json")
  header = dict(machine=_util.machine(), command="python -m benchmarks.prebuilt --evaluate "
                + ",".join(protocol_names))
  by_config, missing = {}, []
  for name in protocol_names:
    protocol = ev.get_protocol(name, precision="mixed_bfloat16")
    experiment.supersede_old_rows(results, [name])
    for method in _METHODS.value:
      for ipc in map(int, _IPCS.value):
        config = f"{method}_ipc{ipc}"
        if not os.path.isfile(os.path.join(PREBUILT, config, "meta.json")):
          missing.append((config, "not shipped"))
          continue
        if method in ("random", "kcenter", "herding"):
          row = next((r for r in _rows("baselines_fashion_mnist.json")
                      if r["method"] == method and r["ipc"] == ipc
                      and experiment.is_current(r, protocol, source.name)), None)
          if row is None:
            missing.append((f"{config} [{name}]",
                            f"run `python -m benchmarks.baselines --protocol {name}` first"))
            continue
          bench = "benchmarks/results/baselines_fashion_mnist.json"
        else:
          rows = experiment.compare(
              source, [experiment.Cell(method, ipc, artifact_dir=os.path.join(
                  PREBUILT, config), name=config)],
              protocol=protocol, repetitions=_REPS.value, results_path=results,
              header=header, show_progress=False)
          row = next(r for r in rows if r["key"] == config
                     and experiment.is_current(r, protocol, source.name))
          bench = "benchmarks/results/prebuilt_fashion_mnist.json"
        by_config.setdefault(config, {})[name] = _evaluation_from_row(row, bench)
  for config, results_by in by_config.items():
    first = next((results_by[n] for n in protocol_names if n in results_by), None)
    path = os.path.join(PREBUILT, config, "evaluation.json")
    with open(path) as f:
      old = json.load(f)
    main = dict(first) if protocol_names[0] in results_by else dict(old)
    main["by_protocol"] = dict(old.get("by_protocol", {}), **results_by)
    atomic.write_json(path, main)
    print(f"{config}: " + ", ".join(f"{n} {r['acc_mean']:.2f} +- {r['acc_std']:.2f}"
                                    for n, r in main["by_protocol"].items()))
  for config, why in missing:
    print(f"missing: {config}: {why}")


def main(argv):
  del argv
  if _EVALUATE.value:
    _evaluate_shipped(_EVALUATE.value)
    return
  source = None
  if not _CHECK.value:
    from tfcondense import data  # pylint: disable=g-import-not-at-top
    source = data.load_source("fashion_mnist")
  done, kept, missing = [], [], []
  for method in _METHODS.value:
    for ipc in map(int, _IPCS.value):
      config = f"{method}_ipc{ipc}"
      shipped = all(os.path.exists(os.path.join(PREBUILT, config, n))
                    for n in ("meta.json", "evaluation.json"))
      if method in ("random", "kcenter", "herding") and shipped and not _FORCE.value:
        kept.append(config)
        continue
      if method in ("random", "kcenter", "herding"):
        src, evaluation = _selection(method, ipc, source)
      else:
        src, evaluation = _synthesis(method, ipc)
      if src is None:
        missing.append((config, evaluation))
        continue
      if not _CHECK.value:
        _copy_atomic(src, os.path.join(PREBUILT, config), evaluation)
        if method in ("random", "kcenter", "herding"):  # a temporary re-selection
          shutil.rmtree(os.path.dirname(src), ignore_errors=True)
      done.append(config)
  for config in done:
    print(f"{'present' if _CHECK.value else 'copied'}: {config}")
  for config in kept:
    print(f"kept: {config} (already shipped; --force selects it again)")
  for config, why in missing:
    print(f"missing: {config}: {why}")


if __name__ == "__main__":
  app.run(main)
