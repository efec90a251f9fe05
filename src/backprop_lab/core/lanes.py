"""A grid of tiny networks trained with its cells on the last axis ("lanes").

``jax.vmap`` puts the cell axis first: a grid of 1,024 networks 2-2-1 holds its first layer's
weights as an array ``(1024, 2, 2)``. A CPU vectorises the innermost axis, here of length 2,
and every net input is a batched matrix product of 2 × 2 matrices: the program spends its time
on loop overhead, not on arithmetic. With the cells last, ``(2, 2, 1024)``, every operation of
a step is an elementwise operation on rows of 1,024 numbers, which XLA fuses into a few loops
that the CPU runs 8 or 16 cells at a time: on the 32 × 32 XOR grid, about twice the speed
of the ``vmap`` program (``benchmarks/bench_sweep.py`` measures both).

``vmap`` cannot give this layout (its batching rules move the cell axis to the front), so
this module writes the few layout-dependent pieces for it: net inputs as sums of columns,
and the loss and metrics of each cell. The rest of training (activations, optax's optimizers,
schedules, snapshots) is elementwise and runs unchanged, with each cell's hyperparameters on
the last axis too. The state crosses the program's boundary in the usual cells-first layout
(:func:`to_lanes` and :func:`from_lanes` run inside the compiled chunk), so nothing outside a
chunk sees the difference.

A grid trains in lanes when its cells all see the same batches (online or full-batch
training, whose order is the data set's), its activations are elementwise and its layers are
tiny (:func:`lanes_suit`: at most 8 weights each, as the article's 2-2-1 XOR network). The layout is part of the program, so of its bits (the sums are
taken in another order than a matrix product's): a run records it.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from backprop_lab.core.activations import LAYERWISE_ACTIVATIONS, Activation
from backprop_lab.core.losses import (
    bce_per_sample,
    correct_per_sample,
    epoch_metrics,
    half_sse_per_sample,
    mse_per_sample,
)
from backprop_lab.core.model import Architecture, Params

GRID_LAYOUTS: tuple[str, ...] = ("cells", "lanes")

# Above this fan-in a net input is a reduction over the inputs axis instead of a sum of
# columns written out one by one.
_UNROLLED_FAN_IN = 16
# "auto" picks lanes for networks whose layers have at most this many weights. Measured on
# grids of 128 and 1,024 XOR networks: 2-2-1 to 2-4-1 train up to 2.5 times faster in lanes
# (with training.unroll=4; about as fast at 1), 2-8-1 two to three times slower, because
# the backward pass of each column's sum becomes an operation of its own.
_AUTO_MAX_LAYER_WEIGHTS = 8


def lanes_possible(architecture: Architecture, batching: str, method: str) -> bool:
    """Whether a grid of this network can train with its cells last: its cells share their
    batches (online or full-batch training keep the data set's order) and its activations
    are elementwise (a softmax mixes a layer's units)."""
    elementwise = not {architecture.hidden_activation, architecture.output_activation} & set(
        LAYERWISE_ACTIVATIONS
    )
    return elementwise and batching in ("online", "full") and method != "perceptron"


def lanes_suit(architecture: Architecture, batching: str, method: str) -> bool:
    """Whether a grid of this network trains faster with its cells last (see above)."""
    sizes = architecture.layer_sizes
    small = all(
        n_in * n_out <= _AUTO_MAX_LAYER_WEIGHTS
        for n_in, n_out in zip(sizes, sizes[1:], strict=False)
    )
    return small and lanes_possible(architecture, batching, method)


def to_lanes(tree):
    """Every leaf with its leading (cell) axis moved last."""
    return jax.tree_util.tree_map(lambda leaf: jnp.moveaxis(leaf, 0, -1), tree)


def from_lanes(tree):
    """The inverse of :func:`to_lanes`."""
    return jax.tree_util.tree_map(lambda leaf: jnp.moveaxis(leaf, -1, 0), tree)


def forward(params: Params, inputs: jax.Array, activations: Sequence[Activation]) -> jax.Array:
    """Every cell's output ``(batch, outputs, cells)`` for ``inputs`` ``(batch, inputs)``
    shared by the cells; each layer's ``weights`` are ``(units, inputs, cells)``.

    A net input ``z_j = Σᵢ wⱼᵢ·xᵢ + b_j`` is summed column by column, from ``i = 0``, then the
    bias: the order of a single network's broadcast sum (``model.forward``).
    """
    signal = inputs[..., None]  # (batch, inputs, 1): the first layer's inputs, every cell's
    for layer, activation in zip(params, activations, strict=True):
        weights = layer.weights
        if weights.shape[1] <= _UNROLLED_FAN_IN:
            z = signal[:, 0:1, :] * weights[None, :, 0, :]
            for i in range(1, weights.shape[1]):
                z = z + signal[:, i : i + 1, :] * weights[None, :, i, :]
        else:
            z = jnp.sum(signal[:, None, :, :] * weights[None], axis=2)
        if layer.biases is not None:
            z = z + layer.biases
        signal = activation(z)
    return signal


def per_cell(function, predictions: jax.Array):
    """``function(predictions of one cell)`` for every cell (the last axis), cells last."""
    return jax.vmap(function, in_axes=-1, out_axes=-1)(predictions)


# Data sets up to this size are evaluated one sample at a time: each sample's outputs are
# rows of cells, and the sums over samples are additions of rows, all in one fused loop (about
# a fifth faster on the XOR grid than a batch of samples reduced per cell).
_SAMPLE_BY_SAMPLE = 32
_PER_SAMPLE_LOSSES = {"half_sse": half_sse_per_sample, "mse": mse_per_sample, "bce": bce_per_sample}


def evaluate(loss: str, params: Params, inputs, targets, activations) -> tuple:
    """Every cell's loss and accuracy on a whole split, ``((cells,), (cells,))``: the numbers
    of ``losses.epoch_metrics``."""
    samples = inputs.shape[0]
    if samples > _SAMPLE_BY_SAMPLE or loss not in _PER_SAMPLE_LOSSES:
        predictions = forward(params, inputs, activations)
        return per_cell(lambda cell: epoch_metrics(loss, targets, cell), predictions)
    sample_loss, total_loss, right = _PER_SAMPLE_LOSSES[loss], 0.0, 0.0
    for sample in range(samples):
        outputs = forward(params, inputs[sample : sample + 1], activations)[0].T  # (cells, outs)
        total_loss = total_loss + sample_loss(targets[sample], outputs)
        right = right + correct_per_sample(targets[sample], outputs)
    return total_loss / samples, right / samples


def update_direction(loss_fn, activations: Sequence[Activation]):
    """``(params, inputs, targets, mask) -> gradients``, every cell's own, cells last.

    The gradient of the sum of the cells' losses: each cell's parameters reach only its own
    loss, whose cotangent is exactly 1, so every cell gets the gradient it would alone.
    """

    def total_loss(params: Params, inputs, targets, mask) -> jax.Array:
        predictions = forward(params, inputs, activations)
        return jnp.sum(per_cell(lambda p: loss_fn(targets, p, mask), predictions))

    return jax.grad(total_loss)


def resolved_layout(spec) -> str:
    """The layout a grid of ``spec`` (a ``TrainSpec``) trains in: its ``grid_layout``, with
    ``auto`` resolved to ``lanes`` where they suit and ``cells`` elsewhere."""
    if spec.grid_layout != "auto":
        return spec.grid_layout
    return "lanes" if lanes_suit(spec.architecture, spec.batching, spec.method) else "cells"


def check_layout(spec) -> None:
    """Raise a one-line error for a layout ``spec`` cannot train in."""
    from backprop_lab.errors import BackpropLabError

    if spec.grid_layout not in ("auto", *GRID_LAYOUTS):
        raise BackpropLabError(
            f"grid layout {spec.grid_layout!r} is unknown; choose auto, "
            + " or ".join(GRID_LAYOUTS)
        )
    if spec.grid_layout == "lanes" and not lanes_possible(
        spec.architecture, spec.batching, spec.method
    ):
        raise BackpropLabError(
            "a grid trains in lanes only with online or full batches and elementwise "
            "activations, by backprop or straight-through"
        )
