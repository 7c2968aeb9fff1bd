"""DD-Ranking's scores: what a condensed set is worth once labels and augmentation are
held equal.

DD-Ranking (NUS-HPC-AI-Lab, the successor of DC-BENCH; Li et al., "DD-Ranking:
Rethinking the Evaluation of Dataset Distillation", 2025) separates what the data
contribute from what soft labels and evaluation augmentation contribute:

* HLR, hard-label recovery: Acc(full data, hard labels) - Acc(set, hard labels); the
  accuracy left to recover. Lower is better.
* IOR, improvement over random: Acc(set) - Acc(random real subset of the same IPC),
  both evaluated the method's own way (both with the same teacher's soft labels if the
  method uses them). Higher is better.
* LRS, label-robust score: alpha = w IOR - (1 - w) HLR (w = 0.5), mapped to [0, 1] by
  `normalise`: (e^alpha - e^-1) / (e - e^-1).
* ARS, augmentation-robust score: beta = g (IOR with augmentation) + (1 - g) (IOR
  without), g = 0.5, normalised the same way.

Every accuracy is a fraction in [0, 1] (a mean over several trained models). Their
released code feeds percentages into the exponential, which breaks the stated [0, 1]
range; here a value above 1 is refused (`from_percent` converts). With fractions,
alpha and beta lie in [-1, 1], so LRS and ARS lie in [0, 1].
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Mapping, Optional

from tfcondense.errors import InvalidConfigError

#: DD-Ranking's default weights of IOR in LRS (w) and of the augmented term in ARS (g).
DEFAULT_W = 0.5
DEFAULT_G = 0.5
_LOW, _HIGH = math.exp(-1.0), math.exp(1.0)


def _fraction(name: str, value: float) -> float:
  value = float(value)
  if not math.isfinite(value) or not 0.0 <= value <= 1.0:
    hint = (f" (a percentage? pass {value / 100:g}, or use from_percent)"
            if 1.0 < value <= 100.0 else "")
    raise InvalidConfigError(f"{name} must be an accuracy fraction in [0, 1], got "
                             f"{value}{hint}")
  return value


def from_percent(accuracy: float) -> float:
  """A percentage (what `tfcondense.evaluate(...)` reports) as a fraction."""
  return float(accuracy) / 100.0


def normalise(x: float) -> float:
  """(e^x - e^-1) / (e - e^-1): maps x in [-1, 1] onto [0, 1], 0 onto 0.269."""
  return (math.exp(float(x)) - _LOW) / (_HIGH - _LOW)


def hlr(full_hard: float, syn_hard: float) -> float:
  """Hard-label recovery: Acc(full data) - Acc(set), both with hard labels."""
  return _fraction("full-data accuracy", full_hard) - _fraction("set accuracy", syn_hard)


def ior(syn: float, rnd: float) -> float:
  """Improvement over random: Acc(set) - Acc(random subset), both evaluated alike."""
  return _fraction("set accuracy", syn) - _fraction("random-subset accuracy", rnd)


def lrs(hlr_value: float, ior_value: float, w: float = DEFAULT_W) -> float:
  """Label-robust score: normalise(w IOR - (1 - w) HLR), in [0, 1]; higher is better."""
  if not 0.0 <= w <= 1.0:
    raise InvalidConfigError(f"w must lie in [0, 1], got {w}")
  return normalise(w * float(ior_value) - (1.0 - w) * float(hlr_value))


def ars(syn_aug: float, rnd_aug: float, syn_noaug: float, rnd_noaug: float,
        g: float = DEFAULT_G) -> float:
  """Augmentation-robust score: normalise(g IOR_aug + (1 - g) IOR_no-aug), in [0, 1]."""
  if not 0.0 <= g <= 1.0:
    raise InvalidConfigError(f"g must lie in [0, 1], got {g}")
  return normalise(g * ior(syn_aug, rnd_aug) + (1.0 - g) * ior(syn_noaug, rnd_noaug))


@dataclasses.dataclass(frozen=True)
class Accuracies:
  """The accuracies (fractions) the four scores need; None where not measured.

  Attributes:
    full_hard: the full real training set, hard labels.
    syn_hard: the set, hard labels (with the evaluation augmentation).
    syn: the set evaluated its own way (soft labels if it has them; default syn_hard).
    rnd: a random real subset of the same IPC, evaluated as `syn` (same teacher).
    syn_aug, rnd_aug: set and random subset with augmentation (default syn, rnd).
    syn_noaug, rnd_noaug: set and random subset without augmentation.
  """

  full_hard: Optional[float] = None
  syn_hard: Optional[float] = None
  syn: Optional[float] = None
  rnd: Optional[float] = None
  syn_aug: Optional[float] = None
  rnd_aug: Optional[float] = None
  syn_noaug: Optional[float] = None
  rnd_noaug: Optional[float] = None


def scores(acc: Accuracies, w: float = DEFAULT_W, g: float = DEFAULT_G
           ) -> Dict[str, Optional[float]]:
  """HLR, IOR, LRS and ARS from whatever accuracies are known (None where one is missing).

  Returns:
    {"hlr", "ior", "lrs", "ars", "w", "g"}; HLR and IOR are fractions (differences of
    accuracies), LRS and ARS scores in [0, 1].
  """
  syn = acc.syn if acc.syn is not None else acc.syn_hard
  out: Dict[str, Optional[float]] = dict(hlr=None, ior=None, lrs=None, ars=None, w=w, g=g)
  if acc.full_hard is not None and acc.syn_hard is not None:
    out["hlr"] = hlr(acc.full_hard, acc.syn_hard)
  if syn is not None and acc.rnd is not None:
    out["ior"] = ior(syn, acc.rnd)
  if out["hlr"] is not None and out["ior"] is not None:
    out["lrs"] = lrs(out["hlr"], out["ior"], w)
  syn_aug = acc.syn_aug if acc.syn_aug is not None else syn
  rnd_aug = acc.rnd_aug if acc.rnd_aug is not None else acc.rnd
  if None not in (syn_aug, rnd_aug, acc.syn_noaug, acc.rnd_noaug):
    out["ars"] = ars(syn_aug, rnd_aug, acc.syn_noaug, acc.rnd_noaug, g)
  return out


def scores_from_percent(w: float = DEFAULT_W, g: float = DEFAULT_G,
                        **accuracies: Optional[float]) -> Dict[str, Optional[float]]:
  """`scores` from accuracies in percent (keyword names as `Accuracies`' fields)."""
  return scores(Accuracies(**{k: None if v is None else from_percent(v)
                              for k, v in accuracies.items()}), w, g)


def read(evaluation: Mapping[str, Any]) -> Dict[str, float]:
  """The DD-Ranking scores an evaluation record (evaluation.json) carries, or {}.

  Accepts `{"ddranking": {"hlr": ..., ...}}` or the four keys at the top level.
  """
  if not isinstance(evaluation, Mapping):
    return {}
  block = evaluation.get("ddranking")
  block = block if isinstance(block, Mapping) else evaluation
  out = {}
  for key in ("hlr", "ior", "lrs", "ars"):
    value = block.get(key)
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
      out[key] = float(value)
  return out
