"""The DC-BENCH evaluation suites (Cui et al., "DC-BENCH: Dataset Condensation
Benchmark", NeurIPS 2022), one function per suite behind the `SUITES` registry.

Every suite takes a `BenchContext` (source, budget, cell store) and writes one cell per
result; a cell already stored is not computed again, so an interrupted suite is resumed
by running it again. The suites, fixed where the original is broken or missing:

* ``augmentation`` (DC-BENCH Table 1): each set trained under none / imagenet / dsa /
  autoaugment / randaugment, drawn per sample (the reference draws one transform per
  batch); the report gives no-augmentation, average and best.
* ``compression`` (the IPC sweep): accuracy against IPC for selection and synthesis
  methods, plus the whole training set; where does synthesis stop beating selection?
* ``transfer`` (Table 2): a set condensed with ConvNet-3 trained on other networks.
* ``nas`` (Sec. 4.4): architectures sampled from the NAS-Bench-201 cell space (Dong &
  Yang, ICLR 2020; discrete cells, reduced network) trained on each condensed set and
  on the full data (or read from a NAS-Bench-201 file); Spearman, Kendall, top-k.
* ``init`` (Sec. 4.5): synthesis from random / K-Center / noise initialisation,
  accuracy against iterations.
* ``cost`` (Table 8): seconds and memory per iteration.

Derived numbers (averages, correlations, crossovers) are computed from the cells by
`tfcondense.bench.report`, never stored, so a report always matches its cells.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

from tfcondense import progress as progress_lib
from tfcondense.bench import cost as cost_lib
from tfcondense.bench import init_study
from tfcondense.bench import nas as nas_lib
from tfcondense.bench.context import FULL, BenchContext, CondensedSet
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

Suite = Callable[[BenchContext], List[Dict[str, Any]]]

SUITES: Registry = Registry("bench suite",
                            hint="Suites are registered in tfcondense/bench/suites.py.")
#: `--suite all` runs these, in this order.
ORDER = ("augmentation", "compression", "transfer", "nas", "init", "cost")


def register_suite(name: str) -> Callable[[Suite], Suite]:
  return SUITES.register(name)


def expand(names: Sequence[str]) -> List[str]:
  """Suite names with "all" expanded (order kept, duplicates dropped)."""
  out: List[str] = []
  for name in names:
    for n in (ORDER if str(name).lower() == "all" else (str(name).lower(),)):
      SUITES.get(n)  # raises with the known names
      if n not in out:
        out.append(n)
  if not out:
    raise InvalidConfigError(f"no suite given; known: all, {', '.join(ORDER)}")
  return out


def run(ctx: BenchContext, names: Sequence[str]) -> Dict[str, List[Dict[str, Any]]]:
  """Runs the named suites (or "all") on `ctx`; returns each suite's results."""
  return {name: SUITES.get(name)(ctx) for name in expand(names)}


def _fits(ctx: BenchContext, ipc: int, suite: str, what: str) -> bool:
  if ipc <= ctx.class_size():
    return True
  ctx.log(f"{suite}: skip {what} at IPC {ipc}: a class of {ctx.source_name} has only "
          f"{ctx.class_size()} images")
  return False


def _bar(ctx: BenchContext, total: int, desc: str):
  return progress_lib.progress(total, desc, enabled=ctx.show_progress, unit="cell")


def _sets_by_variant(ctx: BenchContext, suite: str, jobs: Sequence[Tuple[str, int]],
                     variants: Sequence[str],
                     cell: Callable[[str], Tuple[Dict[str, Any], Dict[str, Any]]]
                     ) -> List[Dict[str, Any]]:
  """Evaluates every (method, ipc) set of `jobs` under every variant; `cell(variant)`
  gives the `ctx.evaluate` keywords and the fields added to the row."""
  rows = []
  with _bar(ctx, len(jobs) * len(variants), suite) as bar:
    for method, ipc in jobs:
      cset = ctx.condensed(method, ipc)
      for variant in variants:
        kwargs, extra = cell(variant)
        res = ctx.evaluate(suite, f"{method}_ipc{ipc}_{variant}", cset, **kwargs)
        rows.append(dict(res, **extra))
        bar.update(1)
  return rows


@register_suite("augmentation")
def augmentation(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Every set under every evaluation augmentation (DC-BENCH Table 1)."""
  b = ctx.budget
  jobs = [(m, i) for i in b.ipcs for m in b.methods if _fits(ctx, i, "augmentation", m)]
  return _sets_by_variant(
      ctx, "augmentation", jobs, b.augmentations,
      lambda aug: (dict(protocol=b.protocol("eval_protocol", augmentation=aug)),
                   dict(augmentation=aug)))


@register_suite("compression")
def compression(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Accuracy against IPC for selection and synthesis methods (the IPC sweep)."""
  b = ctx.budget
  protocol = b.protocol("sweep_protocol", augmentation=b.augmentation)
  jobs = [(m, i) for m in b.sweep_methods for i in b.sweep_ipcs
          if _fits(ctx, i, "compression", m)]
  rows = []
  with _bar(ctx, len(jobs) + int(b.sweep_full), "compression") as bar:
    for method, ipc in jobs:
      rows.append(ctx.evaluate("compression", f"{method}_ipc{ipc}",
                               ctx.condensed(method, ipc), protocol=protocol))
      bar.update(1)
    if b.sweep_full:
      rows.append(ctx.evaluate("compression", FULL, ctx.condensed(FULL, None),
                               protocol=protocol))
      bar.update(1)
  return rows


@register_suite("transfer")
def transfer(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Sets condensed with ConvNet-3 trained on other architectures (DC-BENCH Table 2)."""
  b = ctx.budget
  protocol = b.protocol("eval_protocol", augmentation=b.augmentation)
  jobs = [(m, i) for i in b.transfer_ipcs for m in b.transfer_methods
          if _fits(ctx, i, "transfer", m)]
  return _sets_by_variant(ctx, "transfer", jobs, b.transfer_models,
                          lambda model: (dict(model=model, protocol=protocol), {}))


def nas_archs(ctx: BenchContext) -> List[str]:
  """The budget's sample of NAS-Bench-201 architectures (seeded by the run's seed)."""
  from tfcondense.models import nas201  # pylint: disable=g-import-not-at-top
  return nas201.sample_archs(ctx.budget.nas_archs, ctx.seed)


@register_suite("nas")
def nas(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Architecture ranking by condensed sets against ground truth (DC-BENCH Sec. 4.4)."""
  from tfcondense.models import nas201  # pylint: disable=g-import-not-at-top
  b = ctx.budget
  archs = nas_archs(ctx)
  sets = [m for m in b.nas_methods if _fits(ctx, b.nas_ipc, "nas", m)]
  file_truth = None
  if ctx.nas_ground_truth:
    file_truth = nas_lib.load_nasbench201(ctx.nas_ground_truth, ctx.nas_dataset)
    missing = [a for a in archs if a not in file_truth]
    if missing:
      raise InvalidConfigError(f"{ctx.nas_ground_truth} has no result for {len(missing)} "
                               f"sampled architectures, e.g. {missing[0]}")
  rows: List[Dict[str, Any]] = []
  truth, proxies = {}, {m: {} for m in sets}

  def kwargs(arch):
    return dict(arch=arch, channels=b.nas_channels, cells_per_stage=b.nas_cells)

  with _bar(ctx, len(archs) * (len(sets) + 1), "nas") as bar:
    full = None if file_truth else ctx.condensed(FULL, None)
    protocol_full = b.protocol("nas_full_protocol", augmentation=b.augmentation)
    protocol = b.protocol("nas_protocol", augmentation=b.augmentation)
    for arch in archs:
      key = f"truth_arch{nas201.arch_index(arch):05d}"
      if file_truth is not None:
        spec = dict(kind="nasbench201", file=os.path.basename(ctx.nas_ground_truth),
                    dataset=ctx.nas_dataset, arch=arch)
        res = ctx.cached("nas", key, spec, lambda a=arch: dict(
            last_mean=file_truth[a], acc_mean=file_truth[a], arch=a, ground_truth="file"))
      else:
        res = ctx.evaluate("nas", key, full, model="nas201", model_kwargs=kwargs(arch),
                           protocol=protocol_full, repetitions=b.nas_repetitions)
      truth[arch] = res["last_mean"]
      rows.append(dict(res, arch=arch, role="truth"))
      bar.update(1)
    for method in sets:
      cset = ctx.condensed(method, b.nas_ipc)
      for arch in archs:
        res = ctx.evaluate("nas", f"{method}_ipc{b.nas_ipc}_arch{nas201.arch_index(arch):05d}",
                           cset, model="nas201", model_kwargs=kwargs(arch), protocol=protocol,
                           repetitions=b.nas_repetitions)
        proxies[method][arch] = res["last_mean"]
        rows.append(dict(res, arch=arch, role="proxy"))
        bar.update(1)
  for method, proxy in proxies.items():
    stats = nas_lib.rank_correlation(proxy, truth, b.nas_top_k)
    ctx.log(f"nas {method}@{b.nas_ipc}: spearman {stats['spearman']}, kendall "
            f"{stats['kendall']}, top-{stats['top_k']} overlap {stats['top_k_overlap']} "
            f"over {stats['n']} architectures")
  return rows


@register_suite("init")
def init(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Synthesis from each initialisation, evaluated after `init_marks` iterations."""
  b = ctx.budget
  ipc = b.init_ipc
  protocol = b.protocol("init_protocol", augmentation=b.augmentation)
  jobs = [(m, i) for m in b.init_methods for i in b.init_inits
          if _fits(ctx, ipc, "init", f"{m}/{i}")]
  rows = []
  with _bar(ctx, len(jobs) * len(b.init_marks), "init") as bar:
    for method, init_name in jobs:
      cfg, overrides = ctx.synthesis_config(method, ipc, init=init_name)
      base = dict(method=method, init=init_name, ipc=ipc, config=cfg.as_dict(),
                  view=ctx.view_spec)

      def key(mark, method=method, init_name=init_name):
        return f"{method}_{init_name}_ipc{ipc}_it{mark:06d}"

      def spec(mark, base=base):
        return ctx.eval_spec(dict(base, iteration=mark), model=b.model, protocol=protocol)

      missing = [m for m in b.init_marks
                 if ctx.store.get(ctx.source_name, "init", key(m), spec(m)) is None]
      paths = {}
      if missing:
        paths = init_study.snapshots(
            ctx.source, method, init_name, ipc, b.init_marks,
            workdir=os.path.join(ctx.work_dir, "init", f"{method}_{init_name}_ipc{ipc}"),
            overrides=overrides, init_options={"cache_dir": ctx.cache_dir},
            show_progress=ctx.show_progress)
      for mark in b.init_marks:
        if mark in missing and mark not in paths:
          ctx.log(f"init: no snapshot of {method}/{init_name} at iteration {mark} (the "
                  "run had passed it when resumed, or stopped before it); cell skipped")
          bar.update(1)
          continue
        # Read only if the cell is computed (a cached cell's snapshot need not exist).
        path = paths.get(mark)
        cset = CondensedSet(method, ipc, None, None, dict(base, iteration=mark),
                            make=lambda p=path: init_study.load_snapshot(p) + ({},))
        res = ctx.evaluate("init", key(mark), cset, protocol=protocol)
        rows.append(dict(res, init=init_name, iteration=mark))
        bar.update(1)
  return rows


@register_suite("cost")
def cost(ctx: BenchContext) -> List[Dict[str, Any]]:
  """Seconds and memory per iteration of every method (DC-BENCH Table 8)."""
  b = ctx.budget
  jobs = [(m, i) for i in b.cost_ipcs for m in b.cost_methods if _fits(ctx, i, "cost", m)]
  rows = []
  with _bar(ctx, len(jobs), "cost") as bar:
    for method, ipc in jobs:
      overrides = b.condense_overrides(method)
      spec = dict(kind="cost", method=method, ipc=ipc, steps=b.cost_steps,
                  warmup=b.cost_warmup, precision=b.condense_precision,
                  isolated=b.cost_isolated, overrides=overrides, view=ctx.view_spec)

      def compute(method=method, ipc=ipc, overrides=overrides):
        kwargs = dict(steps=b.cost_steps, warmup=b.cost_warmup,
                      precision=b.condense_precision, cache_dir=ctx.cache_dir,
                      overrides=overrides)
        if b.cost_isolated:
          view = dict(ctx.source_options, train_per_class=b.train_per_class,
                      test_per_class=b.test_per_class)
          res = cost_lib.measure_isolated(ctx.source_name, method, ipc, source_view=view,
                                          **kwargs)
        else:
          res = cost_lib.measure(ctx.source, method, ipc, **kwargs)
          res["memory_mb"] = None  # a shared process: its peak is not this method's
        res.update(method=method, ipc=ipc, isolated=b.cost_isolated,
                   dcbench_a100_cifar10_seconds=cost_lib.dcbench_a100(method, ipc))
        ctx.log(f"cost {method}@{ipc}: {res['seconds_per_iteration']:.4f} s per "
                f"{res['unit']}")
        return res

      rows.append(ctx.cached("cost", f"{method}_ipc{ipc}", spec, compute))
      bar.update(1)
  return rows
