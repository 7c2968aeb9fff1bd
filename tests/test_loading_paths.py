"""The documented ways to load a condensed set, each run as a user would (issue 42).

TFDS: the folder and `--imports` forms of `tfds build` (through TFDS's own build
command, in-process: the `tfds` console script of tensorflow-datasets 4.9 needs
apache-beam and mlcroissant just to start, tensorflow/datasets#5463),
`tfds.builder_from_directory`, the README's three loading recipes, `tfds.show_examples`
and `tfds.as_dataframe` on a shipped set. Keras: the source's test split through
`tfc.load(..., split="test")` / `tfc.load_test`, and the README's training snippet.
"""
from __future__ import annotations

import os
import re
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.scripts.cli import build, cli_utils  # noqa: E402

import datasets_builders  # noqa: E402
from datasets_builders import _condensed  # noqa: E402
import tfcondense as tfc  # noqa: E402
from tfcondense import artifact as artifact_lib  # noqa: E402
from tfcondense import export  # noqa: E402
from tfcondense.data import fashion_mnist  # noqa: E402
from tfcondense.errors import InvalidConfigError, SourceUnavailableError  # noqa: E402
from tfcondense.registry import UnknownNameError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = "condensed_fashion_mnist/idc_ipc10"


def _tfds_build(*argv: str) -> None:
  """`tfds build ARGV...`, through the same argument parser and command as the CLI."""
  args = cli_utils.make_flags_parser(build.Args, "tfds build")(["tfds", *argv])
  args.execute()


@pytest.fixture
def clean_modules():
  """Forgets the modules a test imported under new names (the folder form of `tfds
  build` imports `condensed_<source>.<...>_dataset_builder` beside our package)."""
  before = set(sys.modules)
  yield
  for name in set(sys.modules) - before:
    if name.startswith("condensed_"):
      del sys.modules[name]


@pytest.fixture
def home(tmp_path, monkeypatch):
  """tmp_path as $HOME and working directory, its tensorflow_datasets/ as TFDS's default
  data_dir (which tfds fixes when it is imported)."""
  from tensorflow_datasets.core import constants  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("HOME", str(tmp_path))
  monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
  monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "tensorflow_datasets"))
  monkeypatch.chdir(tmp_path)
  return tmp_path


def _readme_block(heading: str) -> str:
  """The first ```python block of the README section `heading`."""
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    text = f.read()
  section = text.split(f"\n## {heading}\n", 1)
  assert len(section) == 2, f"README has no section {heading!r}"
  match = re.search(r"```python\n(.*?)```", section[1].split("\n## ", 1)[0], re.S)
  assert match, f"README section {heading!r} has no python block"
  return match.group(1)


def _write_idc_artifact(directory, seed: int):
  """A fashion_mnist IDC ipc-10 artifact (factor 2) of random [0, 1] images."""
  rng = np.random.default_rng(seed)
  images = rng.uniform(0, 1, (100, 28, 28, 1)).astype(np.float32)
  labels = np.repeat(np.arange(10), 10).astype(np.int32)
  meta = dict(source="fashion_mnist", method="idc", ipc=10, factor=2,
              formation={"name": "uniform", "factor": 2}, seed=seed,
              class_names=list(fashion_mnist.CLASS_NAMES),
              machine={"device": "test CPU"})
  return artifact_lib.save_artifact(str(directory), images, labels, meta)


def _fashion_mnist_or_skip():
  try:
    return tfc.load_source("fashion_mnist")
  except SourceUnavailableError:
    pytest.skip("Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)")


# ------------------------------------------------------------------ TFDS build paths


def test_registering_an_identical_source_again_is_a_no_op():
  spec = _condensed.SOURCES.get("fashion_mnist")
  again = _condensed.SourceSpec(
      name="fashion_mnist", title=spec.title, image_shape=spec.image_shape,
      class_names=spec.class_names, homepage=spec.homepage)
  assert _condensed.register_source(again) is spec
  other = _condensed.SourceSpec(name="fashion_mnist", title="Not Fashion-MNIST",
                                image_shape=(32, 32, 3), num_classes=10)
  with pytest.raises(ValueError, match="registered twice"):
    _condensed.register_source(other)
  assert _condensed.SOURCES.get("fashion_mnist") is spec


def test_tfds_build_folder_form_then_builder_from_directory(tmp_path, clean_modules):
  folder = os.path.join(ROOT, "datasets_builders", "condensed_fashion_mnist")
  _tfds_build(folder, "--config", "idc_ipc10", "--data_dir", str(tmp_path))
  prepared = tmp_path / "condensed_fashion_mnist" / "idc_ipc10" / str(_condensed.VERSION)
  assert (prepared / "dataset_info.json").exists()
  builder = tfds.builder_from_directory(str(prepared))
  assert builder.info.splits["train"].num_examples == 400
  assert builder.info.splits["stored"].num_examples == 100
  x, y = next(iter(builder.as_dataset(split="stored", as_supervised=True).batch(100)))
  shipped = os.path.join(folder, "artifacts", "idc_ipc10")
  np.testing.assert_array_equal(x.numpy(), np.load(os.path.join(shipped, "images.npy")))
  np.testing.assert_array_equal(y.numpy(), np.load(os.path.join(shipped, "labels.npy")))
  assert builder.info.metadata["provenance"]["artifact"] == "prebuilt"


def test_tfds_build_with_imports(tmp_path):
  _tfds_build("condensed_fashion_mnist", "--imports", "datasets_builders",
              "--config", "idc_ipc10", "--data_dir", str(tmp_path))
  ds = tfds.load(SHIPPED, split="train", data_dir=str(tmp_path), download=False)
  assert ds.cardinality().numpy() == 400


def test_source_error_hints_name_commands_that_work_here(tmp_path):
  with pytest.raises(SourceUnavailableError) as err:
    tfc.load_source("cifar10", data_dir=str(tmp_path))
  msg = str(err.value)
  assert "tfds build" not in msg  # the tfds CLI of tensorflow-datasets 4.9 does not start
  assert "tfds.builder('cifar10'" in msg and ".download_and_prepare()" in msg


# ------------------------------------------------------------------ README recipes


def test_readme_tfds_recipes_run(home):
  """The README's three ways (shipped, manual dir, to_tfds then plain TFDS), verbatim,
  with `~` and the working directory in a temporary folder."""
  tmp_path = home
  manual = _write_idc_artifact(tmp_path / "my_artifacts" / "idc_ipc10", seed=1)
  exported = _write_idc_artifact(tmp_path / "runs" / "idc10" / "artifact", seed=2)
  scope = {}
  exec(compile(_readme_block("Condensed sets as TFDS datasets"), "README.md", "exec"),
       scope)  # pylint: disable=exec-used
  assert {"ds", "builder", "tfds"} <= set(scope)
  stored = tfds.load(export.dataset_name("runs/idc10/artifact"), split="stored",
                     data_dir=str(tmp_path / "tensorflow_datasets"), as_supervised=True)
  x = np.stack([x for x, _ in stored.as_numpy_iterator()])
  np.testing.assert_array_equal(x, exported.images)  # recipe 3 read our export
  assert not np.array_equal(x, manual.images)
  assert scope["ds"].cardinality().numpy() == 400  # 100 stored, 4 formed from each


# ------------------------------------------------------------------ TFDS metadata


@pytest.fixture(scope="module")
def shipped_info(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("shipped"))
  ds, info = tfds.load(SHIPPED, split="train", data_dir=data_dir, with_info=True)
  return ds, info, data_dir


def test_metadata_is_nested_with_normalisation_machine_and_recipe(shipped_info):
  _, info, _ = shipped_info
  meta = info.metadata
  assert all(isinstance(v, dict) for v in meta.values()), meta  # tfds iterates each one
  assert (meta["dataset"]["method"], meta["dataset"]["ipc"]) == ("idc", 10)
  norm = meta["normalization"]
  assert (tuple(norm["mean"]), tuple(norm["std"])) == (fashion_mnist.MEAN, fashion_mnist.STD)
  assert meta["recipe"]["config"]["lr_img"] == 1e-4  # the shipped meta.json's config
  assert meta["recipe"]["budget"]["steps"] == 1000
  assert isinstance(meta["machine"], dict)  # the shipped set predates meta["machine"]
  assert meta["evaluation"]["accuracy"]["acc_mean"] > 70


def test_a_leading_tilde_in_data_dir_means_home(home):
  _write_idc_artifact(home / "art", seed=0)
  export.to_tfds(str(home / "art"), data_dir="~/tfds_data")
  assert (home / "tfds_data" / "condensed_fashion_mnist").is_dir()
  assert not (home / "~").exists()  # where tfds alone would have put it
  ds = tfc.load(SHIPPED, split="stored", data_dir="~/tfds_data")
  assert ds.cardinality().numpy() == 100


def test_machine_comes_from_meta_json(tmp_path):
  _write_idc_artifact(tmp_path / "art", seed=0)
  builder = export.to_tfds(str(tmp_path / "art"), data_dir=str(tmp_path / "tfds"))
  assert builder.info.metadata["machine"] == {"device": "test CPU"}


def test_show_examples_draws_a_shipped_set(shipped_info):
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  ds, info, _ = shipped_info
  fig = tfds.show_examples(ds, info, rows=2, cols=3)
  assert len(fig.axes) == 6
  drawn = fig.axes[0].images[0].get_array()
  assert drawn.shape == (28, 28) and drawn.dtype == np.uint8
  assert "(" in fig.axes[0].get_xlabel()  # "<class name> (<label>)"
  plt.close(fig)


def test_as_dataframe_of_a_shipped_set(shipped_info):
  pytest.importorskip("pandas", reason="tfds.as_dataframe needs pandas (test extra)")
  ds, info, _ = shipped_info
  frame = tfds.as_dataframe(ds.take(4), info)
  assert len(frame) == 4 and {"image", "image_uint8", "label"} <= set(frame.columns)
  pytest.importorskip("jinja2", reason="a notebook shows the frame through jinja2")
  assert "<img" in frame._repr_html_()  # the uint8 image column renders as pictures


def test_uint8_image_is_the_documented_conversion(shipped_info):
  ds, _, _ = shipped_info
  for ex in ds.take(8).as_numpy_iterator():
    expected = np.round(np.clip(ex["image"], 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(ex["image_uint8"], expected)


def test_tfc_load_still_returns_normalised_float_images(shipped_info):
  _, _, data_dir = shipped_info
  x, y = next(iter(tfc.load(SHIPPED, split="stored", data_dir=data_dir).batch(100)))
  shipped = os.path.join(os.path.dirname(datasets_builders.__file__),
                         "condensed_fashion_mnist", "artifacts", "idc_ipc10")
  raw = np.load(os.path.join(shipped, "images.npy"))
  mean, std = fashion_mnist.MEAN[0], fashion_mnist.STD[0]
  np.testing.assert_allclose(x.numpy(), (raw - mean) / std, rtol=1e-6, atol=1e-6)
  assert x.dtype.name == "float32" and y.dtype.name == "int64"


# ------------------------------------------------------------------ Keras


def test_test_split_is_the_source_test_set_normalised_like_load(home):
  source = _fashion_mnist_or_skip()
  ds = tfc.load(SHIPPED, split="test")
  x, y = next(iter(ds.batch(20000)))
  assert x.shape == (10000, 28, 28, 1) and y.dtype.name == "int64"
  np.testing.assert_allclose(x.numpy(), source.normalize(source.test_images), atol=1e-6)
  np.testing.assert_array_equal(y.numpy(), source.test_labels)
  same = next(iter(tfc.load_test("fashion_mnist").batch(20000)))
  np.testing.assert_array_equal(same[0].numpy(), x.numpy())
  raw = next(iter(tfc.load_test(SHIPPED, normalize=False).take(1)))
  np.testing.assert_array_equal(raw[0].numpy(), source.test_images[0])


def test_train_and_test_in_one_call(tmp_path):
  _fashion_mnist_or_skip()
  (train, test), info = tfc.load(SHIPPED, split=["train", "test"],
                                 data_dir=str(tmp_path), with_info=True)
  assert train.cardinality().numpy() == 400 and test.cardinality().numpy() == 10000
  assert train.element_spec == test.element_spec
  assert info.splits["train"].num_examples == 400


def test_test_split_rejects_slices_and_bad_names(home):
  with pytest.raises(InvalidConfigError, match="split='test'"):
    tfc.load(SHIPPED, split="test[:10%]")
  with pytest.raises(UnknownNameError, match="unknown source 'nothing'"):
    tfc.load_test("condensed_nothing/idc_ipc10")


@pytest.mark.heavy
def test_readme_keras_snippet_runs(home):
  """README "Training a Keras model on a condensed set", at 1 epoch and 512 test images."""
  _fashion_mnist_or_skip()
  code = _readme_block("Training a Keras model on a condensed set")
  for long, short in (("epochs=30", "epochs=1"), ("test.batch(256)", "test.take(512).batch(256)")):
    assert code.count(long) == 1, long
    code = code.replace(long, short)
  scope = {}
  exec(compile(code, "README.md", "exec"), scope)  # pylint: disable=exec-used
  assert 0.0 <= scope["accuracy"] <= 1.0 and np.isfinite(scope["loss"])
  assert scope["model"].optimizer.iterations.numpy() == 7  # 400 images, batch 64
