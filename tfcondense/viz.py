"""Pictures of condensed sets: one PNG grid, one row per class (matplotlib)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from tfcondense import atomic


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
  h, w = images.shape[1:3]
  scale = max(0.35, min(1.2, 28.0 / max(h, w) * 0.9))
  title_inches = 0.3 if title else 0.0  # a band above the grid, so the title never overlaps
  height = rows * scale + 0.4 + title_inches
  fig, axes = plt.subplots(rows, cols, figsize=(cols * scale + 1.2, height), squeeze=False)
  for r, c in enumerate(classes):
    chosen = images[labels == c][:cols]
    for j in range(cols):
      ax = axes[r, j]
      ax.set_xticks([])
      ax.set_yticks([])
      for side in ax.spines.values():
        side.set_visible(False)
      if j < len(chosen):
        img = chosen[j]
        if img.shape[-1] == 1:
          ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
          ax.imshow(img, interpolation="nearest")
    name = class_names[int(c)] if class_names is not None else str(int(c))
    axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout(pad=0.2, w_pad=0.05, h_pad=0.05, rect=(0, 0, 1, 1 - title_inches / height))
  return atomic.save_figure(fig, path, dpi=100)
