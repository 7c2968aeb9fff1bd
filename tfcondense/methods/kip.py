"""KIP, kernel inducing points (Nguyen, Chen & Lee, ICLR 2021, "Dataset Meta-Learning
from Kernel Ridge-Regression"; Nguyen, Novak, Xiao & Lee, NeurIPS 2021, "Dataset
Distillation with Infinitely Wide Convolutional Networks").

The support set (all stored images, with centered one-hot labels Y_s) is learnt so
that kernel ridge regression on it predicts a batch of real target images well:

    L = 1/2 mean((Y_t - K_ts (K_ss + lambda tr(K_ss) / n_s I)^-1 Y_s)^2)

with K the NTK (or NNGP) of an infinitely wide fully-connected ReLU network
(`tfcondense.kernels`), lambda the relative regulariser (`reg`), Y one-hot minus
1 / num_classes (centered, as the reference) and the mean over all target entries
(the reference's `0.5 * mean`). One step = one target batch (class-balanced, as the
reference's `class_balanced_sample`, or uniform with replacement) and one Adam step
(b1 0.9, b2 0.999, eps 1e-8, the reference's `jax.example_libraries.optimizers.adam`)
on the images and, with `learn_labels`, on the label matrix.

Images: the SyntheticSet keeps pixels ([0, 1] at initialisation) and the kernel sees
them normalised with the source's mean / std, as the reference learns standardised
images. Adam runs in that normalised space (the gradient is taken w.r.t. the
normalised images and the step is mapped back to pixels by * std), so `lr_img`
means what the reference's learning rate means. The images are not clipped while
learning (KIP does not); the artifact export (`SyntheticSet.numpy`) clips to [0, 1].

Labels: with `learn_labels` the [n_s, num_classes] label matrix is a trainable,
checkpointed variable used by the loss (`label_matrix()` returns it). Artifacts hold
integer labels, so the artifact keeps the hard class-major labels; the learnt matrix
is not exported by `condense`.

Speed: one traced `tf.function` per step (target sampling, kernels, solve, Adam);
the cost is two kernel matrices ([n_t, n_s] and [n_s, n_s]) and an n_s x n_s solve:
about 0.04 s per step on 2 busy CPU cores for 10 classes x 10 ipc and 5000 targets
of 28 x 28 x 1 (the class-balanced sampling included).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfcondense import kernels as kernels_lib
from tfcondense import seeds
from tfcondense import synthetic as synthetic_lib
from tfcondense.errors import InvalidConfigError
from tfcondense.methods import base

_ADAM_B1, _ADAM_B2, _ADAM_EPS = 0.9, 0.999, 1e-8
#: Salt of the root [seed, .] of the per-step target batches (tfcondense/seeds.py).
SALT_ROOT = seeds.salt("kip.root")


@dataclasses.dataclass(frozen=True)
class KIPConfig:
  """KIP settings.

  Attributes:
    ipc: stored images per class (support size = num_classes * ipc).
    init: random, noise, kcenter, herding (or mix, which is random here: KIP has no
      formation).
    kernel: "ntk" or "nngp" (`tfcondense.kernels.KERNELS`).
    depth: hidden ReLU layers of the fully-connected kernel. 1 (FC1, with
      weight_var 2 and bias_var 0.01, i.e. W_std sqrt(2), b_std 0.1) is the KIP
      reference colab's default; the ICLR paper reports FC1-FC3, which perform
      alike, and FC1 is the cheapest.
    weight_var, bias_var: the kernel's sigma_w^2 and sigma_b^2.
    iterations: Adam steps (ours: the reference runs until the test accuracy
      plateaus, hundreds to thousands of steps).
    target_batch: real target images per step (5000, the reference colab's default).
    target_sampling: "balanced" (target_batch // num_classes distinct images per
      class, as the reference) or "uniform" (uniform with replacement).
    reg: lambda of the regulariser lambda * tr(K_ss) / n_s (1e-6, the reference's).
    lr_img: Adam learning rate of the normalised images (0.01, the ICLR paper's).
    learn_labels: also learn the support label matrix (KIP "with label learning").
    lr_labels: Adam learning rate of the labels (None: lr_img, as the reference's
      single optimiser).
    float64: compute kernels and the solve in float64 (the loss is reported in
      float32); better conditioned solves for large supports and small reg.
    seed: everything random derives from it.
  """

  ipc: int = 10
  init: str = "random"
  kernel: str = "ntk"
  depth: int = 1
  weight_var: float = 2.0
  bias_var: float = 0.01
  iterations: int = 1000
  target_batch: int = 5000
  target_sampling: str = "balanced"
  reg: float = 1e-6
  lr_img: float = 0.01
  learn_labels: bool = False
  lr_labels: Optional[float] = None
  float64: bool = False
  seed: int = 0

  def resolve(self, source_name: str) -> "KIPConfig":
    """KIP has no source-dependent defaults: checks the values and returns self."""
    del source_name
    self.check()
    return self

  def check(self) -> None:
    if self.ipc < 1:
      raise InvalidConfigError(f"ipc must be >= 1, got {self.ipc}")
    if self.iterations < 1 or self.target_batch < 1:
      raise InvalidConfigError(
          f"iterations and target_batch must be >= 1, got {self.iterations}, "
          f"{self.target_batch}")
    if self.init not in synthetic_lib.INITS:
      raise InvalidConfigError(
          f"unknown init {self.init!r}; use one of {', '.join(synthetic_lib.INITS.names())}")
    kernels_lib.get_kernel(self.kernel)
    if self.depth < 0:
      raise InvalidConfigError(f"depth must be >= 0 hidden layers, got {self.depth}")
    if not self.weight_var > 0 or self.bias_var < 0:
      raise InvalidConfigError(
          f"need weight_var > 0 and bias_var >= 0, got {self.weight_var}, {self.bias_var}")
    if self.target_sampling not in ("balanced", "uniform"):
      raise InvalidConfigError(
          f"target_sampling must be 'balanced' or 'uniform', got {self.target_sampling!r}")
    if self.reg < 0:
      raise InvalidConfigError(f"reg must be >= 0 (e.g. 1e-6), got {self.reg}")
    for name in ("lr_img", "lr_labels"):
      v = getattr(self, name)
      if v is not None and not v > 0:
        raise InvalidConfigError(f"{name} must be positive (e.g. 0.01), got {v}")

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def centered_one_hot(labels, num_classes: int, dtype=tf.float32) -> tf.Tensor:
  """One-hot rows minus 1 / num_classes (KIP's centered regression targets)."""
  return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=dtype) - 1.0 / num_classes


def krr_weights(k_ss, y_s, reg) -> tf.Tensor:
  """(K_ss + reg * tr(K_ss) / n_s * I)^-1 Y_s: KRR's dual weights, one solve."""
  n = tf.shape(k_ss)[0]
  scale = tf.cast(reg, k_ss.dtype) * tf.linalg.trace(k_ss) / tf.cast(n, k_ss.dtype)
  a = k_ss + scale * tf.eye(n, dtype=k_ss.dtype)
  return tf.linalg.solve(a, tf.cast(y_s, k_ss.dtype))


def krr_predict(k_ss, k_ts, y_s, reg) -> tf.Tensor:
  """K_ts (K_ss + reg * tr(K_ss) / n_s * I)^-1 Y_s (KIP's regularised KRR)."""
  return tf.matmul(k_ts, krr_weights(k_ss, y_s, reg))


def krr_loss(k_ss, k_ts, y_s, y_t, reg) -> Tuple[tf.Tensor, tf.Tensor]:
  """(1/2 mean squared error of the KRR prediction, argmax accuracy), float32."""
  pred = krr_predict(k_ss, k_ts, y_s, reg)
  y_t = tf.cast(y_t, pred.dtype)
  loss = 0.5 * tf.reduce_mean(tf.square(pred - y_t))
  acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(pred, 1), tf.argmax(y_t, 1)), tf.float32))
  return tf.cast(loss, tf.float32), acc


class KIP:
  """The KIP method object driven by `tfcondense.engine.run` (one step = one Adam step
  on one target batch).

  Args:
    source: the SourceData (target batches come from its training images).
    config: a KIPConfig.
    synthetic: an initialised SyntheticSet (built from the config when None).
    init_options: options for the initialiser (e.g. cache_dir for kcenter).
  """

  def __init__(self, source, config: KIPConfig, synthetic=None,
               init_options: Optional[Dict[str, Any]] = None):
    cfg = config.resolve(source.name)
    self.config = cfg
    self.source = source
    self.num_classes = source.num_classes
    if cfg.init != "noise":
      source.check_ipc(cfg.ipc)
    if cfg.target_sampling == "balanced" and cfg.target_batch < self.num_classes:
      raise InvalidConfigError(
          f"target_batch {cfg.target_batch} is smaller than the {self.num_classes} "
          "classes; raise it or use target_sampling='uniform'")
    self.synthetic = synthetic or base.make_synthetic(source, cfg, init_options)
    self.total_steps = int(cfg.iterations)
    self.real = base.RealData(source)
    self._kernel = kernels_lib.get_kernel(cfg.kernel)
    self._dtype = tf.float64 if cfg.float64 else tf.float32
    self._seed = tf.constant([cfg.seed, SALT_ROOT], tf.int64)

    images = self.synthetic.images
    self.labels = tf.Variable(centered_one_hot(self.synthetic.labels, self.num_classes),
                              trainable=cfg.learn_labels, name="support_labels")
    self._m = [tf.Variable(tf.zeros_like(images), trainable=False, name="adam_m_images"),
               tf.Variable(tf.zeros_like(self.labels), trainable=False, name="adam_m_labels")]
    self._v = [tf.Variable(tf.zeros_like(images), trainable=False, name="adam_v_images"),
               tf.Variable(tf.zeros_like(self.labels), trainable=False, name="adam_v_labels")]
    self._t = tf.Variable(0, dtype=tf.int64, trainable=False, name="adam_t")
    self._step_fn = tf.function(self._train_step)

  # -- state -------------------------------------------------------------------------
  def checkpoint_items(self) -> Dict[str, Any]:
    return {"synthetic": self.synthetic.trainable_variables,
            "support_labels": self.labels,
            "adam_m": self._m, "adam_v": self._v, "adam_t": self._t}

  def image_summaries(self) -> Dict[str, Any]:
    return {"stored": tf.convert_to_tensor(self.synthetic.images[:32])}

  def label_matrix(self) -> tf.Tensor:
    """The support label matrix [n_s, num_classes] (learnt with `learn_labels`)."""
    return tf.convert_to_tensor(self.labels)

  # -- the loss ------------------------------------------------------------------------
  def kernel(self, x1, x2) -> tf.Tensor:
    """The configured kernel between two batches of NORMALISED images."""
    cfg = self.config
    return self._kernel(tf.cast(x1, self._dtype), tf.cast(x2, self._dtype), depth=cfg.depth,
                        weight_var=cfg.weight_var, bias_var=cfg.bias_var)

  def loss(self, support, y_support, target, y_target) -> Tuple[tf.Tensor, tf.Tensor]:
    """(KIP loss, KRR accuracy) of a support set on a target batch.

    Args:
      support: [n_s, H, W, C] support images in pixel space (normalised here).
      y_support: [n_s, num_classes] support label matrix.
      target: [n_t, H, W, C] target images in pixel space.
      y_target: [n_t, num_classes] target label matrix (centered one-hot).
    """
    xs = self.real.normalize(support)
    xt = self.real.normalize(target)
    return krr_loss(self.kernel(xs, xs), self.kernel(xt, xs), y_support, y_target,
                    self.config.reg)

  def test_accuracy(self, images=None, label_matrix=None, batch_size: int = 2000) -> float:
    """Percent of the source's test images that KRR on a support set classifies right.

    This is the accuracy the KIP papers report (the kernel's own, not a network's
    trained on the images): kernel ridge regression with this config's kernel and
    regulariser, argmax of the prediction.

    Args:
      images: [n_s, H, W, C] support images in pixel space (default: the current ones,
        unclipped; pass `SyntheticSet.numpy()[0]` to score the exported set).
      label_matrix: [n_s, num_classes] (default: `label_matrix()`).
      batch_size: test images per kernel block.

    Raises:
      InvalidConfigError: batch_size < 1, or images and label_matrix of different
        lengths.
    """
    if batch_size < 1:
      raise InvalidConfigError(f"batch_size must be >= 1, got {batch_size}")
    xs = self.real.normalize(tf.convert_to_tensor(
        self.synthetic.images if images is None else images, tf.float32))
    y_s = self.label_matrix() if label_matrix is None else label_matrix
    if xs.shape[0] != y_s.shape[0]:
      raise InvalidConfigError(
          f"{xs.shape[0]} support images but {y_s.shape[0]} label rows")
    weights = krr_weights(self.kernel(xs, xs), y_s, self.config.reg)  # solved once
    test_x, test_y = self.source.test_images, self.source.test_labels
    right = 0
    for i in range(0, len(test_x), batch_size):
      xt = self.real.normalize(tf.convert_to_tensor(test_x[i:i + batch_size], tf.float32))
      pred = tf.matmul(self.kernel(xt, xs), weights)
      right += int(np.sum(np.argmax(pred.numpy(), 1) == test_y[i:i + batch_size]))
    return 100.0 * right / len(test_x)

  def target_batch(self, seed) -> Tuple[tf.Tensor, tf.Tensor]:
    """A target batch (pixel images, centered one-hot labels) for `seed`."""
    cfg = self.config
    if cfg.target_sampling == "uniform":
      x, y = self.real.random_batch(cfg.target_batch, seed)
    else:
      per = cfg.target_batch // self.num_classes
      xs, ys = [], []
      for c in range(self.num_classes):
        xc = self.real.class_batch(c, per, base.fold(seed, c))
        xs.append(xc)
        ys.append(tf.fill(tf.shape(xc)[:1], tf.constant(c, tf.int32)))
      x, y = tf.concat(xs, 0), tf.concat(ys, 0)
    return x, centered_one_hot(y, self.num_classes)

  # -- one step ------------------------------------------------------------------------
  def step(self, step: int) -> Dict[str, float]:
    loss, acc = self._step_fn(tf.constant(step, tf.int64))
    return {"loss": loss, "target_accuracy": acc}

  def _adam(self, i, var, grad, lr, scale=None):
    """One Adam update of `var` with slots i; `scale` maps the step to var's space."""
    m, v = self._m[i], self._v[i]
    t = tf.cast(self._t, tf.float32)
    m.assign(_ADAM_B1 * m + (1.0 - _ADAM_B1) * grad)
    v.assign(_ADAM_B2 * v + (1.0 - _ADAM_B2) * tf.square(grad))
    m_hat = m / (1.0 - tf.pow(_ADAM_B1, t))
    v_hat = v / (1.0 - tf.pow(_ADAM_B2, t))
    update = lr * m_hat / (tf.sqrt(v_hat) + _ADAM_EPS)
    var.assign_sub(update if scale is None else update * scale)

  def _train_step(self, step):
    cfg = self.config
    seed = base.fold(self._seed, step)
    target, y_target = self.target_batch(base.fold(seed, 1))
    images = self.synthetic.images
    with tf.GradientTape() as tape:
      y_support = self.labels if cfg.learn_labels else tf.stop_gradient(self.labels)
      loss, acc = self.loss(images, y_support, target, y_target)
    watched = [images, self.labels] if cfg.learn_labels else [images]
    grads = tape.gradient(loss, watched)
    self._t.assign_add(1)
    # d L / d normalised = d L / d pixels * std; the normalised step maps back * std.
    std = tf.cast(self.real.std, tf.float32)
    self._adam(0, images, grads[0] * std, cfg.lr_img, scale=std)
    if cfg.learn_labels:
      self._adam(1, self.labels, grads[1],
                 cfg.lr_labels if cfg.lr_labels is not None else cfg.lr_img)
    return loss, acc


def _build(source, config, init_options):
  return KIP(source, config, init_options=init_options)


base.register("kip", KIPConfig, _build,
              "KIP (Nguyen et al. 2021): kernel inducing points, KRR loss under the "
              "infinite-width FC ReLU NTK")
