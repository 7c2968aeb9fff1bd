r"""Condense a dataset with any method (IDC, IDC-I, DM, DC, DSA, KIP, MTT; or select with
Random, Herding, K-Center), resumably.

Example (about 10 minutes on the 2-core CPU machine):

  python -m apps.condense --source fashion_mnist --method idc --ipc 10 --factor 2 \
      --workdir runs/idc_fmnist_ipc10 --minutes 8 --evaluate

condenses Fashion-MNIST to 10 stored images per class (40 formed), writes the
artifact to <workdir>/artifact (images.npy, labels.npy, meta.json, stored.png,
formed.png), TensorBoard logs to <workdir>/tensorboard, and with --evaluate trains
ConvNet-3 on the formed images and prints its test accuracy. Killed or out of
budget, the same command resumes from the last checkpoint (at most
--checkpoint_seconds of work is lost); a larger --minutes continues a finished
budget. Measured accuracies per budget are in the project's BENCHMARKS.md ("IDC on
Fashion-MNIST").

IDC and IDC-I also run split over devices or machines with --strategy mirrored or
multi_worker (same result as one process up to float rounding; see the project's README,
"Scaling out with tf.distribute"), e.g. on one machine with two logical CPUs:

  python -m apps.condense --source digits --method idc --ipc 1 --outer_iterations 1 \
      --inner_iterations 2 --workdir runs/idc_mirrored --strategy mirrored --logical_cpus 2
"""
from __future__ import annotations

import os

from absl import flags

from . import _common

_SOURCE = flags.DEFINE_string("source", "fashion_mnist",
                              "Data source (fashion_mnist, digits, mnist, cifar10, cifar100, "
                              "svhn_cropped, tiny_imagenet, imagenet_subset, speech_commands).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the source's files are.")
_LIMIT = flags.DEFINE_integer("limit_per_class", None,
                              "Use only the first N training images per class (smoke runs).")
_METHOD = flags.DEFINE_string("method", "idc",
                              "Any method: synthesis (idc, idc_i, dm, dm_mf, dc, dsa, kip, "
                              "mtt) or selection (random, herding, kcenter), or one a module "
                              "of --imports registers.")
_IPC = flags.DEFINE_integer("ipc", 10, "Stored images per class (the storage budget).")
_FACTOR = flags.DEFINE_integer("factor", None,
                               "Multi-formation factor f (idc default 2, idc_i 1): each stored "
                               "image holds f x f tiles, each upsampled to a training image.")
_FORMATION = flags.DEFINE_string("formation", None,
                                 "uniform (default for f > 1), multiscale, bound, time, "
                                 "learnable, identity.")
_INIT = flags.DEFINE_string("init", None,
                            "mix (default for f > 1), random (default for f = 1), noise, "
                            "kcenter, herding.")
_OUTER = flags.DEFINE_integer("outer_iterations", None,
                              "IDC: outer iterations (fresh network each); paper 2000.")
_INNER = flags.DEFINE_integer("inner_iterations", None,
                              "IDC: inner iterations per outer; paper 100.")
_ITERS = flags.DEFINE_integer("iterations", None,
                              "DM / DC / DSA / KIP / MTT: iterations (DM 20000, DC 1000).")
_SET = flags.DEFINE_multi_string("set", [],
                                 "Any other config field as key=value (repeatable), e.g. "
                                 "--set real_per_class=128 --set strategy=color_crop. Values "
                                 "are parsed as Python literals when they can be.")
_LR_IMG = flags.DEFINE_float("lr_img", None,
                             "Data learning rate in the reference's units (default: the "
                             "source's reference value x ipc/10 for IDC). DC/DSA/DM/MTT/KIP "
                             "and IDC on speech step normalised images: the step on the "
                             "stored [0, 1] pixels is lr_img x std^2.")
_METRIC = flags.DEFINE_enum("metric", None, ["l1", "mse", "cos"],
                            "Gradient distance (default: l1 for MNIST-like, mse for CIFAR/SVHN).")
_PRECISION = flags.DEFINE_enum("precision", None, ["float32", "mixed_bfloat16"],
                               "Network precision during matching (default float32; bfloat16 "
                               "is ~1.3x faster here).")
_MODEL = flags.DEFINE_string("model", None, "Matching / embedding network (default convnet3).")
_PRETRAIN = flags.DEFINE_integer("pretrain_steps", None,
                                 "Network steps on real data at the start of every outer "
                                 "iteration, before matching (default 0).")
_PRETRAINED = flags.DEFINE_list("pretrained", None,
                                "Keras .weights.h5 files of early-trained networks (made by "
                                "tfcondense.methods.idc.save_pretrained); outer iteration i "
                                "starts from file i mod N.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of everything random in the run.")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Checkpoints, TensorBoard logs and the artifact go here; rerun "
                               "with the same flags to resume.")
_ARTIFACT = flags.DEFINE_string("artifact_dir", None,
                                "Where to write the artifact (default <workdir>/artifact).")
_MINUTES = flags.DEFINE_float("minutes", None,
                              "Wall-clock budget in minutes (summed over resumes); stops "
                              "cleanly and saves. Each session's first step includes "
                              "tracing the step (about 20 s for IDC on Fashion-MNIST here), "
                              "which counts; the summary line says how long it took.")
_MAX_STEPS = flags.DEFINE_integer("max_steps", None,
                                  "Stop after this many inner iterations in total (0 writes "
                                  "the initialisation as the artifact).")
_ALLOW = flags.DEFINE_list("allow_change", [],
                           "Settings a resume may change (e.g. lr_img after a NaN stop); "
                           "config.json and the artifact's meta.json record each change.")
_CKPT_S = flags.DEFINE_float("checkpoint_seconds", 60.0, "Seconds between checkpoints.")
_EVALUATE = flags.DEFINE_bool("evaluate", False, "Evaluate the artifact when done.")
_PROTOCOL = flags.DEFINE_enum("protocol", "cpu", ["paper", "cpu", "light", "quick", "smoke"],
                              "Evaluation protocol for --evaluate.")
_REPS = flags.DEFINE_integer("repetitions", 3, "Evaluation repetitions for --evaluate.")
_EVAL_PRECISION = flags.DEFINE_enum("eval_precision", None, ["float32", "mixed_bfloat16"],
                                    "Override the evaluation protocol's precision.")
_DETERMINISTIC = flags.DEFINE_bool("deterministic", False,
                                   "Enable TF op determinism (bit-identical resumes).")
_common.define_strategy_flags()
_common.define_imports_flag()


def _parse_sets(items):
  """{"key": value} from ["key=value", ...]; values as Python literals when possible."""
  import ast  # pylint: disable=g-import-not-at-top
  from tfcondense import errors  # pylint: disable=g-import-not-at-top
  out = {}
  for item in items:
    key, sep, value = item.partition("=")
    if not sep or not key:
      raise errors.InvalidConfigError(f"--set expects key=value, got {item!r}")
    try:
      out[key.strip()] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key.strip()] = value
  return out


@_common.friendly_errors
def main(argv):
  del argv
  _common.check_source(_SOURCE.value)  # before TensorFlow loads: a typo fails at once
  _common.quiet_tensorflow()
  cluster = _common.make_cluster()  # before any other TensorFlow work
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfcondense import api  # pylint: disable=g-import-not-at-top
  from tfcondense import condensation  # pylint: disable=g-import-not-at-top
  from tfcondense import data  # pylint: disable=g-import-not-at-top
  from tfcondense import engine  # pylint: disable=g-import-not-at-top
  from tfcondense import errors  # pylint: disable=g-import-not-at-top
  from tfcondense import experiment  # pylint: disable=g-import-not-at-top

  _common.import_modules()
  if _DETERMINISTIC.value:
    tf.config.experimental.enable_op_determinism()
  # Every flag is checked before any data is read or any file written.
  kind = api.kind(_METHOD.value)
  if not _WORKDIR.value and not _ARTIFACT.value:
    raise errors.InvalidConfigError("give --workdir (resumable) or --artifact_dir")
  for path in (_WORKDIR.value, _ARTIFACT.value):
    if path:
      engine.check_writable(path)
  if _EVALUATE.value and _REPS.value < 1:
    raise errors.InvalidConfigError(f"--repetitions must be at least 1, got {_REPS.value}")
  if _LIMIT.value is not None and _LIMIT.value < 1:
    raise errors.InvalidConfigError(f"--limit_per_class must be at least 1, got {_LIMIT.value}")
  options = engine.RunOptions(workdir=_WORKDIR.value, minutes=_MINUTES.value,
                              max_steps=_MAX_STEPS.value,
                              checkpoint_seconds=_CKPT_S.value,
                              allow_changes=tuple(_ALLOW.value),
                              desc=f"{_METHOD.value} ipc{_IPC.value}")
  overrides = dict(factor=_FACTOR.value, formation=_FORMATION.value, init=_INIT.value,
                   outer_iterations=_OUTER.value, inner_iterations=_INNER.value,
                   iterations=_ITERS.value,
                   lr_img=_LR_IMG.value, metric=_METRIC.value, precision=_PRECISION.value,
                   model=_MODEL.value, pretrain_steps=_PRETRAIN.value,
                   pretrained=tuple(_PRETRAINED.value) if _PRETRAINED.value else None)
  overrides = {k: v for k, v in overrides.items() if v is not None}
  if kind == "selection" and overrides:
    raise errors.InvalidConfigError(
        f"{_METHOD.value} is a selection method: --{', --'.join(sorted(overrides))} "
        "configure synthesis methods (give its own options with --set key=value)")
  overrides.update(_parse_sets(_SET.value))
  if kind == "synthesis":
    condensation.make_config(_METHOD.value, _SOURCE.value, _IPC.value, seed=_SEED.value,
                             **overrides)  # checks every field now
  protocol = _protocol(_SOURCE.value) if _EVALUATE.value else None  # fails now if bad
  kwargs = {"limit_per_class": _LIMIT.value} if _LIMIT.value else {}
  if _DATA_DIR.value:
    kwargs.update(data.data_dir_kwargs(_SOURCE.value, _DATA_DIR.value))
  source = data.load_source(_SOURCE.value, **kwargs)
  if cluster.distributed:
    print(f"strategy {cluster.describe()}")
  cache = "cache" if cluster.is_chief else f"cache-worker{cluster.worker_index}"
  init_options = ({"cache_dir": os.path.join(_WORKDIR.value, cache)}
                  if _WORKDIR.value and kind == "synthesis" else None)
  res = api.condense(_METHOD.value, source, _IPC.value, seed=_SEED.value, options=options,
                     artifact_dir=_ARTIFACT.value, init_options=init_options,
                     cluster=cluster, evaluate=protocol, repetitions=_REPS.value,
                     **overrides)
  if not cluster.is_chief:  # the chief reports and writes
    print(f"worker {cluster.worker_index}: done; the chief prints the results")
    return
  meta = res.artifact.meta
  run = res.run
  if run is None:
    print(f"{meta['method']} {source.name} ipc {meta['ipc']}: selected "
          f"{len(res.artifact.images)} images in {meta['budget']['seconds']:.1f} s")
  else:
    session = (f"last loss {run.last_loss:.4g}" if run.last_loss is not None
               else "no iteration run this session")
    if run.warmup_seconds is not None:
      session += f"; {run.warmup_seconds:.0f} s of this session went to tracing"
    resumed = f", resumed at {run.resumed_from}" if run.resumed_from else ""
    print(f"{meta['method']} {source.name} ipc {meta['ipc']} factor {meta['factor']}: "
          f"{run.steps}/{run.total_steps} iterations in {run.seconds / 60:.1f} min "
          f"({run.stopped}{resumed}), {session}")
    for field, before, after in run.changes:
      print(f"changed on resume: {field} {before} -> {after} (recorded in config.json)")
    st = meta["storage"]
    print(f"storage: {st['stored_images']} stored images ({st['stored_pixels']} pixels"
          f"{', ' + str(st['parameters']) + ' formation weights' if st['parameters'] else ''}"
          f", {st['stored_bytes'] / 1024:.0f} KiB) -> {st['formed_images']} formed images")
  if res.artifact_dir:
    print(f"artifact: {res.artifact_dir}")
    print(f"grid: {res.grid_png}" + (f"  formed: {res.formed_png}" if res.formed_png else ""))
  if res.evaluation is not None:
    print(f"protocol {protocol.describe()}")
    print(experiment.format_table([experiment.make_row(
        f"{meta['method']}@{meta['ipc']}", meta, source, res.evaluation)]))
    if res.artifact_dir:
      print(f"evaluation written to {os.path.join(res.artifact_dir, 'evaluation.json')}")


def _protocol(source_name):
  """The --evaluate protocol for `source_name`."""
  from tfcondense import evaluation as ev  # pylint: disable=g-import-not-at-top
  return ev.resolve_protocol(_PROTOCOL.value, source_name, precision=_EVAL_PRECISION.value)


def run():
  """The `tfcondense-condense` command."""
  _common.run(main)


if __name__ == "__main__":
  run()
