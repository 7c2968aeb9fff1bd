"""Settings of a continual run: per-step training protocols and `ContinualConfig`.

The protocols follow the class-incremental reference of IDC (Kim et al., ICML 2022,
Sec. 5.4; code base of Hou et al., CVPR 2019): 1000 epochs per step with the
evaluator's SGD recipe (`tfcondense.evaluation.Protocol`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple, Union

from tfcondense import evaluation as ev
from tfcondense.continual import memory as memory_lib
from tfcondense.errors import InvalidConfigError

#: Continual protocols: the reference trains 1000 epochs per step, lr x0.2 at epochs
#: 600 and 800 (milestones 0.6 / 0.8), SGD 0.01 / 0.9 / 5e-4, batch 64, DSA
#: augmentation then CutMix p = 0.5. `cpu` keeps all of it but a fixed 500 SGD steps
#: per step; `smoke` is for tests.
PROTOCOLS: Dict[str, ev.Protocol] = {
    "paper": ev.Protocol(name="continual_paper", epochs=1000, milestones=(0.6, 0.8),
                         num_evals=1),
    "cpu": ev.Protocol(name="continual_cpu", epochs=None, steps=500, milestones=(0.6, 0.8),
                       num_evals=1),
    "smoke": ev.Protocol(name="continual_smoke", epochs=None, steps=4, batch_size=16,
                         milestones=(0.6, 0.8), num_evals=1),
}

#: What the network trains on at each step.
TRAIN_ON = ("memory", "memory+current")


def get_protocol(protocol: Union[str, ev.Protocol], **overrides) -> ev.Protocol:
  """A continual protocol (name in PROTOCOLS) or a Protocol, with field overrides."""
  if isinstance(protocol, str):
    if protocol not in PROTOCOLS:
      raise InvalidConfigError(
          f"unknown continual protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[protocol]
  return ev.get_protocol(protocol, **overrides)


@dataclasses.dataclass(frozen=True)
class ContinualConfig:
  """Memory, training and distillation settings shared by both learners.

  Attributes:
    memory_ipc: stored full-size images per class (the memory budget; IDC stores
      this many and trains on memory_ipc * f^2 formed images). Reference: 20.
    strategy: exemplar strategy (name in `tfcondense.continual.EXEMPLARS`).
    exemplars: ExemplarConfig (the condensation budget of dm / idc_i / idc).
    protocol: training protocol per step (a name in PROTOCOLS or a Protocol).
    model: network (models registry name) and `model_options` (sorted pairs).
    temperature: distillation temperature T (reference 2).
    distill_weight: beta, the weight of the distillation term (reference 1; 0 = off).
    train_on: "memory" (only exemplars, the class-incremental reference) or
      "memory+current" (the current step's full training set plus the memory of
      earlier steps, DC's task-incremental setting); None = the learner's default.
    flip: horizontal flips in the augmentation (None: off for digit sources).
    seed: every random choice derives from it (per step by stateless folding).
  """

  memory_ipc: int = 20
  strategy: str = "herding"
  exemplars: memory_lib.ExemplarConfig = memory_lib.ExemplarConfig()
  protocol: Union[str, ev.Protocol] = "cpu"
  model: str = "convnet3"
  model_options: Tuple[Tuple[str, Any], ...] = ()
  temperature: float = 2.0
  distill_weight: float = 1.0
  train_on: Optional[str] = None
  flip: Optional[bool] = None
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, "protocol", get_protocol(self.protocol))
    if isinstance(self.model_options, dict):
      object.__setattr__(self, "model_options", tuple(sorted(self.model_options.items())))
    self.check()

  def check(self) -> None:
    """Raises InvalidConfigError / UnknownNameError for a bad setting (nothing runs)."""
    from tfcondense.models import MODELS  # pylint: disable=g-import-not-at-top
    if isinstance(self.memory_ipc, bool) or int(self.memory_ipc) != self.memory_ipc \
        or self.memory_ipc < 1:
      raise InvalidConfigError(
          f"a memory of memory_ipc={self.memory_ipc!r} images per class cannot hold one "
          "image per class; use memory_ipc >= 1 (the reference keeps 20)")
    memory_lib.get_strategy(self.strategy)
    MODELS.get(self.model)
    if not self.temperature > 0:
      raise InvalidConfigError(f"temperature must be positive, got {self.temperature}")
    if not self.distill_weight >= 0:
      raise InvalidConfigError(f"distill_weight must be >= 0, got {self.distill_weight}")
    if self.train_on is not None and self.train_on not in TRAIN_ON:
      raise InvalidConfigError(
          f"train_on must be one of {', '.join(TRAIN_ON)}, got {self.train_on!r}")

  def record(self) -> Dict[str, Any]:
    """The settings that change the results (for the run directory's guard)."""
    return dict(memory_ipc=int(self.memory_ipc), strategy=self.strategy.lower(),
                exemplars=self.exemplars.record(),
                protocol=dataclasses.asdict(self.protocol), model=self.model,
                model_options={k: v for k, v in self.model_options},
                temperature=float(self.temperature),
                distill_weight=float(self.distill_weight), train_on=self.train_on,
                flip=self.flip, seed=int(self.seed))
