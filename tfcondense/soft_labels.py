"""Soft labels: per-image label distributions that a condensed set may carry.

The newer condensation methods ship a distribution (or the logits of an expert and a
temperature) for every image instead of one class: DATM (Guo et al., ICLR 2024) learns
them, SRe2L (Yin et al., NeurIPS 2023) and RDED (Sun et al., CVPR 2024) relabel with a
teacher, and Qin et al. (NeurIPS 2024, "A Label is Worth a Thousand Images in Dataset
Distillation") show that random real images with an early-stopped teacher's soft labels
already reach much of the reported gains. DD-Ranking (`tfcondense.bench.ddranking`)
therefore compares a set with soft labels against random images with the same teacher's
soft labels.

In an artifact they are `soft_labels.npy` (float32 [N, num_classes]) beside the hard
labels, described by meta.json's "soft_labels" (`SoftLabels.describe`): `kind`
("probs": rows are distributions; "logits": softmax(values / temperature) gives them),
`temperature`, `loss` ("ce": soft cross-entropy -sum p log q; "kl": Hinton et al.'s
T^2 KL(p || softmax(z / T)), the distillation loss of SRe2L / RDED), and `per`
("stored": one row per stored image, repeated for the images it forms; "formed": one
row per formed image, in `formed_from_artifact` order). Their bytes count in the
set's storage (`storage_bytes`).

The evaluator (`tfcondense.evaluation.evaluate(..., soft_labels=...)`) mixes the
target distributions with CutMix's area ratio, lam p_a + (1 - lam) p_b. Importing this
module does not import TensorFlow.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import numpy as np

from tfcondense.errors import CorruptArtifactError, InvalidConfigError

FILE = "soft_labels.npy"
KINDS = ("probs", "logits")
LOSSES = ("ce", "kl")
PER = ("stored", "formed")
#: How far a row of a "probs" array may be from summing to 1.
_SUM_TOLERANCE = 1e-3


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """Row-wise softmax(x / temperature) in float64, returned as float32."""
  z = np.asarray(x, np.float64) / float(temperature)
  z = z - z.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class SoftLabels:
  """Per-image label distributions (or logits) and how to train on them.

  Attributes:
    values: float32 [N, num_classes]: distributions (kind "probs") or logits.
    kind: "probs" or "logits".
    temperature: T of softmax(values / T) and of the KL loss (> 0).
    loss: "ce" (soft cross-entropy) or "kl" (T^2 KL with temperature).
    per: "stored" or "formed": which images the rows belong to.
    info: provenance recorded in meta.json (teacher, origin file, ...).
  """

  values: np.ndarray
  kind: str = "probs"
  temperature: float = 1.0
  loss: str = "ce"
  per: str = "stored"
  info: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    values = np.asarray(self.values, np.float32)
    object.__setattr__(self, "values", values)
    for name, value, options in (("kind", self.kind, KINDS), ("loss", self.loss, LOSSES),
                                 ("per", self.per, PER)):
      if value not in options:
        raise InvalidConfigError(f"soft-label {name} must be one of {', '.join(options)}, "
                                 f"got {value!r}")
    if not float(self.temperature) > 0:
      raise InvalidConfigError(f"soft-label temperature must be > 0, got {self.temperature}")
    if values.ndim != 2 or values.shape[1] < 2:
      raise InvalidConfigError(f"soft labels must be [N, num_classes], got {values.shape}")
    if not np.all(np.isfinite(values)):
      raise InvalidConfigError("soft labels contain NaN or infinite values")
    if self.kind == "probs":
      sums = values.sum(axis=1)
      if values.min() < 0 or np.abs(sums - 1).max() > _SUM_TOLERANCE:
        raise InvalidConfigError(
            "soft labels of kind 'probs' must be non-negative rows summing to 1 (rows sum "
            f"to {sums.min():.4g}..{sums.max():.4g}); pass kind='logits' for logits")

  @property
  def num_classes(self) -> int:
    return int(self.values.shape[1])

  def probabilities(self) -> np.ndarray:
    """float32 [N, num_classes] distributions: softmax(values / T) for logits."""
    if self.kind == "logits":
      return softmax(self.values, self.temperature)
    return self.values / self.values.sum(axis=1, keepdims=True)

  def describe(self) -> Dict[str, Any]:
    """meta.json's "soft_labels" entry."""
    return dict(file=FILE, kind=self.kind, temperature=float(self.temperature),
                loss=self.loss, per=self.per, num_classes=self.num_classes,
                bytes=int(self.values.nbytes), **self.info)

  @classmethod
  def from_meta(cls, values: np.ndarray, meta: Dict[str, Any]) -> "SoftLabels":
    """Rebuilds soft labels from soft_labels.npy and meta.json's "soft_labels"."""
    spec = dict(meta or {})
    known = {"file", "kind", "temperature", "loss", "per", "num_classes", "bytes"}
    try:
      return cls(values, kind=spec.get("kind", "probs"),
                 temperature=float(spec.get("temperature", 1.0)),
                 loss=spec.get("loss", "ce"), per=spec.get("per", "stored"),
                 info={k: v for k, v in spec.items() if k not in known})
    except InvalidConfigError as e:
      raise CorruptArtifactError(f"{FILE}: {e}") from e

  def hard_labels(self) -> np.ndarray:
    """int32 [N]: the most probable class of each row."""
    return np.argmax(self.values, axis=1).astype(np.int32)


def storage_bytes(soft: Optional[SoftLabels]) -> int:
  """The bytes soft labels add to a set's storage (float32 values; 0 without)."""
  return 0 if soft is None else int(soft.values.nbytes)


def for_training(soft: SoftLabels, num_stored: int, num_formed: int) -> SoftLabels:
  """The soft labels of the formed images a network trains on.

  Rows per stored image are repeated for the images each forms (a formation forms the
  same number from every stored image, in order, as `Formation.form_numpy`).

  Raises:
    InvalidConfigError: the rows do not match the stored or the formed images (e.g. a
      `bound` formation, which caps images per class: relabel the formed images).
  """
  rows = len(soft.values)
  if soft.per == "formed":
    if rows != num_formed:
      raise InvalidConfigError(f"{rows} soft-label rows for {num_formed} formed images")
    return soft
  if rows != num_stored:
    raise InvalidConfigError(f"{rows} soft-label rows for {num_stored} stored images")
  if num_formed % max(num_stored, 1):
    raise InvalidConfigError(
        f"{num_stored} stored images form {num_formed}, not a whole number each (a "
        "bounded formation); relabel the formed images (per='formed') instead")
  k = num_formed // max(num_stored, 1)
  return dataclasses.replace(soft, values=np.repeat(soft.values, k, axis=0), per="formed")


def training_set(art) -> Tuple[np.ndarray, np.ndarray, Optional[SoftLabels]]:
  """(formed images, hard labels, soft labels for them or None) of an Artifact: what a
  network trains on, the one decoding every evaluation path uses.

  Raises:
    CorruptArtifactError: a learnable formation without its weights.
    InvalidConfigError: the images are ZCA-whitened (an import of KIP's or MTT's CIFAR
      sets): they cannot be trained against the unwhitened test split.
  """
  from tfcondense import synthetic  # pylint: disable=g-import-not-at-top (TensorFlow)
  if (art.meta.get("import") or {}).get("zca"):
    raise InvalidConfigError(
        f"the {art.meta.get('method', 'imported')} set holds ZCA-whitened images; "
        "tfcondense evaluates unwhitened images against an unwhitened test split")
  images, labels = synthetic.formed_from_artifact(art, art.weights)
  soft = getattr(art, "soft_labels", None)
  if soft is not None:
    soft = for_training(soft, len(art.images), len(images))
  return images, labels, soft


def soft_loss(logits, targets, temperature: float = 1.0, loss: str = "ce"):
  """Mean over the batch of the soft-label loss (TensorFlow).

  Args:
    logits: [B, C] network outputs.
    targets: [B, C] target distributions (already mixed by CutMix).
    temperature: T of the "kl" loss.
    loss: "ce": -sum_c p_c log softmax(z)_c; "kl": T^2 sum_c p_c (log p_c - log
      softmax(z / T)_c), with 0 log 0 = 0 (Hinton et al. 2015; its gradient is T times
      the soft cross-entropy's at temperature T).

  Returns:
    A float32 scalar.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  logits = tf.cast(logits, tf.float32)
  targets = tf.cast(targets, tf.float32)
  if loss == "ce":
    return tf.reduce_mean(-tf.reduce_sum(targets * tf.nn.log_softmax(logits, -1), -1))
  if loss == "kl":
    t = float(temperature)
    log_q = tf.nn.log_softmax(logits / t, -1)
    log_p = tf.math.log(tf.maximum(targets, 1e-30))
    kl = tf.reduce_sum(tf.where(targets > 0, targets * (log_p - log_q), 0.0), -1)
    return (t * t) * tf.reduce_mean(kl)
  raise InvalidConfigError(f"unknown soft-label loss {loss!r}; known: {', '.join(LOSSES)}")
