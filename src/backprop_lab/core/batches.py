"""Which samples each optimizer step of an epoch trains on.

Online and full-batch epochs keep the data set's order (the article's); shuffled and
mini-batch epochs draw theirs from ``fold_in(key, epoch)`` (see :mod:`backprop_lab.core.train`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def epoch_batches(spec, key: jax.Array, x: jax.Array, y: jax.Array):
    """One epoch's batches: inputs ``(batches, size, features)``, targets, and a padding mask.

    The mask is None unless the last mini-batch had to be padded. Online and full-batch
    training keep the data set's order (the article's), so they need no gather at all.
    """
    num_samples = x.shape[0]
    if spec.batching == "online":
        return x[:, None, :], y[:, None, :], None
    if spec.batching == "full":
        return x[None], y[None], None
    order = jax.random.permutation(key, num_samples)
    if spec.batching == "shuffled":
        return x[order][:, None, :], y[order][:, None, :], None
    batch_size = min(spec.batch_size, num_samples)
    num_batches = -(-num_samples // batch_size)
    padded = num_batches * batch_size
    # The last batch is filled up with repeats whose mask is 0, so every batch has one shape.
    indices = order[jnp.arange(padded) % num_samples].reshape(num_batches, batch_size)
    mask = None
    if padded != num_samples:
        mask = (jnp.arange(padded) < num_samples).astype(x.dtype).reshape(num_batches, batch_size)
    return x[indices], y[indices], mask


def epoch_key(spec, key: jax.Array, epoch_index) -> jax.Array:
    """The key that orders epoch ``epoch_index`` (0-based) of a shuffled or mini-batch run."""
    if spec.batching in ("shuffled", "minibatch"):
        return jax.random.fold_in(key, epoch_index)
    return key  # unused: online and full batches keep the data's order


def epoch_sample_order(
    spec, key: jax.Array, epoch_index: int, num_samples: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Which samples each optimizer step of epoch ``epoch_index`` (0-based) trains on.

    Returns indices of shape ``(steps, batch)`` and the padding mask (None unless the last
    mini-batch is topped up with repeats): the same draw as training makes, from the run's
    shuffle ``key``.
    """
    indices = jnp.arange(num_samples)[:, None]
    batches, _, mask = epoch_batches(spec, epoch_key(spec, key, epoch_index), indices, indices)
    return np.asarray(batches[..., 0]), None if mask is None else np.asarray(mask)
