"""Optimizers and learning-rate schedules, all from optax, with the learning rate as a traced value.

The learning rate is an argument of the compiled program (the trainer keeps it in its state
and builds the optimizer with it at every step), never a constant baked into the program, so
one compiled ``train`` serves every rate and a sweep can ``vmap`` over rates.

Built this way the rate costs nothing per step, where ``optax.inject_hyperparams`` (which
earlier versions used) adds its bookkeeping to every update: a third of the step time of a
small network under ``vmap``. The trainer passes every float hyperparameter as an array of
the parameters' dtype, as ``inject_hyperparams`` did, so runs recorded then are reproduced bit
for bit (grids of the adaptive optimizers within about 1e-6: their compiled program changed).

A schedule (:class:`Schedule`) makes the configured rate the peak of a curve over epochs: the
trainer rebuilds the optimizer at each epoch with ``scheduled_rate(...)``, the traced peak
times optax's schedule evaluated at the epoch index. ``constant`` leaves the program as it
was, so its runs are bit for bit those of earlier versions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from backprop_lab.errors import BackpropLabError, invalid

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


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules

SCHEDULE_NAMES: tuple[str, ...] = ("constant", "exponential", "cosine", "warmup_cosine")


class Schedule(NamedTuple):
    """How the learning rate moves from epoch to epoch (static: part of the program's spec).

    The rate of epoch ``e`` (0-based) is ``η · shape(e)``: ``η`` is the run's (traced) peak
    rate and ``shape`` one of optax's schedules with a peak of 1, evaluated at the epoch
    index. The rate changes between epochs, never within one.

    * ``constant``: ``shape(e) = 1``, today's training, op for op.
    * ``exponential``: ``decay_rate^(e / transition_epochs)`` (optax.exponential_decay).
    * ``cosine``: from 1 down to ``final_fraction`` over the run's epochs, along half a
      cosine (optax.cosine_decay_schedule; Loshchilov & Hutter, 2017, "SGDR").
    * ``warmup_cosine``: a straight line from ``initial_fraction`` to 1 over
      ``warmup_epochs``, then the cosine down to ``final_fraction`` at the last epoch
      (optax.warmup_cosine_decay_schedule; Goyal et al., 2017, for the warm-up).
    """

    name: str = "constant"
    decay_rate: float = 0.95
    transition_epochs: int = 1
    warmup_epochs: int = 0
    initial_fraction: float = 0.1
    final_fraction: float = 0.0


def schedule_shape(schedule: Schedule, epochs: int) -> Callable:
    """``epoch index -> factor`` of the peak rate, for a run of ``epochs`` epochs."""
    if schedule.name == "constant":
        return lambda epoch: jnp.ones_like(epoch)
    if schedule.name == "exponential":
        return optax.exponential_decay(1.0, schedule.transition_epochs, schedule.decay_rate)
    if schedule.name == "cosine":
        return optax.cosine_decay_schedule(1.0, max(epochs, 1), alpha=schedule.final_fraction)
    if schedule.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=schedule.initial_fraction,
            peak_value=1.0,
            warmup_steps=schedule.warmup_epochs,
            decay_steps=epochs,
            end_value=schedule.final_fraction,
        )
    raise BackpropLabError(
        f"unknown schedule {schedule.name!r}; choose one of: {', '.join(SCHEDULE_NAMES)}"
    )


def scheduled_rate(schedule: Schedule, epochs: int, peak_rate: jax.Array, epoch) -> jax.Array:
    """The learning rate of epoch ``epoch`` (0-based; an array of them works too).

    Built around the traced ``peak_rate``, so one compiled program serves every peak rate and
    a grid over peak rates stays one program. The factor is computed in the rate's dtype.
    """
    peak_rate = jnp.asarray(peak_rate)
    epoch = jnp.asarray(epoch).astype(peak_rate.dtype)
    factor = schedule_shape(schedule, epochs)(epoch)
    return peak_rate * jnp.asarray(factor, peak_rate.dtype)


def check_schedule(schedule: Schedule, epochs: int) -> None:
    """Raise a one-line :class:`BackpropLabError` for a schedule this run cannot follow."""
    if schedule.name not in SCHEDULE_NAMES:
        raise invalid("schedule.name", schedule.name, "choose one of " + ", ".join(SCHEDULE_NAMES))
    if schedule.name == "warmup_cosine" and schedule.warmup_epochs >= epochs:
        raise invalid(
            "schedule.warmup_epochs",
            schedule.warmup_epochs,
            f"the warm-up must be shorter than training (training.epochs={epochs}), or the rate "
            "would never come down from its peak; use fewer warm-up epochs or train longer",
        )
