"""Exemplar memories for continual learning: selection and condensation behind one registry.

A continual learner keeps a small memory of exemplars per class (Rebuffi et al.,
"iCaRL", CVPR 2017). Dataset condensation makes that memory better at the same size:
DC (Zhao et al., ICLR 2021) and DM (Zhao & Bilen, WACV 2023) condense each arriving
class group, and IDC (Kim et al., ICML 2022, Sec. 5.4 / Fig. 7) stores `ipc` images per
class that decode into `ipc * f^2` training images by multi-formation.

Every strategy is a function registered in `EXEMPLARS`::

    @EXEMPLARS.register("name")
    def name(source, ipc, seed, config, workdir) -> Exemplars

It receives ONLY the data available when its classes arrive: `source` is the step's
class subset (labels 0..k-1 in the step's class order), never data of earlier or
later classes. It returns exemplars for those classes only, with local labels; the
learner remaps them to global class ids (`Exemplars.relabel`).

One budget for all strategies: `ipc` *stored* full-size images per class, i.e.
`k * ipc * H * W * C` stored pixels for k classes (`check_budget` enforces it, also
for user-registered strategies). Selection keeps `ipc` real images per class; IDC
keeps `ipc` synthetic images per class that form `ipc * f^2` training images, so
multi-formation is compared at equal stored pixels, as IDC's Figure 7 does.

Strategies:

* ``random``, ``herding``, ``kcenter``: `tfcondense.condense` on the class subset;
* ``dm``, ``idc_i``, ``idc``: `tfcondense.condense` on the class subset with the
  small budget of `ExemplarConfig` (`steps`, `minutes`), checkpointed in `workdir` so an
  interrupted condensation resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from tfcondense import fileio
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

EXEMPLARS = Registry(
    "exemplar method",
    hint="Strategies live in tfcondense/continual/memory.py; add one with "
         "@tfcondense.continual.EXEMPLARS.register(name).")

#: Strategies that run a synthesis method through `tfcondense.condense`.
CONDENSE_STRATEGIES = ("dm", "idc_i", "idc")
#: Strategies that keep real images through `tfcondense.condense` (selection methods).
SELECT_STRATEGIES = ("random", "herding", "kcenter")


@dataclasses.dataclass(frozen=True)
class ExemplarConfig:
  """How exemplars are made; the compute budget of the condensation strategies.

  The reference condenses with 2000 x 100 IDC iterations (20,000 for DM) per class
  group on a GPU; on a CPU every run states its reduced budget, which is this.

  Attributes:
    steps: condensation work per arriving class group, in the synthesis engine's
      units: IDC / IDC-I inner iterations (a fresh network every `inner_iterations`
      of them, i.e. ceil(steps / inner_iterations) outer iterations), DM iterations.
    inner_iterations: IDC inner iterations per outer iteration (reference 100).
    minutes: wall-clock cap per class group (summed over resumed sessions); None =
      `steps` decides. Not part of the run's settings guard (like
      `engine.RunOptions.minutes`, it may change between resumes).
    factor: IDC multi-formation factor (None: the source's reference value, 2 for
      28-32 px images). Ignored by the other strategies (IDC-I is factor 1).
    precision: "float32" or "mixed_bfloat16" for the condensation network.
    condense_overrides: extra config fields of the synthesis method, as sorted
      (name, value) pairs (e.g. (("lr_img", 1e-3),)); applied to dm / idc_i / idc.
    cache_dir: on-disk cache of the herding / k-center embedding network (None:
      memory only). Not part of the settings guard.
    show_progress: progress bars of the underlying method.
  """

  steps: int = 100
  inner_iterations: int = 10
  minutes: Optional[float] = None
  factor: Optional[int] = None
  precision: str = "float32"
  condense_overrides: Tuple[Tuple[str, Any], ...] = ()
  cache_dir: Optional[str] = None
  show_progress: bool = False

  def __post_init__(self):
    if int(self.steps) < 1 or int(self.inner_iterations) < 1:
      raise InvalidConfigError(
          f"exemplar steps and inner_iterations must be >= 1, got {self.steps}, "
          f"{self.inner_iterations}")
    if self.minutes is not None and not self.minutes > 0:
      raise InvalidConfigError(f"exemplar minutes must be positive, got {self.minutes}")
    if self.factor is not None and int(self.factor) < 1:
      raise InvalidConfigError(f"factor must be >= 1, got {self.factor}")
    if isinstance(self.condense_overrides, dict):
      object.__setattr__(self, "condense_overrides",
                         tuple(sorted(self.condense_overrides.items())))

  def record(self) -> Dict[str, Any]:
    """The settings that change the exemplars (for the run's settings guard)."""
    return dict(steps=int(self.steps), inner_iterations=int(self.inner_iterations),
                factor=self.factor, precision=self.precision,
                condense_overrides={k: v for k, v in self.condense_overrides})


@dataclasses.dataclass(frozen=True, eq=False)
class Exemplars:
  """The memory of some classes: what is stored, and how it decodes for training.

  Attributes:
    images: float32 [k * ipc, H, W, C] stored images in [0, 1], class-major.
    labels: int32 [k * ipc] their labels (local 0..k-1 as a strategy returns them,
      global class ids after `relabel`).
    formation: the formation's `describe()` dict ({"name": "identity", "factor": 1}
      for real images; {"name": "uniform", "factor": 2} for IDC).
    weights: learnable formation weights (empty for the fixed formations).
    meta: what made them (strategy, budget, seconds, ...), JSON-serialisable.
  """

  images: np.ndarray
  labels: np.ndarray
  formation: Dict[str, Any]
  weights: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  meta: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def formed(self) -> Tuple[np.ndarray, np.ndarray]:
    """The training images the stored ones decode into, with their labels."""
    from tfcondense import formation as formation_lib  # pylint: disable=g-import-not-at-top
    form = formation_lib.from_meta({"formation": dict(self.formation)}, self.weights or None)
    x, y = form.form_numpy(np.asarray(self.images, np.float32),
                           np.asarray(self.labels, np.int32))
    return np.asarray(x, np.float32), np.asarray(y, np.int32)

  def relabel(self, classes: Sequence[int]) -> "Exemplars":
    """Local labels 0..k-1 mapped to the global ids `classes[label]`."""
    classes = np.asarray(classes, np.int32)
    labels = np.asarray(self.labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
      raise InvalidConfigError(
          f"exemplar labels span [{labels.min()}, {labels.max()}] but the step has "
          f"{len(classes)} classes; a strategy must return local labels 0..k-1")
    return dataclasses.replace(self, labels=classes[labels])

  def storage(self) -> Dict[str, int]:
    """Stored images and pixels (the budget), and formed images (what is trained on)."""
    from tfcondense import formation as formation_lib  # pylint: disable=g-import-not-at-top
    form = formation_lib.from_meta({"formation": dict(self.formation)}, self.weights or None)
    n = int(len(self.images))
    classes = max(1, len(np.unique(np.asarray(self.labels))))
    formed = form.storage(n, self.images.shape[1:], num_classes=classes)["formed_images"]
    return {"stored_images": n, "stored_pixels": int(np.prod(self.images.shape)),
            "formed_images": int(formed)}

  def save(self, directory: str, extra_meta: Optional[Dict[str, Any]] = None) -> None:
    """Writes an artifact directory atomically (see `tfcondense.artifact`)."""
    from tfcondense import artifact  # pylint: disable=g-import-not-at-top
    meta = dict(self.meta)
    meta.update(formation=dict(self.formation), factor=int(self.formation.get("factor", 1)))
    meta.update(extra_meta or {})
    meta.setdefault("source", "continual")
    meta.setdefault("method", meta.get("strategy", "exemplars"))
    meta.setdefault("ipc", 0)
    artifact.save_artifact(directory, self.images, self.labels, meta,
                           weights=self.weights or None)

  @classmethod
  def load(cls, directory: str) -> "Exemplars":
    from tfcondense import artifact  # pylint: disable=g-import-not-at-top
    art = artifact.load_artifact(directory)
    meta = dict(art.meta)
    formation = meta.get("formation") or {"name": "identity", "factor": 1}
    if not isinstance(formation, dict):
      formation = {"name": formation, "factor": int(meta.get("factor", 1))}
    return cls(np.asarray(art.images, np.float32), np.asarray(art.labels, np.int32),
               formation, dict(art.weights or {}), meta)


def strategy_names() -> list:
  return EXEMPLARS.names()


def get_strategy(name: str) -> Callable[..., Exemplars]:
  """The registered strategy `name` (UnknownNameError lists the known ones)."""
  return EXEMPLARS.get(name)


def check_budget(exemplars: Exemplars, num_classes: int, ipc: int,
                 image_shape: Sequence[int], strategy: str) -> None:
  """Raises InvalidConfigError unless the stored exemplars fit `ipc` images per class."""
  shape = tuple(int(d) for d in image_shape)
  budget = int(num_classes) * int(ipc) * int(np.prod(shape))
  got = exemplars.storage()["stored_pixels"]
  if tuple(exemplars.images.shape[1:]) != shape:
    raise InvalidConfigError(
        f"strategy {strategy!r} returned images of shape {exemplars.images.shape[1:]}, "
        f"expected {shape}")
  if got > budget or len(exemplars.images) != len(exemplars.labels):
    raise InvalidConfigError(
        f"strategy {strategy!r} stored {got} pixels for {num_classes} classes, over the "
        f"budget of {budget} ({ipc} images of {shape} per class); a strategy must store "
        "at most memory_ipc full-size images per class")
  counts = np.bincount(np.asarray(exemplars.labels), minlength=num_classes)
  if len(counts) != num_classes or counts.min() < 1:
    raise InvalidConfigError(
        f"strategy {strategy!r} left a class of the step without exemplars "
        f"(per-class counts {counts.tolist()})")


def build_exemplars(strategy: str, source, ipc: int, seed: int,
                    config: ExemplarConfig = ExemplarConfig(),
                    workdir: Optional[str] = None) -> Exemplars:
  """Runs `strategy` on `source` (one step's classes) and checks the budget.

  Args:
    strategy: a name in `EXEMPLARS`.
    source: the SourceData of the arriving classes only (labels 0..k-1).
    ipc: stored images per class (the memory budget).
    seed: the strategy's seed.
    config: ExemplarConfig (budget of the condensation strategies).
    workdir: checkpoints of a condensation strategy (resume); None = in memory.

  Returns:
    Exemplars with local labels.
  """
  fn = get_strategy(strategy)
  source.check_ipc(ipc)
  ex = fn(source, int(ipc), int(seed), config, workdir)
  check_budget(ex, source.num_classes, ipc, source.image_shape, strategy)
  return dataclasses.replace(ex, meta=dict(ex.meta, strategy=strategy.lower(), ipc=int(ipc),
                                           seed=int(seed)))


def _selection(method: str) -> Callable[..., Exemplars]:
  def strategy(source, ipc, seed, config, workdir):
    del workdir  # selection is fast and deterministic; nothing to resume
    from tfcondense import api  # pylint: disable=g-import-not-at-top
    # herding / kcenter cache their embedding network by source name and labels;
    # two class subsets of one source with equal class sizes have equal labels, so
    # the name carries a digest of the images to keep their caches apart.
    digest = hashlib.sha1(np.ascontiguousarray(source.train_images).tobytes()).hexdigest()[:12]
    named = dataclasses.replace(source, name=f"{source.name}-{digest}")
    art = api.condense(method, named, ipc, seed=seed, cache_dir=config.cache_dir,
                       show_progress=config.show_progress).artifact
    meta = {k: v for k, v in art.meta.items() if k in ("budget", "embedding")}
    return Exemplars(np.asarray(art.images, np.float32), np.asarray(art.labels, np.int32),
                     {"name": "identity", "factor": 1}, {}, meta)

  strategy.__name__ = f"{method}_exemplars"
  strategy.__doc__ = f"`tfcondense.condense('{method}', ...)` on the class subset."
  return strategy


for _name in SELECT_STRATEGIES:
  EXEMPLARS.register(_name)(_selection(_name))


def condense_overrides(method: str, config: ExemplarConfig) -> Dict[str, Any]:
  """The synthesis config fields `config` sets for `method` (dm, idc_i, idc)."""
  overrides: Dict[str, Any] = dict(config.condense_overrides)
  overrides["precision"] = config.precision
  if method == "dm":
    overrides["iterations"] = int(config.steps)
  else:
    inner = min(int(config.inner_iterations), int(config.steps))
    overrides["inner_iterations"] = inner
    overrides["outer_iterations"] = math.ceil(int(config.steps) / inner)
    if method == "idc" and config.factor is not None:
      overrides["factor"] = int(config.factor)
  return overrides


def _condensation(method: str) -> Callable[..., Exemplars]:
  def strategy(source, ipc, seed, config, workdir):
    from tfcondense import api  # pylint: disable=g-import-not-at-top
    from tfcondense import engine  # pylint: disable=g-import-not-at-top
    options = engine.RunOptions(workdir=workdir, minutes=config.minutes,
                                show_progress=config.show_progress,
                                desc=f"{method} exemplars", image_every=0)
    res = api.condense(method, source, ipc, options=options, seed=seed,
                       **condense_overrides(method, config))
    art = res.artifact
    formation = art.meta.get("formation")
    if not isinstance(formation, dict):
      formation = {"name": formation or "identity", "factor": art.factor}
    meta = dict(budget=art.meta.get("budget"), storage=art.meta.get("storage"),
                factor=art.factor)
    return Exemplars(np.asarray(art.images, np.float32), np.asarray(art.labels, np.int32),
                     formation, dict(art.weights or {}), meta)

  strategy.__name__ = f"{method}_exemplars"
  strategy.__doc__ = (f"`tfcondense.condense('{method}', ...)` on the class subset "
                      "with the ExemplarConfig budget.")
  return strategy


for _name in CONDENSE_STRATEGIES:
  EXEMPLARS.register(_name)(_condensation(_name))


def check_strategy(strategy: str, source_name: str, ipc: int,
                   config: ExemplarConfig) -> None:
  """Validates a strategy and its budget before anything runs.

  Raises:
    UnknownNameError: unknown strategy.
    InvalidConfigError: a condensation setting the synthesis method rejects.
  """
  get_strategy(strategy)
  if strategy.lower() in CONDENSE_STRATEGIES:
    from tfcondense import condensation as condense_lib  # pylint: disable=g-import-not-at-top
    condense_lib.make_config(strategy.lower(), source_name, ipc,
                             **condense_overrides(strategy.lower(), config))
  if config.cache_dir is not None:
    fileio.makedirs(config.cache_dir)
