"""The DC-BENCH report: cached cells -> `report/index.html` + `report/summary.md` + PNGs.

Reads every cell under `<root>/cells/` (all sources), computes the derived numbers
DC-BENCH (Cui et al. 2022) reports, draws the charts with matplotlib and writes one HTML
page and a Markdown summary with the same tables:

* a leaderboard per source and IPC (ConvNet accuracy with the default augmentation,
  without augmentation and with the best one, the transfer average, the NAS rank
  correlation, the cost per iteration, and DD-Ranking's HLR / IOR / LRS / ARS where
  the full-data, random and no-augmentation cells they need exist,
  `tfcondense.bench.ddranking`);
* augmentation: grouped bars and DC-BENCH Table 1's no-aug / average / best;
* compression: accuracy against IPC (lines) and where synthesis stops beating
  selection;
* transfer: a heat map of set x architecture with the transfer average (Table 2);
* NAS: rank scatter plots with Spearman / Kendall / top-k against the ground truth
  (NAS-Bench-201 space, Dong & Yang, ICLR 2020), beside DC-BENCH's CIFAR-10 values;
* initialisation: accuracy-against-iterations curves per initialisation;
* cost: seconds per iteration (bars, log scale) and memory.

No TensorFlow is imported; a report of a few hundred cells takes seconds. The page
marks, once loaded in a browser, how many of its images decoded
(`<body data-images-loaded=...>`), which the headless-Chromium test checks.

The work is split by job: `tfcondense.bench.analysis` (the numbers and tables),
`tfcondense.bench.rendering` (HTML and Markdown), `tfcondense.bench.plots` (charts) and
`tfcondense.bench.browser` (headless Chromium); this module reads the cells, writes the
files and keeps the public names of all four.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
from collections import defaultdict
from typing import Optional, Tuple

from tfcondense import atomic
from tfcondense import fileio
from tfcondense.bench import analysis
from tfcondense.bench import budgets as budgets_lib
from tfcondense.bench import rendering
from tfcondense.bench.analysis import (DCBENCH_NAS_SPEARMAN, METHOD_ORDER, SELECTION,
                                       SUITE_TITLES, describe_protocol,
                                       leaderboard_ddranking, set_budget_text)
from tfcondense.bench.browser import CHROMIUM_NAMES, find_chromium, rendered_dom, screenshot
from tfcondense.bench.rendering import Section, Table
from tfcondense.bench.store import CellStore
from tfcondense.errors import TfcondenseError

__all__ = [
    "CHROMIUM_NAMES", "DCBENCH_NAS_SPEARMAN", "METHOD_ORDER", "SELECTION", "SUITE_TITLES",
    "NoCellsError", "ReportPaths", "Section", "Table", "build_report", "describe_protocol",
    "find_chromium", "leaderboard_ddranking", "rendered_dom", "screenshot",
    "set_budget_text",
]


class NoCellsError(TfcondenseError, FileNotFoundError):
  """No benchmark cells to report on (the message names the command that makes them)."""


@dataclasses.dataclass(frozen=True)
class ReportPaths:
  """What `build_report` wrote: the page, the summary, the charts, the cells read."""

  html: str
  markdown: str
  images: Tuple[str, ...]
  cells: int


def build_report(root: str, out_dir: Optional[str] = None,
                 title: str = "DC-BENCH report") -> ReportPaths:
  """Writes `<out_dir>/index.html`, `summary.md`, the charts and `report.json`.

  Args:
    root: the benchmark directory holding `cells/` (the `--out` of `apps.bench`).
    out_dir: where the report goes (default `<root>/report`).
    title: page title.

  Returns:
    The paths written and the number of cells read.

  Raises:
    NoCellsError: no cells under `root` (with the command that makes them); also a
      FileNotFoundError.
  """
  store = CellStore(root)
  out = fileio.abspath(out_dir or os.path.join(store.root, "report"))
  sources = store.sources()
  if not sources:
    raise NoCellsError(
        f"no benchmark cells under {store.cells_dir}; run e.g. `python -m apps.bench "
        f"--suite all --source fashion_mnist --budget small --out {root}` first")
  fileio.makedirs(out)
  groups, images, n_cells, budgets = [], [], 0, set()
  for source in sources:
    suites = defaultdict(list)
    for cell in store.cells(source):
      suites[cell["suite"]].append(cell)
      budgets.add(cell.get("budget"))
      n_cells += 1
    sections = analysis.source_sections(source, suites, out)
    for s in sections:
      images += [p for p, _ in s.images]
    groups.append((source, sections))
  budgets.discard(None)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  budget_text = ", ".join(
      f"{b} ({budgets_lib.BUDGETS.get(b).description})" if b in budgets_lib.BUDGETS else b
      for b in sorted(budgets))
  # Relative to the report, so that a committed report names no machine's paths.
  meta = (f"{n_cells} cells from {os.path.relpath(store.cells_dir, out)}/; "
          f"budget: {budget_text or 'unknown'}; "
          f"written {stamp}. Benchmark protocols after DC-BENCH (Cui et al., NeurIPS 2022); "
          "NAS space from NAS-Bench-201 (Dong & Yang, ICLR 2020).")
  html_path = os.path.join(out, "index.html")
  md_path = os.path.join(out, "summary.md")
  for path, text in ((html_path, rendering.render_html(title, meta, groups, out)),
                     (md_path, rendering.render_markdown(title, meta, groups, out))):
    atomic.write_text(path, text)
  atomic.write_json(os.path.join(out, "report.json"), dict(
      cells=n_cells, sources=sources, budgets=sorted(budgets), images=[
          os.path.basename(p) for p in images], written=stamp))
  return ReportPaths(html_path, md_path, tuple(images), n_cells)
