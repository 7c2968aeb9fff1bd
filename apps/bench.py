r"""DC-BENCH suites and their report (Cui et al., "DC-BENCH: Dataset Condensation
Benchmark", NeurIPS 2022), resumable cell by cell.

End-to-end check (what the tests run; 128 s on the 2-core CPU machine when it is
otherwise idle, 5-15 minutes beside a benchmark that keeps both cores busy):

  python -m apps.bench --suite all --source fashion_mnist --budget small

runs the six suites (augmentation, compression, transfer, nas, init, cost) on a shrunk
view of Fashion-MNIST (10 training / 20 test images per class, 8-step evaluations, 4 DM
iterations): its accuracies check the plumbing, not the methods. Every result cell is
one JSON file under <out>/cells/<source>/<suite>/ (default --out runs/bench/<budget>),
written as soon as it is done; killed at any point, the same command computes only the
missing cells. Condensed sets, checkpoints and caches go to --work_dir (default
<out>/work). The report (<out>/report/index.html, summary.md and the PNG charts) is
written at the end, or alone with

  python -m apps.bench report --out runs/bench/small

The real run on this 2-core CPU (budget `cpu`: full data, IPC 1/10/50 for random,
kcenter, dc, dsa, dm, mtt, kip, idc with 15 minutes of condensation per set, `quick`
evaluations with 2 models, all in float32 so that cells made on differently equipped
machines compare (budgets.py); the IPC sweep to 500; 30 NAS-Bench-201
architectures; DM from random / K-Center / noise init; cost of 8 methods), whose
results are in the project's BENCHMARKS.md:

  python -m apps.bench --suite all --source fashion_mnist --budget cpu \
      --out benchmarks/results/bench_fashion_mnist \
      --work_dir benchmarks/cache/bench_fashion_mnist

Estimated wall-clock on this machine with nothing else running. Training-step times in
mixed bfloat16 at batch 64 on the AMD EPYC with native bfloat16 (CPU seconds measured
there on a busy machine, halved for the two cores, which gives ConvNet-3's 0.10 s of
the project's BENCHMARKS.md; float32, which the budget uses, is about 1.4x slower):
ConvNet-3 0.10 s, ResNet-10/18 0.13 s, EfficientNet-B0 0.4 s, ResNetAP-10 0.5 s,
DenseNet-121 0.7 s, ViT 1.2 s, ResNet-152 about 2.5 s (not measured: scaled from
ResNetAP-10 by FLOPs). Then:
condensation of the 18 synthesis sets at IPC 1/10/50, 4.5 h (15 min each),
plus 0.5 h of MTT experts (each set is made by whichever suite needs it first);
augmentation, 120 evaluations, about 2.5 h; compression, 25 evaluations of 1000 steps,
about 1.5 h, plus 1.5 h for the DM and IDC sets at IPC 100/200/500; transfer, 48 new
evaluations, about 6.5 h (ResNet-152 alone about 3 h); nas, 30 ground-truth trainings
of 3000 steps on the full data and 150 proxy trainings, about 3.5 h; init, three DM runs
of 1500 iterations and 21 evaluations, about 1.5 h; cost, 24 cells, 1-2 h. About a day
in all in bfloat16, so 1.3 days in float32, less the 4.5 h of IPC 1/10/50 sets where
--sets_from finds them (e.g. the sets of an earlier methods benchmark). Suites
run one at a time (`--suite nas`), in any order, and share the sets; transfer is the
longest, so run it last if time is short.
"""
from __future__ import annotations

import os

from absl import app
from absl import flags

from . import _common
from tfcondense.bench import budgets as _budgets

_SUITE = flags.DEFINE_list("suite", ["all"],
                           "Suites to run: all, augmentation, compression, transfer, nas, "
                           "init, cost (comma-separated).")
_SOURCE = flags.DEFINE_string("source", "fashion_mnist",
                              "Data source (fashion_mnist, digits, mnist, cifar10, ...).")
_BUDGET = flags.DEFINE_enum("budget", "small", _budgets.BUDGETS.names(),
                            "Budget preset (tfcondense.bench.budgets): small = end-to-end "
                            "check in minutes; cpu = the real run on a 2-core CPU (about a "
                            "day); paper = DC-BENCH's protocol, for a GPU.")
_OUT = flags.DEFINE_string("out", None,
                           "Benchmark directory: cells/ and report/ (default "
                           "runs/bench/<budget>).")
_WORK_DIR = flags.DEFINE_string("work_dir", None,
                                "Condensed sets, checkpoints and caches (default <out>/work).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the source's files are.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of selection, condensation, NAS sampling and "
                             "evaluation.")
_NAS_TRUTH = flags.DEFINE_string("nas_ground_truth", None,
                                 "NAS-Bench-201 results file (NAS-Bench-201-v1_0-e61699.pth, "
                                 "v1_1-096897.pth, or a JSON / CSV arch -> accuracy file) to "
                                 "use as NAS ground truth instead of training on full data.")
_NAS_DATASET = flags.DEFINE_string("nas_dataset", "cifar10",
                                   "Dataset of --nas_ground_truth: cifar10, cifar10-valid, "
                                   "cifar100, ImageNet16-120.")
_SETS_FROM = flags.DEFINE_string(
    "sets_from", None,
    "Evaluate synthesis sets made elsewhere instead of condensing them: a path pattern "
    "with {method} and {ipc} naming artifact directories (what the condense app writes), e.g. "
    "'runs/{method}_ipc{ipc}/artifact'. Sets not found there are condensed under the "
    "budget; selection sets (random, kcenter, herding) are always made here.")
_REPORT = flags.DEFINE_bool("report", True, "Write the report after running the suites.")
_SCREENSHOT = flags.DEFINE_bool("screenshot", False,
                                "Also render the report in headless Chromium to "
                                "report/screenshot.png.")

COMMANDS = ("run", "report")


def _report(out: str) -> None:
  from tfcondense.bench import report  # pylint: disable=g-import-not-at-top
  paths = report.build_report(out)
  print(f"report: {paths.html} ({paths.cells} cells, {len(paths.images)} charts); "
        f"summary: {paths.markdown}")
  if _SCREENSHOT.value:
    png = report.screenshot(paths.html, os.path.join(os.path.dirname(paths.html),
                                                     "screenshot.png"))
    print(f"screenshot: {png}")


@_common.friendly_errors
def main(argv):
  command = argv[1] if len(argv) > 1 else "run"
  if command not in COMMANDS or len(argv) > 2:
    usage = _common.usage("python -m apps.bench", __package__)
    raise app.UsageError(f"usage: {usage} [{'|'.join(COMMANDS)}] [--flags]; "
                         f"got {' '.join(argv[1:])!r}")
  out = _OUT.value or os.path.join("runs", "bench", _BUDGET.value)
  if command == "report":
    _report(out)
    return
  _common.quiet_tensorflow()
  from tfcondense.bench import context, suites  # pylint: disable=g-import-not-at-top
  names = suites.expand(_SUITE.value)
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  options = data.data_dir_kwargs(_SOURCE.value, _DATA_DIR.value) if _DATA_DIR.value else {}
  ctx = context.BenchContext(_SOURCE.value, _BUDGET.value, out, _WORK_DIR.value,
                             seed=_SEED.value, source_options=options,
                             nas_ground_truth=_NAS_TRUTH.value,
                             nas_dataset=_NAS_DATASET.value, sets_from=_SETS_FROM.value,
                             log=print)
  print(f"budget {ctx.budget.name}: {ctx.budget.description}")
  print(f"suites {', '.join(names)} on {ctx.source.name}: {len(ctx.source.train_labels)} "
        f"train / {len(ctx.source.test_labels)} test images; cells in {ctx.store.cells_dir}")
  suites.run(ctx, names)
  if _REPORT.value:
    _report(out)


def run():
  """The `tfcondense-bench` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
