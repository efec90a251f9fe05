"""Loss functions ``E(y, ŷ)`` over a batch, looked up by name.

Each takes targets and predictions of shape ``(batch, outputs)`` and an optional per-sample
weight (used to pad mini-batches to a fixed size) and returns the mean loss per sample.

Accuracy depends on the kind of output. For ``cce`` (a softmax over the classes) a sample is
right when its most probable class is its target's (argmax); for the other losses when every
output is within 0.5 of its target.
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


def _log_probabilities(predictions: jax.Array) -> jax.Array:
    """``log ŷ`` with ŷ floored at the dtype's smallest normal number (about 1e-38 in float32).

    A softmax probability that underflowed to 0 would make the loss ``inf``; floored, the loss
    of a sample is at most about 87 (float32). Above the floor the gradient is untouched, so
    a confidently wrong sample (ŷ of its class down to 1e-38) still pulls on the weights,
    where a clip at 1e-7, as for ``bce``, would silence it.
    """
    return jnp.log(jnp.maximum(predictions, jnp.finfo(predictions.dtype).tiny))


def cce_per_sample(targets: jax.Array, predictions: jax.Array) -> jax.Array:
    """Categorical cross-entropy ``−Σₖ yₖ log ŷₖ`` of each sample.

    Targets are one-hot rows (or any probabilities over the classes), predictions a softmax.
    """
    return -jnp.sum(targets * _log_probabilities(predictions), axis=-1)


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


def categorical_cross_entropy(
    targets: jax.Array, predictions: jax.Array, sample_weight: jax.Array | None = None
) -> jax.Array:
    """``E = −Σₖ yₖ log ŷₖ``, summed over the classes, averaged over samples.

    With a softmax output ``ŷ = softmax(z)`` and targets that sum to 1, ``∂E/∂zₖ = ŷₖ − yₖ``
    for each sample (before the mean over samples): the softmax's Jacobian and the log's
    ``1/ŷ`` cancel.
    """
    return _weighted_mean(cce_per_sample(targets, predictions), sample_weight)


LOSSES: dict[str, Loss] = {
    "half_sse": half_sum_squared_error,
    "mse": mean_squared_error,
    "bce": binary_cross_entropy,
    "cce": categorical_cross_entropy,
}
PER_SAMPLE_LOSSES: dict[str, Loss] = {
    "half_sse": half_sse_per_sample,
    "mse": mse_per_sample,
    "bce": bce_per_sample,
    "cce": cce_per_sample,
}
# Losses whose targets are classes of a softmax output: accuracy is by argmax.
CATEGORICAL_LOSSES: tuple[str, ...] = ("cce",)


def get_loss(name: str) -> Loss:
    """Return the loss called ``name`` (one of ``half_sse``, ``mse``, ``bce``, ``cce``)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise BackpropLabError(
            f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}"
        ) from None


def accuracy(
    targets: jax.Array,
    predictions: jax.Array,
    sample_weight: jax.Array | None = None,
    *,
    categorical: bool = False,
) -> jax.Array:
    """Fraction of samples classified right (see :func:`correct_per_sample`)."""
    correct = correct_per_sample(targets, predictions, categorical=categorical)
    return _weighted_mean(correct, sample_weight)


def epoch_metrics(
    name: str, targets: jax.Array, predictions: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Loss and accuracy of each epoch from predictions of shape ``(epochs, samples, outputs)``.

    The same numbers as ``get_loss(name)`` and :func:`accuracy` per epoch, written as single
    reductions over the last two axes: in a large vmapped grid this is about twice as fast as
    reducing outputs, then samples.
    """
    samples = targets.shape[-2]
    if name in CATEGORICAL_LOSSES:
        loss = -jnp.sum(targets * _log_probabilities(predictions), axis=(-2, -1)) / samples
        right = correct_per_sample(targets, predictions, categorical=True)
        return loss, jnp.mean(right, axis=-1)
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


def correct_per_sample(
    targets: jax.Array, predictions: jax.Array, *, categorical: bool = False
) -> jax.Array:
    """1 for each sample classified right, else 0.

    ``categorical``: the most probable class (argmax of ŷ) is the target's (argmax of y; ties
    go to the first class). Otherwise every output is within 0.5 of its target: for 0/1
    targets the usual "rounded prediction equals the label", and it also scores the article's
    0.1/0.9 targets sensibly.
    """
    if categorical:
        same = jnp.argmax(predictions, axis=-1) == jnp.argmax(targets, axis=-1)
        return same.astype(predictions.dtype)
    return jnp.all(jnp.abs(targets - predictions) < 0.5, axis=-1).astype(predictions.dtype)
