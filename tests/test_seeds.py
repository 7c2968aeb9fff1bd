"""The seed salt table (tfcondense/seeds.py): its rule, its use, and MTT's expert seeds."""
import ast
import io
import os
import pathlib
import tokenize

import numpy as np
import pytest
import tensorflow as tf

from fixtures import quadrant_source
from tfcondense import seeds
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base, mtt, mtt_augment, mtt_experts, mtt_memory

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tfcondense"
#: Hex constants that are not salts: file-format magic numbers and codes.
NOT_SALTS = ("tfcondense/data/idx.py", "tfcondense/speech/audio.py", "tfcondense/torchfile.py")
#: Fold-ins at or above this are salts, not positional tags (which are 0 .. 8).
_TAG_LIMIT = 16

#: The values of every salt before the table existed (issue 43), spelled as they were.
PRE_TABLE = {
    "training.trainer": 0x5EED, "training.epoch_order": 1, "synthetic.noise_init": 0x1A1,
    "dc.root": 0xDC, "dc.model_init": 0xDD, "dm.root": 0xD1, "dm.model_init": 0xD2,
    "dm.pool_draw": 0x9D1, "dm.perturb": 0x9D2, "idc.root": 0x1DC, "idc.model_init": 0x0E7,
    "idc.representative": 0x9D3, "idc.pool_draw": 0x9D1, "idc.perturb": 0x9D2,
    "kip.root": 0x1C1B, "mtt.root": 0x377, "mtt.choice": 0x5E, "mtt.experts": 0xE4E,
    "pool.root": 0xACDD, "pool.member_init": 0xACDD + 1, "pool.member_batches": 2,
    "pool.direction": 3, "pool.coefficient": 4, "pool.sign": 5,
    "representative.candidates": 0xD7E1, "representative.kmeans": 0xD7E2,
    "continual.memory": 0xE7, "continual.model": 0x3D, "continual.train": 0x7A,
    "models.initialize": 0,
}


# -- the table -----------------------------------------------------------------------------
def test_the_table_follows_its_rule():
  seeds.check_table()
  assert seeds.collisions(seeds.TABLE) == []
  # Every kept overlap says why, and every reason given is for a real overlap.
  assert set(seeds.overlaps(seeds.TABLE, seeds.SCOPES)) == {
      n for n, s in seeds.TABLE.items() if s.overlap}
  assert set(seeds.SALTS) == set(seeds.TABLE)
  assert all(seeds.SALTS[n] == s.value for n, s in seeds.TABLE.items())


def test_values_are_kept_except_the_mtt_expert_initialisation():
  assert set(seeds.SALTS) - set(PRE_TABLE) == {"mtt.expert_init"}
  assert {n: seeds.SALTS[n] for n in PRE_TABLE} == PRE_TABLE


def test_the_rule_flags_mtt_s_old_expert_initialisation():
  # Before issue 43 the expert initialisation drew from the experts' root: as a table
  # entry, the same value beside the same seed as "mtt.experts".
  old = dict(seeds.TABLE)
  old["mtt.expert_init"] = seeds.Salt(0xE4E, seeds.SEED, "fold([seed, 0xE4E], i, 1)[0]")
  with pytest.raises(seeds.SaltTableError, match="mtt.expert_init and mtt.experts"):
    seeds.check_table(old, seeds.SCOPES)
  assert seeds.collisions(old) == [(seeds.SEED, 0xE4E, ("mtt.expert_init", "mtt.experts"))]


def test_the_rule_flags_a_shared_root_value_an_index_overlap_and_an_unknown_scope():
  shared = dict(seeds.TABLE, other=seeds.Salt(0x9D1, "dm.root", "x", overlap="a reason"))
  with pytest.raises(seeds.SaltTableError, match="dm.pool_draw and other"):
    seeds.check_table(shared, seeds.SCOPES)
  # A salt folded into a root whose steps are folded straight in overlaps step == salt.
  indexed = dict(seeds.TABLE, new=seeds.Salt(7, "dm.root", "x"))
  with pytest.raises(seeds.SaltTableError, match="new .0x7. is folded into dm.root"):
    seeds.check_table(indexed, seeds.SCOPES)
  with pytest.raises(seeds.SaltTableError, match="unknown scope 'nowhere'"):
    seeds.check_table(dict(seeds.TABLE, new=seeds.Salt(5, "nowhere", "x")), seeds.SCOPES)
  # Equal values in different roots are different streams.
  seeds.check_table(dict(seeds.TABLE, new=seeds.Salt(0x9D1, "pool.root", "x")), seeds.SCOPES)


def test_salt_names_a_close_match_for_an_unknown_name():
  assert seeds.salt("dm.root") == 0xD1
  with pytest.raises(seeds.UnknownSaltError, match="did you mean dm.root") as e:
    seeds.salt("dm.rot")
  assert isinstance(e.value, KeyError) and "tfcondense/seeds.py" in str(e.value)
  with pytest.raises(TypeError):
    seeds.TABLE["x"] = seeds.Salt(1, seeds.SEED, "read-only")  # type: ignore[index]


def test_seeds_is_a_leaf_module():
  tree = ast.parse((PACKAGE / "seeds.py").read_text(encoding="utf-8"))
  imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
  imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
  assert not [m for m in imported if m.startswith("tfcondense")], imported


# -- every salt comes from the table ------------------------------------------------------
def _is_int(node) -> bool:
  return isinstance(node, ast.Constant) and type(node.value) is int  # bool is not a salt


def _call_name(node) -> str:
  f = node.func
  return f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")


def salt_literals(source: str):
  """(line, text) of every salt spelled as a literal in Python `source`: hex numbers,
  `[<seed>, <int != 0>]` keys, `fresh_seed(seed, <int>, i)`, and fold-ins of an int
  >= _TAG_LIMIT."""
  found = []
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.NUMBER and tok.string.lower().startswith("0x"):
      found.append((tok.start[0], tok.string))
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) == 2:
      first, second = node.elts
      if "seed" in ast.unparse(first) and _is_int(second) and second.value != 0:
        found.append((node.lineno, ast.unparse(node)))
    elif isinstance(node, ast.Call):
      name = _call_name(node)
      if name == "fresh_seed" and len(node.args) >= 2 and _is_int(node.args[1]):
        found.append((node.lineno, ast.unparse(node)))
      elif name in ("fold", "stateless_fold_in") and any(
          _is_int(a) and a.value >= _TAG_LIMIT for a in node.args[1:]):
        found.append((node.lineno, ast.unparse(node)))
  return sorted(set(found))


def _scanned(rel: str) -> bool:
  return rel != "tfcondense/seeds.py" and rel not in NOT_SALTS


def test_the_scan_finds_salts_spelled_as_literals():
  bad = ("s = tf.constant([cfg.seed, 0xDC], tf.int64)\n"
         "k = [int(seed), 24301]\n"
         "i = base.fresh_seed(seed, 7, step)\n"
         "f = base.fold(root, 2513, step)\n"
         "ok = base.fold(seed, 1, step), [seed, 0], base.fresh_seed(seed, SALT, 1)\n")
  assert [line for line, _ in salt_literals(bad)] == [1, 1, 2, 3, 4]


@pytest.mark.heavy
def test_every_salt_in_tfcondense_comes_from_the_table():
  found = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    rel = path.relative_to(ROOT).as_posix()
    if _scanned(rel):
      hits = salt_literals(path.read_text(encoding="utf-8"))
      if hits:
        found[rel] = hits
  assert not found, ("salts spelled as literals; name them in tfcondense/seeds.py and use "
                     f"seeds.salt(name): {found}")


# -- MTT's experts ------------------------------------------------------------------------
def _data_key(seed, expert, epoch):
  """First element of expert `expert`'s epoch-`epoch` data key, as fresh_seed reduces."""
  root = tf.constant([seed, mtt_experts.SALT_EXPERTS], tf.int64)
  return int(base.fold(root, expert, epoch)[0].numpy()) % (2**31 - 1)


def test_expert_initialisation_is_no_epoch_s_data_key():
  for seed in (0, 3):
    data = {_data_key(seed, i, e) for i in range(4) for e in range(5)}
    inits = [mtt.expert_init_seed(seed, i) for i in range(4)]
    assert len(set(inits)) == 4 and not set(inits) & data
    # The derivation before issue 43 was expert i's epoch-1 data key.
    old = [int(base.fold(tf.constant([seed, 0xE4E], tf.int64), i, 1)[0].numpy()) % (2**31 - 1)
           for i in range(4)]
    assert old == [_data_key(seed, i, 1) for i in range(4)]


def test_expert_files_of_two_versions_are_never_mixed(tmp_path):
  def write(name):
    np.save(tmp_path / name, np.zeros((2, 3), np.float32))

  write("expert_0000.npy")
  write("expert_0001.npy")
  assert [os.path.basename(p) for p in mtt.expert_paths(str(tmp_path))] == [
      "expert_0000.npy", "expert_0001.npy"]  # version 1 alone: still distilled from
  write(mtt.EXPERT_PATTERN.format(0))
  assert [os.path.basename(p) for p in mtt.expert_paths(str(tmp_path))] == [
      "expert_v2_0000.npy"]


def test_train_experts_trains_the_current_version_beside_version_1(tmp_path):
  src = quadrant_source()
  np.save(tmp_path / "expert_0000.npy", np.zeros((2, 3), np.float32))
  cfg = mtt.MTTConfig(model_options=(("width", 4),), strategy="none")
  paths = mtt.train_experts(src, str(tmp_path), 1, 1, cfg, steps_per_epoch=1, batch_size=8,
                            show_progress=False)
  assert [os.path.basename(p) for p in paths] == ["expert_v2_0000.npy"]
  assert np.load(paths[0]).shape[0] == 2
  assert np.load(tmp_path / "expert_0000.npy").shape == (2, 3)  # left as it was
  assert mtt.expert_paths(str(tmp_path)) == paths


# -- the split of mtt.py ----------------------------------------------------------------------
def test_mtt_still_exports_the_names_of_its_parts():
  assert mtt.Augment is mtt_augment.Augment and mtt.AUG_MODES == ("single", "all")
  for name in ("expert_init_seed", "expert_paths", "flat_parameters", "load_experts",
               "EXPERT_PATTERN"):
    assert getattr(mtt, name) is getattr(mtt_experts, name)
  assert mtt.forward_floats is mtt_memory.forward_floats
  assert mtt.unroll_memory_bytes is mtt_memory.unroll_memory_bytes
  assert mtt._AUTO_MEMORY_FRACTION == mtt_memory.AUTO_MEMORY_FRACTION  # pylint: disable=protected-access
  assert all(hasattr(mtt, n) for n in mtt.__all__)


def test_needs_checkpointing_follows_the_estimates():
  args = (20, 500, 1_250_000, 320_000, 784)
  plain = mtt_memory.unroll_memory_bytes(*args, checkpointed=False)
  ckpt = mtt_memory.unroll_memory_bytes(*args, checkpointed=True)
  frac = mtt_memory.AUTO_MEMORY_FRACTION
  assert not mtt_memory.needs_checkpointing(None, *args)
  assert not mtt_memory.needs_checkpointing(plain / frac * 1.01, *args)
  assert mtt_memory.needs_checkpointing((plain + ckpt) / 2 / frac, *args)
  with pytest.raises(InvalidConfigError, match="batch_syn"):
    mtt_memory.needs_checkpointing(ckpt / frac * 0.99, *args)
