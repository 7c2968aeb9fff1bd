r"""Condensed spoken commands: IDC, IDC-I, DM, Random, Herding at 10 and 20 per class.

  python -m benchmarks.speech                      # about 7.5 hours; resumable, cell by cell
  python -m benchmarks.speech --ipcs 10 --methods random,idc --minutes 10   # a part

The corpus is SYNTHETIC speech: `apps.make_speech`'s espeak-ng generator, 300 clips
per word of the 8 Mini Speech Commands words (seed 0), written once to
benchmarks/cache/speech_corpus/ (about 2 minutes), split by file index (every 8th clip
is test, as the reference) and turned into 64x64 log spectrograms
(tfcondense/speech/audio.py). Numbers on it are NOT comparable with the paper's Table 4
on the real corpus (IDC 82.9 / 86.6, IDC-I 73.3 / 83.0, DM 69.1 / 77.2 at 10 / 20 per
class, full data 93.4); they are printed beside only to relate the ordering.

Each synthesis cell condenses with `tfcondense.condense` for `--minutes` (default 15) of wall-clock
work (IDC: time-axis formation, factor 2, ConvNet-4, the reference's speech learning
rates; DM: ConvNet-4, identity formation; both methods' lr_img are the references' steps
on standardised spectrograms, i.e. lr_img * std^2 on our [0, 1] images, since
2026-11-23: rows made before that are kept under `superseded_rows`), checkpointed in
benchmarks/cache/speech/ so
an interrupted cell resumes with its budget summed over sessions. Every set, and the
full training data, is evaluated with ConvNet-4 and no augmentation (the reference's
speech evaluation) under the `cpu` protocol (1000 SGD steps; `--full_steps` for the
full data), 3 repetitions, mixed bfloat16. Rows go to benchmarks/results/speech.json;
finished rows are skipped on a re-run. `--init_of` (default idc@10, idc_i@10) also
evaluates those cells' sets as initialised, before any iteration (rows `idc_init`,
`idc_i_init`), so the table says whether the budgeted iterations gained or lost against
their own starting point.

Runtime measured on the 2-core CPU machine (2026-11-23, alone): one evaluation cell (3 x
1000 steps of ConvNet-4 on 64x64 inputs, batch 64) takes 21-25 minutes, so the 10 sets
and the two initial sets take about 4.8 hours, the full data (3 x 3000 steps) 71
minutes more, and the six synthesis cells 6 x 15 minutes: about 7.5 hours in all (here
spread over four sessions). In its 15 minutes DM made 187 iterations at 10 per class (4.8 s each;
the reference runs 20,000), IDC 94 inner iterations (of 200,000).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
_METHODS = flags.DEFINE_list("methods", ["random", "herding", "dm", "idc_i", "idc"],
                             "Methods: selection (random, herding) and synthesis.")
_IPCS = flags.DEFINE_list("ipcs", ["10", "20"], "Stored spectrograms per class.")
_MINUTES = flags.DEFINE_float("minutes", 15.0, "Condensation budget per synthesis cell.")
_CLIPS = flags.DEFINE_integer("clips_per_word", 300, "Synthetic clips per word.")
_CORPUS = flags.DEFINE_string("corpus", os.path.join(HERE, "cache", "speech_corpus"),
                              "Corpus folder (generated there if absent).")
_PROTOCOL = flags.DEFINE_string("protocol", "cpu", "Evaluation protocol.")
_PRECISION = flags.DEFINE_string("precision", "mixed_bfloat16",
                                 "Precision of the evaluation and of the condensation networks.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Evaluation repetitions.")
_FULL_STEPS = flags.DEFINE_integer("full_steps", 3000, "SGD steps on the full data (0: skip).")
_INIT_OF = flags.DEFINE_list(
    "init_of", ["idc@10", "idc_i@10"],
    "method@ipc cells whose set is also evaluated before any iteration (row '<method>_init'): "
    "whether the budgeted iterations gained or lost against their own initialisation.")
flags.register_validator(
    "init_of", lambda cells: all(re.fullmatch(r"[a-z_]+@[1-9][0-9]*", c) for c in cells),
    "--init_of takes method@ipc cells, e.g. idc@10,idc_i@20")
_OUTPUT = flags.DEFINE_string("output", "speech.json", "Result file in benchmarks/results/.")
_CACHE = flags.DEFINE_string("cache", os.path.join(HERE, "cache", "speech"),
                             "Workdirs of the synthesis cells and the herding embedding.")
PAPER = {("idc", 10): 82.9, ("idc", 20): 86.6, ("idc_i", 10): 73.3, ("idc_i", 20): 83.0,
         ("dm", 10): 69.1, ("dm", 20): 77.2, ("full", None): 93.4}
SELECTION = ("random", "herding", "kcenter")


def _corpus():
  """The synthetic corpus folder, generated once (complete corpora only)."""
  from tfcondense.speech import synth  # pylint: disable=g-import-not-at-top
  root = _CORPUS.value
  marker = os.path.join(root, "manifest.csv")
  if not os.path.exists(marker):
    summary = synth.generate_corpus(root, clips_per_word=_CLIPS.value, seed=0,
                                    overwrite=True)
    print(f"corpus: {summary.num_clips} synthetic clips in {summary.seconds:.0f} s "
          f"({summary.espeak_version})")
  return root


def main(argv):
  del argv
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data, engine, synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  from tfcondense.data import speech as speech_data  # pylint: disable=g-import-not-at-top

  init_cells = [(m, int(i)) for m, i in (c.split("@") for c in _INIT_OF.value)]
  for method, _ in init_cells:  # an unknown method fails now, not after hours of cells
    condense_lib.SYNTHESIS.get(method)
  source = data.load_source("speech_commands", path=_corpus())
  report = speech_data.last_load_report()
  print(f"source {source.name}: {len(source.train_labels)} train / "
        f"{len(source.test_labels)} test spectrograms {source.image_shape}, "
        f"{source.num_classes} words")
  protocol = ev.get_protocol(_PROTOCOL.value, precision=_PRECISION.value,
                             augmentation=ev.default_augmentation(source.name))
  model = ev.default_model(source.name)
  path = os.path.join(_util.RESULTS, _OUTPUT.value)
  rows = []
  if os.path.exists(path):
    with open(path) as f:
      rows = json.load(f)["rows"]

  def save():
    _util.write_json(_OUTPUT.value, dict(
        machine=_util.machine(), command="python -m benchmarks.speech",
        corpus=dict(kind="synthetic (espeak-ng, apps.make_speech)", seed=0,
                    clips_per_word=_CLIPS.value, train=int(len(source.train_labels)),
                    test=int(len(source.test_labels)),
                    skipped=len(report.skipped) if report else None),
        model=model, protocol=protocol.describe(), repetitions=_REPS.value, rows=rows,
        paper_table4_real_corpus=[dict(method=m, ipc=i, acc=a) for (m, i), a in PAPER.items()]))

  def done(method, ipc, budget=None):
    return any(r["method"] == method and r["ipc"] == ipc and r["protocol"] == protocol.name
               and (budget is None or r.get("budget_minutes") == budget) for r in rows)

  def record(method, ipc, images, labels, **extra):
    result = ev.evaluate(images, labels, source, model=model, protocol=extra.pop(
        "eval_protocol", protocol), repetitions=_REPS.value, seed=0,
                         desc=f"eval {method}@{ipc}")
    rows.append(dict(method=method, ipc=ipc, model=model, protocol=protocol.name,
                     augmentation=protocol.augmentation, precision=protocol.precision,
                     formed_images=int(len(images)), acc_mean=result.best_mean,
                     acc_std=result.best_std, last_mean=result.last_mean,
                     last_std=result.last_std, eval_seconds=round(result.seconds, 1),
                     paper_real_corpus=PAPER.get((method, ipc)), **extra))
    save()
    print(f"{method}@{ipc}: {result}")
    return result

  for ipc in map(int, _IPCS.value):
    for method in _METHODS.value:
      synthesis = method not in SELECTION
      if done(method, ipc, _MINUTES.value if synthesis else None):
        print(f"skip {method}@{ipc}: done")
        continue
      if not synthesis:
        t0 = time.time()
        art = api.condense(method, source, ipc, seed=0, cache_dir=_CACHE.value).artifact
        record(method, ipc, art.images, art.labels, factor=1, budget_minutes=None,
               select_seconds=round(time.time() - t0, 1))
        continue
      workdir = os.path.join(_CACHE.value, f"{method}_ipc{ipc}_{_MINUTES.value:g}min")
      res = _util.condense_for_minutes(method, source, ipc, workdir, _MINUTES.value,
                                       _PRECISION.value)
      fx, fy = synthetic.formed_from_artifact(res.artifact, res.artifact.weights)
      record(method, ipc, fx, fy, factor=res.artifact.factor, budget_minutes=_MINUTES.value,
             minutes_used=round(res.run.seconds / 60, 1), steps=res.run.steps,
             total_steps=res.run.total_steps, stopped=res.run.stopped,
             artifact=os.path.relpath(os.path.join(workdir, "artifact"), os.path.dirname(HERE)))
  for method, ipc in init_cells:
    if done(f"{method}_init", ipc, 0):
      print(f"skip {method}_init@{ipc}: done")
      continue
    # max_steps=0: the method's own seeded initialisation (the same set its cell starts from).
    res = api.condense(method, source, ipc, options=engine.RunOptions(
        max_steps=0, show_progress=False))
    fx, fy = synthetic.formed_from_artifact(res.artifact, res.artifact.weights)
    record(f"{method}_init", ipc, fx, fy, factor=res.artifact.factor, budget_minutes=0,
           steps=0, init_of=method)
  if _FULL_STEPS.value and not done("full", None):
    full = dataclasses.replace(protocol, steps=_FULL_STEPS.value, epochs=None)
    record("full", None, source.train_images, source.train_labels, factor=1,
           budget_minutes=None, eval_protocol=full, eval_steps=_FULL_STEPS.value)
  save()
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
