"""Plain baselines the benchmarks measure the project against, written the obvious way.

``numpy_online_sgd`` is a per-sample NumPy loop for a sigmoid MLP with E = ½ Σ (y − ŷ)², the
article's online gradient descent, one network at a time.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def numpy_online_sgd(weights, biases, x, y, learning_rate: float, epochs: int):
    """Train one sigmoid MLP in place with per-sample SGD; returns the per-epoch loss.

    ``weights[l]`` has one row per unit (units, inputs), as in the project.
    """
    weights = [np.array(w, dtype=np.float64) for w in weights]
    biases = [np.array(b, dtype=np.float64) for b in biases]
    epoch_loss = np.empty(epochs)
    for epoch in range(epochs):
        for sample, target in zip(x, y, strict=True):
            outputs = [sample]
            for w, b in zip(weights, biases, strict=True):
                outputs.append(_sigmoid(w @ outputs[-1] + b))
            # dE/dŷ = −(y − ŷ); δ = dE/dz = dE/dout · σ'(z) with σ' = out(1 − out).
            delta = -(target - outputs[-1]) * outputs[-1] * (1.0 - outputs[-1])
            for layer in range(len(weights) - 1, -1, -1):
                grad_w = np.outer(delta, outputs[layer])
                grad_b = delta
                if layer > 0:
                    delta = (weights[layer].T @ delta) * outputs[layer] * (1.0 - outputs[layer])
                weights[layer] -= learning_rate * grad_w
                biases[layer] -= learning_rate * grad_b
        predictions = x
        for w, b in zip(weights, biases, strict=True):
            predictions = _sigmoid(predictions @ w.T + b)
        epoch_loss[epoch] = np.mean(0.5 * np.sum((y - predictions) ** 2, axis=1))
    return weights, biases, epoch_loss


def plain_jax_grid(x, y, epochs: int, unroll: int):
    """A plain ``jit(vmap(train))`` of a 2-2-1 sigmoid network with online SGD, as a JAX
    engineer would write it: a ``lax.scan`` over epochs around a ``lax.scan`` over samples
    (``unroll`` samples per loop iteration), recording each epoch's loss and accuracy.

    Returns ``train(params, learning_rates) -> (params, (loss, accuracy))`` over cells, where
    ``params`` is ``(w1, b1, w2, b2)`` with a leading cell axis (weights one row per unit).
    """
    import jax
    import jax.numpy as jnp

    def forward(params, inputs):
        w1, b1, w2, b2 = params
        hidden = jax.nn.sigmoid(inputs @ w1.T + b1)
        return jax.nn.sigmoid(hidden @ w2.T + b2)

    def loss(params, inputs, targets):
        return 0.5 * jnp.sum((targets - forward(params, inputs)) ** 2, axis=-1).mean()

    gradient = jax.grad(loss)

    def train(params, learning_rate):
        def step(params, sample):
            inputs, targets = sample
            grads = gradient(params, inputs[None], targets[None])
            return jax.tree_util.tree_map(lambda p, g: p - learning_rate * g, params, grads), None

        def epoch(params, _):
            params, _ = jax.lax.scan(step, params, (x, y), unroll=unroll)
            predictions = forward(params, x)
            error = 0.5 * jnp.sum((y - predictions) ** 2, axis=-1).mean()
            accuracy = jnp.mean(jnp.all(jnp.abs(y - predictions) < 0.5, axis=-1))
            return params, (error, accuracy)

        return jax.lax.scan(epoch, params, None, length=epochs)

    return jax.jit(jax.vmap(train))


def glorot_mlp_init(key, sizes):
    """``[(w, b), ...]`` of an MLP with these layer sizes: Glorot-uniform weights ``(in, out)``
    and zero biases, as a JAX engineer would write it for a plain baseline."""
    import jax
    import jax.numpy as jnp

    params = []
    for layer_key, n_in, n_out in zip(
        jax.random.split(key, len(sizes) - 1), sizes[:-1], sizes[1:], strict=True
    ):
        limit = np.sqrt(6.0 / (n_in + n_out))
        w = jax.random.uniform(layer_key, (n_in, n_out), minval=-limit, maxval=limit)
        params.append((w, jnp.zeros(n_out)))
    return params
