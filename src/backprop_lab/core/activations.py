"""Activation functions, looked up by name.

Each activation maps a unit's net input ``z`` to its output. The threshold (step) unit of the
article returns 1 when ``z > θ`` and 0 otherwise; its derivative is zero almost everywhere, so
plain backprop cannot train it. The straight-through estimator (STE) keeps the step in the
forward pass but lets a sigmoid's slope through in the backward pass (Bengio et al., 2013,
"Estimating or Propagating Gradients Through Stochastic Neurons").

Every activation but one is elementwise: a unit's output depends on its own net input only.
The exception is ``softmax``, which turns a whole layer's net inputs into class
probabilities, ``ŷₖ = e^(zₖ) / Σⱼ e^(zⱼ)``. Its Jacobian ``∂ŷₖ/∂zⱼ = ŷₖ(δₖⱼ − ŷⱼ)`` is not
diagonal, so it has no per-unit slope ``∂out/∂net``; it is an output activation only, paired
with categorical cross-entropy, whose ``∂E/∂zₖ = ŷₖ − yₖ`` takes both steps at once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from backprop_lab.errors import BackpropLabError

Activation = Callable[[jax.Array], jax.Array]


def threshold(z: jax.Array, theta: float = 0.0) -> jax.Array:
    """Step unit: 1 when ``z > theta``, else 0. Its gradient is zero everywhere."""
    return jnp.where(z > theta, 1.0, 0.0).astype(z.dtype)


def threshold_straight_through(z: jax.Array, theta: float = 0.0) -> jax.Array:
    """Step unit in the forward pass, sigmoid slope ``σ'(z − θ)`` in the backward pass."""
    surrogate = jax.nn.sigmoid(z - theta)
    return surrogate + jax.lax.stop_gradient(threshold(z, theta) - surrogate)


def sigmoid(z: jax.Array) -> jax.Array:
    """Logistic sigmoid ``σ(z) = 1 / (1 + e^(−z))``, the article's smooth unit."""
    return jax.nn.sigmoid(z)


def linear(z: jax.Array) -> jax.Array:
    """Identity: the unit outputs its net input."""
    return z


def leaky_relu(z: jax.Array) -> jax.Array:
    """ReLU with slope 0.01 below zero."""
    return jax.nn.leaky_relu(z, negative_slope=0.01)


def hard_sigmoid(z: jax.Array) -> jax.Array:
    """Piecewise-linear sigmoid ``clip(z/6 + 1/2, 0, 1)``."""
    return jnp.clip(z / 6.0 + 0.5, 0.0, 1.0)


def softmax(z: jax.Array) -> jax.Array:
    """Class probabilities of a layer: ``e^(zₖ) / Σⱼ e^(zⱼ)`` over the last axis (its units).

    ``jax.nn.softmax`` subtracts the largest net input first, so no ``e^z`` overflows.
    """
    return jax.nn.softmax(z, axis=-1)


_SMOOTH: dict[str, Activation] = {
    "sigmoid": sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "linear": linear,
    "leaky_relu": leaky_relu,
    "elu": jax.nn.elu,
    "softplus": jax.nn.softplus,
    "gelu": jax.nn.gelu,
    "swish": jax.nn.swish,
    "hard_sigmoid": hard_sigmoid,
}

# Elementwise activations: any layer may use them.
ACTIVATION_NAMES: tuple[str, ...] = ("threshold", *_SMOOTH)
# Layer-wise activations: the output layer only.
LAYERWISE_ACTIVATIONS: dict[str, Activation] = {"softmax": softmax}
OUTPUT_ACTIVATION_NAMES: tuple[str, ...] = (*ACTIVATION_NAMES, *LAYERWISE_ACTIVATIONS)


def get_activation(name: str, *, theta: float = 0.0, straight_through: bool = False) -> Activation:
    """Return the activation called ``name``.

    Args:
      name: one of :data:`OUTPUT_ACTIVATION_NAMES` (``softmax`` normalises the last axis).
      theta: the threshold θ of the step unit (ignored by other activations).
      straight_through: for the step unit, pass a sigmoid's gradient backwards (STE).

    Raises:
      BackpropLabError: for an unknown name.
    """
    if name == "threshold":
        step = threshold_straight_through if straight_through else threshold
        return lambda z: step(z, theta)
    try:
        return _SMOOTH[name] if name in _SMOOTH else LAYERWISE_ACTIVATIONS[name]
    except KeyError:
        raise BackpropLabError(
            f"unknown activation {name!r}; choose one of: {', '.join(OUTPUT_ACTIVATION_NAMES)}"
        ) from None
