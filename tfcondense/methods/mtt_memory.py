"""The memory model of MTT's unroll, and the "auto" choice of checkpointing it.

The tape keeps every student step's forward and backward intermediates (the unroll is
differentiated to second order). Without `checkpoint_unroll`, peak memory grows
linearly with syn_steps:

    bytes ≈ 4 · syn_steps · (c · batch_syn · A + 3 · P)

with A the activation floats of one image in one forward pass (ConvNet-3, width 128,
32×32×3: ≈ 0.56 M), c ≈ 1.7 (forward activations plus the first-order backward's
intermediates the second-order pass reads; measured on CPU: +77 MB per student step
at batch_syn 20, P = 320 k) and P the parameter count (θ_n, its gradient, the
update). E.g. CIFAR-10 IPC 10, syn_steps 20, batch_syn 100: ≈ 4 · 20 · (1.7 · 100 ·
0.56 M + 3 · 0.32 M) ≈ 7.7 GB. With `checkpoint_unroll=True` each student step keeps
only its inputs (θ_{n-1}, the augmented batch, α) and is recomputed in the backward
pass: ≈ 4 · syn_steps · (2 · P + batch_syn · H·W·C) bytes plus one step's
intermediates (measured: +8.5 MB per student step in the setting above, 9x less),
for ≈ 1.45x the time of a distillation step.

`checkpoint_unroll="auto"` (the default) decides per run from that formula
(`unroll_memory_bytes`): A is counted from the traced forward pass of one image (every
floating-point op output, `forward_floats`: 1.25 M for ConvNet-3 at 32×32×3, whose
measured c · A above is 0.95 M, hence the factor `GRAPH_TO_TAPE`; the same at 28×28×1,
which it pads to 32×32), and the plain unroll is kept while its estimate is under
`AUTO_MEMORY_FRACTION` of the host's available memory, else the checkpointed one is
used (`needs_checkpointing`; Fashion-MNIST IPC 10: 7.6 GB, plain; IPC 50, 500 images per
student step: 38 GB, checkpointed; the plain unroll was killed for memory at 24 GB on a
24 GiB machine). Where even the checkpointed unroll would not fit, the run stops before
it starts and names `batch_syn`. With a GPU visible the host's memory says nothing about
the device's, so "auto" keeps the plain unroll there (`tfcondense.methods.mtt.MTT`).
"""
from __future__ import annotations

from typing import Optional, Sequence

from absl import logging
import tensorflow as tf

from tfcondense.errors import InvalidConfigError

#: checkpoint_unroll="auto" keeps the plain unroll while its estimated memory is under
#: this fraction of the host's available memory.
AUTO_MEMORY_FRACTION = 0.6
#: c · A of the module docstring per traced forward-pass float (0.95 M measured / 1.25 M
#: counted for ConvNet-3 at 32×32×3).
GRAPH_TO_TAPE = 0.76

_NOT_ACTIVATIONS = frozenset({"Const", "ReadVariableOp", "Identity", "Placeholder", "NoOp",
                               "Shape", "Reshape"})


def forward_floats(model, image_shape: Sequence[int]) -> int:
  """Floating-point values one image's training-mode forward pass computes.

  Counted over the outputs of the traced graph's ops (variable reads, constants and
  reshapes excluded): the A of the module docstring's memory formula, up to the
  `GRAPH_TO_TAPE` factor.
  """
  spec = tf.TensorSpec((1,) + tuple(int(d) for d in image_shape), tf.float32)
  graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(spec).graph
  return int(sum(t.shape.num_elements() for op in graph.get_operations()
                 if op.type not in _NOT_ACTIVATIONS for t in op.outputs
                 if t.dtype.is_floating and t.shape.is_fully_defined()))


def unroll_memory_bytes(syn_steps: int, batch_syn: int, forward: int, num_params: int,
                        image_size: int, checkpointed: bool) -> float:
  """Estimated memory of one distillation step's unroll (module docstring).

  Args:
    syn_steps, batch_syn: as MTTConfig (batch_syn resolved to a number).
    forward: `forward_floats` of the student.
    num_params: P, the student's parameter count.
    image_size: H·W·C of one image.
    checkpointed: whether each student step is recomputed in the backward pass.
  """
  step_activations = GRAPH_TO_TAPE * batch_syn * forward
  if checkpointed:
    return 4.0 * (syn_steps * (2 * num_params + batch_syn * image_size) + step_activations)
  return 4.0 * syn_steps * (step_activations + 3 * num_params)


def needs_checkpointing(available: Optional[float], syn_steps: int, batch_syn: int,
                        forward: int, num_params: int, image_size: int) -> bool:
  """Whether "auto" checkpoints the unroll, given the host's available memory.

  Args:
    available: the host's available memory in bytes (None: unknown, plain unroll).
    syn_steps, batch_syn, forward, num_params, image_size: as `unroll_memory_bytes`.

  Returns:
    False while the plain unroll's estimate is under `AUTO_MEMORY_FRACTION` of
    `available`, else True.

  Raises:
    InvalidConfigError: not even the checkpointed unroll fits (names batch_syn).
  """
  if available is None:
    return False
  args = (syn_steps, batch_syn, forward, num_params, image_size)
  plain = unroll_memory_bytes(*args, checkpointed=False)
  if plain <= AUTO_MEMORY_FRACTION * available:
    return False
  checkpointed = unroll_memory_bytes(*args, checkpointed=True)
  gib = 2.0 ** 30
  if checkpointed > AUTO_MEMORY_FRACTION * available:
    raise InvalidConfigError(
        f"MTT's unroll of {syn_steps} student steps on {batch_syn} images needs "
        f"about {plain / gib:.1f} GiB ({checkpointed / gib:.1f} GiB checkpointed), more "
        f"than {AUTO_MEMORY_FRACTION:.0%} of this machine's {available / gib:.1f} GiB "
        "available; lower batch_syn "
        "(images per student step) or syn_steps")
  logging.info("MTT: checkpointing the unroll (plain: about %.1f GiB of %.1f GiB "
               "available; checkpointed: %.1f GiB)", plain / gib, available / gib,
               checkpointed / gib)
  return True
