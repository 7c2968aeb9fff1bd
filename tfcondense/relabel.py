"""Teacher relabelling: soft labels for any set from a network trained on the real data.

Qin et al. (NeurIPS 2024, "A Label is Worth a Thousand Images in Dataset Distillation")
show that much of what soft-label methods (SRe2L, RDED, DATM) report comes from the
labels: random real images with the soft labels of an expert trained for a few epochs
(early-stopped experts are best at small IPC) come close. DD-Ranking therefore scores a
set with soft labels against random images with the same teacher's labels. This module
makes that control: `train_teacher` trains a network on the whole real training set
for E epochs (cached by its settings), `relabel_set` writes its logits for every image a
network will train on (the formed images of a multi-formation set), with a temperature
and Hinton et al.'s KL loss (the SRe2L / RDED recipe).

    teacher = relabel.train_teacher(source, relabel.TeacherConfig(epochs=2))
    soft = relabel.relabel_set(formed_images, teacher)
    tfc.evaluate(formed_images, labels, source, soft_labels=soft)

The teacher is trained with `tfcondense.training.Trainer` (the one PyTorch-style SGD
loop of the library, no CutMix, no test points in between) and the evaluator's
normalisation, so its logits are those of a network of the evaluation family.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from tfcondense import atomic
from tfcondense import fileio
from tfcondense import soft_labels as soft_lib
from tfcondense.errors import InvalidConfigError


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
  """How the teacher is trained and how its logits are used.

  Attributes:
    epochs: epochs on the full real training set (Qin et al.: stop earlier for smaller
      IPC).
    model: evaluation-model registry name.
    batch_size, lr, momentum, weight_decay: SGD settings (the evaluator's defaults).
    augmentation: training augmentation (evaluation policy name).
    temperature: softmax temperature of the soft labels (SRe2L / RDED use 4).
    loss: "kl" (T^2 KL, Hinton et al. 2015) or "ce".
    seed: initialisation and batch-order seed.
    precision: "float32" or "mixed_bfloat16".
    max_steps: cap on the training steps (smoke runs).
  """

  epochs: int = 2
  model: str = "convnet3"
  batch_size: int = 64
  lr: float = 0.01
  momentum: float = 0.9
  weight_decay: float = 5e-4
  augmentation: str = "crop_flip"
  temperature: float = 4.0
  loss: str = "kl"
  seed: int = 0
  precision: str = "float32"
  max_steps: Optional[int] = None

  def __post_init__(self):
    if self.epochs < 1:
      raise InvalidConfigError(f"teacher epochs must be at least 1, got {self.epochs}")
    if self.max_steps is not None and self.max_steps < 1:
      raise InvalidConfigError(f"teacher max_steps must be at least 1, got {self.max_steps}")

  def key(self, source_name: str, num_train: int) -> str:
    """A cache file stem naming every setting that changes the weights."""
    return (f"teacher_{source_name}_n{num_train}_{self.model}_e{self.epochs}_b"
            f"{self.batch_size}_lr{self.lr:g}_{self.augmentation}_s{self.seed}_"
            f"{self.precision}" + (f"_max{self.max_steps}" if self.max_steps else ""))


@dataclasses.dataclass(frozen=True, eq=False)
class Teacher:
  """A trained teacher: the Keras model, its source's statistics and its record."""

  model: Any
  mean: tuple
  std: tuple
  config: TeacherConfig
  info: Dict[str, Any]


def _protocol(config: TeacherConfig):
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  return ev.Protocol(name="teacher", epochs=config.epochs, batch_size=config.batch_size,
                     lr=config.lr, momentum=config.momentum,
                     weight_decay=config.weight_decay, augmentation=config.augmentation,
                     cutmix_prob=0.0, num_evals=1, precision=config.precision,
                     max_steps=config.max_steps)


def train_teacher(source, config: TeacherConfig = TeacherConfig(),
                  cache_dir: Optional[str] = None, show_progress: bool = True) -> Teacher:
  """Trains (or loads from `cache_dir`) a teacher on `source`'s whole training set.

  Args:
    source: the SourceData.
    config: the TeacherConfig.
    cache_dir: where `<key>.npz` (weights) and `<key>.json` (record) are kept; a later
      call with the same settings loads them instead of training.
    show_progress: draw a progress bar.

  Returns:
    The Teacher; `info` has its test accuracy (%), steps and epochs.
  """
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import progress as progress_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import training  # pylint: disable=g-import-not-at-top
  protocol = _protocol(config)
  net = training.build_with_precision(config.precision, config.model, source.image_shape,
                                      source.num_classes, seed=config.seed)
  key = config.key(source.name, len(source.train_labels))
  weights_path = json_path = None
  if cache_dir:
    weights_path = os.path.join(cache_dir, key + ".npz")
    json_path = os.path.join(cache_dir, key + ".json")
    if fileio.exists(weights_path) and fileio.exists(json_path):
      stored = fileio.load_npz(weights_path)
      net.set_weights([stored[f"w{i}"] for i in range(len(stored))])
      return Teacher(net, tuple(source.mean), tuple(source.std), config,
                     fileio.read_json(json_path))
  trainer = training.Trainer(net, source.train_images, source.train_labels, source.mean,
                             source.std, protocol, flip=ev.flip_safe(source.name))
  trainer.reset(config.seed)
  with progress_lib.progress(trainer.total_steps, f"teacher {source.name}",
                             enabled=show_progress, unit="step") as bar:
    trainer.run(bar)
  acc = trainer.accuracy(source.test_images, source.test_labels)
  info = dict(source=source.name, test_accuracy=acc, steps=trainer.total_steps,
              config=dataclasses.asdict(config), num_train=int(len(source.train_labels)),
              reference="Qin et al., NeurIPS 2024 (early-stopped expert as teacher)")
  if cache_dir:
    weights = {f"w{i}": w for i, w in enumerate(net.get_weights())}
    atomic.write_bytes(weights_path, fileio.npz_bytes(**weights))
    atomic.write_json(json_path, json.loads(json.dumps(info)))
  return Teacher(net, tuple(source.mean), tuple(source.std), config, info)


def logits(teacher: Teacher, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """float32 [N, num_classes] teacher logits of [N, H, W, C] images in [0, 1]."""
  mean = np.asarray(teacher.mean, np.float32)
  std = np.asarray(teacher.std, np.float32)
  out = [np.asarray(teacher.model((images[i:i + batch_size] - mean) / std, training=False),
                    np.float32)
         for i in range(0, len(images), batch_size)]
  return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def relabel_set(images: np.ndarray, teacher: Teacher, per: str = "formed"
                ) -> soft_lib.SoftLabels:
  """Soft labels for `images` (the images a network trains on) from `teacher`.

  Args:
    images: float32 [N, H, W, C] in [0, 1].
    teacher: from `train_teacher`.
    per: "formed" (rows for the images given, the usual case) or "stored".

  Returns:
    SoftLabels of kind "logits" at the teacher config's temperature and loss, with the
    teacher's record in `info`.
  """
  cfg = teacher.config
  return soft_lib.SoftLabels(logits(teacher, np.asarray(images, np.float32)),
                             kind="logits", temperature=cfg.temperature, loss=cfg.loss,
                             per=per, info=dict(teacher=teacher.info))
