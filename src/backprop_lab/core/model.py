"""Multilayer perceptrons as pure functions over a tuple of layers.

Weights are stored one row per unit, as in SEED-NOTES' table: ``weights[j][i]`` is the weight
from input ``i`` (or the previous layer's unit ``i``) to unit ``j``. A unit's net input is
``z_j = Σᵢ weights[j][i]·xᵢ + biases[j]`` (the bias is the weight of an input fixed at 1) and its
output is ``activation(z_j)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from backprop_lab.core.activations import (
    ACTIVATION_NAMES,
    LAYERWISE_ACTIVATIONS,
    OUTPUT_ACTIVATION_NAMES,
    Activation,
    get_activation,
)
from backprop_lab.errors import BackpropLabError, invalid


class Layer(NamedTuple):
    """One fully connected layer: ``weights`` (units, inputs) and ``biases`` (units,) or None."""

    weights: jax.Array
    biases: jax.Array | None


Params = tuple[Layer, ...]

INIT_SCHEMES: tuple[str, ...] = (
    "normal",
    "uniform",
    "glorot_uniform",
    "glorot_normal",
    "he_normal",
)


class Architecture(NamedTuple):
    """Shape and activations of a network; hashable, so it can be a static jit argument."""

    layer_sizes: tuple[int, ...]
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    use_bias: bool = True
    theta: float = 0.0

    @property
    def num_inputs(self) -> int:
        return self.layer_sizes[0]

    @property
    def num_outputs(self) -> int:
        return self.layer_sizes[-1]


def validate_architecture(architecture: Architecture) -> None:
    """Raise a one-line :class:`BackpropLabError` for an impossible network."""
    sizes = architecture.layer_sizes
    if len(sizes) < 2:
        raise BackpropLabError(
            f"layer_sizes={list(sizes)} needs at least an input and an output size"
        )
    for position, size in enumerate(sizes):
        if not isinstance(size, int | np.integer) or size < 1:
            raise BackpropLabError(
                f"layer size {size!r} at position {position} of {list(sizes)} is invalid; "
                "every layer needs at least 1 unit"
            )
    hidden, output = architecture.hidden_activation, architecture.output_activation
    if hidden in LAYERWISE_ACTIVATIONS:
        raise invalid(
            "model.hidden_activation",
            hidden,
            f"{hidden} turns a whole layer into class probabilities: use it as "
            "model.output_activation, and an elementwise activation for the hidden units",
        )
    if hidden not in ACTIVATION_NAMES:
        raise invalid(
            "model.hidden_activation", hidden, "choose one of " + ", ".join(ACTIVATION_NAMES)
        )
    if output not in OUTPUT_ACTIVATION_NAMES:
        raise invalid(
            "model.output_activation", output, "choose one of " + ", ".join(OUTPUT_ACTIVATION_NAMES)
        )
    if output == "softmax" and sizes[-1] < 2:
        raise invalid(
            "model.output_activation",
            output,
            f"softmax over {sizes[-1]} output unit is always 1: it needs one output per class, "
            "at least 2 (a class column is one-hot encoded: data.class_column)",
        )


def count_parameters(architecture: Architecture) -> int:
    """Number of trainable numbers (weights and biases)."""
    sizes = architecture.layer_sizes
    per_layer = (
        n_in * n_out + (n_out if architecture.use_bias else 0)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False)
    )
    return sum(per_layer)


def init_params(
    key: jax.Array, architecture: Architecture, scheme: str = "glorot_uniform", scale: float = 1.0
) -> Params:
    """Draw random initial weights; biases start at zero.

    Args:
      key: PRNG key; the same key gives the same bits.
      architecture: the network's shape.
      scheme: ``normal`` (σ = ``scale``), ``uniform`` (±``scale``), ``glorot_uniform``,
        ``glorot_normal`` (Glorot & Bengio, 2010) or ``he_normal`` (He et al., 2015); for the
        last three ``scale`` multiplies the standard width.
      scale: see ``scheme``.

    Written with ``jax.random`` only, so it can be ``vmap``-ed over keys to draw a whole grid of
    networks in one call.
    """
    if scheme not in INIT_SCHEMES:
        raise BackpropLabError(
            f"unknown init scheme {scheme!r}; choose one of: {', '.join(INIT_SCHEMES)}"
        )
    sizes = architecture.layer_sizes
    keys = jax.random.split(key, len(sizes) - 1)
    layers = []
    for layer_key, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=False):
        shape = (n_out, n_in)
        if scheme == "normal":
            weights = scale * jax.random.normal(layer_key, shape)
        elif scheme == "uniform":
            weights = jax.random.uniform(layer_key, shape, minval=-scale, maxval=scale)
        elif scheme == "glorot_uniform":
            limit = scale * math.sqrt(6.0 / (n_in + n_out))
            weights = jax.random.uniform(layer_key, shape, minval=-limit, maxval=limit)
        elif scheme == "glorot_normal":
            weights = scale * math.sqrt(2.0 / (n_in + n_out)) * jax.random.normal(layer_key, shape)
        else:  # he_normal
            weights = scale * math.sqrt(2.0 / n_in) * jax.random.normal(layer_key, shape)
        biases = jnp.zeros((n_out,), weights.dtype) if architecture.use_bias else None
        layers.append(Layer(weights, biases))
    return tuple(layers)


def params_from_lists(
    architecture: Architecture,
    weights: Sequence[Sequence[Sequence[float]]],
    biases: Sequence[Sequence[float]] | None = None,
    dtype=None,
) -> Params:
    """Build parameters from explicit numbers, e.g. the article's initial weights.

    ``weights[l][j][i]`` is the weight from input ``i`` to unit ``j`` of layer ``l``.
    """
    sizes = architecture.layer_sizes
    if len(weights) != len(sizes) - 1:
        raise BackpropLabError(
            f"explicit weights give {len(weights)} layers but layer_sizes={list(sizes)} needs {len(sizes) - 1}"
        )
    if architecture.use_bias and biases is None:
        raise BackpropLabError(
            "explicit weights need explicit biases too (or set model.use_bias=false)"
        )
    layers = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layer_weights = jnp.asarray(np.asarray(weights[index], dtype=np.float64), dtype=dtype)
        if layer_weights.shape != (n_out, n_in):
            raise BackpropLabError(
                f"explicit weights of layer {index} have shape {tuple(layer_weights.shape)}, "
                f"expected ({n_out}, {n_in}) — one row of {n_in} weights per unit"
            )
        layer_biases = None
        if architecture.use_bias:
            layer_biases = jnp.asarray(np.asarray(biases[index], dtype=np.float64), dtype=dtype)
            if layer_biases.shape != (n_out,):
                raise BackpropLabError(
                    f"explicit biases of layer {index} have shape {tuple(layer_biases.shape)}, expected ({n_out},)"
                )
        layers.append(Layer(layer_weights, layer_biases))
    return tuple(layers)


def layer_activations(
    architecture: Architecture, *, straight_through: bool = False
) -> tuple[Activation, ...]:
    """The activation of each layer: hidden ones for all but the last, then the output one."""
    num_layers = len(architecture.layer_sizes) - 1
    hidden = get_activation(
        architecture.hidden_activation, theta=architecture.theta, straight_through=straight_through
    )
    output = get_activation(
        architecture.output_activation, theta=architecture.theta, straight_through=straight_through
    )
    return tuple(hidden for _ in range(num_layers - 1)) + (output,)


def forward_trace(
    params: Params, inputs: jax.Array, activations: Sequence[Activation]
) -> tuple[list[jax.Array], list[jax.Array]]:
    """Forward pass that keeps every layer's net inputs ``z`` and outputs.

    Args:
      params: the layers.
      inputs: ``(batch, inputs)`` or ``(inputs,)``.
      activations: one per layer (see :func:`layer_activations`).

    Returns:
      ``(net_inputs, outputs)``, one array per layer.
    """
    net_inputs, outputs = [], []
    signal = inputs
    for layer, activation in zip(params, activations, strict=False):
        z = signal @ layer.weights.T
        if layer.biases is not None:
            z = z + layer.biases
        signal = activation(z)
        net_inputs.append(z)
        outputs.append(signal)
    return net_inputs, outputs


def forward(
    params: Params, inputs: jax.Array, activations: Sequence[Activation], *, broadcast: bool = False
) -> jax.Array:
    """The network's output ``ŷ`` for ``inputs`` of shape ``(batch, inputs)`` or ``(inputs,)``.

    ``broadcast=True`` computes each net input as a broadcast multiply and sum instead of a
    matrix product. For one tiny network on a CPU that is about 20% faster (XLA fuses it into
    one loop instead of calling a dot kernel); under ``vmap`` the batched product is faster.
    """
    signal = inputs
    for layer, activation in zip(params, activations, strict=True):
        if broadcast:
            z = jnp.sum(signal[..., None, :] * layer.weights, axis=-1)
        else:
            z = signal @ layer.weights.T
        if layer.biases is not None:
            z = z + layer.biases
        signal = activation(z)
    return signal


def params_to_dict(params: Params) -> dict:
    """``{"layers": [{"weights": [[...]], "biases": [...]}, ...]}``, one row per unit."""
    return {
        "layers": [
            {
                "weights": np.asarray(layer.weights).tolist(),
                "biases": [] if layer.biases is None else np.asarray(layer.biases).tolist(),
            }
            for layer in params
        ]
    }


def params_to_arrays(params: Params) -> dict[str, np.ndarray]:
    """Flat ``{"layer0_weights": ..., "layer0_biases": ...}`` for ``numpy.savez``.

    The one serialised layout of parameters: ``weights.npz`` of a run, ``grid.npz`` of a grid
    (where every array has leading ``(rates, seeds)`` axes) and trajectory snapshots all use it.
    """
    arrays: dict[str, np.ndarray] = {}
    for index, layer in enumerate(params):
        arrays[f"layer{index}_weights"] = np.asarray(layer.weights)
        if layer.biases is not None:
            arrays[f"layer{index}_biases"] = np.asarray(layer.biases)
    return arrays


def num_layers_in(arrays) -> int:
    """How many layers a :func:`params_to_arrays` mapping holds."""
    count = 0
    while f"layer{count}_weights" in arrays:
        count += 1
    return count


def params_from_arrays(arrays, index: tuple = (), dtype=np.float32) -> Params:
    """Inverse of :func:`params_to_arrays`; ``index`` picks one network of a batched layout
    (``(rate_index, seed_index)`` of a grid, or a snapshot's position)."""
    layers = []
    for i in range(num_layers_in(arrays)):
        weights = np.asarray(arrays[f"layer{i}_weights"][index], dtype=dtype)
        biases = arrays.get(f"layer{i}_biases")
        layers.append(
            Layer(
                jnp.asarray(weights),
                None if biases is None else jnp.asarray(np.asarray(biases[index], dtype=dtype)),
            )
        )
    return tuple(layers)


def params_from_dict(payload: dict) -> Params:
    """Inverse of :func:`params_to_dict`."""
    layers = []
    for layer in payload["layers"]:
        biases = layer.get("biases") or None
        layers.append(
            Layer(
                jnp.asarray(layer["weights"], dtype=jnp.float32),
                None if biases is None else jnp.asarray(biases, dtype=jnp.float32),
            )
        )
    return tuple(layers)
