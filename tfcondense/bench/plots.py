"""Matplotlib charts of the DC-BENCH report (Cui et al. 2022): one function per chart.

Every function takes plain rows (numbers and names, no cells), writes one PNG
atomically and returns its path. A method has the same colour in every chart
(`method_colors`).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfcondense import atomic

# The 11th (IDC's) is black, not a second dark blue beside Random's.
_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
            "#8c8c8c", "#ccb974", "#64b5cd", "#1a1a1a", "#a05195")
#: Methods in display order; a method's colour is its place here in every chart.
METHOD_ORDER = ("random", "herding", "kcenter", "dc", "dsa", "dm", "dm_mf", "mtt", "kip",
                "idc_i", "idc", "full")
_DPI = 110


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def colors(names: Sequence[str]) -> Dict[str, str]:
  """A colour per name, in the order given (augmentations, initialisations, IPCs)."""
  return {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}


def method_colors(labels: Sequence[str]) -> Dict[str, str]:
  """The same colour for a method in every chart; labels may carry "@<ipc>"."""
  out, spare = {}, len(METHOD_ORDER)
  for label in labels:
    method = str(label).split("@")[0].split(" ")[0]
    if method in METHOD_ORDER:
      out[label] = _PALETTE[METHOD_ORDER.index(method) % len(_PALETTE)]
    else:
      out[label] = _PALETTE[spare % len(_PALETTE)]
      spare += 1
  return out


def save(fig, path: str) -> str:
  """Writes `fig` to `path` (PNG) atomically, and closes it."""
  return atomic.save_figure(fig, path, dpi=_DPI)


def augmentation_bars(values: Dict[Tuple[str, int, str], Tuple[float, float]],
                      methods: Sequence[str], ipcs: Sequence[int], augs: Sequence[str],
                      path: str, title: str) -> str:
  """Grouped bars: one panel per IPC (stacked, each with its own y range, so that the
  few points between policies at IPC 50 are not flattened by IPC 1's spread), one
  group per method, one bar per augmentation.

  Args:
    values: (method, ipc, augmentation) -> (mean, std) accuracy in %.
  """
  plt = _plt()
  col = colors(augs)
  fig, axes = plt.subplots(len(ipcs), 1, figsize=(max(6.0, 1.3 * len(methods) + 2.2),
                                                  3.0 * len(ipcs) + 0.6), squeeze=False)
  width = 0.8 / max(1, len(augs))
  show_err = any(s > 0 for _, s in values.values())  # one model per cell: no bars
  for ax, ipc in zip(axes[:, 0], ipcs):
    lows = [m - s for (_, i, _), (m, s) in values.items() if i == ipc]
    highs = [m + s for (_, i, _), (m, s) in values.items() if i == ipc]
    for k, aug in enumerate(augs):
      xs, ys, es = [], [], []
      for i, method in enumerate(methods):
        if (method, ipc, aug) in values:
          m, s = values[(method, ipc, aug)]
          xs.append(i + (k - (len(augs) - 1) / 2) * width)
          ys.append(m)
          es.append(s)
      ax.bar(xs, ys, width * 0.95, yerr=es if show_err else None, capsize=2,
             color=col[aug], label=aug)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods)
    if lows:
      floor = max(0.0, np.floor((min(lows) - 2) / 5) * 5)
      ax.set_ylim(floor, min(100.0, max(highs) + 0.08 * (max(highs) - floor) + 0.5))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"IPC {ipc}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
  axes[0][0].legend(title="augmentation", fontsize=8, title_fontsize=8,
                    loc="upper left", bbox_to_anchor=(1.01, 1.0))
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)


def ipc_lines(curves: Dict[str, List[Tuple[int, float, float]]], selection: Sequence[str],
              path: str, title: str, full: Optional[Tuple[float, float]] = None) -> str:
  """Accuracy against IPC (log axis): selection methods dashed, synthesis solid.

  Args:
    curves: method -> [(ipc, mean, std), ...].
    selection: names drawn as selection baselines.
    full: (mean, std) of training on the whole set, drawn as a horizontal band.
  """
  plt = _plt()
  col = method_colors(list(curves))
  fig, ax = plt.subplots(figsize=(8.2, 4.3))
  for method, pts in curves.items():
    pts = sorted(pts)
    x, y, e = (np.array(v, np.float64) for v in zip(*pts))
    dashed = method in selection
    ax.errorbar(x, y, yerr=e, color=col[method], marker="o" if dashed else "s",
                linestyle="--" if dashed else "-", capsize=3,
                label=method + (" (selection)" if dashed else " (synthesis)"))
  if full is not None:
    ax.axhline(full[0], color="#333333", linestyle=":", linewidth=1.2,
               label=f"full data ({full[0]:.1f})")
  ax.set_xscale("log")
  ipcs = sorted({p[0] for pts in curves.values() for p in pts})
  ax.set_xticks(ipcs)
  ax.set_xticklabels([str(i) for i in ipcs])
  ax.minorticks_off()
  ax.set_xlabel("images per class (log scale)")
  ax.set_ylabel("test accuracy (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)


def heatmap(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: str,
            title: str, split_last: bool = True) -> str:
  """Annotated heat map (NaN cells blank); the last column set apart if `split_last`."""
  plt = _plt()
  matrix = np.asarray(matrix, np.float64)
  fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2.6, 0.5 * len(rows) + 1.9))
  masked = np.ma.masked_invalid(matrix)
  finite = matrix[np.isfinite(matrix)]
  vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
  im = ax.imshow(masked, cmap="viridis", aspect="auto", vmin=vmin,
                 vmax=vmax if vmax > vmin else vmin + 1)
  for i in range(matrix.shape[0]):
    for j in range(matrix.shape[1]):
      if np.isfinite(matrix[i, j]):
        level = (matrix[i, j] - vmin) / ((vmax - vmin) or 1)
        ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center", fontsize=8,
                color="black" if level > 0.55 else "white")
  if split_last and len(cols) > 1:
    ax.axvline(len(cols) - 1.5, color="white", linewidth=3)
  ax.set_xticks(range(len(cols)))
  ax.set_xticklabels(cols, rotation=30, ha="right")
  ax.set_yticks(range(len(rows)))
  ax.set_yticklabels(rows)
  fig.colorbar(im, ax=ax, label="test accuracy (%)", fraction=0.04)
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)


def rank_scatter(panels: Dict[str, Tuple[np.ndarray, np.ndarray, str]], path: str,
                 title: str) -> str:
  """One panel per condensed set: ground-truth rank (x) against proxy rank (y).

  Args:
    panels: label -> (truth ranks, proxy ranks, subtitle with the statistics).
  """
  plt = _plt()
  from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
  n = len(panels)
  cols = min(n, 3)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(max(6.0, 4.0 * cols), 4.1 * rows),
                           squeeze=False)
  col = method_colors(list(panels))
  for ax, (label, (tr, pr, sub)) in zip(axes.flat, panels.items()):
    top = max(len(tr), 2)
    ax.plot([1, top], [1, top], color="#999999", linewidth=1, linestyle=":",
            label="same rank")
    ax.scatter(tr, pr, s=26, color=col[label], alpha=0.6, edgecolors="none")
    ax.set_xlim(0.5, top + 0.5)
    ax.set_ylim(0.5, top + 0.5)
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("rank by the ground truth (1 = best)")
    ax.set_ylabel(f"rank when trained on {label}")
    ax.set_title(f"{label}, {len(tr)} architectures\n{sub}", fontsize=9)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[n:]:
    ax.set_visible(False)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)


def off_scale_floor(points: Sequence[Tuple[int, float]], gap: float = 15.0,
                    margin: float = 3.0) -> Optional[float]:
  """The lower y-limit of an init chart whose initialisations score far below the rest.

  A noise initialisation scores chance (10%) before the first step, which would squeeze
  the curves that matter into the top tenth of the chart. Initialisation points (iteration
  0) more than `gap` below every later point are drawn at the floor instead, marked.

  Args:
    points: (iteration, accuracy) of every curve of one panel.

  Returns:
    The floor (the lowest point kept, less `margin`), or None when nothing is that low.
  """
  later = [y for it, y in points if it > 0]
  if not later:
    return None
  kept = [y for it, y in points if it > 0 or y >= min(later) - gap]
  if len(kept) == len(points):
    return None
  return min(kept) - margin


def init_curves(curves: Dict[str, Dict[str, List[Tuple[int, float, float]]]], path: str,
                title: str) -> str:
  """Accuracy against condensation iterations, one panel per method, a line per init.

  Args:
    curves: method -> init -> [(iteration, mean, std), ...]; iteration 0 (the
      initialisation itself) is drawn at the left edge of the log axis; one far below
      the rest (noise) is drawn at the panel's floor, marked and labelled with its value
      (see `off_scale_floor`).
  """
  plt = _plt()
  fig, axes = plt.subplots(1, len(curves), figsize=(5.6 * len(curves), 4.0), squeeze=False)
  inits = sorted({i for per in curves.values() for i in per})
  col = colors(inits)
  for ax, (method, per_init) in zip(axes[0], curves.items()):
    marks = sorted({p[0] for pts in per_init.values() for p in pts})
    positive = [m for m in marks if m > 0]
    zero_at = (min(positive) / 2.0) if positive else 1.0
    floor = off_scale_floor([(p[0], p[1]) for pts in per_init.values() for p in pts])
    for init in inits:
      pts = sorted(per_init.get(init, []))
      if not pts:
        continue
      x, y, e = (np.array(v, np.float64) for v in zip(*pts))
      xs = np.where(x > 0, x, zero_at)
      low = (y < floor) if floor is not None else np.zeros_like(y, bool)
      ax.errorbar(xs, np.where(low, floor, y), yerr=np.where(low, 0.0, e), marker="o",
                  capsize=3, color=col[init], label=f"{init} init")
      for xi, yi in zip(xs[low], y[low]):
        ax.plot([xi], [floor], marker="v", markersize=11, color=col[init])
        ax.annotate(f"{yi:.1f}% (off scale)", (xi, floor), xytext=(12, -4),
                    textcoords="offset points", fontsize=8, color=col[init])
    if floor is not None:
      ax.set_ylim(bottom=floor - 0.5)
    ax.set_xscale("log")
    ticks = [zero_at] + positive
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0"] + [str(m) for m in positive])
    ax.minorticks_off()
    ax.set_xlabel("condensation iterations (log scale; 0 = the initialisation)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(method)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)


def cost_bars(values: Dict[Tuple[str, int], float], methods: Sequence[str],
              ipcs: Sequence[int], path: str, title: str) -> str:
  """Seconds per iteration (log axis), one group per method, one bar per IPC."""
  plt = _plt()
  col = colors([f"IPC {i}" for i in ipcs])
  fig, ax = plt.subplots(figsize=(max(5.5, 0.9 * len(methods) * max(1, len(ipcs)) / 2 + 3),
                                  4.0))
  width = 0.8 / max(1, len(ipcs))
  for k, ipc in enumerate(ipcs):
    xs, ys = [], []
    for i, method in enumerate(methods):
      if (method, ipc) in values and values[(method, ipc)] > 0:
        xs.append(i + (k - (len(ipcs) - 1) / 2) * width)
        ys.append(values[(method, ipc)])
    bars = ax.bar(xs, ys, width * 0.95, color=col[f"IPC {ipc}"], label=f"IPC {ipc}")
    ax.bar_label(bars, labels=[f"{y:.3g}" for y in ys], fontsize=7, padding=2)
  ax.set_yscale("log")
  ax.margins(y=0.15)
  ax.set_xticks(range(len(methods)))
  ax.set_xticklabels(methods)
  ax.set_ylabel("seconds per iteration (log scale)")
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return save(fig, path)
