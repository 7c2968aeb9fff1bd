"""The report's numbers: DC-BENCH's derived tables and findings from the cached cells.

One function per suite turns its cells into a `Section` (tables, findings, and the
chart drawn by `tfcondense.bench.plots`): augmentation (DC-BENCH Table 1's no-aug /
average / best), compression (accuracy against IPC; where synthesis stops beating
selection), transfer (Table 2's transfer average), NAS (rank correlations against the
ground truth, NAS-Bench-201 space, Dong & Yang, ICLR 2020), initialisation and cost
(Table 8); a leaderboard per IPC gathers them with DD-Ranking's HLR / IOR / LRS / ARS
(`tfcondense.bench.ddranking`), and a progress table counts the cells against the
budget (Cui et al., "DC-BENCH", NeurIPS 2022).
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tfcondense.bench import budgets as budgets_lib
from tfcondense.bench import ddranking
from tfcondense.bench import init_study
from tfcondense.bench import nas as nas_lib
from tfcondense.bench import plots
from tfcondense.bench import store as store_lib
from tfcondense.bench.rendering import Section, Table

#: DC-BENCH's NAS Spearman correlations on CIFAR-10 (Sec. 4.4), for comparison.
DCBENCH_NAS_SPEARMAN = {"random": -0.06, "kcenter": 0.11, "dc": -0.19, "dsa": -0.37,
                        "dm": -0.37, "kip": -0.50, "mtt": -0.09}
#: Display order of methods (others follow alphabetically).
METHOD_ORDER = plots.METHOD_ORDER
SELECTION = ("random", "herding", "kcenter")
SUITE_TITLES = {"augmentation": "Augmentation at evaluation",
                "compression": "Compression ratio (IPC sweep)",
                "transfer": "Transfer across architectures",
                "nas": "NAS ranking", "init": "Initialisation", "cost": "Cost"}


def _order(names: Iterable[str]) -> List[str]:
  names = set(names)
  first = [m for m in METHOD_ORDER if m in names]
  return first + sorted(names - set(first))


def _acc(r: Dict[str, Any]) -> str:
  return f"{r['acc_mean']:.2f} ± {r['acc_std']:.2f}"


def _num(x: Optional[float], fmt: str = "{:.2f}") -> str:
  return "–" if x is None or not np.isfinite(x) else fmt.format(x)


def describe_protocol(p: Dict[str, Any], augmentation: bool = True) -> str:
  """One line for a `Protocol` stored as a dict in a cell spec."""
  length = f"{p['steps']} steps" if p.get("steps") is not None else f"{p['epochs']} epochs"
  milestones = "/".join(f"{m:.2g}" for m in p.get("milestones") or ())
  text = (f"{p['name']}: {length}, batch {p['batch_size']}, SGD lr {p['lr']} momentum "
          f"{p['momentum']} wd {p['weight_decay']}"
          + (f" (x{p['gamma']} at {milestones} of training)" if milestones else "")
          + (f", {_augmentation_text(p)} augmentation" if augmentation else "")
          + (f", CutMix p {p['cutmix_prob']}" if p.get("cutmix_prob") else ", no CutMix")
          + (f", {p['precision']}" if p.get("precision", "float32") != "float32" else "")
          + f" (evaluation protocol v{store_lib.protocol_version(p)})")
  return text


def _augmentation_text(p: Dict[str, Any]) -> str:
  """The augmentation of a stored protocol, with its DSA strategy where it has one."""
  strategy = store_lib.effective_protocol(p).get("strategy")
  return f"{p['augmentation']} ({strategy})" if strategy else p["augmentation"]


def _protocols(cells: Sequence[Dict[str, Any]], augmentation: bool = True) -> str:
  descs = sorted({describe_protocol(c["spec"]["protocol"], augmentation) for c in cells
                  if c["spec"].get("protocol")})
  reps = sorted({c["spec"].get("repetitions") for c in cells if c["spec"].get("repetitions")})
  view = next((c["spec"].get("view") for c in cells if c["spec"].get("view")), None) or {}
  data = ""
  if view.get("train_per_class") or view.get("test_per_class"):
    data = (f" Data: first {view.get('train_per_class') or 'all'} training and "
            f"{view.get('test_per_class') or 'all'} test images per class.")
  if not descs:
    return data.strip()
  return (f"Protocol: {'; '.join(descs)}; {', '.join(map(str, reps))} model(s) per cell, "
          f"accuracy = mean ± std over them of the best test accuracy." + data)


# -- sections ---------------------------------------------------------------------------

def _augmentation(source: str, cells, out: str) -> Optional[Section]:
  if not cells:
    return None
  rows = [c["result"] for c in cells]
  values = {(r["method"], r["ipc"], r["augmentation"]): (r["acc_mean"], r["acc_std"])
            for r in rows}
  methods = _order({r["method"] for r in rows})
  ipcs = sorted({r["ipc"] for r in rows})
  augs = [a for a in budgets_lib.AUGMENTATIONS if any(r["augmentation"] == a for r in rows)]
  augs += sorted({r["augmentation"] for r in rows} - set(augs))
  png = plots.augmentation_bars(values, methods, ipcs, augs,
                                os.path.join(out, f"augmentation_{source}.png"),
                                f"{source}: test accuracy by evaluation augmentation")
  table_rows, gains = [], []
  for ipc in ipcs:
    for m in methods:
      accs = {a: values[(m, ipc, a)][0] for a in augs if (m, ipc, a) in values}
      if not accs:
        continue
      with_aug = [v for a, v in accs.items() if a != "none"]
      best = max(accs, key=accs.get)
      if "none" in accs and with_aug:
        gains.append((m, ipc, max(with_aug) - accs["none"]))
      table_rows.append([m, str(ipc)] + [_num(accs.get(a)) for a in augs] + [
          _num(accs.get("none")), _num(float(np.mean(with_aug)) if with_aug else None),
          f"{accs[best]:.2f} ({best})"])
  findings = []
  if gains:
    helped = [g for g in gains if g[2] > 0]
    findings.append(
        f"Augmentation at evaluation helped {len(helped)} of {len(gains)} sets (best "
        f"policy minus none: {min(g[2] for g in gains):+.2f} to "
        f"{max(g[2] for g in gains):+.2f} points). DC-BENCH: it helps every method.")
  return Section(
      f"{source}-augmentation", SUITE_TITLES["augmentation"],
      "Each set trained from scratch under every evaluation augmentation, drawn per "
      "sample (DC-BENCH Table 1 draws one transform per batch). "
      + _protocols(cells, augmentation=False),
      [(png, "augmentation bars")],
      [Table(["method", "IPC"] + augs + ["no aug", "average (with aug)", "best"],
             table_rows)], findings)


def set_budget_text(cell: Dict[str, Any]) -> Optional[str]:
  """How much condensation made a cell's set, e.g. "91 of 200000 it, 15 min".

  Read from the result's `set_budget` (sets the suite condensed) or the spec's imported
  `budget` (`--sets_from` sets); a cell of a suite-made set written before results
  carried it gives its minutes cap alone. None for a selection or the full data.
  """
  set_spec = cell.get("spec", {}).get("set") or {}
  made_by = cell.get("result", {}).get("set_budget") or set_spec.get("budget")
  if isinstance(made_by, dict) and made_by.get("steps") is not None:
    text = f"{made_by['steps']}"
    if made_by.get("total_steps"):
      text += f" of {made_by['total_steps']}"
    text += " it"
    if made_by.get("minutes") is not None:
      text += f", {made_by['minutes']:.0f} min"
    return text
  if set_spec.get("minutes"):
    return f"{set_spec['minutes']:g} min cap (iterations not recorded)"
  return None


def _compression(source: str, cells, out: str) -> Optional[Section]:
  if not cells:
    return None
  full = next((c["result"] for c in cells if c["key"] == "full"), None)
  rows = [c["result"] for c in cells if c["key"] != "full"]
  if not rows:
    return None
  curves: Dict[str, List[Tuple[int, float, float]]] = defaultdict(list)
  for r in rows:
    curves[r["method"]].append((r["ipc"], r["acc_mean"], r["acc_std"]))
  curves = {m: curves[m] for m in _order(curves)}
  png = plots.ipc_lines(curves, SELECTION, os.path.join(out, f"compression_{source}.png"),
                        f"{source}: accuracy against images per class",
                        full=(full["acc_mean"], full["acc_std"]) if full else None)
  ipcs = sorted({r["ipc"] for r in rows})
  acc = {(r["method"], r["ipc"]): r for r in rows}
  table_rows = [[m] + [_acc(acc[(m, i)]) if (m, i) in acc else "–" for i in ipcs]
                for m in curves]
  sel = [m for m in curves if m in SELECTION]
  syn = [m for m in curves if m not in SELECTION]
  gaps = {}
  for i in ipcs:
    s = [acc[(m, i)]["acc_mean"] for m in syn if (m, i) in acc]
    b = [acc[(m, i)]["acc_mean"] for m in sel if (m, i) in acc]
    if s and b:
      gaps[i] = max(s) - max(b)
  findings = []
  if gaps:
    table_rows.append(["best synthesis − best selection"]
                      + [_num(gaps.get(i), "{:+.2f}") for i in ipcs])
    wins = [i for i in ipcs if gaps.get(i, 0) > 0]
    if not wins:
      findings.append("Synthesis never beat selection here (at the IPCs measured).")
    else:
      after = [i for i in ipcs if i > max(wins) and i in gaps]
      findings.append(
          f"Synthesis beat the best selection at IPC {', '.join(map(str, wins))}; "
          + (f"from IPC {after[0]} on selection is as good or better."
             if after else "it still did at the largest IPC measured.")
          + " DC-BENCH (CIFAR-10): condensation gains vanish above about 200 IPC.")
  if full:
    table_rows.append(["full data"] + [_acc(full)] + [""] * (len(ipcs) - 1))
  tables = [Table(["method"] + [f"IPC {i}" for i in ipcs], table_rows)]
  made_by = {(c["result"]["method"], c["result"]["ipc"]): set_budget_text(c)
             for c in cells if c["key"] != "full"}
  budget_rows = [[m] + [made_by.get((m, i)) or "–" for i in ipcs]
                 for m in syn if any(made_by.get((m, i)) for i in ipcs)]
  if budget_rows:
    tables.append(Table(["method"] + [f"IPC {i}" for i in ipcs], budget_rows,
                        caption="Condensation behind each synthesis set: iterations done "
                                "of the method's schedule, wall-clock minutes"))
  return Section(
      f"{source}-compression", SUITE_TITLES["compression"],
      "Selection (dashed) and synthesis (solid) methods at growing IPC; the dotted line "
      "is the whole training set under the same protocol. " + _protocols(cells),
      [(png, "accuracy against IPC")], tables, findings)


def _transfer_models(rows) -> Tuple[List[str], List[str]]:
  """The non-ConvNet networks every set in `rows` has been trained on, and all of them.

  DC-BENCH's "transfer" column averages over the networks other than the ConvNet the
  sets were condensed with; while a run is partial, sets have different networks, and an
  average over each set's own would compare unlike things, so every average is taken over
  the networks all sets share (the first list). The second lists every non-ConvNet
  network any set has: when the two differ, the average is partial and says so.
  """
  order = list(budgets_lib.TRANSFER_MODELS)
  key = lambda m: (order.index(m) if m in order else len(order), m)
  per_set = defaultdict(set)
  for r in rows:
    per_set[(r["method"], r["ipc"])].add(r["model"])
  if not per_set:
    return [], []
  common = set.intersection(*per_set.values())
  every = set.union(*per_set.values())
  return (sorted((m for m in common if not m.startswith("convnet")), key=key),
          sorted((m for m in every if not m.startswith("convnet")), key=key))


def _transfer_average(per_model: Dict[str, float], models: List[str]) -> Optional[float]:
  vals = [per_model[m] for m in models if m in per_model]
  return float(np.mean(vals)) if models and len(vals) == len(models) else None


def _transfer(source: str, cells, out: str) -> Optional[Section]:
  if not cells:
    return None
  rows = [c["result"] for c in cells]
  order = list(budgets_lib.TRANSFER_MODELS)
  models = [m for m in order if any(r["model"] == m for r in rows)]
  models += sorted({r["model"] for r in rows} - set(models))
  sets = sorted({(r["method"], r["ipc"]) for r in rows},
                key=lambda s: (s[1], _order([r["method"] for r in rows]).index(s[0])))
  acc = {(r["method"], r["ipc"], r["model"]): r for r in rows}
  shared, others = _transfer_models(rows)
  matrix, table_rows = [], []
  for m, i in sets:
    per = {mo: acc[(m, i, mo)]["acc_mean"] for mo in models if (m, i, mo) in acc}
    avg = _transfer_average(per, shared)
    matrix.append([per.get(mo, np.nan) for mo in models] + [np.nan if avg is None else avg])
    table_rows.append([m, str(i)] + [_acc(acc[(m, i, mo)]) if (m, i, mo) in acc else "–"
                                     for mo in models] + [_num(avg)])
  png = plots.heatmap(np.array(matrix), [f"{m} @ IPC {i}" for m, i in sets],
                      models + ["transfer avg"], os.path.join(out, f"transfer_{source}.png"),
                      f"{source}: sets condensed with ConvNet-3, trained on other networks")
  return Section(
      f"{source}-transfer", SUITE_TITLES["transfer"],
      "Each set (condensed or selected with ConvNet-3 where a network is used) trained "
      "on other architectures; \"transfer avg\" is the mean over the architectures that "
      "are not a ConvNet (DC-BENCH Table 2)" + (
          "" if shared == others else
          f", here over the {len(shared)} of {len(others)} that every set has been trained on "
          f"so far ({', '.join(shared) or 'none'})") + ". " + _protocols(cells),
      [(png, "transfer heat map")],
      [Table(["method", "IPC"] + models + ["transfer avg"], table_rows)])


def _nas_tables(cells) -> Tuple[Dict[str, float], Dict[str, Dict[str, float]], str]:
  truth, proxies, desc = {}, defaultdict(dict), ""
  for c in cells:
    r, spec = c["result"], c["spec"]
    arch = r.get("arch") or (spec.get("model_kwargs") or {}).get("arch")
    if c["key"].startswith("truth_"):
      truth[arch] = r["last_mean"]
      if spec.get("kind") == "nasbench201":
        desc = (f"Ground truth: NAS-Bench-201 file {spec['file']} ({spec['dataset']}, test "
                "accuracy after 200 epochs, mean over seeds).")
      else:
        kw = spec.get("model_kwargs") or {}
        desc = (f"Ground truth: each architecture trained on the full training data "
                f"({describe_protocol(spec['protocol'])}; {spec.get('repetitions')} run(s); "
                f"network C = {kw.get('channels')}, {kw.get('cells_per_stage')} cell(s) per "
                "stage), accuracy after the last step.")
    else:
      proxies[f"{r['method']}@{r['ipc']}"][arch] = r["last_mean"]
  return truth, dict(proxies), desc


def _nas(source: str, cells, out: str) -> Optional[Section]:
  truth, proxies, desc = _nas_tables(cells)
  if not truth or not proxies:
    return None
  budget = next((c.get("budget") for c in cells if c.get("budget")), None)
  top_k = (budgets_lib.BUDGETS.get(budget).nas_top_k if budget in budgets_lib.BUDGETS
           else 5)
  from tfcondense.models import nas201  # pylint: disable=g-import-not-at-top (keras)
  # Cells with no path to the output score chance whatever the data, so every proxy
  # ranks them last; the "trainable" column leaves them out of the correlation.
  trainable = {a: v for a, v in truth.items() if not nas201.is_degenerate(a)}
  panels, table_rows, findings, rhos = {}, [], [], []
  for label in sorted(proxies, key=lambda s: _order(
      [p.split("@")[0] for p in proxies]).index(s.split("@")[0])):
    stats = nas_lib.rank_correlation(proxies[label], truth, top_k)
    live = nas_lib.rank_correlation(proxies[label], trainable, top_k)
    common = sorted(set(proxies[label]) & set(truth))
    tr = nas_lib.ranks({a: truth[a] for a in common})
    pr = nas_lib.ranks({a: proxies[label][a] for a in common})
    sub = (f"ρ = {_num(stats['spearman'])}, τ = {_num(stats['kendall'])}, "
           f"top-{stats['top_k']} = {_num(stats['top_k_overlap'])}")
    panels[label] = (np.array([tr[a] for a in common]), np.array([pr[a] for a in common]),
                     sub)
    method = label.split("@")[0]
    if stats["spearman"] is not None:
      rhos.append(stats["spearman"])
    table_rows.append([label, str(stats["n"]),
                       f"{_num(stats['spearman'])} (p {_num(stats['spearman_p'], '{:.2g}')})",
                       f"{_num(stats['kendall'])} (p {_num(stats['kendall_p'], '{:.2g}')})",
                       _num(stats["top_k_overlap"]),
                       f"{_num(live['spearman'])} (p {_num(live['spearman_p'], '{:.2g}')}, "
                       f"{live['n']} archs)",
                       _num(DCBENCH_NAS_SPEARMAN.get(method))])
  png = plots.rank_scatter(panels, os.path.join(out, f"nas_{source}.png"),
                           f"{source}: architecture ranks, condensed set vs full data")
  if rhos:
    span = (f"is {rhos[0]:.2f}" if len(rhos) == 1 else
            f"ranges from {min(rhos):.2f} to {max(rhos):.2f}")
    findings.append(f"The Spearman correlation with the ground truth {span}. DC-BENCH "
                    "(CIFAR-10): -0.50 to 0.11 for condensed sets, 0.75 for the full data "
                    "with the reduced network.")
  return Section(
      f"{source}-nas", SUITE_TITLES["nas"],
      f"{len(truth)} architectures sampled uniformly from the NAS-Bench-201 cell space "
      "(15,625 discrete cells), each trained on every condensed set and ranked by its "
      "test accuracy after the last step. " + desc + " " + _protocols(
          [c for c in cells if not c["key"].startswith("truth_")]),
      [(png, "NAS rank scatter")],
      [Table(["set", "archs", "Spearman ρ", "Kendall τ", f"top-{top_k} overlap",
              "Spearman ρ, trainable archs", "DC-BENCH ρ (CIFAR-10)"], table_rows)],
      findings)


def _init(source: str, cells, out: str) -> Optional[Section]:
  if not cells:
    return None
  curves: Dict[str, Dict[str, List[Tuple[int, float, float]]]] = defaultdict(
      lambda: defaultdict(list))
  for c in cells:
    s, r = c["spec"]["set"], c["result"]
    curves[s["method"]][s["init"]].append((s["iteration"], r["acc_mean"], r["acc_std"]))
  png = plots.init_curves({m: dict(v) for m, v in curves.items()},
                          os.path.join(out, f"init_{source}.png"),
                          f"{source}: accuracy against condensation iterations by "
                          f"initialisation (IPC {cells[0]['spec']['set']['ipc']})")
  marks = sorted({p[0] for per in curves.values() for pts in per.values() for p in pts})
  table_rows, findings = [], []
  for method, per in curves.items():
    ref = dict((p[0], p[1]) for p in per.get("random", []))
    target = ref.get(max(ref)) if ref else None
    for init, pts in sorted(per.items()):
      curve = {p[0]: p[1] for p in pts}
      reach = init_study.steps_to_match(curve, target) if target is not None else None
      table_rows.append([method, init] + [_num(curve.get(m)) for m in marks]
                        + ["–" if reach is None else str(reach)])
      if init != "random" and target is not None and reach is not None and ref:
        findings.append(f"{method}: {init} init reached random init's final "
                        f"{target:.2f} after {reach} of {max(ref)} iterations "
                        f"({100 * reach / max(1, max(ref)):.0f}% of the compute).")
  findings.append("DC-BENCH (DM, CIFAR-10): K-Center init matches random init with about "
                  "30% of the compute and ends about 1.3 points higher.")
  return Section(
      f"{source}-init", SUITE_TITLES["init"],
      "A synthesis method started from different initialisations; the set is evaluated "
      "after each number of iterations (0 = the initialisation itself). "
      + _protocols(cells),
      [(png, "initialisation curves")],
      [Table(["method", "init"] + [f"it {m}" for m in marks]
             + ["iterations to reach random init's final accuracy"], table_rows)],
      findings)


def _cost(source: str, cells, out: str) -> Optional[Section]:
  if not cells:
    return None
  rows = [c["result"] for c in cells]
  methods = _order({r["method"] for r in rows})
  ipcs = sorted({r["ipc"] for r in rows})
  values = {(r["method"], r["ipc"]): r["seconds_per_iteration"] for r in rows}
  png = plots.cost_bars(values, methods, ipcs, os.path.join(out, f"cost_{source}.png"),
                        f"{source}: seconds per iteration (K-Center: per k-means iteration)")
  table_rows = []
  for ipc in ipcs:
    for m in methods:
      r = next((x for x in rows if x["method"] == m and x["ipc"] == ipc), None)
      if r is None:
        continue
      table_rows.append([m, str(ipc), _num(r["seconds_per_iteration"], "{:.4g}"), r["unit"],
                         _num(r.get("memory_mb"), "{:.0f}") if r.get("isolated") else
                         "– (not isolated)",
                         _num(r.get("dcbench_a100_cifar10_seconds"), "{:.4g}")])
  return Section(
      f"{source}-cost", SUITE_TITLES["cost"],
      "Median seconds per iteration after a warm-up (DC-BENCH Table 8). One iteration is "
      "each method's unit of work (DC / DSA one outer iteration, DM / KIP / MTT one image "
      "update, IDC one inner iteration); memory is the peak resident set above the "
      "built method's, measured in a process of its own.",
      [(png, "cost bars")],
      [Table(["method", "IPC", "s / iteration", "unit", "memory (MB)",
              "DC-BENCH A100, CIFAR-10 (s)"], table_rows)])


def _leaderboard(source: str, suites: Dict[str, list]) -> Optional[Section]:
  aug = [c["result"] for c in suites.get("augmentation", [])]
  comp = [c["result"] for c in suites.get("compression", []) if c["key"] != "full"]
  trans = [c["result"] for c in suites.get("transfer", [])]
  shared, others = _transfer_models(trans)
  cost = [c["result"] for c in suites.get("cost", [])]
  truth, proxies, _ = _nas_tables(suites.get("nas", []))
  full = next((c["result"] for c in suites.get("compression", []) if c["key"] == "full"),
              None)
  ipcs = sorted({r["ipc"] for r in aug + comp + trans})
  if not ipcs:
    return None
  tables = []

  def accuracies(m, ipc):
    a = {r["augmentation"]: r for r in aug if r["method"] == m and r["ipc"] == ipc}
    default = a.get("dsa") or next((r for r in comp if r["method"] == m and r["ipc"] == ipc),
                                   None)
    return a, default

  for ipc in ipcs:
    methods = _order({r["method"] for r in aug + comp + trans if r["ipc"] == ipc})
    rows = []
    rnd_aug, rnd = accuracies("random", ipc)
    for m in methods:
      a, default = accuracies(m, ipc)
      dd = leaderboard_ddranking(full, default, a.get("none"), rnd, rnd_aug.get("none"))
      best = max(a.values(), key=lambda r: r["acc_mean"]) if a else None
      per = {r["model"]: r["acc_mean"] for r in trans if r["method"] == m and r["ipc"] == ipc}
      rho = None
      if f"{m}@{ipc}" in proxies and truth:
        rho = nas_lib.rank_correlation(proxies[f"{m}@{ipc}"], truth)["spearman"]
      c = next((r for r in cost if r["method"] == m and r["ipc"] == ipc), None)
      score = (best or default or {}).get("acc_mean", -1.0)
      rows.append((score, [m, _acc(default) if default else "–",
                           _acc(a["none"]) if "none" in a else "–",
                           f"{_acc(best)} ({best['augmentation']})" if best else "–",
                           _num(_transfer_average(per, shared)), _num(rho),
                           _num(c["seconds_per_iteration"], "{:.3g}") if c else "–"]
                   + [_num(dd[k], "{:.3f}") for k in ("hlr", "ior", "lrs", "ars")]))
    rows.sort(key=lambda x: -x[0])
    tables.append(Table(["method", "ConvNet, dsa aug", "no aug", "best aug", "transfer avg",
                         "NAS ρ", "s / iteration", "HLR", "IOR", "LRS", "ARS"],
                        [r for _, r in rows],
                        caption=f"IPC {ipc}", highlight_first=True))
  return Section(f"{source}-leaderboard", "Leaderboard",
                 "Test accuracy (%) of ConvNet-3 trained on each set, sorted by the best "
                 "accuracy over the evaluation augmentations; transfer average, NAS rank "
                 "correlation and cost from the other suites where measured" + (
                     "" if shared == others else
                     f" (transfer average over {', '.join(shared) or 'no network'}: the "
                     "networks every set has been trained on so far)") + ". "
                 "DD-Ranking's scores from accuracy fractions: HLR = full data - set "
                 "(lower is better), IOR = set - Random at the same IPC, LRS = "
                 "norm(IOR / 2 - HLR / 2), ARS = norm(IOR with aug / 2 + IOR without / 2), "
                 "norm(x) = (e^x - e^-1) / (e - e^-1); hard labels, so IOR here is also "
                 "the hard-label IOR.",
                 tables=tables)


def leaderboard_ddranking(full, syn, syn_noaug, rnd, rnd_noaug) -> Dict[str, Optional[float]]:
  """DD-Ranking's scores of one leaderboard row from stored results (accuracies in %,
  each a result dict or None): the full-data cell, the set and Random at the same IPC
  with the default augmentation, and both without augmentation."""
  acc = lambda r: None if r is None else r.get("acc_mean")  # noqa: E731
  return ddranking.scores_from_percent(
      full_hard=acc(full), syn_hard=acc(syn), rnd=acc(rnd), syn_noaug=acc(syn_noaug),
      rnd_noaug=acc(rnd_noaug))


def _progress(source: str, suites: Dict[str, list]) -> Optional[Section]:
  """How many of its budget's cells each suite has: a partial run says so up front."""
  budgets = {c.get("budget") for cells in suites.values() for c in cells}
  if len(budgets) != 1 or next(iter(budgets)) not in budgets_lib.BUDGETS:
    return None  # cells of several (or unknown) budgets: no single target to count
  name = next(iter(budgets))
  expected = budgets_lib.expected_cells(budgets_lib.BUDGETS.get(name))
  have = {s: len({c["key"] for c in suites.get(s, [])}) for s in expected}
  rows = [[SUITE_TITLES[s], str(have[s]), str(expected[s]),
           "done" if have[s] >= expected[s] else ("not started" if not have[s] else
                                                   f"{100 * have[s] / expected[s]:.0f}%")]
          for s in expected]
  missing = [s for s in expected if have[s] < expected[s]]
  total, of = sum(min(have[s], expected[s]) for s in expected), sum(expected.values())
  if missing:
    finding = (f"Partial report: {total} of the {of} cells of budget {name}; still to run: "
               f"{', '.join(missing)} (`python -m apps.bench --suite {','.join(missing)}` "
               "with the same settings computes only the missing cells; IPCs above a "
               "class's size are skipped, so a small source needs fewer).")
  else:
    finding = f"Complete: all {of} cells of budget {name}."
  return Section(f"{source}-progress", "Progress",
                 f"Cells computed per suite against what budget {name} runs.",
                 tables=[Table(["suite", "cells", f"budget {name}", "status"], rows)],
                 findings=[finding])


_SECTIONS = (("augmentation", _augmentation), ("compression", _compression),
             ("transfer", _transfer), ("nas", _nas), ("init", _init), ("cost", _cost))


def source_sections(source: str, suites: Dict[str, list], out: str) -> List[Section]:
  """The sections of one source, in report order, charts written under `out`.

  Args:
    source: the source name (prefixes every section's anchor).
    suites: suite name -> that suite's cells of `source`.
    out: the report directory.
  """
  sections = [_progress(source, suites), _leaderboard(source, suites)]
  sections += [fn(source, suites.get(name, []), out) for name, fn in _SECTIONS]
  sections = [s for s in sections if s is not None]
  for s in sections:
    s.anchor = s.anchor if s.anchor.startswith(source) else f"{source}-{s.anchor}"
  return sections
