"""One optimizer step as training takes it, outside the compiled training program.

``bplab-explain`` explains one step and replays the steps around it: :func:`optimizer_step`
is ``jax.grad`` of the batch loss followed by the optimizer's update (optax, as
:mod:`backprop_lab.core.optim` builds it), and :func:`take_steps` applies a sequence of them,
compiled once per network. A mini-batch padded with repeats weighs them 0, as training does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from backprop_lab.core.activations import Activation
from backprop_lab.core.losses import get_loss
from backprop_lab.core.model import Params, forward_trace, layer_activations
from backprop_lab.core.train import TrainSpec, optimizer_for


class OptimizerStep(NamedTuple):
    """One training step: the gradients, the optimizer's updates, and what they lead to."""

    gradients: Params
    updates: Params
    params: Params
    opt_state: Any


def make_step_optimizer(spec: TrainSpec, learning_rate, dtype=None) -> optax.GradientTransformation:
    """The optimizer ``spec`` trains with, at ``learning_rate``."""
    return optimizer_for(spec, learning_rate, dtype)


def gradient_activations(spec: TrainSpec) -> tuple[Activation, ...]:
    """The layers' activations as the gradient sees them: straight-through for ``ste``."""
    return layer_activations(spec.architecture, straight_through=spec.method == "ste")


def batch_loss(spec: TrainSpec, inputs: jax.Array, targets: jax.Array, mask=None):
    """``params -> E``: the spec's loss, averaged over the batch as training averages it (a
    mini-batch topped up with repeats weighs them 0 by ``mask``)."""
    loss_fn, activations = get_loss(spec.loss), gradient_activations(spec)
    return lambda params: loss_fn(targets, forward_trace(params, inputs, activations)[1][-1], mask)


def optimizer_step(
    spec: TrainSpec, params: Params, inputs, targets, learning_rate, opt_state=None, mask=None
) -> OptimizerStep:
    """``jax.grad`` of the batch loss, then the optimizer's update, as training takes it.

    ``opt_state`` None starts the optimizer afresh (its first step); a given state continues
    a run (momentum, Adam's moments) at ``learning_rate``.
    """
    gradients = jax.grad(batch_loss(spec, inputs, targets, mask))(params)
    return apply_optimizer(spec, params, gradients, learning_rate, opt_state)


def apply_optimizer(spec: TrainSpec, params, gradients, learning_rate, opt_state) -> OptimizerStep:
    """The optimizer's update for ``gradients``, from ``opt_state`` (None: a fresh state)."""
    optimizer = make_step_optimizer(spec, learning_rate, params[0].weights.dtype)
    if opt_state is None:
        opt_state = optimizer.init(params)
    updates, opt_state = optimizer.update(gradients, opt_state, params)
    return OptimizerStep(gradients, updates, optax.apply_updates(params, updates), opt_state)


@functools.lru_cache(maxsize=32)
def _compiled_step(spec: TrainSpec):
    def step(params, opt_state, inputs, targets, mask, learning_rate):
        taken = optimizer_step(spec, params, inputs, targets, learning_rate, opt_state, mask)
        return taken.params, taken.opt_state

    return jax.jit(step)


def take_steps(spec: TrainSpec, params: Params, opt_state, batches: Sequence[tuple], learning_rate):
    """Apply one optimizer step per batch, in order (compiled); ``(params, opt_state)``.

    A batch is ``(inputs, targets)``, or ``(inputs, targets, mask)`` for a padded mini-batch.
    """
    step = _compiled_step(spec)
    dtype = params[0].weights.dtype
    rate = jnp.asarray(learning_rate, dtype)
    for inputs, targets, *mask in batches:
        weights = jnp.asarray(mask[0], dtype) if mask and mask[0] is not None else None
        params, opt_state = step(
            params, opt_state, jnp.asarray(inputs, dtype), jnp.asarray(targets, dtype), weights,
            rate,
        )  # fmt: skip
    return params, opt_state
