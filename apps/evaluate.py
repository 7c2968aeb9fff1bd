r"""Evaluate condensed sets: select (or load) them, train from scratch, print a table.

Example (the main job of the project's README; about 6 minutes on the 2-core CPU
machine):

  python -m apps.evaluate --source fashion_mnist --method kcenter,random \
      --ipc 10 --protocol quick --repetitions 2 --output runs/eval.json

prints a Markdown table of best / last test accuracy (mean +- std over repetitions)
per method and writes the rows to --output. Evaluate an artifact directory written by
`python -m apps.condense` or a selection method with `--artifact DIR[,DIR...]`. Finished rows
already in --output are skipped when the command is run again.

Sets released by other projects are imported (without PyTorch) and evaluated with
`--import PATH[,PATH...] --format mtt|vico|idc|kip|npz`, e.g. an MTT run's folder:

  python -m apps.evaluate --source cifar10 --import mtt_run/ --format mtt \
      --protocol quick --repetitions 2

writes each as an artifact under --import_dir and evaluates it like --artifact. A set
that carries soft labels (DATM's, an import's float labels, a relabelled artifact) is
trained on them (soft cross-entropy, or KL with temperature; `tfcondense.soft_labels`);
its row says so.

With --strategy multi_worker (one process per machine or GPU, the cluster in
TF_CONFIG) the cells are spread over the workers and the chief writes the table and
--output; see the project's README, "Scaling out with tf.distribute".
"""
from __future__ import annotations

import os

from absl import flags

from . import _common

_SOURCE = flags.DEFINE_string("source", "fashion_mnist",
                              "Data source (fashion_mnist, digits, mnist, cifar10, cifar100, "
                              "svhn_cropped, tiny_imagenet, imagenet_subset, speech_commands).")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "Where the source's files are (idx folder, TFDS data_dir or "
                                "image folder root, depending on the source).")
_METHOD = flags.DEFINE_list("method", ["kcenter", "random"],
                            "Comma-separated methods: selection (random, herding, kcenter), "
                            "synthesis (idc, idc_i, dm, dm_mf, dc, dsa, kip, mtt; they need "
                            "--minutes or --max_steps), one a module of --imports "
                            "registers, and/or 'full' for the whole training set. Ignored "
                            "when only --artifact is given.")
_MINUTES = flags.DEFINE_float("minutes", None,
                              "Wall-clock budget of each synthesis method's condensation "
                              "(resumable under --save_artifacts).")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None,
                                  "Step budget of each synthesis method's condensation.")
_ARTIFACT = flags.DEFINE_list("artifact", [],
                              "Artifact directories (images.npy, labels.npy, meta.json) to "
                              "evaluate instead of / besides --method.")
_IPC = flags.DEFINE_list("ipc", ["10"], "Comma-separated images per class for --method.")
_MODEL = flags.DEFINE_string("model", None,
                             "Evaluation network (default convnet3; convnet4 for "
                             "speech_commands, as IDC). Choices: convnet3, convnet4, mlp, "
                             "resnet10, resnet18, resnet152, resnet_ap10, densenet121, "
                             "efficientnet_b0, vit.")
_AUG = flags.DEFINE_string("augmentation", None,
                           "Evaluation augmentation: none, imagenet, crop_flip, dsa, "
                           "autoaugment, randaugment (default: the protocol's, dsa; none for "
                           "speech_commands, as IDC).")
_DSA_STRATEGY = flags.DEFINE_string(
    "dsa_strategy", None,
    "DSA strategy of the dsa augmentation (default, as the IDC reference: "
    "color_crop_flip_scale_rotate under CutMix, color_crop_cutout_flip_scale_rotate "
    "without); e.g. color_crop_cutout_flip_scale_rotate keeps cutout under CutMix.")
_PROTOCOL = flags.DEFINE_enum("protocol", "cpu", ["paper", "cpu", "light", "quick", "smoke"],
                              "paper = 1000 epochs (IDC/DC-BENCH); cpu = 400 epochs "
                              "within 1000-3200 steps; light = cpu's length with random "
                              "crop + flip and no CutMix (a plain Keras recipe); quick = "
                              "300 steps; smoke = 4 steps (tests). Every row records the "
                              "exact recipe.")
_STEPS = flags.DEFINE_integer("steps", None, "Override the protocol's number of SGD steps.")
_PRECISION = flags.DEFINE_enum("precision", None, ["float32", "mixed_bfloat16"],
                               "Override the protocol's precision (mixed_bfloat16: about "
                               "1.4x faster on CPUs with bfloat16 units).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Override with a number of epochs instead.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Models trained per set (distinct seeds).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for selection and evaluation.")
_OUTPUT = flags.DEFINE_string("output", None,
                              "JSON file for the rows; existing rows are kept and skipped.")
_SAVE = flags.DEFINE_string("save_artifacts", None,
                            "Directory to save the selected sets as artifacts.")
_CACHE = flags.DEFINE_string("cache_dir", None,
                             "Cache for the embedding network shared by herding and kcenter.")
_LIMIT = flags.DEFINE_integer("limit_per_class", None,
                              "Use only the first N training images of each class (smoke runs).")
_IMPORT = flags.DEFINE_list("import", [],
                            "Released condensed sets to import and evaluate: files, or an "
                            "MTT / DATM folder (images_best.pt, labels_best.pt); see --format.")
_FORMAT = flags.DEFINE_enum("format", None, ["mtt", "vico", "idc", "kip", "npz"],
                            "Layout of the --import sets: mtt (MTT / DATM folder), vico "
                            "(DC / DSA / DM res_*.pt), idc (data.pt), kip (.npz), npz "
                            "(tfcondense's export).")
_IMPORT_DIR = flags.DEFINE_string("import_dir", "runs/imported",
                                  "Where imported sets are written as artifacts "
                                  "(<import_dir>/<file or folder name>).")
_IMPORT_METHOD = flags.DEFINE_string("import_method", None,
                                     "Method name recorded for the imported sets (default: "
                                     "from the file name, else the format).")
_FACTOR = flags.DEFINE_integer("factor", None, "IDC's multi-formation factor of an idc "
                               "import (default 2).")
_NORMALIZED = flags.DEFINE_bool("normalized", None,
                                "Whether the imported images are normalised with the "
                                "source's mean / std (default: the format's convention).")
_MEAN = flags.DEFINE_list("mean", None, "Per-channel mean the imported images were "
                          "normalised with (default: the source's).")
_STD = flags.DEFINE_list("std", None, "Per-channel std, with --mean.")
_EXPERIMENT = flags.DEFINE_integer("experiment", 0, "Which experiment of a vico file.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0,
                                  "Softmax temperature of imported logit soft labels.")
_SOFT_LOSS = flags.DEFINE_enum("soft_loss", None, ["ce", "kl"],
                               "Loss on imported soft labels (default: kl for logits at a "
                               "temperature other than 1, else ce).")
_ZCA = flags.DEFINE_bool("zca", False, "The imported images are ZCA-whitened (recorded; "
                         "such sets are imported but not evaluated).")
_common.define_strategy_flags()
_common.define_imports_flag()


def _positive(flag: str, value, what: str) -> None:
  """Raises InvalidConfigError unless `value` is None or at least 1."""
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  if value is not None and value < 1:
    raise InvalidConfigError(f"{flag} must be a positive number of {what}, got {value}")


def _check_output(path: str) -> None:
  """Raises InvalidConfigError unless `path` can become the rows' JSON file."""
  from tfcondense import fileio  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  if os.path.isdir(path):
    raise InvalidConfigError(f"--output {path} is a directory; name a .json file, e.g. "
                             f"{os.path.join(path, 'rows.json')}")
  if not path.lower().endswith(".json"):
    raise InvalidConfigError(f"--output {path} must name a .json file (the rows are "
                             "written as JSON)")
  if not fileio.is_local(path):  # a URL (gs://...): its first write tells
    return
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):  # missing folders are made when the rows are written
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise InvalidConfigError(f"--output {path}: {parent} is not a directory")


def _check_flags() -> list[int]:
  """Validates the flags before any work; returns the --ipc values as integers.

  Raises:
    InvalidConfigError: a count is not positive, an --ipc value is not a positive
      integer, or --output cannot be a JSON file.
  """
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top
  _common.check_source(_SOURCE.value)
  _positive("--steps", _STEPS.value, "SGD steps")
  _positive("--epochs", _EPOCHS.value, "epochs")
  _positive("--repetitions", _REPS.value, "models per set")
  _positive("--limit_per_class", _LIMIT.value, "images per class")
  _positive("--max_steps", _MAX_STEPS.value, "steps")
  if _MINUTES.value is not None and _MINUTES.value <= 0:
    raise InvalidConfigError(f"--minutes must be positive, got {_MINUTES.value}")
  ipcs = []
  for text in _IPC.value:
    try:
      ipc = int(text)
    except ValueError:
      ipc = 0
    if ipc < 1:
      raise InvalidConfigError(f"--ipc expects positive whole numbers of images per class, "
                               f"got {text!r}")
    ipcs.append(ipc)
  if _OUTPUT.value:
    _check_output(_OUTPUT.value)
  if _IMPORT.value and not _FORMAT.value:
    raise InvalidConfigError("--import needs --format (mtt, vico, idc, kip or npz)")
  if bool(_MEAN.value) != bool(_STD.value):
    raise InvalidConfigError("give --mean and --std together")
  return ipcs


def _import_sets(source_name: str) -> list[str]:
  """Imports the --import sets into artifacts under --import_dir; returns their dirs."""
  from tfcondense import fileio  # pylint: disable=g-import-not-at-top
  from tfcondense import interop  # pylint: disable=g-import-not-at-top
  options = dict(method=_IMPORT_METHOD.value, factor=_FACTOR.value,
                 normalized=_NORMALIZED.value, experiment=_EXPERIMENT.value,
                 temperature=_TEMPERATURE.value, soft_loss=_SOFT_LOSS.value, zca=_ZCA.value)
  if _MEAN.value:
    options.update(mean=tuple(map(float, _MEAN.value)), std=tuple(map(float, _STD.value)))
  dirs = []
  for path in _IMPORT.value:
    name = fileio.basename(path.rstrip("/")).rsplit(".", 1)[0]
    out = os.path.join(_IMPORT_DIR.value, name)
    art = interop.import_set(path, _FORMAT.value, source_name, out_dir=out, **options)
    print(f"imported {path} ({_FORMAT.value}): {art.meta['method']}, ipc {art.ipc}, "
          f"{len(art.images)} images{', soft labels' if art.soft_labels else ''} -> {out}")
    dirs.append(out)
  return dirs


@_common.friendly_errors
def main(argv):
  del argv
  ipcs = _check_flags()  # before any work: a bad flag costs no data loading
  _common.quiet_tensorflow()
  cluster = _common.make_cluster()  # before any other TensorFlow work
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top
  from tfcondense import methods  # pylint: disable=g-import-not-at-top
  from tfcondense.errors import InvalidConfigError  # pylint: disable=g-import-not-at-top

  _common.import_modules()
  method_names = _METHOD.value if flags.FLAGS["method"].present or not _given() else []
  synthesis = [m for m in method_names
               if m != experiment.FULL and methods.kind(m) == "synthesis"]  # unknown: error
  if synthesis and _MINUTES.value is None and _MAX_STEPS.value is None:
    raise InvalidConfigError(f"synthesis method {synthesis[0]} needs a budget: --minutes "
                             "or --max_steps (its full schedule takes hours to days)")
  kwargs = {"limit_per_class": _LIMIT.value} if _LIMIT.value else {}
  if _DATA_DIR.value:
    kwargs.update(data.data_dir_kwargs(_SOURCE.value, _DATA_DIR.value))
  source = data.load_source(_SOURCE.value, **kwargs)
  overrides = dict(augmentation=_AUG.value,
                   precision=_PRECISION.value, strategy=_DSA_STRATEGY.value)
  if _STEPS.value is not None:
    overrides.update(steps=_STEPS.value, epochs=None)
  elif _EPOCHS.value is not None:
    overrides.update(epochs=_EPOCHS.value, steps=None)
  protocol = ev.resolve_protocol(_PROTOCOL.value, source.name, **overrides)
  print(f"source {source.name}: {len(source.train_labels)} train / "
        f"{len(source.test_labels)} test images, {source.num_classes} classes")
  print(f"protocol {protocol.describe()}")
  # With --artifact / --import alone, only those sets are evaluated.
  given = _ARTIFACT.value + _import_sets(source.name)
  cells = [experiment.Cell(m, None if m == experiment.FULL else i,
                           **(dict(minutes=_MINUTES.value, max_steps=_MAX_STEPS.value)
                              if m in synthesis else {}))
           for i in ipcs for m in method_names
           if m != experiment.FULL or i == ipcs[0]]
  # Sets with soft labels are trained on them (`tfcondense.soft_labels`); their rows
  # are keyed by folder name, `soft:<name>`.
  cells += [experiment.Cell("artifact", None, artifact_dir=d,
                            name=f"soft:{os.path.basename(os.path.normpath(d))}"
                            if _has_soft_labels(d) else None) for d in given]
  if cluster.multi_worker:
    print(f"strategy {cluster.describe()}: cells spread over the workers")
  rows = experiment.compare(
      source, cells, model=_MODEL.value, protocol=protocol, repetitions=_REPS.value,
      seed=_SEED.value, results_path=_OUTPUT.value, artifacts_root=_SAVE.value,
      cache_dir=_CACHE.value, cluster=cluster, log=print)
  if not cluster.is_chief:
    print(f"worker {cluster.worker_index}: done; the chief prints the table")
    return
  print(experiment.format_table(rows))
  if _OUTPUT.value:
    print(f"rows written to {os.path.abspath(_OUTPUT.value)}")


def _given() -> bool:
  """Whether sets to evaluate are given (--artifact or --import)."""
  return bool(_ARTIFACT.value or _IMPORT.value)


def _has_soft_labels(artifact_dir: str) -> bool:
  from tfcondense import artifact as artifact_lib  # pylint: disable=g-import-not-at-top
  from tfcondense import fileio  # pylint: disable=g-import-not-at-top
  return fileio.exists(os.path.join(artifact_dir, artifact_lib.SOFT_LABELS))


def run():
  """The `tfcondense-evaluate` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
