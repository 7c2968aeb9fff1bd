"""Pictures of condensed sets: one PNG grid, one row per class (matplotlib)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tfcondense import atomic


_GAP = 1  # white pixels between images


def _mosaic(images: np.ndarray, labels: np.ndarray, classes: np.ndarray,
            cols: int) -> np.ndarray:
  """Tiles the first `cols` images of each class into one [H', W', C] array, one row
  per class, white gutters.

  One image on one axes instead of rows x cols subplots: matplotlib lays out every
  axes, which took 1.3 s for Fashion-MNIST's 10 x 10 grid; this takes 0.1 s.
  """
  h, w, ch = images.shape[1:4]
  mosaic = np.ones((len(classes) * (h + _GAP) - _GAP, cols * (w + _GAP) - _GAP, ch),
                   np.float32)
  for r, c in enumerate(classes):
    for j, img in enumerate(images[labels == c][:cols]):
      y, x = r * (h + _GAP), j * (w + _GAP)
      mosaic[y:y + h, x:x + w] = img
  return mosaic


def save_grid(images: np.ndarray, labels: np.ndarray, path: str,
              class_names: Optional[Sequence[str]] = None, max_per_class: int = 10,
              title: Optional[str] = None) -> str:
  """Writes a grid of `images` (rows = classes, at most `max_per_class` columns).

  Args:
    images: float [N, H, W, C] in [0, 1] (C = 1 or 3; values are clipped).
    labels: int [N].
    path: PNG path (written atomically: a temporary file renamed into place).
    class_names: row labels (default: the class numbers).
    max_per_class: columns.
    title: figure title.

  Returns:
    The absolute path written.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  labels = np.asarray(labels)
  classes = np.unique(labels)
  cols = max(1, min(max_per_class, max(int((labels == c).sum()) for c in classes)))
  rows = len(classes)
  h, w, ch = images.shape[1:4]
  mosaic = _mosaic(images, labels, classes, cols)
  scale = max(0.35, min(1.2, 28.0 / max(h, w) * 0.9))
  title_inches = 0.3 if title else 0.0  # a band above the grid, so the title never overlaps
  height = rows * scale + 0.4 + title_inches
  fig, ax = plt.subplots(figsize=(cols * scale + 1.2, height))
  if ch == 1:
    ax.imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
  else:
    ax.imshow(mosaic, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([r * (h + _GAP) + (h - 1) / 2 for r in range(rows)])
  ax.set_yticklabels([class_names[int(c)] if class_names is not None else str(int(c))
                      for c in classes], fontsize=8)
  ax.tick_params(axis="y", length=0)
  for side in ax.spines.values():
    side.set_visible(False)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - title_inches / height))
  return atomic.save_figure(fig, path, dpi=100)
