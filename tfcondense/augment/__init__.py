"""Augmentation: differentiable siamese DSA ops, evaluation policies, CutMix.

* `ops`: DSA ops (Zhao & Bilen 2021) as draw-then-apply objects and the `DSA`
  composite; `affine`: the gather-based warps they use (exact image gradients).
* `policies`: `make_policy(name, image_shape=..., mean=..., std=..., flip=...)` for
  the evaluation augmentations none / imagenet / dsa / autoaugment / randaugment.
* `autoaugment`: AutoAugment (Cubuk et al. 2019) and RandAugment (Cubuk et al. 2020).
* `mix`: CutMix (Yun et al. 2019).
"""
from __future__ import annotations

from tfcondense.augment.mix import cutmix, cutmix_loss
from tfcondense.augment.ops import DSA, OPS, DSAOp, parse_strategy
from tfcondense.augment.policies import POLICIES, make_policy

__all__ = ["DSA", "DSAOp", "OPS", "POLICIES", "cutmix", "cutmix_loss", "make_policy",
           "parse_strategy"]
