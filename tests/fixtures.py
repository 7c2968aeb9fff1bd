"""Tiny in-memory sources for fast tests."""
import numpy as np

from tfcondense.data.store import SourceData


def quadrant_source(n_per_class=20, n_test=10, size=16, channels=1, seed=0, name="toy"):
  """4 classes; class c has a bright blob in quadrant c plus noise (learnable fast)."""
  rng = np.random.default_rng(seed)

  def make(n):
    xs, ys = [], []
    for c in range(4):
      x = rng.uniform(0, 0.3, (n, size, size, channels)).astype(np.float32)
      h = size // 2
      r, q = divmod(c, 2)
      x[:, r * h:(r + 1) * h, q * h:(q + 1) * h, :] += 0.6
      xs.append(np.clip(x, 0, 1))
      ys.append(np.full(n, c, np.int32))
    return np.concatenate(xs), np.concatenate(ys)

  xtr, ytr = make(n_per_class)
  xte, yte = make(n_test)
  return SourceData(name=name, train_images=xtr, train_labels=ytr, test_images=xte,
                    test_labels=yte, class_names=("tl", "tr", "bl", "br"),
                    mean=(0.35,) * channels, std=(0.3,) * channels)
