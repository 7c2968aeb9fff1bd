"""MTT's augmentation: DSA in the reference's single or all mode (`Augment`).

The reference's `ParamDiffAug` (Cazenavette et al., CVPR 2022) has `aug_mode = 'S'`:
per call ONE of the strategy's tokens ("color" = brightness + saturation + contrast,
crop, cutout, flip, scale, rotate) is chosen for the whole batch and applied with
per-sample parameters (`aug_mode="single"`, the default of `MTTConfig`);
`aug_mode="all"` applies every op in turn (`DSA(mode="all")`). The same rule augments
the experts' real batches (`mtt_experts`) and the student's synthetic batches (`mtt`).
"""
from __future__ import annotations

import tensorflow as tf

from tfcondense import seeds
from tfcondense.augment import ops as dsa_ops
from tfcondense.errors import check_choice
from tfcondense.methods import base

AUG_MODES = ("single", "all")

#: Salt of the token drawn in single mode, folded into the call's key (the branches
#: fold their index 0, 1, ... into it: see tfcondense/seeds.py, scope "mtt.augment").
SALT_CHOICE = seeds.salt("mtt.choice")


class Augment:
  """DSA on a batch with per-sample draws, in the reference's single or all mode.

  "single" is the DSA / MTT reference `ParamDiffAug.aug_mode = 'S'`: one token of the
  strategy (color, crop, cutout, flip, scale, rotate) is drawn per call and applied to
  the whole batch with per-sample parameters; "all" applies every op in turn
  (`DSA(mode="all")`).

  In "single" mode with `differentiable=True` (the student batches, differentiated
  w.r.t. the images) every token is applied and the drawn one kept by a one-hot
  weighted sum: the gradient then needs no control flow (a `tf.switch_case`
  gradient exports the crop / flip branches' boolean intermediates, which TF's type
  inference rejects with a warning per trace), for a few element-wise passes over the
  batch, negligible next to the network. With `differentiable=False` (the experts'
  real batches) only the drawn token runs (`tf.switch_case`).
  """

  def __init__(self, strategy: str, mode: str = "single", differentiable: bool = True):
    self.mode = check_choice("aug_mode", mode, AUG_MODES)
    self.differentiable = differentiable
    dsa_ops.parse_strategy(strategy)  # validates every token
    if not strategy or strategy.lower() == "none":
      tokens = []
    else:
      tokens = strategy.lower().split("_")
    if self.mode == "all" or len(tokens) <= 1:
      self.branches = [dsa_ops.DSA(strategy, mode="all")] if tokens else []
    else:
      self.branches = [dsa_ops.DSA(t, mode="all") for t in tokens]

  def __call__(self, x: tf.Tensor, seed) -> tf.Tensor:
    if not self.branches:
      return x
    if len(self.branches) == 1:
      return self.branches[0](x, seed)
    n = tf.shape(x)[0]
    k = len(self.branches)
    choice = tf.random.stateless_uniform([], base.fold(seed, SALT_CHOICE), 0, k,
                                         dtype=tf.int32)
    if self.differentiable:
      weights = tf.one_hot(choice, k, dtype=x.dtype)
      return tf.add_n([weights[i] * b.apply(x, b.sample(n, base.fold(seed, i)))
                       for i, b in enumerate(self.branches)])
    fns = [lambda b=b, i=i: b.apply(x, b.sample(n, base.fold(seed, i)))
           for i, b in enumerate(self.branches)]
    return tf.switch_case(choice, fns)
