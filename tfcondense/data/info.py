"""`SourceInfo`: what the library knows about a source without loading its data.

Each source module registers its `SourceInfo` beside its loader, so per-source knowledge
lives in one place: the evaluator reads the evaluation network, augmentation and whether
flips are safe; export reads the normalisation; methods read the kind (image or
spectrogram). A source without registered info (an in-memory set, a test fixture) gets
`default_info(name)`: an image source evaluated the standard way.

    from tfcondense.data import source_info
    source_info("speech_commands").eval_model   # "convnet4", as the IDC reference
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from tfcondense.errors import InvalidConfigError
from tfcondense.registry import Registry

KINDS = ("image", "spectrogram")


@dataclasses.dataclass(frozen=True)
class SourceInfo:
  """A source's fixed facts and the evaluation defaults the references use for it.

  Attributes:
    name: the source's registry name.
    title: its human name ("Fashion-MNIST").
    image_shape: (H, W, C) of its images at the loader's default options.
    num_classes: classes at the default options.
    mean: per-channel normalisation mean; None where it depends on the data (speech:
      the statistics of the recorded or synthesised corpus).
    std: per-channel normalisation std (None with `mean`).
    kind: "image", or "spectrogram" (time along the width: formations cut along time).
    flip_safe: whether a horizontal flip keeps an image's class (False for
      spectrograms, where it reverses time).
    eval_model: the evaluation network (the IDC reference's choice for the source).
    eval_augmentation: the evaluation augmentation; None: the protocol's own (DSA).
  """

  name: str
  title: str
  image_shape: Tuple[int, int, int]
  num_classes: int
  mean: Optional[Tuple[float, ...]] = None
  std: Optional[Tuple[float, ...]] = None
  kind: str = "image"
  flip_safe: bool = True
  eval_model: str = "convnet3"
  eval_augmentation: Optional[str] = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise InvalidConfigError(f"source {self.name}: kind must be one of {KINDS}, got "
                               f"{self.kind!r}")
    if (self.mean is None) != (self.std is None):
      raise InvalidConfigError(f"source {self.name}: give mean and std together")
    if self.mean is not None and not len(self.mean) == len(self.std) == self.image_shape[-1]:
      raise InvalidConfigError(f"source {self.name}: mean / std need one value per channel")


INFO: Registry[SourceInfo] = Registry(
    "source info", hint="Each source module under tfcondense/data/ registers its SourceInfo.")


def register_info(info: SourceInfo) -> SourceInfo:
  """Registers `info` under `info.name`; returns it."""
  return INFO.register(info.name)(info)


def source_info(name: str) -> SourceInfo:
  """The registered info of source `name`.

  Raises:
    UnknownNameError: no source registered info under that name.
  """
  return INFO.get(name)


def info_or_default(name: str) -> SourceInfo:
  """`source_info(name)`, or for an unregistered name (an in-memory source) an image
  source evaluated the standard way (ConvNet-3, the protocol's augmentation, flips)."""
  if name in INFO:
    return INFO.get(name)
  return SourceInfo(name=name, title=name, image_shape=(0, 0, 1), num_classes=0)
