"""NAS-Bench-201 cell networks with discrete cells (Dong & Yang, ICLR 2020).

The search space of NAS-Bench-201 ("NAS-Bench-201: Extending the Scope of Reproducible
Neural Architecture Search", Dong & Yang, ICLR 2020), used by DC-BENCH (Cui et al.,
"DC-BENCH: Dataset Condensation Benchmark", NeurIPS 2022 Datasets and Benchmarks) to
ask whether a condensed set ranks architectures as the full data does.

A cell is a DAG of 4 nodes: node 0 is the cell input and node j (1..3) is the sum over
i < j of op_{j,i}(node i); node 3 is the cell output. Each of the 6 edges carries one
of 5 operations (discrete, not a softmax mixture):

  ============== =========================================================
  none           the edge is absent (zero)
  skip_connect   identity
  nor_conv_1x1   ReLU -> 1x1 convolution (no bias) -> BatchNorm
  nor_conv_3x3   ReLU -> 3x3 convolution (no bias) -> BatchNorm
  avg_pool_3x3   3x3 average pooling, stride 1, padding 1, padded pixels not
                 counted (PyTorch's count_include_pad=False; TF "same")
  ============== =========================================================

An architecture is written as NAS-Bench-201 writes it, one group per node listing its
inputs as `op~i`::

  |nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|

(that one is the paper's ResNet-like cell). The short names none, skip, conv1x1,
conv3x3 and avgpool3x3 are accepted on input; output strings always use the official
names, so they match the keys of NAS-Bench-201 result files.

The macro skeleton is NAS-Bench-201's TinyNetwork: a 3x3 stem convolution to C
channels + BatchNorm; N cells at C; a residual reduction block (ResNet basic block,
stride 2, with an average-pool + 1x1 shortcut) to 2C; N cells; a reduction to 4C; N
cells; BatchNorm + ReLU; global average pooling (the "embedding"); a linear
classifier. NAS-Bench-201 trains C = 16, N = 5 (1,531,546 parameters for the all-3x3
cell on CIFAR-10, its largest network); DC-BENCH reduces it to one cell per stage.

Zero nodes are pruned as in NAS-Bench-201's inference cell, which drops `none` edges:
a node none of whose inputs is alive is zero, and operations applied to a zero node
are not built (a convolution + BatchNorm of a zero map would be a constant that does
not depend on the image). A cell whose output node is zero outputs zeros, so such a
network's logits do not depend on its input.
"""
from __future__ import annotations

import itertools
from typing import List, Optional, Sequence, Tuple

import keras
import numpy as np

from tfcondense.errors import InvalidConfigError
from tfcondense.models.core import EMBEDDING, MODELS
from tfcondense.models.layers import check_norm, normalization
from tfcondense.models.resnet import conv

#: The 5 operations, in NAS-Bench-201's order (its `str2matrix` codes 0..4).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

#: Short names accepted on input.
ALIASES = {"skip": "skip_connect", "conv1x1": "nor_conv_1x1", "conv3x3": "nor_conv_3x3",
           "avgpool3x3": "avg_pool_3x3", "avg_pool": "avg_pool_3x3"}

NUM_NODES = 4
#: The 6 edges (to_node, from_node) in arch-string order.
EDGES = tuple((j, i) for j in range(1, NUM_NODES) for i in range(j))
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625

#: The ResNet-like cell of the NAS-Bench-201 paper (the factory's default).
RESNET_ARCH = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"

Genotype = Tuple[Tuple[Tuple[str, int], ...], ...]


def _op_name(name: str) -> str:
  key = str(name).strip().lower()
  key = ALIASES.get(key, key)
  if key not in OPS:
    raise InvalidConfigError(
        f"unknown NAS-Bench-201 operation {name!r}; known: {', '.join(OPS)} "
        f"(or {', '.join(ALIASES)})")
  return key


def parse_arch(arch: str) -> Genotype:
  """Parses an arch string into ((op, input), ...) per node 1..3.

  Args:
    arch: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` with official or short op names.

  Returns:
    The genotype: node j's entry lists (op, i) for i = 0..j-1 (official op names).

  Raises:
    InvalidConfigError: wrong number of nodes or edges, bad input index or op name.
  """
  groups = str(arch).strip().split("+")
  if len(groups) != NUM_NODES - 1:
    raise InvalidConfigError(
        f"NAS-Bench-201 arch {arch!r} must have {NUM_NODES - 1} '+'-separated node groups, "
        f"e.g. {RESNET_ARCH}")
  genotype = []
  for j, group in enumerate(groups, start=1):
    items = [t for t in group.split("|") if t.strip()]
    parsed = []
    for item in items:
      op, sep, src = item.partition("~")
      if not sep or not src.strip().isdigit():
        raise InvalidConfigError(f"bad edge {item!r} in {arch!r}; write it as op~input")
      parsed.append((_op_name(op), int(src)))
    if sorted(i for _, i in parsed) != list(range(j)):
      raise InvalidConfigError(
          f"node {j} of {arch!r} must take exactly one edge from each of nodes 0..{j - 1}, "
          f"got inputs {[i for _, i in parsed]}")
    genotype.append(tuple(sorted(parsed, key=lambda e: e[1])))
  return tuple(genotype)


def arch_str(genotype: Genotype) -> str:
  """The canonical NAS-Bench-201 string of a genotype (or of a parsable string)."""
  if isinstance(genotype, str):
    genotype = parse_arch(genotype)
  return "+".join("|" + "|".join(f"{op}~{i}" for op, i in node) + "|" for node in genotype)


def arch_from_index(index: int) -> str:
  """Architecture number `index` (0..15624): base-5 digits over the edges, first edge
  most significant, in the order of OPS. (Our numbering; NAS-Bench-201 files are keyed
  by the string.)"""
  index = int(index)
  if not 0 <= index < NUM_ARCHS:
    raise InvalidConfigError(f"arch index must lie in [0, {NUM_ARCHS}), got {index}")
  digits = []
  for _ in EDGES:
    index, d = divmod(index, len(OPS))
    digits.append(d)
  ops = dict(zip(EDGES, reversed(digits)))
  return arch_str(tuple(tuple((OPS[ops[(j, i)]], i) for i in range(j))
                        for j in range(1, NUM_NODES)))


def arch_index(arch: str) -> int:
  """Inverse of `arch_from_index`."""
  genotype = parse_arch(arch)
  index = 0
  for node in genotype:
    for op, _ in node:
      index = index * len(OPS) + OPS.index(op)
  return index


def all_archs() -> List[str]:
  """All 15,625 architecture strings, in index order."""
  return [arch_str(tuple(tuple((op, i) for i, op in enumerate(ops[s:s + j]))
                         for j, s in ((1, 0), (2, 1), (3, 3))))
          for ops in itertools.product(OPS, repeat=len(EDGES))]


def sample_archs(n: int, seed: int) -> List[str]:
  """`n` distinct architectures drawn uniformly from the space (numpy Generator(seed))."""
  n = int(n)
  if not 1 <= n <= NUM_ARCHS:
    raise InvalidConfigError(f"can sample 1..{NUM_ARCHS} architectures, asked for {n}")
  picks = np.random.default_rng(seed).choice(NUM_ARCHS, size=n, replace=False)
  return [arch_from_index(int(i)) for i in picks]


def live_nodes(genotype: Genotype) -> Tuple[bool, ...]:
  """Whether each node 0..3 can be non-zero (has a non-`none` edge from a live node)."""
  live = [True]
  for node in genotype:
    live.append(any(op != "none" and live[i] for op, i in node))
  return tuple(live)


def is_degenerate(arch: str) -> bool:
  """True when the cell output is always zero (no path of non-`none` edges to it)."""
  return not live_nodes(parse_arch(arch))[-1]


@keras.saving.register_keras_serializable(package="tfcondense")
class ZeroMap(keras.layers.Layer):
  """Zeros shaped like the input (the output of a cell whose output node is dead)."""

  def call(self, x):
    return keras.ops.zeros_like(x)

  def compute_output_shape(self, input_shape):
    return input_shape


def _relu_conv_norm(x, filters: int, kernel: int, stride: int, norm: str, name: str):
  """NAS-Bench-201's ReLUConvBN: ReLU -> conv (bias only without a norm) -> norm."""
  x = keras.layers.ReLU(name=f"{name}_relu")(x)
  x = conv(x, filters, kernel, stride, f"{name}_conv", bias=norm == "none")
  layer = normalization(norm, name=f"{name}_norm")
  return x if layer is None else layer(x)


def _edge(x, op: str, channels: int, norm: str, name: str):
  if op == "skip_connect":
    return x
  if op == "avg_pool_3x3":
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)
  kernel = 1 if op == "nor_conv_1x1" else 3
  return _relu_conv_norm(x, channels, kernel, 1, norm, name)


def cell(x, arch, norm: str = "batch", name: str = "cell"):
  """Applies one discrete NAS-Bench-201 cell to the symbolic tensor `x` (NHWC).

  Args:
    x: a Keras symbolic tensor [B, H, W, C]; the cell keeps H, W and C.
    arch: an arch string or genotype.
    norm: normalisation after each convolution ("batch" as NAS-Bench-201).
    name: prefix of the layer names (edge layers are `<name>_e<j><i>`).

  Returns:
    The cell output tensor (zeros shaped like `x` when the output node is dead).
  """
  genotype = parse_arch(arch) if isinstance(arch, str) else arch
  channels = int(x.shape[-1])
  nodes: List[Optional[object]] = [x]
  for j, node in enumerate(genotype, start=1):
    terms = [_edge(nodes[i], op, channels, norm, f"{name}_e{j}{i}")
             for op, i in node if op != "none" and nodes[i] is not None]
    if not terms:
      nodes.append(None)
    elif len(terms) == 1:
      nodes.append(terms[0])
    else:
      nodes.append(keras.layers.Add(name=f"{name}_n{j}")(terms))
  out = nodes[-1]
  if out is None:
    return ZeroMap(name=f"{name}_zero")(x)
  if out is x:  # a pure skip cell: keep a distinct layer boundary for the model graph
    return keras.layers.Identity(name=f"{name}_out")(x)
  return out


def _reduction(x, filters: int, norm: str, name: str):
  """NAS-Bench-201's ResNetBasicblock with stride 2 (between stages)."""
  out = _relu_conv_norm(x, filters, 3, 2, norm, f"{name}_a")
  out = _relu_conv_norm(out, filters, 3, 1, norm, f"{name}_b")
  short = keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)
  short = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_short")(short)
  return keras.layers.Add(name=f"{name}_add")([short, out])


@MODELS.register("nas201")
def nas201(input_shape: Tuple[int, int, int], num_classes: int, *, arch: str = RESNET_ARCH,
           channels: int = 16, cells_per_stage: int = 5, norm: str = "batch") -> keras.Model:
  """NAS-Bench-201's TinyNetwork with one discrete cell architecture.

  Args:
    input_shape: (H, W, C); two stride-2 reductions follow the first stage.
    num_classes: number of logits.
    arch: the cell, as a NAS-Bench-201 string (see the module docstring).
    channels: C, the width of the first stage (16 in NAS-Bench-201).
    cells_per_stage: N (5 in NAS-Bench-201; DC-BENCH's NAS study uses 1).
    norm: "batch" (NAS-Bench-201), "instance", "layer" or "none".
  """
  genotype = parse_arch(arch)
  norm = check_norm(norm)
  channels, n = int(channels), int(cells_per_stage)
  if channels < 1 or n < 0:
    raise InvalidConfigError(
        f"channels must be positive and cells_per_stage non-negative, got {channels}, {n}")
  if min(input_shape[:2]) < 4:
    raise InvalidConfigError(f"input {input_shape[:2]} is too small for two reductions")
  inputs = keras.Input(shape=input_shape, name="images")
  x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=norm == "none",
                          name="stem_conv")(inputs)
  layer = normalization(norm, name="stem_norm")
  x = x if layer is None else layer(x)
  for stage in range(3):
    if stage:
      x = _reduction(x, channels * 2 ** stage, norm, f"reduce{stage}")
    for k in range(n):
      x = cell(x, genotype, norm, name=f"s{stage + 1}c{k + 1}")
  layer = normalization(norm, name="last_norm")
  x = x if layer is None else layer(x)
  x = keras.layers.ReLU(name="last_relu")(x)
  x = keras.layers.GlobalAveragePooling2D(name=EMBEDDING)(x)
  logits = keras.layers.Dense(num_classes, name="classifier")(x)
  return keras.Model(inputs, logits, name="nas201")


def describe(arch: str) -> Sequence[str]:
  """Human-readable node equations, e.g. ['n1 = conv3x3(n0)', ...]."""
  short = {v: k for k, v in ALIASES.items() if k != "avg_pool"}
  lines = []
  for j, node in enumerate(parse_arch(arch), start=1):
    terms = [f"{short.get(op, op)}(n{i})" for op, i in node if op != "none"]
    lines.append(f"n{j} = " + (" + ".join(terms) if terms else "0"))
  return lines
