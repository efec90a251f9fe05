"""Loss functions ``E(y, ŷ)`` over a batch, looked up by name.

Each takes targets and predictions of shape ``(batch, outputs)`` and an optional per-sample
weight (used to pad mini-batches to a fixed size) and returns the mean loss per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from backprop_lab.errors import BackpropLabError

Loss = Callable[..., jax.Array]

# Probabilities are clipped this far from 0 and 1 before the log of cross-entropy.
_BCE_EPSILON = 1e-7


def _weighted_mean(per_sample: jax.Array, sample_weight: jax.Array | None) -> jax.Array:
    if sample_weight is None:
        return jnp.mean(per_sample)
    return jnp.sum(per_sample * sample_weight) / jnp.maximum(jnp.sum(sample_weight), 1.0)


def half_sse_per_sample(targets: jax.Array, predictions: jax.Array) -> jax.Array:
    """``½ Σₖ (yₖ − ŷₖ)²`` of each sample (the last axis holds the outputs)."""
    return 0.5 * jnp.sum((targets - predictions) ** 2, axis=-1)


def mse_per_sample(targets: jax.Array, predictions: jax.Array) -> jax.Array:
    """``mean_k (yₖ − ŷₖ)²`` of each sample."""
    return jnp.mean((targets - predictions) ** 2, axis=-1)


def bce_per_sample(targets: jax.Array, predictions: jax.Array) -> jax.Array:
    """``−mean_k [yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)]`` of each sample.

    Predictions are probabilities (a sigmoid output), clipped to ``[ε, 1 − ε]`` so a saturated
    unit gives a large finite loss rather than ``inf``.
    """
    clipped = jnp.clip(predictions, _BCE_EPSILON, 1.0 - _BCE_EPSILON)
    per_output = -(targets * jnp.log(clipped) + (1.0 - targets) * jnp.log1p(-clipped))
    return jnp.mean(per_output, axis=-1)


def half_sum_squared_error(
    targets: jax.Array, predictions: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """The article's ``E = ½ Σₖ (yₖ − ŷₖ)²``, summed over outputs, averaged over samples.

    The ½ makes ``∂E/∂ŷₖ = −(yₖ − ŷₖ)``, as in the worked example.
    """
    return _weighted_mean(half_sse_per_sample(targets, predictions), sample_weight)


def mean_squared_error(
    targets: jax.Array, predictions: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """``mean((y − ŷ)²)`` over outputs and samples."""
    return _weighted_mean(mse_per_sample(targets, predictions), sample_weight)


def binary_cross_entropy(
    targets: jax.Array, predictions: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """``−[y log ŷ + (1 − y) log(1 − ŷ)]``, averaged over outputs and samples (clipped ŷ)."""
    return _weighted_mean(bce_per_sample(targets, predictions), sample_weight)


LOSSES: dict[str, Loss] = {
    "half_sse": half_sum_squared_error,
    "mse": mean_squared_error,
    "bce": binary_cross_entropy,
}
PER_SAMPLE_LOSSES: dict[str, Loss] = {
    "half_sse": half_sse_per_sample,
    "mse": mse_per_sample,
    "bce": bce_per_sample,
}


def get_loss(name: str) -> Loss:
    """Return the loss called ``name`` (one of ``half_sse``, ``mse``, ``bce``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise BackpropLabError(
            f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}"
        ) from None


def accuracy(
    targets: jax.Array, predictions: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """Fraction of samples whose every output is within 0.5 of its target.

    For 0/1 targets this is the usual "rounded prediction equals the label"; it also scores the
    article's 0.1/0.9 targets sensibly.
    """
    return _weighted_mean(correct_per_sample(targets, predictions), sample_weight)


def epoch_metrics(
    name: str, targets: jax.Array, predictions: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Loss and accuracy of each epoch from predictions of shape ``(epochs, samples, outputs)``.

    The same numbers as ``get_loss(name)`` and :func:`accuracy` per epoch, written as single
    reductions over the last two axes: in a large vmapped grid this is about twice as fast as
    reducing outputs, then samples.
    """
    samples = targets.shape[-2]
    error = targets - predictions
    if name == "half_sse":
        loss = 0.5 * jnp.sum(error * error, axis=(-2, -1)) / samples
    elif name == "mse":
        loss = jnp.mean(error * error, axis=(-2, -1))
    else:
        clipped = jnp.clip(predictions, _BCE_EPSILON, 1.0 - _BCE_EPSILON)
        loss = -jnp.mean(
            targets * jnp.log(clipped) + (1.0 - targets) * jnp.log1p(-clipped), axis=(-2, -1)
        )
    close = jnp.abs(error) < 0.5
    if targets.shape[-1] == 1:
        accuracy_ = jnp.mean(close.astype(predictions.dtype), axis=(-2, -1))
    else:
        accuracy_ = jnp.mean(jnp.all(close, axis=-1).astype(predictions.dtype), axis=-1)
    return loss, accuracy_


def correct_per_sample(targets: jax.Array, predictions: jax.Array) -> jax.Array:
    """1 for each sample whose every output is within 0.5 of its target, else 0."""
    return jnp.all(jnp.abs(targets - predictions) < 0.5, axis=-1).astype(predictions.dtype)
