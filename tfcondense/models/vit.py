"""The Vision Transformer (Dosovitskiy et al., ICLR 2021) of DC-BENCH.

Layout of lucidrains/vit-pytorch as used by DC-BENCH (Cui et al., 2022): patch 4,
dim 512, depth 6, 8 heads of 64, MLP dim 512, dropout 0.1, a learnable position
embedding, a class token (or mean pooling), pre-norm blocks
`x + Drop(MHA(LN(x)))`, `x + Drop(Dense(GELU(Dense(LN(x)))))`, and a head
LN -> Dense. The head LayerNorm is the "embedding" layer. LayerNorms are the exact
`TokenNorm` so that gradient matching differentiates them correctly.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from tfcondense.errors import InvalidConfigError
from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import TokenNorm


def _normal(var, scheme, seed):
  # vit-pytorch draws both with torch.randn; the Keras scheme uses ViT's 0.02.
  std = 1.0 if scheme == "pytorch" else 0.02
  return std * tf.random.stateless_normal(tuple(var.shape), seed=seed,
                                          dtype=tf.float32)


@keras.saving.register_keras_serializable(package="tfcondense")
class ClassToken(keras.layers.Layer):
  """Prepends a learnable [CLS] token to a [B, N, D] token sequence."""

  def build(self, input_shape):
    self.token = self.add_weight(shape=(1, 1, int(input_shape[-1])),
                                 initializer="random_normal", name="token")

  def call(self, x):
    token = tf.cast(self.token, x.dtype)
    return tf.concat([tf.tile(token, [tf.shape(x)[0], 1, 1]), x], axis=1)

  def compute_output_shape(self, input_shape):
    n = None if input_shape[1] is None else input_shape[1] + 1
    return (input_shape[0], n, input_shape[2])

  tfc_initial_value = staticmethod(_normal)


@keras.saving.register_keras_serializable(package="tfcondense")
class PositionEmbedding(keras.layers.Layer):
  """Adds a learnable [1, N, D] position embedding."""

  def build(self, input_shape):
    self.embedding = self.add_weight(
        shape=(1, int(input_shape[1]), int(input_shape[2])),
        initializer="random_normal", name="embedding")

  def call(self, x):
    return x + tf.cast(self.embedding, x.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  tfc_initial_value = staticmethod(_normal)


@keras.saving.register_keras_serializable(package="tfcondense")
class SelectToken(keras.layers.Layer):
  """Returns token `index` of a [B, N, D] sequence (the class-token pooling)."""

  def __init__(self, index: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.index = int(index)

  def call(self, x):
    return x[:, self.index]

  def compute_output_shape(self, input_shape):
    return (input_shape[0], input_shape[2])

  def get_config(self):
    return {**super().get_config(), "index": self.index}


@MODELS.register("vit")
def vit(input_shape, num_classes, *, patch_size: int = 4, dim: int = 512,
        depth: int = 6, heads: int = 8, dim_head: int = 64, mlp_dim: int = 512,
        dropout: float = 0.1, emb_dropout: float = 0.1,
        pool: str = "cls") -> keras.Model:
  """ViT for small images (DC-BENCH configuration by default).

  Args:
    input_shape: (H, W, C); H and W must be divisible by `patch_size`.
    num_classes: number of logits.
    patch_size: side of the square patches.
    dim: token width.
    depth: number of transformer blocks.
    heads: attention heads.
    dim_head: width of each head.
    mlp_dim: hidden width of the MLPs.
    dropout: dropout in attention and MLPs.
    emb_dropout: dropout after adding the position embedding.
    pool: "cls" (class token) or "mean" (mean of the tokens).
  """
  h, w, _ = input_shape
  p = int(patch_size)
  if p < 1 or h % p or w % p:
    raise InvalidConfigError(
        f"vit: image size {h}x{w} is not divisible by patch_size {patch_size}")
  pool = str(pool).lower()
  if pool not in ("cls", "mean"):
    raise InvalidConfigError(f"vit: pool must be 'cls' or 'mean', got {pool!r}")
  inputs = keras.Input(shape=input_shape, name="images")
  # A stride-p p x p convolution is the "rearrange + linear" patch embedding.
  x = keras.layers.Conv2D(dim, p, strides=p, name="patch_embed")(inputs)
  x = keras.layers.Reshape(((h // p) * (w // p), dim), name="tokens")(x)
  if pool == "cls":
    x = ClassToken(name="cls_token")(x)
  x = PositionEmbedding(name="pos_embed")(x)
  x = keras.layers.Dropout(emb_dropout, name="emb_dropout")(x)
  for i in range(depth):
    name = f"block{i + 1}"
    y = TokenNorm(name=f"{name}_attn_norm")(x)
    y = keras.layers.MultiHeadAttention(heads, dim_head, dropout=dropout,
                                        name=f"{name}_attn")(y, y)
    y = keras.layers.Dropout(dropout, name=f"{name}_attn_dropout")(y)
    x = keras.layers.Add(name=f"{name}_attn_add")([x, y])
    y = TokenNorm(name=f"{name}_mlp_norm")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp1_dropout")(y)
    y = keras.layers.Dense(dim, name=f"{name}_mlp2")(y)
    y = keras.layers.Dropout(dropout, name=f"{name}_mlp2_dropout")(y)
    x = keras.layers.Add(name=f"{name}_mlp_add")([x, y])
  if pool == "cls":
    x = SelectToken(0, name="pool")(x)
  else:
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
  x = TokenNorm(name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name="vit")
