r"""What soft labels add on Fashion-MNIST, scored the DD-Ranking way (issue 41).

  python -m benchmarks.soft_labels                 # the whole grid, resumable (hours)
  python -m benchmarks.soft_labels --ipcs 10 --methods random,idc   # a slice
  python -m benchmarks.soft_labels --smoke         # one cell, tiny settings (minutes)

For every shipped set of datasets_builders/condensed_fashion_mnist/artifacts/ (Random,
K-Center, DM, IDC, IDC-I at IPC 1 / 10 / 50) ConvNet-3 is trained on the set's formed images
* with its hard labels and with a teacher's soft labels (`tfcondense.relabel`: ConvNet-3
  trained --teacher_epochs epochs on the 60,000 real images, logits at temperature
  --temperature, Hinton's KL loss; Qin et al., NeurIPS 2024), so Random with soft labels
  is DD-Ranking's random-plus-same-labels control;
* with the protocol's augmentation (DSA + CutMix) and without any (no DSA, no CutMix);
plus the full training set once with hard labels. From those accuracies (as fractions)
`tfcondense.bench.ddranking` gives per set and label kind: HLR (full - set, hard labels),
IOR (set - Random, same labels and augmentation), LRS (from HLR and that IOR) and ARS
(IOR with and without augmentation).

Writes benchmarks/results/soft_labels.json after every cell (`rows`, one per cell, and
`scores`); a rerun skips the cells already there with the same settings and the same
set (each row carries the set's SHA-256, `set_digest`; the row of a shipped set remade
since moves to `other_settings_rows`, marked stale, and is made again), so it can be
stopped at any time. Cost on the 2-core AMD EPYC at about 0.1 s a step (mixed
bfloat16, 3 repetitions): the teacher (2 epochs, 1,876 steps) about 4 minutes once
(cached in benchmarks/cache/teachers/); a cell follows the `cpu` protocol's length
(1,000 steps up to 100 images, 2,800 for IDC's 400 formed images at IPC 10, 3,200 for
500 or more), about 5 minutes at 1,000 steps and 16 at 3,200. A set's hard-label cell
with augmentation is its shipped evaluation.json result where every setting matches
(`_shipped_result`), so 45 of the 60 set cells train; with the full-data cell about
7 hours, IPC 50 more than half of it. `--smoke` writes soft_labels_smoke.json
instead (1 cell: Random IPC 1 with soft labels, 4 steps, a one-epoch, 8-step teacher
on 50 images per class; about 7 minutes on the busy 2 cores). `--annotate_shipped`
then writes each shipped set's hard-label scores into its evaluation.json, where the
TFDS builders read them (`evaluation.ddranking`). At the end, and alone with
`--table_only`, it prints the accuracies and scores as the Markdown tables of
BENCHMARKS.md.
"""
from __future__ import annotations

import dataclasses
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHIPPED = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist", "artifacts")
TEACHERS = os.path.join(HERE, "cache", "teachers")
OUT, SMOKE_OUT = "soft_labels.json", "soft_labels_smoke.json"
LABELS = ("hard", "soft")
AUGS = ("dsa", "none")

_IPCS = flags.DEFINE_list("ipcs", ["1", "10", "50"], "Images per class.")
_METHODS = flags.DEFINE_list("methods", ["random", "kcenter", "dm", "idc", "idc_i"],
                             "Shipped sets (random is also the control).")
_PROTOCOL = flags.DEFINE_string("protocol", "cpu", "Evaluation protocol.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Models per cell.")
_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"],
                               "Evaluation and teacher precision.")
_TEACHER_EPOCHS = flags.DEFINE_integer("teacher_epochs", 2,
                                       "Teacher epochs on the real data (early-stopped).")
_TEMPERATURE = flags.DEFINE_float("temperature", 4.0, "Soft-label temperature.")
_SMOKE = flags.DEFINE_bool("smoke", False, "One cell with tiny settings, to "
                           f"benchmarks/results/{SMOKE_OUT}.")
_TABLE_ONLY = flags.DEFINE_bool(
    "table_only", False, "Print the tables of the results file and exit (runs nothing).")
_ANNOTATE = flags.DEFINE_bool(
    "annotate_shipped", False,
    "After the grid, add each shipped set's hard-label scores as `ddranking` to its "
    "evaluation.json (the TFDS builders report them in info.metadata).")


@dataclasses.dataclass(frozen=True)
class Settings:
  """What a cell's numbers depend on besides the cell (a row is reused only if equal)."""

  protocol: str
  steps: int | None
  repetitions: int
  precision: str
  teacher: dict
  limit_per_class: int | None = None

  def as_dict(self):
    return dataclasses.asdict(self)


def _settings():
  from tfcondense import relabel  # pylint: disable=g-import-not-at-top
  if _SMOKE.value:
    teacher = relabel.TeacherConfig(epochs=1, max_steps=20, temperature=_TEMPERATURE.value,
                                    precision=_PRECISION.value)
    return Settings("smoke", 4, 1, _PRECISION.value, dataclasses.asdict(teacher), 50)
  teacher = relabel.TeacherConfig(epochs=_TEACHER_EPOCHS.value, temperature=_TEMPERATURE.value,
                                  precision=_PRECISION.value)
  return Settings(_PROTOCOL.value, None, _REPS.value, _PRECISION.value,
                  dataclasses.asdict(teacher))


def _cells():
  """(method, ipc, labels, aug) of the grid, cheap sets first; the full-data cell last."""
  if _SMOKE.value:
    return [("random", 1, "soft", "dsa")]
  ipcs = [int(i) for i in _IPCS.value]
  methods = _METHODS.value if "random" in _METHODS.value else ["random", *_METHODS.value]
  cells = [(m, ipc, lab, aug) for ipc in ipcs for lab in LABELS for m in methods
           for aug in AUGS]
  return cells + [("full", None, "hard", "dsa")]


def _key(cell) -> str:
  m, ipc, lab, aug = cell
  return "full" if m == "full" else f"{m}_ipc{ipc}_{lab}_{aug}"


def _protocol(settings: Settings, aug: str):
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  overrides = dict(precision=settings.precision)
  if settings.steps is not None:
    overrides.update(steps=settings.steps, epochs=None)
  if aug == "none":
    overrides.update(augmentation="none", cutmix_prob=0.0)
  return ev.get_protocol(settings.protocol, **overrides)


def _shipped_result(config: str, protocol, settings: Settings, num_images: int):
  """The shipped set's own evaluation.json result under exactly this cell's settings
  (hard labels, the protocol's augmentation), or None.

  `evaluation.evaluate` is seeded (seed 0, repetition r) and deterministic, so the
  shipped result of the same protocol, version, precision, model, augmentation, set size
  and repetitions IS this cell's result: random_ipc10's cell, run before this reuse,
  gave the shipped 78.23 / 78.49 / 78.67 to the last digit. It saves a quarter of the
  grid (about 2 of its 8 hours).
  """
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  if settings.steps is not None or settings.limit_per_class:
    return None
  path = os.path.join(SHIPPED, config, "evaluation.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    shipped = json.load(f).get("by_protocol", {}).get(settings.protocol)
  if not shipped:
    return None
  want = dict(protocol=settings.protocol, precision=settings.precision,
              protocol_version=ev.PROTOCOL_VERSION, repetitions=settings.repetitions, seed=0,
              source="fashion_mnist", num_images=num_images,
              model=ev.default_model("fashion_mnist"),
              augmentation_spec=ev.recipe(protocol, "fashion_mnist"))
  if any(shipped.get(k) != v for k, v in want.items()):
    return None
  keep = ("model", "protocol", "augmentation", "precision", "num_images", "steps",
          "augmentation_spec", "protocol_version", "acc_mean", "acc_std", "last_mean",
          "last_std", "best", "last")
  return dict({k: shipped[k] for k in keep}, seconds=None,
              copied_from=os.path.relpath(path, ROOT))


def _scores(rows):
  """DD-Ranking's scores per (method, ipc, labels) from the finished rows."""
  from tfcondense.bench import ddranking  # pylint: disable=g-import-not-at-top
  acc = {r["key"]: r["acc_mean"] / 100.0 for r in rows}
  out = []
  for r in rows:
    if r["method"] == "full" or r["aug"] != "dsa":
      continue
    m, ipc, lab = r["method"], r["ipc"], r["labels"]
    get = lambda key: acc.get(key)  # noqa: E731
    scores = ddranking.scores(ddranking.Accuracies(
        full_hard=get("full"), syn_hard=get(f"{m}_ipc{ipc}_hard_dsa"),
        syn=get(f"{m}_ipc{ipc}_{lab}_dsa"), rnd=get(f"random_ipc{ipc}_{lab}_dsa"),
        syn_noaug=get(f"{m}_ipc{ipc}_{lab}_none"),
        rnd_noaug=get(f"random_ipc{ipc}_{lab}_none")))
    out.append(dict(method=m, ipc=ipc, labels=lab, **scores))
  return out


def finished(rows, others, key: str, digest) -> bool:
  """Whether `key`'s row in `rows` is still valid for the set of SHA-256 `digest`.

  A row made before rows carried `set_digest` is stamped with `digest` (the shipped sets
  did not change between those runs and this check). A row of another set (a shipped
  set remade since, e.g. by issue 39's fast recipe) moves to `others`, marked stale,
  and the cell is made again.
  """
  for row in rows:
    if row["key"] != key:
      continue
    if digest is None or row.setdefault("set_digest", digest) == digest:
      return True
    rows.remove(row)
    others.append(dict(row, stale="the shipped set changed since this row was made"))
    return False
  return False


def _fmt(row) -> str:
  return "" if row is None else f"{row['acc_mean']:.2f} +- {row['acc_std']:.2f}"


def _signed(x) -> str:
  return "" if x is None else f"{100 * x:+.2f}"


def table(rows, scores) -> str:
  """The results as two Markdown tables: accuracies (%), then DD-Ranking's scores.

  HLR and IOR are printed in accuracy points (the fractions times 100), LRS and ARS as
  DD-Ranking's [0, 1] scores times 100.
  """
  by_key = {r["key"]: r for r in rows}
  lines = ["| IPC | set | hard, DSA+CutMix | hard, none | soft, DSA+CutMix | soft, none |",
           "|---|---|---|---|---|---|"]
  cells = sorted({(r["ipc"], r["method"]) for r in rows if r["method"] != "full"},
                 key=lambda c: (c[0], _METHODS.default.index(c[1])
                                if c[1] in _METHODS.default else 99, c[1]))
  for ipc, m in cells:
    accs = [_fmt(by_key.get(f"{m}_ipc{ipc}_{lab}_{aug}")) for lab in LABELS for aug in AUGS]
    lines.append(f"| {ipc} | {m} | " + " | ".join(accs) + " |")
  if "full" in by_key:
    lines.append(f"| all | full data (60,000) | {_fmt(by_key['full'])} | | | |")
  lines += ["", "| IPC | set | labels | HLR (points) | IOR (points) | LRS (x100) | "
            "ARS (x100) |", "|---|---|---|---|---|---|---|"]
  for s in sorted(scores, key=lambda s: (s["ipc"], LABELS.index(s["labels"]),
                                         _METHODS.default.index(s["method"])
                                         if s["method"] in _METHODS.default else 99)):
    pct = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines.append(f"| {s['ipc']} | {s['method']} | {s['labels']} | {_signed(s['hlr'])} | "
                 f"{_signed(s['ior'])} | {pct(s['lrs'])} | {pct(s['ars'])} |")
  return "\n".join(lines)


def main(argv):
  del argv
  if _TABLE_ONLY.value:
    with open(os.path.join(_util.RESULTS, SMOKE_OUT if _SMOKE.value else OUT)) as f:
      results = json.load(f)
    print(table(results["rows"], results["scores"]))
    return
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import relabel  # pylint: disable=g-import-not-at-top
  from tfcondense import soft_labels  # pylint: disable=g-import-not-at-top

  settings = _settings()
  name = SMOKE_OUT if _SMOKE.value else OUT
  path = os.path.join(_util.RESULTS, name)
  rows, others = [], []  # rows of these settings; rows of other settings are kept aside
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    for r in old.get("rows", []) + old.get("other_settings_rows", []):
      (rows if r["settings"] == settings.as_dict() else others).append(r)
  source = data.load_source("fashion_mnist", **(
      {"limit_per_class": settings.limit_per_class} if settings.limit_per_class else {}))
  teacher = None

  def save():
    command = "python -m benchmarks.soft_labels" + (" --smoke" if _SMOKE.value else "")
    return _util.write_json(name, dict(
        machine=_util.machine(), command=command, settings=settings.as_dict(),
        reference="DD-Ranking (HLR / IOR / LRS / ARS, REFERENCE.md section 6); teacher "
                  "relabelling after Qin et al., NeurIPS 2024",
        rows=rows, scores=_scores(rows), other_settings_rows=others))

  sets = {}

  def shipped_set(method, ipc):
    """(formed images, hard labels, digest) of a shipped set, loaded once."""
    if (method, ipc) not in sets:
      art = artifact_lib.load_artifact(os.path.join(SHIPPED, f"{method}_ipc{ipc}"))
      x, y, _ = soft_labels.training_set(art)
      sets[(method, ipc)] = (x, y, _util.set_digest(x, y))
    return sets[(method, ipc)]

  for cell in _cells():
    key = _key(cell)
    method, ipc, lab, aug = cell
    digest = None if method == "full" else shipped_set(method, ipc)[2]
    if finished(rows, others, key, digest):
      print(f"{key}: done in {path}")
      continue
    if method == "full":
      images, labels, soft = source.train_images, source.train_labels, None
    else:
      images, labels, _ = shipped_set(method, ipc)
      soft = None
      if lab == "soft":
        if teacher is None:
          teacher = relabel.train_teacher(source, relabel.TeacherConfig(**settings.teacher),
                                          cache_dir=TEACHERS)
          print(f"teacher: {teacher.info['test_accuracy']:.2f}% after "
                f"{teacher.info['steps']} steps")
        soft = relabel.relabel_set(images, teacher)
    protocol = _protocol(settings, aug)
    copied = (_shipped_result(f"{method}_ipc{ipc}", protocol, settings, len(images))
              if method != "full" and lab == "hard" and aug == "dsa" else None)
    if copied is None:
      res = ev.evaluate(images, labels, source, protocol=protocol,
                        repetitions=settings.repetitions, seed=0, soft_labels=soft, desc=key)
      result, line = res.as_dict(), str(res)
    else:
      result = copied
      line = (f"{copied['acc_mean']:.2f} +- {copied['acc_std']:.2f}, the shipped "
              f"evaluation ({copied['copied_from']})")
    rows.append(dict(key=key, method=method, ipc=ipc, labels=lab, aug=aug,
                     settings=settings.as_dict(), machine=_util.machine(),
                     **({} if digest is None else dict(set_digest=digest)),
                     teacher_accuracy=None if soft is None else
                     teacher.info["test_accuracy"], **result))
    save()
    print(f"{key}: {line}")
  print(f"wrote {save()}")
  print(table(rows, _scores(rows)))
  if _ANNOTATE.value and not _SMOKE.value:
    _annotate_shipped(_scores(rows), settings)


def _annotate_shipped(scores, settings: Settings) -> None:
  """Writes the hard-label scores into the shipped sets' evaluation.json files."""
  from tfcondense import atomic  # pylint: disable=g-import-not-at-top
  for s in scores:
    if s["labels"] != "hard" or s["lrs"] is None:
      continue
    path = os.path.join(SHIPPED, f"{s['method']}_ipc{s['ipc']}", "evaluation.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      evaluation = json.load(f)
    evaluation["ddranking"] = dict(
        {k: s[k] for k in ("hlr", "ior", "lrs", "ars", "w", "g")}, labels="hard",
        protocol=settings.protocol, repetitions=settings.repetitions,
        from_benchmark="benchmarks/results/soft_labels.json")
    atomic.write_json(path, evaluation)
    print(f"{path}: ddranking {evaluation['ddranking']}")


if __name__ == "__main__":
  app.run(main)
