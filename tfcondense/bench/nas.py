"""NAS ranking: rank correlations and NAS-Bench-201 ground truth.

DC-BENCH (Cui et al. 2022, Sec. 4.4) samples architectures from the NAS-Bench-201
cell space (Dong & Yang, ICLR 2020; the networks are `tfcondense.models.nas201`),
trains each on a condensed set, ranks them by held-out accuracy and reports the
Spearman correlation with the ranking of the same architectures trained on the full
data. The reference shipped neither the correlation code nor its ground truth; here:

* `rank_correlation`: Spearman's rho and Kendall's tau (scipy.stats, with p-values)
  and the top-k overlap (the fraction of the truly best k that the proxy also puts in
  its top k);
* ground truth either computed (`tfcondense.bench.suites`, training every architecture
  on the full source) or read from a NAS-Bench-201 results file with
  `load_nasbench201`.

NAS-Bench-201 files are PyTorch pickles (`NAS-Bench-201-v1_0-e61699.pth`,
`NAS-Bench-201-v1_1-096897.pth`, or one architecture's `<index>-FULL.pth` from the
archive directory). They are read WITHOUT PyTorch and without executing anything by
`tfcondense.torchfile` (the reader the condensed-set importers share), with tensors
(trained weights, not needed for rankings) skipped as `None`. Both torch
serialisations are understood: the legacy stream (magic number, protocol, system info,
then the object) that these files use, and the zip archive of torch >= 1.6. Plain
`{arch: accuracy}` JSON files and `arch,accuracy` CSV files work as well.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from tfcondense import torchfile
from tfcondense.errors import InvalidConfigError, SourceUnavailableError

# The legacy torch.save header (NAS-Bench-201's files use that layout).
TORCH_MAGIC_NUMBER = torchfile.TORCH_MAGIC_NUMBER
TORCH_PROTOCOL_VERSION = torchfile.TORCH_PROTOCOL_VERSION

#: NAS-Bench-201's evaluation set holding the test accuracy, per dataset (as its
#: `get_more_info`): cifar10 is trained on train+valid and tested on the original test
#: set; cifar10-valid has only a validation score on its proposed split.
DEFAULT_SETNAME = {"cifar10": "ori-test", "cifar10-valid": "x-valid", "cifar100": "x-test",
                   "imagenet16-120": "x-test"}
#: Training schedules in a NAS-Bench-201 file: "200" epochs (full) and "12" (less).
HP_KEYS = {"200": "full", "12": "less"}


def rank_correlation(proxy: Mapping[str, float], truth: Mapping[str, float],
                     top_k: int = 5) -> Dict[str, Any]:
  """How well `proxy` accuracies rank architectures compared with `truth`.

  Args:
    proxy: arch -> accuracy from training on a condensed set.
    truth: arch -> ground-truth accuracy.
    top_k: k of the top-k overlap (capped at the number of common archs).

  Returns:
    dict(n, spearman, spearman_p, kendall, kendall_p, top_k, top_k_overlap); the
    correlations are None when either ranking is constant (e.g. all at chance).
  """
  from scipy import stats  # pylint: disable=g-import-not-at-top
  common = sorted(set(proxy) & set(truth))
  n = len(common)
  out: Dict[str, Any] = dict(n=n, spearman=None, spearman_p=None, kendall=None,
                             kendall_p=None, top_k=min(int(top_k), n), top_k_overlap=None)
  if n < 2:
    return out
  p = np.array([proxy[a] for a in common], np.float64)
  t = np.array([truth[a] for a in common], np.float64)
  k = out["top_k"]
  best_p = set(np.argsort(-p, kind="stable")[:k])
  best_t = set(np.argsort(-t, kind="stable")[:k])
  out["top_k_overlap"] = len(best_p & best_t) / k
  if np.ptp(p) == 0 or np.ptp(t) == 0:
    return out
  rho = stats.spearmanr(p, t)
  tau = stats.kendalltau(p, t)
  out.update(spearman=_finite(rho.statistic), spearman_p=_finite(rho.pvalue),
             kendall=_finite(tau.statistic), kendall_p=_finite(tau.pvalue))
  return out


def _arch_str(arch) -> str:
  from tfcondense.models import nas201  # pylint: disable=g-import-not-at-top (keras)
  return nas201.arch_str(arch)


def _finite(x) -> Optional[float]:
  x = float(x)
  return x if math.isfinite(x) else None


def ranks(values: Mapping[str, float]) -> Dict[str, float]:
  """Rank of each key by value, 1 = highest (ties share their mean rank)."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  keys = sorted(values)
  r = stats.rankdata([-values[k] for k in keys], method="average")
  return {k: float(v) for k, v in zip(keys, r)}


# -- NAS-Bench-201 files ----------------------------------------------------------------

def _arch_accuracy(arch_results: Mapping[str, Any], dataset: str, setname: str,
                   epoch: Optional[int]) -> Optional[float]:
  """Mean over seeds of one architecture's accuracy (ArchResults state dict)."""
  seeds = (arch_results.get("dataset_seed") or {}).get(dataset)
  if not seeds:
    return None
  accs = []
  for seed in seeds:
    trial = arch_results["all_results"][(dataset, seed)]
    last = int(trial["epochs"]) - 1 if epoch is None else int(epoch)
    value = (trial.get("eval_acc1es") or {}).get(f"{setname}@{last}")
    if value is None:
      raise InvalidConfigError(
          f"NAS-Bench-201 results of {arch_results.get('arch_str')} on {dataset} have no "
          f"{setname}@{last}; available sets: {trial.get('eval_names')}")
    accs.append(float(value))
  return float(np.mean(accs))


def parse_nasbench201(obj: Mapping[str, Any], dataset: str = "cifar10",
                      setname: Optional[str] = None, hp: str = "200",
                      epoch: Optional[int] = None) -> Dict[str, float]:
  """arch string -> accuracy (%) from a loaded NAS-Bench-201 object.

  Args:
    obj: the whole benchmark (`meta_archs`, `arch2infos`, `evaluated_indexes`) or one
      architecture's archive entry (`full` / `less` ArchResults state dicts).
    dataset: cifar10, cifar10-valid, cifar100 or ImageNet16-120.
    setname: evaluation set (default: `DEFAULT_SETNAME[dataset]`, the test accuracy
      NAS-Bench-201's `get_more_info` reports).
    hp: "200" (the 200-epoch schedule) or "12".
    epoch: epoch index (default: the last).

  Returns:
    {canonical arch string: mean accuracy over the trained seeds}.
  """
  key = DEFAULT_SETNAME.get(dataset.lower())
  setname = setname or key
  if setname is None:
    raise InvalidConfigError(f"unknown NAS-Bench-201 dataset {dataset!r}; known: "
                             f"{', '.join(DEFAULT_SETNAME)}")
  if dataset.lower() == "imagenet16-120":
    dataset = "ImageNet16-120"
  if str(hp) not in HP_KEYS:
    raise InvalidConfigError(f"hp must be one of {', '.join(HP_KEYS)}, got {hp!r}")
  part = HP_KEYS[str(hp)]
  if "arch2infos" in obj:
    entries = [(obj["meta_archs"][int(i)], info[part])
               for i, info in obj["arch2infos"].items()]
  elif part in obj:
    entries = [(obj[part]["arch_str"], obj[part])]
  else:
    raise InvalidConfigError("not a NAS-Bench-201 object: expected keys meta_archs / "
                             f"arch2infos or full / less, got {sorted(obj)[:8]}")
  out = {}
  for arch, results in entries:
    acc = _arch_accuracy(results, dataset, setname, epoch)
    if acc is not None:
      out[_arch_str(arch)] = acc
  if not out:
    raise InvalidConfigError(f"the NAS-Bench-201 object has no {dataset} results")
  return out


def load_nasbench201(path: str, dataset: str = "cifar10", setname: Optional[str] = None,
                     hp: str = "200", epoch: Optional[int] = None) -> Dict[str, float]:
  """Ground-truth accuracies from a results file.

  Args:
    path: a NAS-Bench-201 `.pth` file (whole benchmark or one archive entry), a JSON
      file `{arch: accuracy}` (or `{"accuracies": {...}}`), or a CSV / TSV file of
      `arch,accuracy` rows (a header row is skipped).
    dataset, setname, hp, epoch: which numbers of a `.pth` file (`parse_nasbench201`).

  Returns:
    {canonical arch string: accuracy}.

  Raises:
    SourceUnavailableError: the file is missing or not in one of these formats.
  """
  if not os.path.isfile(path):
    raise SourceUnavailableError(
        f"NAS ground-truth file {path} not found (NAS-Bench-201-v1_0-e61699.pth or "
        "v1_1-096897.pth from the NAS-Bench-201 release, or a JSON / CSV arch -> "
        "accuracy file)")
  lower = path.lower()
  if lower.endswith(".json"):
    with open(path) as f:
      data = json.load(f)
    data = data.get("accuracies", data) if isinstance(data, dict) else data
    return {_arch_str(k): float(v) for k, v in data.items()}
  if lower.endswith((".csv", ".tsv", ".txt")):
    with open(path, newline="") as f:
      rows = list(csv.reader(f, delimiter="\t" if lower.endswith(".tsv") else ","))
    out = {}
    for row in rows:
      if len(row) < 2 or not row[0].strip().startswith("|"):
        continue  # header or blank
      out[_arch_str(row[0])] = float(row[1])
    if not out:
      raise SourceUnavailableError(f"{path} has no `arch,accuracy` rows")
    return out
  return parse_nasbench201(torchfile.load(path, tensors="skip"), dataset, setname, hp,
                           epoch)
