"""Budget presets of the DC-BENCH suites: how much data, training and condensation.

DC-BENCH (Cui et al., "DC-BENCH: Dataset Condensation Benchmark", NeurIPS 2022) fixes
the protocol; what a machine can afford is the budget. A `Budget` is a frozen config
naming everything the suites do (methods, IPCs, augmentations, architectures, NAS
sample, initialisations, evaluation protocols, condensation settings), and `BUDGETS`
holds the presets:

* ``small``: minutes. A shrunk view of the source (10 training and 20 test images per
  class), three methods, 8-step evaluations: every suite and every chart of the report
  runs end to end. It is what `python -m apps.bench --suite all --source fashion_mnist
  --budget small` runs in the tests (about 2 minutes on 2 idle CPU cores); its numbers
  check the plumbing, not the methods.
* ``cpu``: the real run on a 2-core CPU (hours per suite; see `apps/bench.py` for
  the command and time estimates): full data, IPC 1 / 10 / 50 for every method, the
  IPC sweep to 500, 30 NAS architectures with ground truth trained on the full data,
  condensation capped at 15 minutes per set.
* ``paper``: DC-BENCH's own protocol (300 / 1000 epochs, batch 256, 5 models, 100 NAS
  architectures, full condensation schedules): for a GPU.

Protocols are written as (base protocol name, overrides) so that every cell records
the exact `Protocol` it was trained with.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

Pairs = Tuple[Tuple[str, Any], ...]
#: (base protocol name in `tfcondense.evaluation.PROTOCOLS`, field overrides).
ProtocolSpec = Tuple[str, Pairs]

#: DC-BENCH's evaluation augmentations (Table 1), in its order.
AUGMENTATIONS = ("none", "imagenet", "dsa", "autoaugment", "randaugment")
#: DC-BENCH's transfer architectures (Table 2) plus IDC's ResNet-10 / ResNetAP-10 /
#: DenseNet and EfficientNet-B0.
TRANSFER_MODELS = ("mlp", "convnet3", "resnet10", "resnet18", "resnet152", "resnet_ap10",
                   "densenet121", "efficientnet_b0", "vit")


@dataclasses.dataclass(frozen=True)
class Budget:
  """Everything the suites do for one budget (see the module docstring).

  Attributes:
    name: registry name.
    description: one line for --help and the report.
    train_per_class: training images kept per class (the first ones; None = all).
    test_per_class: test images kept per class for every accuracy (None = all).
    model: the ConvNet every suite but `transfer` evaluates with.
    augmentation: the augmentation of every suite but `augmentation` (DC-BENCH: dsa).
    eval_protocol: protocol of the augmentation and transfer suites.
    repetitions: models trained per evaluation (distinct seeds).
    methods: methods of the augmentation suite and the leaderboard.
    ipcs: their IPCs.
    augmentations: policies of the augmentation suite.
    sweep_methods, sweep_ipcs: the compression-ratio suite (IPCs above a class size
      are skipped with a note); `sweep_full` adds the whole training set as a line.
    sweep_protocol: its protocol (larger sets deserve more steps).
    transfer_methods, transfer_ipcs, transfer_models: the transfer suite.
    nas_methods, nas_ipc: condensed sets that rank architectures.
    nas_archs: architectures sampled from NAS-Bench-201's 15,625 (seeded).
    nas_channels, nas_cells: the reduced network (C, cells per stage).
    nas_protocol: training of each architecture on a condensed set.
    nas_full_protocol: ground-truth training on the full (view of the) source.
    nas_top_k: k of the top-k overlap.
    nas_repetitions: models trained per architecture and set (accuracies averaged).
    init_methods, init_inits, init_ipc, init_marks: the initialisation study
      (accuracy of the set after each number of condensation steps in `init_marks`).
    init_protocol: its evaluation protocol.
    cost_methods, cost_ipcs, cost_steps, cost_warmup: the cost suite.
    cost_isolated: measure each cost cell in its own process (peak memory is then the
      method's own); in-process cells report seconds only.
    condense: per-method config overrides for synthesis (pairs of pairs).
    condense_minutes: wall-clock cap per condensed set (None: the method's steps).
    condense_precision: network precision of synthesis methods that have one.
    mtt_experts: (experts, epochs, steps per epoch or None) trained for MTT.
  """

  name: str
  description: str
  train_per_class: Optional[int] = None
  test_per_class: Optional[int] = None
  model: str = "convnet3"
  augmentation: str = "dsa"
  eval_protocol: ProtocolSpec = ("cpu", ())
  repetitions: int = 3
  methods: Tuple[str, ...] = ("random", "kcenter", "dm")
  ipcs: Tuple[int, ...] = (1, 10, 50)
  augmentations: Tuple[str, ...] = AUGMENTATIONS
  sweep_methods: Tuple[str, ...] = ("random", "kcenter", "dm")
  sweep_ipcs: Tuple[int, ...] = (1, 10, 50, 100, 200)
  sweep_full: bool = True
  sweep_protocol: ProtocolSpec = ("cpu", ())
  transfer_methods: Tuple[str, ...] = ("random", "kcenter", "dm")
  transfer_ipcs: Tuple[int, ...] = (10,)
  transfer_models: Tuple[str, ...] = TRANSFER_MODELS
  nas_methods: Tuple[str, ...] = ("random", "kcenter", "dm")
  nas_ipc: int = 10
  nas_archs: int = 30
  nas_channels: int = 16
  nas_cells: int = 1
  nas_protocol: ProtocolSpec = ("quick", ())
  nas_full_protocol: ProtocolSpec = ("cpu", ())
  nas_top_k: int = 5
  nas_repetitions: int = 1
  init_methods: Tuple[str, ...] = ("dm",)
  init_inits: Tuple[str, ...] = ("random", "kcenter", "noise")
  init_ipc: int = 10
  init_marks: Tuple[int, ...] = (0, 50, 100, 200, 400, 800, 1500)
  init_protocol: ProtocolSpec = ("quick", ())
  # DC and DSA last: from IPC 10 on, one of their iterations takes minutes (15 at IPC 50).
  cost_methods: Tuple[str, ...] = ("kcenter", "dm", "mtt", "kip", "idc", "idc_i", "dc", "dsa")
  cost_ipcs: Tuple[int, ...] = (1, 10, 50)
  cost_steps: int = 5
  cost_warmup: int = 1
  cost_isolated: bool = True
  condense: Tuple[Tuple[str, Pairs], ...] = ()
  condense_minutes: Optional[float] = None
  condense_precision: str = "float32"
  mtt_experts: Tuple[int, int, Optional[int]] = (5, 10, None)

  def protocol(self, field: str, **overrides):
    """The `tfcondense.evaluation.Protocol` of spec field `field` (e.g. "eval_protocol")."""
    from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
    base, pairs = getattr(self, field)
    values = dict(pairs)
    values.update({k: v for k, v in overrides.items() if v is not None})
    if "steps" in values and "epochs" not in values:
      values["epochs"] = None
    elif "epochs" in values and "steps" not in values:
      values["steps"] = None
    return dataclasses.replace(ev.get_protocol(base), **values)

  def condense_overrides(self, method: str) -> Dict[str, Any]:
    """Config overrides for synthesis `method` under this budget."""
    return dict(dict(self.condense).get(method.lower(), ()))

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def expected_cells(budget: "Budget", class_size: Optional[int] = None) -> Dict[str, int]:
  """How many cells each suite of `budget` writes (`tfcondense.bench.suites`' loops).

  Args:
    budget: the budget.
    class_size: images in the smallest class of the source; IPCs above it are skipped
      by the suites (None: count every IPC).

  Returns:
    {suite: number of cells}, in `suites.ORDER`.
  """
  def n(ipcs):
    return sum(1 for i in ipcs if class_size is None or i <= class_size)

  b = budget
  nas_sets = len(b.nas_methods) if n((b.nas_ipc,)) else 0
  return {
      "augmentation": len(b.methods) * n(b.ipcs) * len(b.augmentations),
      "compression": len(b.sweep_methods) * n(b.sweep_ipcs) + int(b.sweep_full),
      "transfer": len(b.transfer_methods) * n(b.transfer_ipcs) * len(b.transfer_models),
      "nas": b.nas_archs * (nas_sets + 1),
      "init": (len(b.init_methods) * len(b.init_inits) * len(b.init_marks)
               if n((b.init_ipc,)) else 0),
      "cost": len(b.cost_methods) * n(b.cost_ipcs),
  }


BUDGETS: Registry = Registry("budget", hint="Budgets are defined in tfcondense/bench/budgets.py.")


def register_budget(budget: Budget) -> Budget:
  """Adds a preset to `BUDGETS` (a name registered twice is an error)."""
  BUDGETS.register(budget.name)(budget)
  return budget


def get_budget(name_or_budget) -> Budget:
  if isinstance(name_or_budget, Budget):
    return name_or_budget
  return BUDGETS.get(name_or_budget)


def check_budget(budget: Budget) -> None:
  """Checks that every name in `budget` is registered (methods, models, policies, ...).

  Raises:
    InvalidConfigError: naming the unknown entry and the known ones.
  """
  from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import methods as methods_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import models  # pylint: disable=g-import-not-at-top
  from tfcondense import synthetic  # pylint: disable=g-import-not-at-top
  from tfcondense.augment import policies  # pylint: disable=g-import-not-at-top

  known_methods = set(methods_lib.METHODS.names()) | set(condense_lib.SYNTHESIS.names())
  checks = [
      ("method", budget.methods + budget.sweep_methods + budget.transfer_methods
       + budget.nas_methods + budget.init_methods + budget.cost_methods
       + tuple(m for m, _ in budget.condense), known_methods),
      ("synthesis method (init study)", budget.init_methods,
       set(condense_lib.SYNTHESIS.names())),
      ("model", (budget.model,) + budget.transfer_models, set(models.MODELS.names())),
      ("augmentation", budget.augmentations + (budget.augmentation,),
       set(policies.POLICIES.names())),
      ("initialisation", budget.init_inits, set(synthetic.INITS.names())),
  ]
  for what, names, known in checks:
    for name in names:
      if name not in known:
        raise InvalidConfigError(f"budget {budget.name!r}: unknown {what} {name!r}; "
                                 f"known: {', '.join(sorted(known))}")
  for field in ("eval_protocol", "sweep_protocol", "nas_protocol", "nas_full_protocol",
                "init_protocol"):
    base = getattr(budget, field)[0]
    if base not in ev.PROTOCOLS:
      raise InvalidConfigError(f"budget {budget.name!r}: {field} names unknown protocol "
                               f"{base!r}; known: {', '.join(ev.PROTOCOLS)}")
  if list(budget.init_marks) != sorted(set(budget.init_marks)) or budget.init_marks[0] < 0:
    raise InvalidConfigError(f"budget {budget.name!r}: init_marks must increase from >= 0")
  if budget.repetitions < 1 or budget.nas_archs < 2 or budget.nas_top_k < 1:
    raise InvalidConfigError(f"budget {budget.name!r}: need repetitions >= 1, "
                             "nas_archs >= 2 and nas_top_k >= 1")


_SMALL_EVAL: Pairs = (("steps", 8), ("batch_size", 16), ("num_evals", 1),
                      ("cutmix_prob", 0.0))

register_budget(Budget(
    name="small",
    description=("end-to-end check in minutes: 10 train / 20 test images per class, "
                 "8-step evaluations, 4 DM iterations; numbers test the plumbing only"),
    train_per_class=10, test_per_class=20,
    eval_protocol=("smoke", _SMALL_EVAL), repetitions=1,
    methods=("random", "dm"), ipcs=(1,),
    sweep_methods=("random", "kcenter", "dm"), sweep_ipcs=(1, 2),
    sweep_protocol=("smoke", _SMALL_EVAL),
    transfer_methods=("random", "dm"), transfer_ipcs=(1,),
    transfer_models=("mlp", "convnet3"),  # one ConvNet, one not: the transfer table's two kinds
    nas_methods=("dm",), nas_ipc=1, nas_archs=3, nas_channels=8, nas_cells=1,
    nas_protocol=("smoke", _SMALL_EVAL), nas_full_protocol=("smoke", _SMALL_EVAL),
    nas_top_k=2,
    init_methods=("dm",), init_inits=("random", "kcenter", "noise"), init_ipc=1,
    init_marks=(0, 3), init_protocol=("smoke", _SMALL_EVAL),
    cost_methods=("kcenter", "dm"), cost_ipcs=(1,), cost_steps=2, cost_warmup=1,
    cost_isolated=False,
    # DM's siamese augmentation shrunk to color_crop: a third of the tracing time.
    condense=(("dm", (("iterations", 4), ("real_per_class", 10), ("strategy", "color_crop"))),),
))

#: The `cpu` budget's network precision: float32 on every CPU. The real run takes a day
#: and is spread over sessions on whichever 2-core machine is lent (AMD EPYC with native
#: bfloat16, 1.3x faster in mixed bfloat16; Intel Xeon without, 2.9x slower in it), and
#: each cell's spec names its precision: a per-machine choice would split the cached
#: cells into two incomparable halves, each recomputed on the other machine.
_CPU_PRECISION = "float32"

register_budget(Budget(
    name="cpu",
    description=("the real run on a 2-core CPU: full data, `quick` evaluations (300 SGD "
                 f"steps, {_CPU_PRECISION}, 2 models), 15 minutes of condensation per set"),
    eval_protocol=("quick", (("precision", _CPU_PRECISION),)), repetitions=2,
    methods=("random", "kcenter", "dc", "dsa", "dm", "mtt", "kip", "idc"),
    ipcs=(1, 10, 50),
    sweep_methods=("random", "kcenter", "dm", "idc"),
    sweep_ipcs=(1, 10, 50, 100, 200, 500),
    sweep_protocol=("cpu", (("precision", _CPU_PRECISION),)),
    transfer_methods=("random", "kcenter", "dsa", "dm", "mtt", "idc"),
    transfer_ipcs=(10,),
    nas_methods=("random", "kcenter", "dsa", "dm", "idc"), nas_ipc=10, nas_archs=30,
    nas_protocol=("quick", (("precision", _CPU_PRECISION),)),
    nas_full_protocol=("cpu", (("steps", 3000), ("batch_size", 128), ("cutmix_prob", 0.0),
                               ("precision", _CPU_PRECISION))),
    init_methods=("dm",), init_ipc=10,
    init_protocol=("quick", (("precision", _CPU_PRECISION),)),
    condense_minutes=15.0, condense_precision=_CPU_PRECISION,
))

_DCBENCH: Pairs = (("batch_size", 256), ("milestones", (0.5,)), ("gamma", 0.1),
                   ("cutmix_prob", 0.0), ("num_evals", 4))

register_budget(Budget(
    name="paper",
    description=("DC-BENCH's protocol (1000 epochs, as DC-BENCH trains with augmentation; "
                 "batch 256, lr x0.1 at half, 5 models; 100 NAS architectures): for a GPU"),
    eval_protocol=("paper", _DCBENCH + (("epochs", 1000),)), repetitions=5,
    methods=("random", "kcenter", "dc", "dsa", "dm", "mtt", "kip", "idc"),
    ipcs=(1, 10, 50),
    sweep_methods=("random", "kcenter", "dsa", "dm", "idc"),
    sweep_ipcs=(1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000),
    sweep_protocol=("paper", _DCBENCH + (("epochs", 1000),)),
    transfer_methods=("random", "kcenter", "dc", "dsa", "dm", "mtt", "kip", "idc"),
    transfer_ipcs=(10, 50),
    nas_methods=("random", "kcenter", "dc", "dsa", "dm", "mtt", "kip", "idc"),
    nas_ipc=10, nas_archs=100, nas_top_k=10,
    nas_protocol=("paper", _DCBENCH + (("epochs", 50),)),
    nas_full_protocol=("paper", _DCBENCH + (("epochs", 200), ("batch_size", 256))),
    init_methods=("dm", "idc"), init_marks=(0, 500, 1000, 2000, 5000, 10000, 20000),
    init_protocol=("paper", _DCBENCH + (("epochs", 300),)),
))
