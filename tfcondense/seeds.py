"""Every named seed salt of tfcondense, in one table.

Randomness in tfcondense is stateless. A draw's key starts from a root: a Python int
seed with a salt beside it, `[seed, salt]` (`tf.constant([seed, salt])`, or
`methods.base.fresh_seed(seed, salt, i)` for a network's initialisation seed), and
further values are folded into it (`methods.base.fold(root, salt, step, ...)`). A
*stream* is one kind of draw: the keys that start from one root and one salt.

The rule: each stream of randomness gets its own salt, unique within its scope. A
scope is the root a salt is put beside or folded into:

* `SEED`: the salts put beside an integer seed, `[seed, salt]`. A run's seed, a model
  pool's, a trainer's (training.Trainer) and an initialiser's seed are all small integers that
  users choose, often the same (0) within one computation, so they count as one root
  and no two salts of this scope may be equal.
* `CONTINUAL`: the salts beside a continual learner's seed, which only derives the
  integer seeds of its steps (their model, memory and training; those are `SEED`
  seeds) and keys nothing else.
* a root of this table (e.g. "dm.root") or one named in `SCOPES` (e.g. "pool.perturb",
  the key handed to `pool.perturb`): the salts folded into that root first.

Two entries with the same scope and value are two streams drawing from one key: the
bug of issue 43, where an MTT expert's initialisation seed reused the expert root
`[seed, 0xE4E]` and the folds of its index, so that it equalled the key of the expert's
epoch-1 data (expert i: `fold(root, i, 1)` both). `check_table` raises on such a pair;
tests/test_seeds.py runs it over `TABLE`.

A root whose stream also folds a running index straight into it (`fold(root, step)`:
`Scope.indexes`) lends every value below that bound to that stream, so a salt folded
into the same root shares its keys at step == salt. `check_table` raises on such an
overlap unless the entry gives the reason it is kept (`Salt.overlap`): the overlaps
that predate this table are kept because removing them would change seeded results.

The values are those the modules used before the table existed, so every seeded result
is unchanged, except "mtt.expert_init" (issue 43: expert initialisations change).
Positional tags folded after an index inside one function (`fold(step_seed, 1)`,
`fold(step_seed, 2)` for the draws of one step) are local to that function and not
listed; neither are the per-op salts of `tfcondense.augment.ops` (`_SALT`), a table of
their own inside one scope.

A leaf module: it imports nothing from tfcondense, so any module may use it.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
from typing import Dict, List, Mapping, Tuple

#: The scope of salts put beside an integer seed: `[seed, salt]`.
SEED = "seed"
#: The scope of salts put beside a continual learner's seed.
CONTINUAL = "continual"
#: `Scope.indexes` of a root into which a step counter is folded (no useful bound).
UNBOUNDED = 2**63 - 1


@dataclasses.dataclass(frozen=True)
class Salt:
  """One stream's salt.

  Attributes:
    value: the integer folded in (or put beside the seed).
    scope: `SEED`, `CONTINUAL`, or the root it is folded into (a name of `SCOPES`).
    doc: what is drawn from it, and where.
    overlap: why an overlap with its scope's indexed stream is kept ("": none allowed).
  """

  value: int
  scope: str
  doc: str
  overlap: str = ""


@dataclasses.dataclass(frozen=True)
class Scope:
  """A root salts are folded into.

  Attributes:
    doc: what the root is.
    indexes: how many values (0, 1, ...) a stream of this root folds straight into it
      (a step, an expert, a branch); 0: none, `UNBOUNDED`: a step counter.
  """

  doc: str
  indexes: int = 0


_LEGACY = ("kept from before the table: changing it would change every seeded "
           "result that draws from this root")

_TABLE: Dict[str, Salt] = {
    # -- beside an integer seed ------------------------------------------------------
    "models.initialize": Salt(0, SEED, "models.initialize(model, seed): every weight "
                              "from [seed, 0] folded with its index (models/init.py; the "
                              "int form of augment.ops.as_seed; formation's learnable "
                              "kernel). Reserved: no other stream may take 0"),
    "training.trainer": Salt(0x5EED, SEED, "training.Trainer (evaluation, selection's "
                             "embedding, teachers, continual steps): batches, augmentation "
                             "and CutMix of each training step (step folded in)"),
    "synthetic.noise_init": Salt(0x1A1, SEED, "SyntheticSet init='noise': the uniform "
                                 "images"),
    "dc.root": Salt(0xDC, SEED, "DC / DSA: per (step, outer loop) matching and network "
                    "training draws"),
    "dc.model_init": Salt(0xDD, SEED, "DC / DSA: the fresh network of each step "
                          "(fresh_seed)"),
    "dm.root": Salt(0xD1, SEED, "DM: per step siamese draws of every class; root of "
                    "dm.pool_draw, dm.perturb"),
    "dm.model_init": Salt(0xD2, SEED, "DM: the fresh embedder of each step (fresh_seed)"),
    "idc.root": Salt(0x1DC, SEED, "IDC: per inner step matching (7) and network update "
                     "(8) draws; root of idc.pool_draw, idc.perturb"),
    "idc.model_init": Salt(0xE7, SEED, "IDC: the fresh network of each outer iteration "
                           "(fresh_seed)"),
    "idc.representative": Salt(0x9D3, SEED, "IDC arm representative: the seed handed to "
                               "RepresentativeBatches (fresh_seed(seed, ., 0))"),
    "kip.root": Salt(0x1C1B, SEED, "KIP: per step target batches"),
    "mtt.root": Salt(0x377, SEED, "MTT distillation: per step expert, start epoch (1, 2) "
                     "and student batches (3)"),
    "mtt.experts": Salt(0xE4E, SEED, "MTT experts: expert i's epoch e permutation and "
                        "augmentation, fold(root, i, e)"),
    "mtt.expert_init": Salt(0xE41, SEED, "MTT experts: expert i's initialisation "
                            "(fresh_seed(seed, ., i); issue 43: was fold(mtt.experts "
                            "root, i, 1), the key of epoch 1's data)"),
    "pool.root": Salt(0xACDD, SEED, "model pool (its own seed): root of "
                      "pool.member_batches"),
    "pool.member_init": Salt(0xACDE, SEED, "model pool: member i's initialisation "
                             "(fresh_seed; written pool.root + 1 before the table)"),
    "representative.candidates": Salt(0xD7E1, SEED, "RepresentativeBatches: refresh "
                                      "step's candidates (step, class folded in)"),
    "representative.kmeans": Salt(0xD7E2, SEED, "RepresentativeBatches: k-means "
                                  "random_state of (step, class) (fresh_seed)"),
    # -- folded into a root ----------------------------------------------------------
    "training.epoch_order": Salt(1, "training.trainer", "training.Trainer: epoch "
                                 "e's permutation, fold(root, 1, e)", overlap=(
                                     _LEGACY + " (every evaluation). Shares keys "
                                     "with step 1: its augmentation key fold(root, 1, "
                                     "2) is epoch 2's permutation key, its CutMix key "
                                     "epoch 3's")),
    "dm.pool_draw": Salt(0x9D1, "dm.root", "DM model_pool: which member embeds step i, "
                         "fold(root, ., i)", overlap=(
                             _LEGACY + " (the pool arm). Step 2513 (0x9D1) folds the "
                             "same prefix: its class-c key equals step c's draw key")),
    "dm.perturb": Salt(0x9D2, "dm.root", "DM model_pool: step i's model augmentation, "
                       "fold(root, ., i)", overlap=(
                           _LEGACY + " (the pool arm). Step 2514 (0x9D2) folds the same "
                           "prefix")),
    "idc.pool_draw": Salt(0x9D1, "idc.root", "IDC arm pool: which member starts outer "
                          "iteration i, fold(root, ., i)", overlap=(
                              _LEGACY + " (the pool arm). Inner step 2513 (0x9D1): its "
                              "matching key fold(root, 2513, 7) is outer iteration 7's "
                              "draw key")),
    "idc.perturb": Salt(0x9D2, "idc.root", "IDC arm pool: outer iteration i's model "
                        "augmentation, fold(root, ., i)", overlap=(
                            _LEGACY + " (the pool arm). Inner step 2514 (0x9D2): its "
                            "network key fold(root, 2514, 8) is outer iteration 8's "
                            "perturbation key")),
    "pool.member_batches": Salt(2, "pool.root", "model pool: member i's epoch e "
                                "permutation, augmentation and CutMix, fold(root, ., i, "
                                "e)"),
    "pool.direction": Salt(3, "pool.perturb", "perturb: the Gaussian directions, "
                           "fold(key, ., variable, direction)"),
    "pool.coefficient": Salt(4, "pool.perturb", "perturb: |a|, |b|"),
    "pool.sign": Salt(5, "pool.perturb", "perturb: the signs of a, b"),
    "mtt.choice": Salt(0x5E, "mtt.augment", "MTT Augment, mode single: which strategy "
                       "token augments the batch"),
    # -- beside a continual learner's seed (tfcondense/continual/) ----------------------
    # The continual package's salts: fresh_seed(config.seed, salt, step). Its trainer
    # subclasses training.Trainer and inherits its batch order, so its key is
    # "training.trainer" (one stream), not an entry of its own.
    "continual.memory": Salt(0xE7, CONTINUAL, "continual: step t's exemplar (memory) "
                             "seed"),
    "continual.model": Salt(0x3D, CONTINUAL, "continual: step t's model initialisation "
                            "seed"),
    "continual.train": Salt(0x7A, CONTINUAL, "continual: step t's trainer seed"),
}

_SCOPES: Dict[str, Scope] = {
    SEED: Scope("an integer seed: [seed, salt]"),
    CONTINUAL: Scope("a continual learner's seed: [seed, salt]"),
    "training.trainer": Scope("[seed, training.trainer]; steps are folded straight "
                              "in", indexes=UNBOUNDED),
    "dm.root": Scope("[seed, dm.root]; steps are folded straight in", indexes=UNBOUNDED),
    "idc.root": Scope("[seed, idc.root]; inner steps are folded straight in",
                      indexes=UNBOUNDED),
    "pool.root": Scope("[pool seed, pool.root]"),
    "pool.perturb": Scope("the key handed to pool.perturb (DM / IDC: fold(root, "
                          "*.perturb, step))"),
    "mtt.augment": Scope("the key handed to the MTT Augment; branch b of a strategy (at "
                         "most 6 tokens) is folded straight in, or with one branch the "
                         "per-op salts 11-19 of augment.ops", indexes=20),
}

#: Every salt by name (read-only).
TABLE: Mapping[str, Salt] = types.MappingProxyType(_TABLE)
#: Every salt's value by name (read-only).
SALTS: Mapping[str, int] = types.MappingProxyType({k: v.value for k, v in _TABLE.items()})
#: The roots salts are folded into, besides the entries of `TABLE` (read-only).
SCOPES: Mapping[str, Scope] = types.MappingProxyType(_SCOPES)


class UnknownSaltError(KeyError):
  """A salt name that is not in the table."""

  def __str__(self) -> str:  # KeyError would print the message quoted
    return str(self.args[0])


class SaltTableError(ValueError):
  """A table that breaks the rule of the module docstring."""


def salt(name: str) -> int:
  """The value of the salt `name` (e.g. "dm.root").

  Raises:
    UnknownSaltError: `name` is not in the table (the message names close matches).
  """
  try:
    return SALTS[name]
  except KeyError:
    close = difflib.get_close_matches(name, list(SALTS), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownSaltError(
        f"unknown seed salt {name!r}{hint} Every salt is named in tfcondense/seeds.py: "
        "add a new stream's salt there, unique within its scope") from None


def collisions(table: Mapping[str, Salt]) -> List[Tuple[str, int, Tuple[str, ...]]]:
  """(scope, value, names) of every value that more than one entry of a scope takes."""
  by_key: Dict[Tuple[str, int], List[str]] = {}
  for name, s in table.items():
    by_key.setdefault((s.scope, s.value), []).append(name)
  return sorted((scope, value, tuple(sorted(names)))
                for (scope, value), names in by_key.items() if len(names) > 1)


def overlaps(table: Mapping[str, Salt], scopes: Mapping[str, Scope]) -> List[str]:
  """Names of the entries folded into a root whose indexed stream reaches their value."""
  return sorted(name for name, s in table.items()
                if s.scope in scopes and s.value < scopes[s.scope].indexes)


def check_table(table: Mapping[str, Salt] = TABLE,
                scopes: Mapping[str, Scope] = SCOPES) -> None:
  """Raises SaltTableError unless `table` follows the rule of the module docstring.

  Every scope is `SEED`, `CONTINUAL`, an entry of `scopes` or of `table`; no two
  entries of a scope have the same value; an entry whose value its scope's indexed
  stream reaches says why (`Salt.overlap`); values are non-negative.
  """
  problems = []
  for name, s in sorted(table.items()):
    if s.scope not in scopes and s.scope not in table:
      problems.append(f"{name}: unknown scope {s.scope!r}")
    if s.value < 0:
      problems.append(f"{name}: negative value {s.value}")
  for scope, value, names in collisions(table):
    problems.append(f"{' and '.join(names)} fold the same value {value:#x} into the "
                    f"same root ({scope}): one stream's keys would be the other's")
  for name in overlaps(table, scopes):
    if not table[name].overlap:
      s = table[name]
      problems.append(f"{name} ({s.value:#x}) is folded into {s.scope}, whose indexed "
                      f"stream folds every value below {scopes[s.scope].indexes} "
                      "straight in: pick a value outside that range or another root")
  if problems:
    raise SaltTableError("seed salt table: " + "; ".join(problems))
