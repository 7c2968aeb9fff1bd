"""MTT's experts: networks trained on the real data, their trajectories and files.

Phase 1 of MTT (Cazenavette et al., CVPR 2022; the reference's `buffer.py`):
`train_experts` trains networks on the REAL data (SGD lr_teacher 0.01, momentum 0,
weight decay 0, batch 256, DSA augmentation drawn per sample, `mtt_augment.Augment`)
from `models.initialize(model, expert_init_seed(seed, i))`; the flattened trainable
parameters (`flat_parameters`) are saved after every epoch (row 0 = the
initialisation), one `[epochs + 1, P]` float32 `.npy` per expert. The distillation
(`tfcondense.methods.mtt.MTT`) reads them back with `expert_paths` and `load_experts`.

Seeds (tfcondense/seeds.py): expert i's initialisation comes from its own salt,
`fresh_seed(seed, "mtt.expert_init", i)`; its epoch e's permutation and augmentation
from `fold([seed, "mtt.experts"], i, e)`.

File names carry the way experts are made (`EXPERT_VERSION`), so that a directory
never silently mixes experts of two derivations:

* version 1, `expert_0000.npy`, ...: before issue 43, expert i's initialisation seed
  was the first element of `fold([seed, 0xE4E], i, 1)`, the key of its epoch-1 data;
* version 2, `expert_v2_0000.npy`, ...: the initialisation from its own salt.

`train_experts` counts, skips and writes only files of the current version: it leaves
version-1 files where they are (with a warning) and trains a current set beside them.
`expert_paths` returns the current version's files when the directory holds any, else
the version-1 ones (a directory made before issue 43, or by hand: any trajectories are
valid input to the distillation), never both.
"""
from __future__ import annotations

import glob
import os
from typing import List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from tfcondense import atomic
from tfcondense import progress as progress_lib
from tfcondense import seeds
from tfcondense import training
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base
from tfcondense.methods.mtt_augment import Augment

#: How experts are made (module docstring); part of their file names.
EXPERT_VERSION = 2
#: Expert files in an experts directory: expert_v2_0000.npy, expert_v2_0001.npy, ...
EXPERT_PATTERN = f"expert_v{EXPERT_VERSION}_{{:04d}}.npy"
_EXPERT_GLOB = f"expert_v{EXPERT_VERSION}_*.npy"
#: Version 1 (before issue 43): expert_0000.npy, ...
_VERSION_1_GLOB = "expert_[0-9]*.npy"

#: Salts (tfcondense/seeds.py): the root [seed, .] of expert i's epoch data, folded
#: (i, epoch); and expert i's initialisation, fresh_seed(seed, ., i).
SALT_EXPERTS = seeds.salt("mtt.experts")
SALT_EXPERT_INIT = seeds.salt("mtt.expert_init")


def _glob(directory: Optional[str], pattern: str) -> List[str]:
  if not directory or not os.path.isdir(directory):
    return []
  return sorted(glob.glob(os.path.join(directory, pattern)))


def expert_paths(directory: Optional[str]) -> List[str]:
  """The expert trajectory files in `directory` (sorted), [] if there are none.

  The current version's files (`EXPERT_PATTERN`) when there are any, else those of
  version 1 (`expert_0000.npy`, ...): never a mix (module docstring).
  """
  return _glob(directory, _EXPERT_GLOB) or _glob(directory, _VERSION_1_GLOB)


def describe_expected_files() -> str:
  """The file names `expert_paths` looks for, for error messages."""
  return f"{_EXPERT_GLOB} (or version-1 {_VERSION_1_GLOB})"


def flat_parameters(model) -> tf.Tensor:
  """The model's trainable variables, flattened and concatenated (float32 [P])."""
  return tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1])
                    for v in model.trainable_variables], axis=0)


def load_experts(paths: Sequence[str], num_params: int):
  """Memory-maps the expert files; returns (arrays, rows common to all)."""
  arrays = []
  for p in paths:
    try:
      a = np.load(p, mmap_mode="r")
    except (OSError, ValueError) as e:
      raise InvalidConfigError(f"expert file {p} is unreadable ({e}); delete it and run "
                               "train_experts again (it re-trains missing experts)") from e
    if a.ndim != 2 or a.shape[1] != num_params or a.shape[0] < 2:
      raise InvalidConfigError(
          f"expert file {p} holds an array of shape {a.shape}, expected [epochs + 1, "
          f"{num_params}] for this model; train experts with the same model and "
          "model_options (train_experts(..., config=the MTTConfig)) into a new directory")
    arrays.append(a)
  return arrays, min(a.shape[0] for a in arrays)


def _save_atomic(path: str, array: np.ndarray) -> None:
  with atomic.replacing(path, ".npy") as tmp:
    np.save(tmp, array)


def expert_init_seed(seed: int, index: int) -> int:
  """The `models.initialize` seed of expert `index` (a Python int).

  `base.fresh_seed(seed, SALT_EXPERT_INIT, index)`: a root of its own, so it is never
  the key of an epoch's data (`fold([seed, SALT_EXPERTS], i, epoch)`), as it was
  before issue 43 (version 1 of the module docstring).
  """
  return base.fresh_seed(seed, SALT_EXPERT_INIT, index)


def train_experts(source, directory: str, num_experts: int, epochs: int, config, *,
                  steps_per_epoch: Optional[int] = None, batch_size: int = 256,
                  momentum: float = 0.0, weight_decay: float = 0.0,
                  show_progress: bool = True) -> List[str]:
  """Trains expert networks on the real data and saves their trajectories (MTT's
  `buffer.py`); `tfcondense.methods.mtt.train_experts` fills `config` in.

  Expert i starts from `models.initialize(model, expert_init_seed(config.seed, i))`
  and is trained with SGD (lr `config.lr_teacher`, `momentum`, `weight_decay`;
  reference 0.01, 0, 0) on shuffled batches of `batch_size` real
  images, normalised and augmented with `config.strategy` / `config.aug_mode` drawn
  per sample. After every epoch (and before the first) the flattened trainable
  parameters are recorded; the `[epochs + 1, P]` float32 array is written atomically
  to `directory/` `EXPERT_PATTERN` when the expert is done. Experts whose file exists
  are skipped, so an interrupted call resumes by running it again; files of another
  version are not counted (module docstring).

  Args:
    source: the SourceData.
    directory: where the expert files go (created).
    num_experts: experts wanted in total (existing ones count).
    epochs: epochs per expert (the reference trains 50).
    config: an `MTTConfig` (model, model_options, lr_teacher, strategy, aug_mode and
      seed are read; experts_dir is not needed here).
    steps_per_epoch: at most this many batches per "epoch" (None: a full pass), for
      short CPU runs and tests.
    batch_size, momentum, weight_decay: the SGD settings.
    show_progress: draw a progress bar (one tick per epoch).

  Returns:
    The paths of experts 0 .. num_experts - 1.
  """
  from tfcondense.models import build_model, initialize  # pylint: disable=g-import-not-at-top
  cfg = config
  if num_experts < 1 or epochs < 1:
    raise InvalidConfigError(f"num_experts and epochs must be >= 1, got {num_experts}, "
                             f"{epochs}")
  if steps_per_epoch is not None and steps_per_epoch < 1:
    raise InvalidConfigError(f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}")
  os.makedirs(directory, exist_ok=True)
  paths = [os.path.join(directory, EXPERT_PATTERN.format(i)) for i in range(num_experts)]
  todo = [i for i, p in enumerate(paths) if not os.path.exists(p)]
  if not todo:
    return paths
  old = _glob(directory, _VERSION_1_GLOB)
  if old:
    logging.warning(
        "%s holds %d version-1 experts (%s, ...), trained before issue 43 changed how an "
        "expert's initialisation is seeded: they are not used; version-%d experts are "
        "trained beside them (delete the old files to free the space)", directory, len(old),
        os.path.basename(old[0]), EXPERT_VERSION)

  real = base.RealData(source)
  model = build_model(cfg.model, source.image_shape, source.num_classes, seed=cfg.seed,
                      **dict(cfg.model_options))
  variables = list(model.trainable_variables)
  buffers = training.zeros_like_all(variables)
  augment = Augment(cfg.strategy, cfg.aug_mode, differentiable=False)
  full = -(-real.size // batch_size)
  steps = min(full, int(steps_per_epoch)) if steps_per_epoch else full
  root = tf.constant([cfg.seed, SALT_EXPERTS], tf.int64)

  @tf.function
  def train_epoch(seed):
    perm = tf.argsort(tf.random.stateless_uniform([real.size], base.fold(seed, 1)))
    for i in tf.range(steps):
      idx = perm[i * batch_size:tf.minimum((i + 1) * batch_size, real.size)]
      x = real.normalize(tf.gather(real.images, idx))
      x = augment(x, base.fold(seed, 2, tf.cast(i, tf.int64)))
      y = tf.gather(real.labels, idx)
      with tf.GradientTape() as tape:
        loss = base.cross_entropy(model(x, training=True), y)
      grads = tape.gradient(loss, variables)
      training.sgd_step(variables, buffers, grads, cfg.lr_teacher, momentum, weight_decay)
    return tf.constant(0)

  with progress_lib.progress(len(todo) * epochs, "experts", enabled=show_progress,
                             unit="epoch") as bar:
    for i in todo:
      initialize(model, expert_init_seed(cfg.seed, i))
      training.reset_all(buffers)
      rows = [flat_parameters(model).numpy()]
      for epoch in range(epochs):
        train_epoch(base.fold(root, i, epoch))
        rows.append(flat_parameters(model).numpy())
        bar.update(1)
      _save_atomic(paths[i], np.stack(rows).astype(np.float32))
  return paths
