"""SourceInfo: one registered record per source, agreeing with what the loaders give."""
import os

import numpy as np
import pytest

from tfcondense import data
from tfcondense.errors import InvalidConfigError
from tfcondense.registry import UnknownNameError


def test_every_source_registers_its_info():
  assert sorted(data.INFO.names()) == data.source_names()
  speech = data.source_info("speech_commands")
  assert speech.kind == "spectrogram" and not speech.flip_safe
  assert (speech.eval_model, speech.eval_augmentation) == ("convnet4", "none")
  assert not data.source_info("mnist").flip_safe and data.source_info("cifar10").flip_safe
  with pytest.raises(UnknownNameError, match="unknown source info 'cifar11'"):
    data.source_info("cifar11")


def test_an_unregistered_source_gets_the_standard_defaults():
  info = data.info_or_default("toy")
  assert (info.eval_model, info.eval_augmentation, info.flip_safe) == ("convnet3", None, True)


def test_bad_info_is_refused():
  with pytest.raises(InvalidConfigError, match="kind must be one of"):
    data.SourceInfo("x", "X", (8, 8, 1), 2, kind="video")
  with pytest.raises(InvalidConfigError, match="one value per channel"):
    data.SourceInfo("x", "X", (8, 8, 3), 2, mean=(0.5,), std=(0.2,))
  with pytest.raises(InvalidConfigError, match="mean and std together"):
    data.SourceInfo("x", "X", (8, 8, 1), 2, mean=(0.5,))


@pytest.mark.parametrize("name", ["digits", "fashion_mnist"])
def test_info_matches_the_loaded_source(name):
  if name == "fashion_mnist" and not os.path.isdir("/usr/share/datasets/fashion-mnist"):
    pytest.skip("dataset-fashion-mnist not installed")
  info = data.source_info(name)
  source = data.load_source(name, limit_per_class=5)
  assert source.image_shape == info.image_shape and source.num_classes == info.num_classes
  if info.mean is not None:
    np.testing.assert_allclose(source.mean, info.mean)
    np.testing.assert_allclose(source.std, info.std)


def test_export_reads_the_normalisation_from_the_info():
  from tfcondense import export
  assert export.NORMALIZATION["fashion_mnist"] == (data.source_info("fashion_mnist").mean,
                                                   data.source_info("fashion_mnist").std)
  assert "speech_commands" not in export.NORMALIZATION


def test_one_protocol_resolution_reads_the_source_info():
  from tfcondense import evaluation as ev
  speech = ev.resolve_protocol("cpu", "speech_commands")
  assert speech.augmentation == "none" and ev.default_model("speech_commands") == "convnet4"
  assert ev.resolve_protocol("cpu", "speech_commands", augmentation="dsa").augmentation == "dsa"
  assert ev.resolve_protocol("cpu", "toy").augmentation == "dsa"  # unregistered: standard
  given = ev.get_protocol("quick", augmentation="crop_flip")
  assert ev.resolve_protocol(given, "speech_commands") is given  # an object is used as is
  assert ev.resolve_protocol("cpu", "fashion_mnist", steps=7).total_steps(100) == 7
  assert ev.recipe(ev.get_protocol("cpu"), "mnist") == "dsa(color_crop_scale_rotate)+cutmix(0.5)"
  assert ev.recipe(ev.get_protocol("cpu"), "fashion_mnist") == \
      "dsa(color_crop_flip_scale_rotate)+cutmix(0.5)"
  assert "digits" in ev.NO_FLIP_SOURCES and "fashion_mnist" not in ev.NO_FLIP_SOURCES
