r"""Writes the `dummy_data/` fixtures of the condensed TFDS builders, deterministically.

  python scripts/make_dummy_data.py            # all builders (under a second)
  python scripts/make_dummy_data.py cifar10    # one builder

Each builder gets ONE tiny artifact for the config its DatasetBuilderTestCase tests,
at `datasets_builders/condensed_<source>/dummy_data/<config>/` (images.npy,
labels.npy, meta.json; fashion_mnist also an evaluation.json). Images are 4x4 grids of
random grey levels (seeded per builder) upsampled to the source's shape: valid [0, 1]
float32 images whose files compress well in git. Running it twice writes identical
bytes (meta.json has a fixed `created` and `version`).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfcondense import artifact as artifact_lib  # noqa: E402  pylint: disable=g-import-not-at-top


class Fixture(NamedTuple):
  config: str                  # the config the builder test checks
  method: str
  num_classes: int
  image_shape: Tuple[int, int, int]
  formation: Dict[str, Any]    # Formation.describe() of the method
  fake_class_names: bool = False  # folder sources: names come from meta.json
  evaluation: Optional[Dict[str, Any]] = None


IDENTITY = {"name": "identity", "factor": 1}
UNIFORM2 = {"name": "uniform", "factor": 2}

#: source -> fixture. Split sizes (train = formed, stored) are in each builder's test.
FIXTURES = {
    "fashion_mnist": Fixture(
        "idc_ipc1", "idc", 10, (28, 28, 1), UNIFORM2,
        evaluation={"acc_mean": 12.5, "acc_std": 1.0, "last_mean": 12.0, "last_std": 1.5,
                    "model": "convnet3", "protocol": "smoke", "augmentation": "none"}),
    "cifar10": Fixture("dm_mf_ipc1", "dm_mf", 10, (32, 32, 3), UNIFORM2),
    "cifar100": Fixture("kcenter_ipc1", "kcenter", 100, (32, 32, 3), IDENTITY),
    "tiny_imagenet": Fixture("random_ipc1", "random", 200, (64, 64, 3), IDENTITY,
                             fake_class_names=True),
    "imagenet_subset": Fixture("random_ipc1_nclass10", "random", 10, (224, 224, 3),
                               IDENTITY, fake_class_names=True),
    "speech_commands": Fixture("idc_ipc1", "idc", 8, (64, 64, 1),
                               {"name": "time", "factor": 2, "axis": 1}),
}
GRID = 4


def blocky_images(n: int, shape: Tuple[int, int, int], seed: int) -> np.ndarray:
  """n float32 images: GRID x GRID cells of random levels k/255, nearest-upsampled."""
  h, w, c = shape
  rng = np.random.default_rng(seed)
  cells = rng.integers(0, 256, size=(n, GRID, GRID, c)).astype(np.float32) / 255.0
  bh, bw = -(-h // GRID), -(-w // GRID)
  images = np.repeat(np.repeat(cells, bh, axis=1), bw, axis=2)[:, :h, :w, :]
  return np.ascontiguousarray(images, dtype=np.float32)


def write(source: str, fixture: Fixture) -> str:
  """Writes one builder's fixture; returns its directory."""
  ipc = 1
  n = fixture.num_classes * ipc
  images = blocky_images(n, fixture.image_shape, seed=sum(map(ord, source)))
  labels = np.repeat(np.arange(fixture.num_classes), ipc).astype(np.int32)
  factor = int(fixture.formation["factor"])
  formed_per_stored = 1 if factor == 1 else (
      factor if fixture.formation["name"] == "time" else factor * factor)
  h, w, c = fixture.image_shape
  meta = dict(
      source=source, method=fixture.method, ipc=ipc, factor=factor,
      formation=fixture.formation, seed=0,
      budget=dict(seconds=0.0, minutes=0.0, steps=0, total_steps=0, stopped="done"),
      storage=dict(stored_images=n, stored_pixels=n * h * w * c, parameters=0,
                   stored_bytes=n * h * w * c * 4, formed_images=n * formed_per_stored),
      version="dummy", created="2000-01-01T00:00:00+00:00")
  if fixture.fake_class_names:
    meta["class_names"] = [f"class_{i:03d}" for i in range(fixture.num_classes)]
  folder = os.path.join(ROOT, "datasets_builders", f"condensed_{source}", "dummy_data",
                        fixture.config)
  artifact_lib.save_artifact(folder, images, labels, meta)
  if fixture.evaluation is not None:
    with open(os.path.join(folder, "evaluation.json"), "w") as f:
      json.dump(fixture.evaluation, f, indent=2, sort_keys=True)
  return folder


def main(argv) -> int:
  names = argv[1:] or list(FIXTURES)
  unknown = [s for s in names if s not in FIXTURES]
  if unknown:
    print(f"unknown source(s) {unknown}; known: {', '.join(FIXTURES)}", file=sys.stderr)
    return 2
  for source in names:
    print(write(source, FIXTURES[source]))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
