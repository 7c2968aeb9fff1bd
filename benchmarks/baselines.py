r"""Selection baselines on Fashion-MNIST: Random, Herding, K-Center at IPC 1/10/50 + full data.

  python -m benchmarks.baselines                      # the committed run
  python -m benchmarks.baselines --protocol quick --repetitions 1   # a cheaper look
  python -m benchmarks.baselines --protocol light     # the light (Keras-style) recipe

Evaluated with ConvNet-3 (instance norm), 3 repetitions, under the named evaluation
protocol (default `cpu`: 1000 SGD steps of batch 64, DSA augmentation + CutMix) in mixed
bfloat16 (--precision float32 for full precision). The
full-data row uses --full_steps steps (default 3000, about 3 epochs). Finished cells are
kept in benchmarks/results/baselines_fashion_mnist.json and skipped on a re-run, so the
script can be interrupted and resumed. Rows of an older protocol version (version 1 kept
cutout under CutMix) move to the file's `superseded_rows` and are measured again.
The K-Center / Herding embedding (a ConvNet-3
trained one epoch on all 60,000 images) is cached under benchmarks/cache/.
"""
from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from benchmarks import _util  # noqa: E402

_IPCS = flags.DEFINE_list("ipc", ["1", "10", "50"], "Images per class.")
_METHODS = flags.DEFINE_list("method", ["random", "herding", "kcenter"], "Methods.")
_PROTOCOL = flags.DEFINE_string("protocol", "cpu", "Evaluation protocol name.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Repetitions per cell.")
_PRECISION = flags.DEFINE_enum("precision", "mixed_bfloat16", ["float32", "mixed_bfloat16"],
                               "Evaluation precision (see eval_speed.json for its accuracy "
                               "cost).")
_FULL_STEPS = flags.DEFINE_integer("full_steps", 3000, "Steps for the full-data row (0: skip).")
_OUT = flags.DEFINE_string("output", "baselines_fashion_mnist.json", "Result file name.")


def main(argv):
  del argv
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top

  source = data.load_source("fashion_mnist")
  path = os.path.join(_util.RESULTS, _OUT.value)
  here = os.path.dirname(os.path.abspath(__file__))
  protocol = ev.get_protocol(_PROTOCOL.value, precision=_PRECISION.value)
  header = dict(machine=_util.machine(), command="python -m benchmarks.baselines")
  moved = experiment.supersede_old_rows(path, [protocol.name, f"{protocol.name}-full"])
  if moved:
    print(f"{moved} rows of an older protocol version moved to superseded_rows")
  cells = [experiment.Cell(m, int(i)) for i in _IPCS.value for m in _METHODS.value]
  rows = experiment.compare(source, cells, protocol=protocol, repetitions=_REPS.value,
                            results_path=path, cache_dir=os.path.join(here, "cache"),
                            header=header, log=print)
  if _FULL_STEPS.value:
    full = dataclasses.replace(protocol, name=f"{protocol.name}-full", steps=_FULL_STEPS.value)
    rows = experiment.compare(source, [experiment.Cell(experiment.FULL, None)],
                              protocol=full, repetitions=_REPS.value, results_path=path,
                              header=header, log=print)
  print(experiment.format_table(rows))
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
