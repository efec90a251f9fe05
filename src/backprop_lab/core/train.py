"""Training as one compiled program.

:func:`make_train` turns a static :class:`TrainSpec` into a pure function
``train(params, learning_rate, key, data) -> TrainResult`` whose whole run — every epoch and
every sample — is a ``lax.scan`` over epochs around a ``lax.scan`` over batches, so it
compiles once whatever the number of epochs (purejaxrl's design). The learning rate and the
PRNG key are traced arguments, so ``jax.vmap(train)`` trains a grid of rates and seeds as one
program (see :mod:`backprop_lab.core.sweep`).

Three ways to compute the update direction:

* ``backprop``: ``jax.grad`` of the loss — the chain rule of SEED-NOTES §5;
* ``ste``: backprop through threshold units with a straight-through estimator;
* ``perceptron``: Rosenblatt's rule ``w ← w + η (y − ŷ) x`` for a single threshold unit, fed
  to the optimizer as the pseudo-gradient ``−(y − ŷ) x`` so plain SGD applies it exactly.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from backprop_lab.core.losses import accuracy, epoch_metrics, get_loss
from backprop_lab.core.model import (
    Architecture,
    Params,
    forward,
    layer_activations,
    validate_architecture,
)
from backprop_lab.core.optim import make_optimizer
from backprop_lab.errors import BackpropLabError

BATCHING_MODES: tuple[str, ...] = ("online", "shuffled", "minibatch", "full")
TRAINING_METHODS: tuple[str, ...] = ("backprop", "ste", "perceptron")


class TrainSpec(NamedTuple):
    """Everything that fixes the shape of the compiled program (hashable, static)."""

    architecture: Architecture
    loss: str = "half_sse"
    optimizer: str = "sgd"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    epochs: int = 25
    batching: str = "online"
    batch_size: int = 1
    method: str = "backprop"
    unroll: int = 1
    # Call the progress hook every this many epochs (0: never). Costs one cond per epoch.
    progress_every: int = 0
    # Net inputs as broadcast multiply-and-sum instead of matrix products: faster for a single
    # tiny network, slower under vmap (see model.forward). Set by train_network.
    broadcast_layers: bool = False


class Data(NamedTuple):
    """Arrays the program trains and evaluates on; the test pair may be None."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array | None = None
    y_test: jax.Array | None = None


class History(NamedTuple):
    """Per-epoch metrics, each of shape ``(epochs,)``; NaN from the epoch a run diverged.

    Each value is measured on the whole split with the parameters at the end of that epoch.
    """

    loss: jax.Array
    accuracy: jax.Array
    test_loss: jax.Array
    test_accuracy: jax.Array


class TrainResult(NamedTuple):
    """Final parameters, per-epoch history, the metrics before training, and divergence.

    ``diverged_epoch`` is the first epoch (1-based) whose loss was NaN or inf, or 0 when the
    run stayed finite. A diverged run's final parameters are NaN; its history holds the curve
    up to the epoch before it diverged and NaN from there on.
    """

    params: Params
    history: History
    initial_loss: jax.Array
    initial_accuracy: jax.Array
    diverged_epoch: jax.Array


def validate_spec(spec: TrainSpec) -> None:
    """Raise a one-line :class:`BackpropLabError` for a spec that cannot be trained."""
    validate_architecture(spec.architecture)
    get_loss(spec.loss)
    make_optimizer(spec.optimizer, 0.1)
    if spec.epochs < 1:
        raise BackpropLabError(f"training.epochs={spec.epochs} must be at least 1")
    if spec.batching not in BATCHING_MODES:
        raise BackpropLabError(
            f"training.batching={spec.batching!r}; choose one of: {', '.join(BATCHING_MODES)}"
        )
    if spec.batch_size < 1:
        raise BackpropLabError(f"training.batch_size={spec.batch_size} must be at least 1")
    if spec.method not in TRAINING_METHODS:
        raise BackpropLabError(
            f"training.method={spec.method!r}; choose one of: {', '.join(TRAINING_METHODS)}"
        )
    if spec.method == "perceptron":
        arch = spec.architecture
        if len(arch.layer_sizes) != 2 or arch.output_activation != "threshold":
            raise BackpropLabError(
                "training.method=perceptron trains a single layer of threshold units: set "
                "model.hidden_sizes=[] and model.output_activation=threshold"
            )


def _epoch_batches(spec: TrainSpec, key: jax.Array, x: jax.Array, y: jax.Array):
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


# The shell sets this to a callable ``epochs_done -> None`` to draw a progress bar; the core
# reaches it through ``jax.debug.callback`` so training stays one compiled program.
progress_hook = None


def _report_progress(epochs_done) -> None:
    if progress_hook is not None:
        progress_hook(int(epochs_done))


# Layers with at most this many weights use broadcast net inputs when trained alone.
_BROADCAST_MAX_WEIGHTS = 64

# Above this many stored prediction values per network, metrics are reduced inside the loop.
_MAX_STORED_PREDICTIONS = 1 << 18


@functools.lru_cache(maxsize=128)
def make_train(spec: TrainSpec):
    """Build the pure ``train(params, learning_rate, key, data) -> TrainResult`` for ``spec``.

    The function is not jitted here so callers can ``jit`` or ``jit(vmap(...))`` it;
    :func:`train_network` is the jitted single-network entry point.
    """
    validate_spec(spec)
    loss_fn = get_loss(spec.loss)
    plain_activations = layer_activations(spec.architecture)
    gradient_activations = layer_activations(
        spec.architecture, straight_through=spec.method == "ste"
    )

    def training_loss(params: Params, inputs, targets, mask) -> jax.Array:
        return loss_fn(
            targets,
            forward(params, inputs, gradient_activations, broadcast=spec.broadcast_layers),
            mask,
        )

    def perceptron_direction(params: Params, inputs, targets, mask) -> Params:
        # Rosenblatt: Δw = η (y − ŷ) x. As a gradient for SGD's w ← w − η g: g = −(y − ŷ) x.
        (layer,) = params
        if mask is None:
            mask = jnp.ones(inputs.shape[:1], inputs.dtype)
        error = (
            targets - forward(params, inputs, plain_activations, broadcast=spec.broadcast_layers)
        ) * mask[:, None]
        count = jnp.maximum(jnp.sum(mask), 1.0)
        weights = -(error.T @ inputs) / count
        biases = None if layer.biases is None else -jnp.sum(error, axis=0) / count
        return (type(layer)(weights, biases),)

    direction = perceptron_direction if spec.method == "perceptron" else jax.grad(training_loss)

    def evaluate(params: Params, inputs, targets) -> tuple[jax.Array, jax.Array]:
        predictions = forward(params, inputs, plain_activations, broadcast=spec.broadcast_layers)
        return loss_fn(targets, predictions), accuracy(targets, predictions)

    def train(params: Params, learning_rate: jax.Array, key: jax.Array, data: Data) -> TrainResult:
        x, y = data.x_train, data.y_train
        has_test = data.x_test is not None
        optimizer = make_optimizer(
            spec.optimizer,
            jnp.asarray(learning_rate, dtype=x.dtype),
            momentum=spec.momentum,
            beta1=spec.beta1,
            beta2=spec.beta2,
            eps=spec.eps,
        )

        initial_loss, initial_accuracy = evaluate(params, x, y)

        def sgd_step(carry, batch):
            params, opt_state = carry
            inputs, targets, mask = batch
            grads = direction(params, inputs, targets, mask)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        def run_epoch(params, opt_state, epoch_input):
            epoch_key, epoch_index = epoch_input
            (params, opt_state), _ = jax.lax.scan(
                sgd_step,
                (params, opt_state),
                _epoch_batches(spec, epoch_key, x, y),
                unroll=spec.unroll,
            )
            if spec.progress_every:
                # epoch_index is not batched under vmap, so a whole grid reports once.
                jax.lax.cond(
                    (epoch_index + 1) % spec.progress_every == 0,
                    lambda: jax.debug.callback(_report_progress, epoch_index + 1),
                    lambda: None,
                )
            return params, opt_state

        if spec.batching in ("shuffled", "minibatch"):
            epoch_keys = jax.random.split(key, spec.epochs)
        else:
            # Online and full-batch training draw nothing: splitting a key per epoch anyway
            # costs more than the training itself in a large grid.
            epoch_keys = jnp.zeros((spec.epochs,), jnp.uint32)
        epoch_inputs = (epoch_keys, jnp.arange(spec.epochs))
        carry = (params, optimizer.init(params))
        test_pair = (data.x_test, data.y_test) if has_test else None
        stored = spec.epochs * (x.shape[0] + (data.x_test.shape[0] if has_test else 0)) * y.shape[1]
        if stored <= _MAX_STORED_PREDICTIONS:
            # Small problems: the loop only emits each epoch's predictions and the metrics are
            # computed afterwards in one vectorised pass. On XOR this makes training about 3x
            # faster than reducing loss and accuracy inside every epoch.
            def epoch(carry, epoch_input):
                params, opt_state = run_epoch(*carry, epoch_input)
                predictions = forward(params, x, plain_activations, broadcast=spec.broadcast_layers)
                test_predictions = (
                    forward(
                        params, test_pair[0], plain_activations, broadcast=spec.broadcast_layers
                    )
                    if has_test
                    else None
                )
                return (params, opt_state), (predictions, test_predictions)

            (params, _), (predictions, test_predictions) = jax.lax.scan(epoch, carry, epoch_inputs)
            loss, acc = epoch_metrics(spec.loss, y, predictions)
            if has_test:
                test_loss, test_acc = epoch_metrics(spec.loss, test_pair[1], test_predictions)
        else:

            def epoch(carry, epoch_input):
                params, opt_state = run_epoch(*carry, epoch_input)
                metrics = evaluate(params, x, y)
                if has_test:
                    metrics = metrics + evaluate(params, *test_pair)
                return (params, opt_state), metrics

            (params, _), metrics = jax.lax.scan(epoch, carry, epoch_inputs)
            loss, acc = metrics[:2]
            if has_test:
                test_loss, test_acc = metrics[2:]
        if not has_test:
            test_loss = test_acc = jnp.full_like(loss, jnp.nan)

        # A diverged run's NaN spreads through its parameters, so every later epoch reads NaN;
        # mark the accuracy of those epochs NaN too, so the curve stops where the run broke.
        finite = jnp.isfinite(loss)
        diverged_epoch = jnp.where(jnp.all(finite), 0, jnp.argmin(finite) + 1)
        alive = jnp.arange(1, spec.epochs + 1) < jnp.where(
            diverged_epoch == 0, spec.epochs + 1, diverged_epoch
        )
        nan = jnp.asarray(jnp.nan, loss.dtype)
        history = History(
            *(jnp.where(alive, metric, nan) for metric in (loss, acc, test_loss, test_acc))
        )
        return TrainResult(params, history, initial_loss, initial_accuracy, diverged_epoch)

    return train


@functools.lru_cache(maxsize=128)
def _jitted_train(spec: TrainSpec):
    return jax.jit(make_train(spec))


def to_device_data(dataset, dtype=None) -> Data:
    """Turn a :class:`backprop_lab.core.data.Dataset` into the arrays :func:`make_train` takes."""
    dtype = dtype or jnp.asarray(0.0).dtype
    as_array = lambda a: None if a is None else jnp.asarray(np.asarray(a), dtype=dtype)  # noqa: E731
    if dataset.has_test:
        return Data(
            as_array(dataset.x_train),
            as_array(dataset.y_train),
            as_array(dataset.x_test),
            as_array(dataset.y_test),
        )
    return Data(as_array(dataset.x_train), as_array(dataset.y_train))


def single_network_spec(spec: TrainSpec) -> TrainSpec:
    """The spec to train one network alone: broadcast layers when every layer is tiny."""
    sizes = spec.architecture.layer_sizes
    tiny = all(
        n_in * n_out <= _BROADCAST_MAX_WEIGHTS
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False)
    )
    return spec._replace(broadcast_layers=tiny)


def train_network(
    spec: TrainSpec, params: Params, learning_rate: float, key: jax.Array, data: Data
) -> TrainResult:
    """Train one network with the compiled program for ``spec``."""
    dtype = data.x_train.dtype
    return _jitted_train(single_network_spec(spec))(
        params, jnp.asarray(learning_rate, dtype), key, data
    )
