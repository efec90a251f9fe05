"""Optimizers, all from optax, with the learning rate as a traced value.

The learning rate is an argument of the compiled program (the trainer keeps it in its state
and builds the optimizer with it at every step), never a constant baked into the program, so
one compiled ``train`` serves every rate and a sweep can ``vmap`` over rates.

Built this way the rate costs nothing per step, where ``optax.inject_hyperparams`` (which
earlier versions used) adds its bookkeeping to every update: a third of the step time of a
small network under ``vmap``. The trainer passes every float hyperparameter as an array of
the parameters' dtype, as ``inject_hyperparams`` did, so runs recorded then are reproduced bit
for bit (grids of the adaptive optimizers within about 1e-6: their compiled program changed).
"""

from __future__ import annotations

import jax
import optax

from backprop_lab.errors import BackpropLabError

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adam", "rmsprop", "adagrad")


def make_optimizer(
    name: str,
    learning_rate: float | jax.Array,
    *,
    momentum: float | jax.Array = 0.9,
    beta1: float | jax.Array = 0.9,
    beta2: float | jax.Array = 0.999,
    eps: float | jax.Array = 1e-8,
) -> optax.GradientTransformation:
    """Return the optimizer called ``name`` with a traced ``learning_rate``.

    ``sgd`` is the article's rule ``w ← w − η·∂E/∂w``; ``momentum`` and ``nesterov`` are SGD
    with (Nesterov) momentum; ``adam``, ``rmsprop`` and ``adagrad`` are the usual adaptive ones.
    """
    if name == "sgd":
        return optax.sgd(learning_rate=learning_rate)
    if name in ("momentum", "nesterov"):
        return optax.sgd(
            learning_rate=learning_rate, momentum=momentum, nesterov=name == "nesterov"
        )
    if name == "adam":
        return optax.adam(learning_rate=learning_rate, b1=beta1, b2=beta2, eps=eps)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate=learning_rate, decay=beta2, eps=eps)
    if name == "adagrad":
        return optax.adagrad(learning_rate=learning_rate, eps=eps)
    raise BackpropLabError(
        f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZER_NAMES)}"
    )
