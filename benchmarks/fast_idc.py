r"""Condensation that pays within an hour (issue 39): IDC's arms against inner iterations
and all-in minutes on Fashion-MNIST, beside Random, K-Center and DM.

  python -m benchmarks.fast_idc                              # everything; many hours, resumable
  python -m benchmarks.fast_idc --parts pool,curves          # the IPC 10 curves first
  python -m benchmarks.fast_idc --parts overhead             # clustering cost, ~5 minutes
  python -m benchmarks.fast_idc --parts ablations --ablations dreamplus   # one variant
  python -m benchmarks.fast_idc --smoke                      # every part in a few minutes

Parts, in the order they run:
* pool: the early-stage model pool (`tfcondense.methods.pool`: 5 ConvNet-3s, 2 epochs
  each on the real data with IDC's network update) is built once in --pool_dir and
  shared by every cell; its minutes are reported on their own line (`pool` in the JSON),
  never inside a cell's all-in minutes.
* curves: IDC (factor --factor) at IPC --ipc for every arm in --arms (`plain`:
  Algorithm 1 with 100-iteration inner loops; `pool`: Acc-DD's pool + model
  augmentation with --pool_inner-iteration inner loops; `representative`: DREAM's
  k-means real batches every 10 inner iterations; `pool+representative`), one
  condensation per arm stopped and evaluated at every inner-iteration count of
  --points (breadth first: every arm reaches a point before any goes on), same seeds,
  one run at a time.
* best: the best arm at IPC 10 (the highest accuracy at the last point under
  --protocol; or --best_arm) for IDC and IDC-I at IPC 1 and 50, evaluated at
  --best_points.
* ablations: item 3 of the issue, each variant one setting away from the --ablation_arm
  condensation of the curves (IPC --ipc), stopped and evaluated at --ablation_points
  (`VARIANTS`: DREAM+'s feature-mean term, the data learning rate x2 and x0.5, and for
  IDC-I, random against K-Center initialisation); rows carry `variant`.
* baselines: Random, K-Center (the DC-BENCH selection) and DM (plain, and DM+MF with
  pool embedders, --dm_iterations) at IPC 1, 10 and 50, evaluated the same way.
* overhead: seconds of one representative refresh (candidate subsets of 128 / 256 /
  512 images per class) against one inner iteration, at IPC 10, factor 2.

Evaluation: ConvNet-3 trained from scratch under --protocol (the reference protocol,
version 2 of issue 40) with --reps_between repetitions at intermediate points and
--reps_final at a run's last point, where --light_protocol is reported beside it.
Every evaluation repetition is one record in `runs`, written as soon as it ends; the
rows aggregate them: `method`, `arm`, `ipc`, `factor`, `inner_iterations`,
`condense_minutes` (all-in: every step's wall clock over all sessions, tracing and
clustering included; the pool excluded), `protocol`, `acc_mean`, `acc_std` (best test
accuracy), `machine`, and more. A rerun skips what is in
benchmarks/results/fast_idc.json; condensations resume from their checkpoints under
benchmarks/cache/fast_idc/. The plot benchmarks/results/fast_idc.png shows accuracy
against inner iterations and against all-in minutes. --smoke shrinks everything (100
images per class, 2-member pool, 2-step points, the 4-step `smoke` protocol) and writes
under benchmarks/cache/fast_idc_smoke/ only.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = "fast_idc.json"
#: Item 3 of the issue ("measure before adopting"): variant -> (method, factor (None:
#: --factor), config overrides, data learning-rate scale), each run with --ablation_arm.
#: `idc_i` is the reference that `idc_i_kcenter` differs from by its initialisation.
VARIANTS = {
    "dreamplus": ("idc", None, dict(feature_weight=1.0), 1.0),  # DREAM+'s weight
    "lr_x2": ("idc", None, {}, 2.0),
    "lr_x0.5": ("idc", None, {}, 0.5),
    "idc_i": ("idc_i", 1, {}, 1.0),
    "idc_i_kcenter": ("idc_i", 1, dict(init="kcenter"), 1.0),
}

_PARTS = flags.DEFINE_list("parts", ["pool", "curves", "best", "ablations", "baselines"],
                           "Parts to run, in order (pool, curves, best, ablations, baselines, "
                           "overhead).")
_ARMS = flags.DEFINE_list("arms", ["plain", "pool", "representative", "pool+representative"],
                          "IDC arms of the curves (tfcondense.methods.idc.ARMS).")
_POINTS = flags.DEFINE_list("points", ["0", "100", "200", "500", "1000", "2000"],
                            "Inner iterations at which the curves are evaluated.")
_IPC = flags.DEFINE_integer("ipc", 10, "IPC of the curves.")
_FACTOR = flags.DEFINE_integer("factor", 2, "IDC's multi-formation factor.")
_POOL_INNER = flags.DEFINE_integer("pool_inner", 20,
                                   "Inner iterations per outer iteration of the pool arms.")
_PLAIN_INNER = flags.DEFINE_integer("plain_inner", 100,
                                    "Inner iterations per outer iteration without a pool.")
_POOL_SIZE = flags.DEFINE_integer("pool_size", 5, "Networks in the model pool.")
_POOL_EPOCHS = flags.DEFINE_integer("pool_epochs", 2, "Epochs per pool network.")
_POOL_DIR = flags.DEFINE_string("pool_dir", None,
                                "Where pools live (default benchmarks/cache/pools).")
_BEST_ARM = flags.DEFINE_string("best_arm", None,
                                "Arm of the best part (default: the curves' best).")
_BEST_IPCS = flags.DEFINE_list("best_ipcs", ["1", "50"], "IPCs of the best part.")
_BEST_POINTS = flags.DEFINE_list("best_points", ["1000", "2000"],
                                 "Inner iterations evaluated in the best part.")
_ABLATIONS = flags.DEFINE_list("ablations", list(VARIANTS), "Variants of the ablations part.")
_ABLATION_ARM = flags.DEFINE_string("ablation_arm", "pool", "The arm every variant changes.")
_ABLATION_POINTS = flags.DEFINE_list("ablation_points", ["100"],
                                     "Inner iterations at which the variants are evaluated.")
_BASE_IPCS = flags.DEFINE_list("baseline_ipcs", ["1", "10", "50"], "IPCs of the baselines.")
_DM_ITERS = flags.DEFINE_integer("dm_iterations", 2000, "DM iterations per baseline cell.")
_PROTOCOL = flags.DEFINE_string("protocol", "paper",
                                "Reference evaluation protocol (tfcondense.evaluation).")
_LIGHT = flags.DEFINE_string("light_protocol", "light",
                             "Protocol reported beside it at final points ('' : none).")
_REPS_BETWEEN = flags.DEFINE_integer("reps_between", 2, "Repetitions at intermediate points.")
_REPS_FINAL = flags.DEFINE_integer("reps_final", 3, "Repetitions at final points.")
_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"],
                               "Precision of the matching networks and the pool.")
_EVAL_PRECISION = flags.DEFINE_enum("eval_precision", "mixed_bfloat16",
                                    ["float32", "mixed_bfloat16"], "Evaluation precision.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every condensation.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Shrink everything to a quick check of the script.")

PAPER = {("idc", 1): 81.0, ("idc", 10): 86.0, ("idc", 50): 86.2,
         ("idc_i", 1): 70.7, ("idc_i", 10): 85.3, ("idc_i", 50): 89.1}
#: Published speed-ups (REFERENCE.md section 5), for the summary.
PUBLISHED_SPEEDUPS = {"pool": "Acc-DD: 5-20x (CIFAR-10)", "representative": "DREAM: 8x (CIFAR-10)",
                      "pool+representative": "-"}


class Settings:
  """The flags, shrunk by --smoke."""

  def __init__(self):
    smoke = _SMOKE.value
    self.smoke = smoke
    self.points = sorted({int(p) for p in _POINTS.value}) if not smoke else [0, 2]
    self.ablation_points = (sorted({int(p) for p in _ABLATION_POINTS.value}) if not smoke
                            else [2])
    self.best_points = (sorted({int(p) for p in _BEST_POINTS.value}) if not smoke else [2])
    self.best_ipcs = [int(i) for i in _BEST_IPCS.value] if not smoke else [1]
    self.base_ipcs = [int(i) for i in _BASE_IPCS.value] if not smoke else [1]
    self.pool_inner = _POOL_INNER.value if not smoke else 1
    self.plain_inner = _PLAIN_INNER.value if not smoke else 2
    self.pool_size = _POOL_SIZE.value if not smoke else 2
    self.pool_epochs = _POOL_EPOCHS.value if not smoke else 1
    self.dm_iterations = _DM_ITERS.value if not smoke else 2
    self.protocol = _PROTOCOL.value if not smoke else "smoke"
    self.light = _LIGHT.value if not smoke else ""
    self.reps_between = _REPS_BETWEEN.value if not smoke else 1
    self.reps_final = _REPS_FINAL.value if not smoke else 1
    self.cache = os.path.join(HERE, "cache", "fast_idc_smoke" if smoke else "fast_idc")
    self.pool_dir = _POOL_DIR.value or os.path.join(HERE, "cache", "pools")
    if smoke:
      self.pool_dir = os.path.join(self.cache, "pools")
    self.out = (os.path.join(self.cache, "fast_idc_smoke.json") if smoke
                else os.path.join(_util.RESULTS, OUT))
    self.plot = os.path.splitext(self.out)[0] + ".png"
    self.source_options = dict(limit_per_class=100) if smoke else {}
    self.extra = dict(representative_candidates=32, real_per_class=16) if smoke else {}


class Results:
  """The JSON file: evaluation runs (one per repetition), condensation records, pool."""

  def __init__(self, path: str):
    self.path = path
    state = {}
    if os.path.exists(path):
      from tfcondense import fileio  # pylint: disable=g-import-not-at-top
      state = fileio.read_json(path)
    self.runs = state.get("runs", [])
    self.condensations = state.get("condensations", {})
    self.pool = state.get("pool")
    self.overhead = state.get("clustering_overhead")
    self.header = {}

  def records(self, cell: dict) -> list:
    key = _key(cell)
    return [r for r in self.runs if _key(r["cell"]) == key]

  def done(self, cell: dict, rep: int) -> bool:
    return any(r["rep"] == rep for r in self.records(cell))

  def stamp(self, cell: dict, digest: str) -> None:
    """Records `digest` (of the set `cell` evaluated) on its records made before
    records carried one."""
    for r in self.records(cell):
      r.setdefault("digest", digest)

  def twin(self, cell: dict, rep: int, digest: str, precision: str) -> Optional[dict]:
    """A record of repetition `rep` of the same set (formed images and labels) under
    the same protocol and precision, made for another cell: the arms' sets at 0 inner
    iterations are one set, evaluated once (each repetition is seeded by `rep`)."""
    for r in self.runs:
      if (r.get("digest") == digest and r["rep"] == rep and r["precision"] == precision
          and r["cell"]["protocol"] == cell["protocol"] and "copied_from" not in r):
        return r
    return None

  def save(self, settings) -> None:
    payload = dict(
        self.header, machine=_util.machine(), pool=self.pool,
        rows=aggregate(self.runs, self.condensations), speedups=speedups(self.runs,
                                                                          self.condensations),
        clustering_overhead=self.overhead, condensations=self.condensations, runs=self.runs,
        paper_table10=[dict(method=m, ipc=i, acc=a) for (m, i), a in PAPER.items()])
    _util.write_json_to(self.path, payload)
    plot(self, settings)


def _key(cell: dict) -> str:
  return json.dumps(cell, sort_keys=True)


def _run_name(method: str, arm: str, ipc: int, factor: int,
              variant: Optional[str] = None) -> str:
  name = f"{method}_{arm.replace('+', '_')}_ipc{ipc}_f{factor}"
  return f"{name}_{variant}" if variant else name


def aggregate(runs, condensations):
  """One row per evaluated cell (mean and std over its repetitions)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  groups = {}
  for r in runs:
    groups.setdefault(_key(r["cell"]), []).append(r)
  rows = []
  for group in groups.values():
    cell = group[0]["cell"]
    best = [g["best"] for g in group]
    cond = condensations.get(cell.get("condensation", ""), {})
    minutes = cond.get("minutes", {}).get(str(cell.get("inner_iterations")))
    rows.append(dict(
        method=cell["method"], arm=cell.get("arm"), variant=cell.get("variant"),
        ipc=cell["ipc"], factor=cell["factor"], inner_iterations=cell.get("inner_iterations"),
        inner_per_outer=cond.get("inner_per_outer"),
        condense_minutes=minutes if minutes is not None else group[0].get("minutes"),
        protocol=cell["protocol"], acc_mean=round(float(np.mean(best)), 2),
        acc_std=round(float(np.std(best)), 2), reps=len(best),
        last_mean=round(float(np.mean([g["last"] for g in group])), 2),
        formed_images=group[0]["num_images"], paper=PAPER.get((cell["method"], cell["ipc"])),
        machine=group[0]["machine"]))
  rows.sort(key=lambda r: (r["method"], str(r["arm"]), str(r["variant"]), r["ipc"],
                           r["protocol"],
                           r["inner_iterations"] or 0))
  return rows


def speedups(runs, condensations):
  """Per arm at the curves' IPC: the first evaluated inner iteration whose accuracy
  reaches plain IDC's at 1,000 inner iterations, and 1000 / it."""
  rows = [r for r in aggregate(runs, condensations) if r["method"] == "idc"
          and r["arm"] is not None and r["inner_iterations"] is not None
          and r["variant"] is None]
  out = []
  for ipc in sorted({r["ipc"] for r in rows}):
    for protocol in sorted({r["protocol"] for r in rows if r["ipc"] == ipc}):
      plain = [r for r in rows if r["arm"] == "plain" and r["ipc"] == ipc
               and r["protocol"] == protocol and r["inner_iterations"] == 1000]
      if not plain:
        continue
      target = plain[0]["acc_mean"]
      for arm in sorted({r["arm"] for r in rows if r["arm"] != "plain"}):
        curve = sorted((r for r in rows if r["arm"] == arm and r["ipc"] == ipc
                        and r["protocol"] == protocol), key=lambda r: r["inner_iterations"])
        hit = next((r for r in curve if r["acc_mean"] >= target), None)
        out.append(dict(arm=arm, ipc=ipc, protocol=protocol, plain_1000=target,
                        reaches_at=hit["inner_iterations"] if hit else None,
                        speedup=(round(1000 / hit["inner_iterations"], 2)
                                 if hit and hit["inner_iterations"] else None),
                        published=PUBLISHED_SPEEDUPS.get(arm)))
  return out


def plot(results, settings) -> None:
  """Accuracy against inner iterations and against all-in minutes, per arm."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from tfcondense import atomic  # pylint: disable=g-import-not-at-top
  rows = [r for r in aggregate(results.runs, results.condensations)
          if r["protocol"] == settings.protocol]
  curves = [r for r in rows if r["method"] == "idc" and r["ipc"] == _IPC.value
            and r["inner_iterations"] is not None and r["variant"] is None]
  if not curves:
    return
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for arm in sorted({r["arm"] for r in curves}):
    pts = sorted((r for r in curves if r["arm"] == arm), key=lambda r: r["inner_iterations"])
    for ax, x in zip(axes, ("inner_iterations", "condense_minutes")):
      ax.errorbar([p[x] or 0 for p in pts], [p["acc_mean"] for p in pts],
                  yerr=[p["acc_std"] for p in pts], marker="o", capsize=2, label=arm)
  for r in rows:
    if r["method"] in ("random", "kcenter") and r["ipc"] == _IPC.value:
      for ax in axes:
        ax.axhline(r["acc_mean"], ls="--", lw=1, color="gray" if r["method"] == "random"
                   else "black", label=r["method"])
  for r in rows:  # DM's iterations are not IDC's inner iterations: a level on the left,
    # a point at its all-in minutes on the right
    if r["method"] in ("dm", "dm_mf") and r["ipc"] == _IPC.value:
      label = f"{r['method']} {r['arm']} ({r['inner_iterations']} it.)"
      color = "tab:purple" if r["method"] == "dm" else "tab:brown"
      axes[0].axhline(r["acc_mean"], ls="-.", lw=1, color=color, label=label)
      axes[1].errorbar([r["condense_minutes"]], [r["acc_mean"]], yerr=[r["acc_std"]],
                       marker="s", capsize=2, color=color, label=label)
  paper = PAPER.get(("idc", _IPC.value))
  for ax, label in zip(axes, ("inner iterations", "all-in condensation minutes (pool apart)")):
    if paper:
      ax.axhline(paper, ls=":", color="red", lw=1, label="paper IDC")
    ax.set_xlabel(label)
    ax.set_ylabel(f"test accuracy % ({settings.protocol})")
    ax.grid(alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  axes[0].legend(unique.values(), unique.keys(), fontsize=8)
  fig.suptitle(f"Fashion-MNIST IPC {_IPC.value}, factor {_FACTOR.value}: IDC arms "
               f"and DM (pool {results.pool and results.pool.get('minutes')} min apart)")
  fig.tight_layout()
  atomic.save_figure(fig, settings.plot)


def evaluate_cell(results, settings, source, cell, images, labels, reps, minutes=None):
  """Evaluates `cell` for the repetitions not yet recorded (one record per repetition);
  `minutes`: the set's making time where no condensation record holds it."""
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  digest = _util.set_digest(images, labels)
  results.stamp(cell, digest)
  todo = [r for r in range(reps) if not results.done(cell, r)]
  if not todo:
    return
  overrides = dict(precision=_EVAL_PRECISION.value)
  protocol = ev.get_protocol(cell["protocol"], augmentation=ev.default_augmentation(source.name),
                             **overrides)
  machine = _util.machine()
  for rep in todo:
    twin = results.twin(cell, rep, digest, protocol.precision)
    if twin is not None:
      results.runs.append(dict(twin, cell=cell, copied_from=_key(twin["cell"]),
                               **({} if minutes is None else dict(minutes=minutes))))
      results.save(settings)
      print(f"{_key(cell)} rep {rep}: {twin['best']:.2f}, the same set as "
            f"{_key(twin['cell'])}", flush=True)
      continue
    res = ev.evaluate(images, labels, source, protocol=protocol, repetitions=1, seed=rep,
                      desc=f"{cell['method']} {cell.get('arm') or ''} ipc {cell['ipc']} "
                           f"@{cell.get('inner_iterations')} {cell['protocol']} rep {rep}")
    results.runs.append(dict(cell=cell, rep=rep, digest=digest, best=res.best[0],
                             last=res.last[0],
                             steps=res.steps, augmentation=res.augmentation_spec,
                             protocol_version=res.protocol_version,
                             num_images=res.num_images, precision=res.precision,
                             seconds=round(res.seconds, 1), machine=machine,
                             **({} if minutes is None else dict(minutes=minutes))))
    results.save(settings)
    print(f"{_key(cell)} rep {rep}: {res.best[0]:.2f} (last {res.last[0]:.2f}), "
          f"{res.seconds / 60:.1f} min", flush=True)


def _protocols(settings, final: bool):
  """(protocol, repetitions) at a point."""
  reps = settings.reps_final if final else settings.reps_between
  out = [(settings.protocol, reps)]
  if final and settings.light:
    out.append((settings.light, reps))
  return out


class Condensation:
  """One resumable condensation (method, arm, ipc) stopped at increasing points.

  The method object is built once per process (one trace), and `engine.run` with
  `max_steps` carries it from point to point; each point's stored images go to an
  artifact folder.
  """

  def __init__(self, settings, source, method: str, arm: str, ipc: int, factor: int,
               last_point: int, variant: Optional[str] = None, overrides=None,
               lr_scale: float = 1.0):
    import dataclasses  # pylint: disable=g-import-not-at-top
    from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
    self.settings = settings
    self.source = source
    self.method_name, self.arm, self.ipc, self.factor = method, arm, ipc, factor
    self.variant = variant
    self.name = _run_name(method, arm, ipc, factor, variant)
    self.workdir = os.path.join(settings.cache, self.name)
    uses_pool = arm in ("pool", "pool+representative")
    self.inner = settings.pool_inner if uses_pool else settings.plain_inner
    outer = max(1, math.ceil(last_point / self.inner))
    self.config = condense_lib.make_config(
        method, source.name, ipc, factor=factor, arm=arm, outer_iterations=outer,
        inner_iterations=self.inner, precision=_PRECISION.value, seed=_SEED.value,
        pool_dir=settings.pool_dir if uses_pool else None,
        model_pool=settings.pool_size if uses_pool else None,
        pool_epochs=settings.pool_epochs if uses_pool else None,
        **dict(settings.extra, **(overrides or {})))
    if lr_scale != 1.0:
      self.config = dataclasses.replace(self.config, lr_img=self.config.lr_img * lr_scale)
    self._method = None

  def method(self):
    if self._method is None:
      from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
      spec = condense_lib.SYNTHESIS.get(self.method_name)
      # K-Center initialisation reuses the baselines' cached embedding network.
      cache = self.settings.cache if self.settings.smoke else os.path.join(HERE, "cache")
      init_options = dict(cache_dir=cache) if self.config.init == "kcenter" else None
      self._method = spec.build(self.source, self.config, init_options)
    return self._method

  def advance_to(self, results, point: int):
    """Condenses up to `point` inner iterations; returns (formed images, labels)."""
    from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
    from tfcondense import engine, hardware  # pylint: disable=g-import-not-at-top
    m = self.method()
    record = dict(method=self.method_name, source=self.source.name,
                  config=self.config.as_dict(), data=self.source.fingerprint())
    res = engine.run(m, engine.RunOptions(
        workdir=self.workdir, max_steps=point, checkpoint_seconds=120,
        desc=f"{self.name}@{point}"), config=record)
    if res.steps < point:
      raise RuntimeError(f"{self.name} stopped at {res.steps} of {point} steps ({res.stopped})")
    images, labels = m.synthetic.numpy()
    meta = dict(source=self.source.name, method=self.method_name, ipc=self.ipc,
                factor=self.factor, formation=m.synthetic.formation.describe(),
                seed=_SEED.value, arm=self.arm, variant=self.variant,
                budget=dict(seconds=round(res.seconds, 1), minutes=round(res.seconds / 60, 2),
                            steps=res.steps, inner_iterations=point),
                storage=m.synthetic.storage(), config=self.config.as_dict(),
                class_names=list(self.source.class_names), machine=hardware.machine())
    artifact_lib.save_artifact(os.path.join(self.workdir, f"artifact_{point:05d}"), images,
                               labels, meta)
    rec = results.condensations.setdefault(self.name, dict(
        method=self.method_name, arm=self.arm, ipc=self.ipc, factor=self.factor,
        inner_per_outer=self.inner, minutes={},
        **(dict(variant=self.variant) if self.variant else {})))
    rec["minutes"][str(point)] = round(res.seconds / 60, 2)
    rec["config"] = self.config.as_dict()
    return m.synthetic.formed_numpy()

  def formed_at(self, point: int):
    """(formed images, labels) of the artifact saved at `point`, or None."""
    from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
    from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
    path = os.path.join(self.workdir, f"artifact_{point:05d}")
    if not os.path.exists(os.path.join(path, "meta.json")):
      return None
    return synthetic.formed_from_artifact(artifact_lib.load_artifact(path))

  def cell(self, point: int, protocol: str) -> dict:
    """The cell's record; `variant` only where one is set (so earlier keys hold)."""
    cell = dict(method=self.method_name, arm=self.arm, ipc=self.ipc, factor=self.factor,
                inner_iterations=point, protocol=protocol, condensation=self.name)
    if self.variant:
      cell["variant"] = self.variant
    return cell


def run_curves(results, settings, source, runs, points):
  """Breadth first: every run reaches a point (and is evaluated there) before the next."""
  last = points[-1]
  for point in points:
    for run in runs:
      cells = [(run.cell(point, p), r) for p, r in _protocols(settings, point == last)]
      if all(results.done(c, i) for c, r in cells for i in range(r)):
        if any("digest" not in rec for c, _ in cells for rec in results.records(c)):
          formed = run.formed_at(point)  # digests for records made before they had one
          if formed is not None:
            for c, _ in cells:
              results.stamp(c, _util.set_digest(*formed))
        continue
      x, y = run.advance_to(results, point)
      results.save(settings)
      for c, r in cells:
        evaluate_cell(results, settings, source, c, x, y, r)


def best_arm(results, settings) -> str:
  if _BEST_ARM.value:
    return _BEST_ARM.value
  rows = [r for r in aggregate(results.runs, results.condensations)
          if r["method"] == "idc" and r["ipc"] == _IPC.value and r["variant"] is None
          and r["protocol"] == settings.protocol and r["inner_iterations"] == settings.points[-1]]
  if not rows:
    raise app.UsageError("no finished curves to pick the best arm from; run --parts curves "
                         "first or pass --best_arm")
  return max(rows, key=lambda r: r["acc_mean"])["arm"]


def run_baselines(results, settings, source):
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  from tfcondense import engine  # pylint: disable=g-import-not-at-top
  for ipc in settings.base_ipcs:
    for name in ("random", "kcenter"):
      cells = [(dict(method=name, arm=None, ipc=ipc, factor=1, inner_iterations=None,
                     protocol=p), r) for p, r in _protocols(settings, True)]
      if all(results.done(c, i) for c, r in cells for i in range(r)):
        continue
      t0 = time.perf_counter()
      art = api.condense(name, source, ipc, seed=_SEED.value,
                         cache_dir=os.path.join(HERE, "cache")).artifact
      minutes = round((time.perf_counter() - t0) / 60, 2)
      for c, r in cells:
        evaluate_cell(results, settings, source, c, art.images, art.labels, r, minutes)
    for method, arm, factor in (("dm", "plain", 1), ("dm_mf", "pool", 2)):
      cells = [(dict(method=method, arm=arm, ipc=ipc, factor=factor,
                     inner_iterations=settings.dm_iterations, protocol=p), r)
               for p, r in _protocols(settings, True)]
      if all(results.done(c, i) for c, r in cells for i in range(r)):
        continue
      overrides = dict(iterations=settings.dm_iterations, precision=_PRECISION.value,
                       seed=_SEED.value)
      if arm == "pool":
        overrides.update(model_pool=settings.pool_size, pool_epochs=settings.pool_epochs,
                         pool_dir=settings.pool_dir)
      name = _run_name(method, arm, ipc, factor)
      res = api.condense(method, source, ipc, options=engine.RunOptions(
          workdir=os.path.join(settings.cache, name), checkpoint_seconds=120, desc=name),
          **overrides)
      from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
      x, y = synthetic.formed_from_artifact(res.artifact)
      minutes = round(res.run.seconds / 60, 2)
      for c, r in cells:
        evaluate_cell(results, settings, source, c, x, y, r, minutes)


def run_overhead(results, settings, source):
  """Seconds of one representative refresh against one inner iteration (IPC 10, f 2)."""
  import statistics  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense.methods import representative  # pylint: disable=g-import-not-at-top
  from tfcondense.models import embedding_model  # pylint: disable=g-import-not-at-top
  cfg = condense_lib.make_config("idc", source.name, 10, factor=2, precision=_PRECISION.value,
                                 seed=_SEED.value)
  m = condense_lib.SYNTHESIS.get("idc").build(source, cfg, None)
  steps = 2 if settings.smoke else 6
  times = []
  for s in range(steps):
    t0 = time.perf_counter()
    m.step(s)
    times.append(time.perf_counter() - t0)
  inner = statistics.median(times[1:])
  embed = embedding_model(m.model)
  out = dict(ipc=10, factor=2, precision=_PRECISION.value, inner_iteration_seconds=round(
      inner, 3), every=10, candidates={}, machine=_util.machine())
  for cand in ((32,) if settings.smoke else (128, 256, 512)):
    rep = representative.RepresentativeBatches(m.real, lambda x: embed(x, training=False),
                                               cfg.real_per_class, cand, _SEED.value)
    t = []
    for s in range(2 if settings.smoke else 4):
      t0 = time.perf_counter()
      rep.refresh(s)
      t.append(time.perf_counter() - t0)
    refresh = statistics.median(t[1:])   # the first traces the embedding
    out["candidates"][str(cand)] = dict(
        refresh_seconds=round(refresh, 3), first_refresh_seconds=round(t[0], 3),
        overhead_per_inner_iteration=round(refresh / 10 / inner, 4))
    print(f"candidates {cand}: refresh {refresh:.2f} s (first {t[0]:.2f} s), inner "
          f"iteration {inner:.2f} s: overhead {100 * refresh / 10 / inner:.1f} % at every 10",
          flush=True)
  results.overhead = out
  results.save(settings)


def main(argv):
  del argv
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense.methods import pool as pool_lib  # pylint: disable=g-import-not-at-top
  settings = Settings()
  source = data.load_source("fashion_mnist", **settings.source_options)
  results = Results(settings.out)
  results.header = dict(
      command="python -m benchmarks.fast_idc" + (" --smoke" if settings.smoke else ""),
      source=source.name, protocol=settings.protocol, light_protocol=settings.light,
      condensation_precision=_PRECISION.value, eval_precision=_EVAL_PRECISION.value,
      pool_inner=settings.pool_inner, plain_inner=settings.plain_inner,
      budget="curves to %d inner iterations; minutes are all-in (tracing, clustering), "
             "pool apart" % settings.points[-1])
  if "pool" in _PARTS.value or any(p in _PARTS.value for p in ("curves", "best", "ablations",
                                                                "baselines")):
    from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
    cfg = condense_lib.make_config("idc", source.name, _IPC.value, arm="pool",
                                   model_pool=settings.pool_size,
                                   pool_epochs=settings.pool_epochs, precision=_PRECISION.value,
                                   pool_dir=settings.pool_dir, **settings.extra)
    pool = pool_lib.ensure_pool(source, cfg.pool_config(), settings.pool_dir)
    results.pool = dict(minutes=pool.minutes, size=settings.pool_size,
                        epochs=settings.pool_epochs, directory=os.path.relpath(
                            pool.directory, os.path.dirname(HERE)),
                        settings=cfg.pool_config().as_dict(), machine=_util.machine())
    print(f"model pool: {pool.minutes} minutes of training ({pool.directory})", flush=True)
    results.save(settings)
  if "curves" in _PARTS.value:
    runs = [Condensation(settings, source, "idc", arm, _IPC.value, _FACTOR.value,
                         settings.points[-1]) for arm in _ARMS.value]
    run_curves(results, settings, source, runs, settings.points)
  if "best" in _PARTS.value:
    arm = best_arm(results, settings)
    print(f"best arm: {arm}", flush=True)
    for ipc in settings.best_ipcs:
      for method, factor in (("idc", _FACTOR.value), ("idc_i", 1)):
        run_curves(results, settings, source,
                   [Condensation(settings, source, method, arm, ipc, factor,
                                 settings.best_points[-1])], settings.best_points)
  if "ablations" in _PARTS.value:
    unknown = sorted(set(_ABLATIONS.value) - set(VARIANTS))
    if unknown:
      raise app.UsageError(f"unknown --ablations {unknown}; known: {sorted(VARIANTS)}")
    for variant in _ABLATIONS.value:
      method, factor, overrides, lr_scale = VARIANTS[variant]
      run_curves(results, settings, source, [Condensation(
          settings, source, method, _ABLATION_ARM.value, _IPC.value,
          _FACTOR.value if factor is None else factor, settings.ablation_points[-1],
          variant=variant, overrides=overrides, lr_scale=lr_scale)],
                 settings.ablation_points)
  if "baselines" in _PARTS.value:
    run_baselines(results, settings, source)
  if "overhead" in _PARTS.value:
    run_overhead(results, settings, source)
  results.save(settings)
  print("\n| method | arm | variant | ipc | factor | inner it. | all-in min | protocol | acc "
        "| reps |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in aggregate(results.runs, results.condensations):
    print(f"| {r['method']} | {r['arm']} | {r['variant'] or ''} | {r['ipc']} | {r['factor']} | "
          f"{r['inner_iterations']} | {r['condense_minutes']} | {r['protocol']} | "
          f"{r['acc_mean']:.2f} +- {r['acc_std']:.2f} | {r['reps']} |")
  if results.pool:
    print(f"model pool: {results.pool['minutes']} minutes, built once, not in the rows")
  for s in speedups(results.runs, results.condensations):
    print(f"speed-up of {s['arm']} at IPC {s['ipc']} ({s['protocol']}): reaches plain's "
          f"1,000-iteration {s['plain_1000']} at {s['reaches_at']} -> {s['speedup']}x "
          f"(published {s['published']})")
  print(f"wrote {settings.out}")


if __name__ == "__main__":
  app.run(main)
