"""DC-BENCH suites, NAS ranking and the report (Cui et al., "DC-BENCH: Dataset
Condensation Benchmark", NeurIPS 2022 Datasets and Benchmarks).

    from tfcondense import bench
    ctx = bench.BenchContext("fashion_mnist", "small", out_dir="runs/bench/small")
    bench.run(ctx, ["all"])                 # cells -> runs/bench/small/cells/...
    bench.build_report("runs/bench/small")  # -> runs/bench/small/report/index.html

Modules: `budgets` (presets), `store` (one JSON file per cell), `context` (source view,
condensed sets, cached evaluations), `suites` (augmentation, compression, transfer,
nas, init, cost), `ddranking` (DD-Ranking's HLR / IOR / LRS / ARS), `nas` (rank
correlations, NAS-Bench-201 files; Dong & Yang, ICLR 2020), `init_study`, `cost`,
`plots`, `report` (built from `analysis`: tables and findings from the cells,
`rendering`: HTML and Markdown, `browser`: headless Chromium). Submodules load on
first use (importing this package does not import TensorFlow).
"""
from __future__ import annotations

from tfcondense._lazy import module_getattr

_LAZY = {
    "BUDGETS": "tfcondense.bench.budgets",
    "Budget": "tfcondense.bench.budgets",
    "get_budget": "tfcondense.bench.budgets",
    "BenchContext": "tfcondense.bench.context",
    "CellStore": "tfcondense.bench.store",
    "SUITES": "tfcondense.bench.suites",
    "ORDER": "tfcondense.bench.suites",
    "run": "tfcondense.bench.suites",
    "build_report": "tfcondense.bench.report",
    "rank_correlation": "tfcondense.bench.nas",
    "load_nasbench201": "tfcondense.bench.nas",
}
_SUBMODULES = ("analysis", "browser", "budgets", "context", "cost", "ddranking", "init_study",
               "nas", "plots", "rendering", "report", "store", "suites")

__all__ = list(_LAZY) + list(_SUBMODULES)

__getattr__ = module_getattr(__name__, _LAZY, _SUBMODULES)
