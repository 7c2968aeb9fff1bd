"""Two toy methods registered exactly as the README's "Adding a method" says.

Importing this module registers `toy_first` (selection) and `toy_means` (synthesis);
`tests/test_api.py` imports it (and unregisters them afterwards), the app tests pass it
to `--imports tests.toy_methods`.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from tfcondense.methods import base
from tfcondense.methods.base import SELECTION


@SELECTION.register("toy_first")
def first_images(source, ipc, seed):
  """The first `ipc` training images of every class."""
  del seed
  idx = np.concatenate([np.flatnonzero(source.train_labels == c)[:ipc]
                        for c in range(source.num_classes)])
  return source.train_images[idx], source.train_labels[idx], {"toy": True}


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  ipc: int = 1
  seed: int = 0
  init: str = "noise"
  iterations: int = 3
  rate: float = 0.5

  def resolve(self, source_name):
    del source_name
    return self

  def as_dict(self):
    return dataclasses.asdict(self)


class ToyMeans:
  """Moves every synthetic image a fraction `rate` of the way to its class mean per step."""

  def __init__(self, source, cfg, init_options):
    self.synthetic = base.make_synthetic(source, cfg, init_options)
    self.total_steps = cfg.iterations
    means = np.stack([source.train_images[source.train_labels == c].mean(0)
                      for c in range(source.num_classes)])
    self._target = tf.constant(means[self.synthetic.labels.numpy()])
    self._rate = cfg.rate

  def step(self, step):
    del step
    diff = self._target - self.synthetic.images
    self.synthetic.images.assign_add(self._rate * diff)
    return {"loss": tf.reduce_mean(tf.square(diff))}

  def checkpoint_items(self):
    return {"images": self.synthetic.images}

  def image_summaries(self):
    return {}


base.register("toy_means", ToyConfig, ToyMeans, "toy: images pulled to their class mean")
