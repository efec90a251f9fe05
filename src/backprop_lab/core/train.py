"""Training as compiled programs over chunks of epochs.

:func:`make_trainer` turns a static :class:`TrainSpec` into three pure functions:

* ``start(params, learning_rate, key, data) -> (TrainState, initial_loss, initial_accuracy)``;
* ``run_chunk(state, data, first_epoch) -> (TrainState, EpochMetrics)``: ``spec.chunk_epochs``
  epochs as a ``lax.scan`` over epochs around a ``lax.scan`` over batches (purejaxrl's design);
* ``finish(metrics) -> (History, diverged_epoch)``: NaN from the epoch a run diverged.

:func:`make_train` joins them into one pure ``train(params, learning_rate, key, data)`` whose
whole run is a single program, and :mod:`backprop_lab.core.runner` drives them chunk by chunk
from Python, so a run can be stopped between chunks (Ctrl-C, SIGTERM) and its metrics
recorded as they come. The learning rate and the PRNG key are traced, so ``jax.vmap`` trains a grid of
rates and seeds as one program (see :mod:`backprop_lab.core.sweep`). A chunk of a fixed length
compiles once, whatever the number of epochs; the epochs past the end of the run in the last
chunk are skipped by a ``lax.cond`` on the (unbatched) epoch number.

Three ways to compute the update direction:

* ``backprop``: ``jax.grad`` of the loss — the chain rule of SEED-NOTES §5;
* ``ste``: backprop through threshold units with a straight-through estimator;
* ``perceptron``: Rosenblatt's rule ``w ← w + η (y − ŷ) x`` for a single threshold unit, fed
  to the optimizer as the pseudo-gradient ``−(y − ŷ) x`` so plain SGD applies it exactly.

Shuffled and mini-batch epochs draw their order from ``fold_in(key, epoch)``, which equals
``jax.random.split(key, epochs)[epoch]`` with JAX's partitionable threefry (the default), so a
chunked run draws exactly the batches the single-program run draws.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from backprop_lab.core import lanes
from backprop_lab.core.batches import epoch_batches, epoch_key
from backprop_lab.core.losses import CATEGORICAL_LOSSES, LOSSES, epoch_metrics, get_loss
from backprop_lab.core.model import (
    Architecture,
    Params,
    forward,
    layer_activations,
    validate_architecture,
)
from backprop_lab.core.optim import (
    OPTIMIZER_NAMES,
    Schedule,
    check_schedule,
    make_optimizer,
    scheduled_rate,
)
from backprop_lab.errors import BackpropLabError, invalid

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
    # Epochs per compiled chunk (0: the whole run is one chunk). A chunked program skips the
    # epochs past the end of the run, so its length need not divide the epochs, and a run of
    # any length uses the same program. See chunk_epochs_for.
    chunk_epochs: int = 0
    # Epochs (0 = before training) whose parameters the run keeps: its trajectory.
    snapshot_epochs: tuple[int, ...] = ()
    # Net inputs as broadcast multiply-and-sum instead of matrix products: faster for a single
    # tiny network, slower under vmap (see model.forward). Set by single_network_spec.
    broadcast_layers: bool = False
    # The program is vmapped over many cells (a grid): per-epoch metrics are then cheapest
    # reduced inside the loop; one network is faster emitting predictions (see run_chunk).
    batched: bool = False
    # How a grid lays out its cells: "cells" (first, as vmap does), "lanes" (last; see
    # core.lanes) or "auto" (lanes where they suit). A single network ignores it.
    grid_layout: str = "auto"
    # How the learning rate moves over the epochs; the run's rate is the schedule's peak.
    schedule: Schedule = Schedule()

    @property
    def chunk_length(self) -> int:
        return self.chunk_epochs or self.epochs


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


# The per-epoch metrics of a chunk, before divergence is marked: the same four fields.
EpochMetrics = History


class TrainState(NamedTuple):
    """What a run carries from one chunk to the next.

    ``snapshots`` holds the parameters at ``spec.snapshot_epochs`` (every leaf with a leading
    axis one longer: the last slot is a spare that :func:`kept_snapshots` drops; None when no
    snapshots are kept); slots of epochs not reached yet hold the initial parameters.
    """

    params: Params
    opt_state: Any
    key: jax.Array
    # The optimizer's float hyperparameters as arrays (learning_rate, momentum, beta1, beta2,
    # eps): the learning rate is traced per cell, and all of them are carried the way
    # optax.inject_hyperparams (used by earlier versions) carried them, so that runs recorded
    # then are reproduced bit for bit.
    hyperparams: dict[str, jax.Array]
    snapshots: Params | None = None


class TrainResult(NamedTuple):
    """Final parameters, per-epoch history, the metrics before training, divergence, and the
    snapshots of the trajectory (None unless ``spec.snapshot_epochs``).

    ``diverged_epoch`` is the first epoch (1-based) whose loss was NaN or inf, or 0 when the
    run stayed finite. A diverged run's final parameters are NaN; its history holds the curve
    up to the epoch before it diverged and NaN from there on. ``epochs_done`` is the number of
    epochs trained: less than ``spec.epochs`` only for a run stopped early, whose history is
    NaN past it.
    """

    params: Params
    history: History
    initial_loss: jax.Array
    initial_accuracy: jax.Array
    diverged_epoch: jax.Array
    epochs_done: int | jax.Array = -1
    snapshots: Params | None = None


def validate_spec(spec: TrainSpec) -> None:
    """Raise a one-line :class:`BackpropLabError` for a spec that cannot be trained.

    The one place for these rules: ``bplab-train`` checks a config with them too (through
    ``backprop_lab.config.validate``), so the messages name the config's keys.
    """
    validate_architecture(spec.architecture)
    for key, value, allowed in (
        ("loss", spec.loss, tuple(LOSSES)),
        ("optimizer", spec.optimizer, OPTIMIZER_NAMES),
        ("training.batching", spec.batching, BATCHING_MODES),
        ("training.method", spec.method, TRAINING_METHODS),
    ):
        if value not in allowed:
            raise invalid(key, value, "choose one of " + ", ".join(allowed))
    for key, value in (("training.epochs", spec.epochs), ("training.batch_size", spec.batch_size)):
        if value < 1:
            raise invalid(key, value, "must be at least 1")
    if spec.chunk_epochs < 0:
        raise BackpropLabError(f"chunk_epochs={spec.chunk_epochs} must be >= 0")
    snapshots = spec.snapshot_epochs
    if list(snapshots) != sorted(set(snapshots)) or any(
        not 0 <= e <= spec.epochs for e in snapshots
    ):
        raise BackpropLabError(
            f"snapshot epochs must be distinct, sorted and within 0..{spec.epochs}: {snapshots[:8]}"
        )
    check_schedule(spec.schedule, spec.epochs)
    lanes.check_layout(spec)
    arch = spec.architecture
    softmax = arch.output_activation == "softmax"
    if softmax != (spec.loss in CATEGORICAL_LOSSES):
        raise invalid(
            "loss" if softmax else "model.output_activation",
            spec.loss if softmax else arch.output_activation,
            "a softmax output and loss=cce go together: the softmax gives class probabilities "
            "and cce scores them; set model.output_activation=softmax with loss=cce, or neither",
        )
    if spec.method == "perceptron" and (
        len(arch.layer_sizes) != 2 or arch.output_activation != "threshold"
    ):
        raise BackpropLabError(
            "training.method=perceptron trains a single layer of threshold units: set "
            "model.hidden_sizes=[] and model.output_activation=threshold"
        )


# Layers with at most this many weights use broadcast net inputs when trained alone.
_BROADCAST_MAX_WEIGHTS = 64

# Above this many stored prediction values per network and chunk, metrics are reduced inside
# the loop instead of after it.
_MAX_STORED_PREDICTIONS = 1 << 18


class Trainer(NamedTuple):
    """The pure pieces of a training run for one spec (see the module docstring)."""

    start: Callable
    run_chunk: Callable
    finish: Callable


def _update_direction(spec: TrainSpec):
    """``(params, inputs, targets, mask) -> gradient-like pytree`` for the spec's method."""
    loss_fn = get_loss(spec.loss)
    plain = layer_activations(spec.architecture)
    gradient_activations = layer_activations(
        spec.architecture, straight_through=spec.method == "ste"
    )

    def training_loss(params: Params, inputs, targets, mask) -> jax.Array:
        predictions = forward(params, inputs, gradient_activations, broadcast=spec.broadcast_layers)
        return loss_fn(targets, predictions, mask)

    def perceptron_direction(params: Params, inputs, targets, mask) -> Params:
        # Rosenblatt: Δw = η (y − ŷ) x. As a gradient for SGD's w ← w − η g: g = −(y − ŷ) x.
        (layer,) = params
        if mask is None:
            mask = jnp.ones(inputs.shape[:1], inputs.dtype)
        predictions = forward(params, inputs, plain, broadcast=spec.broadcast_layers)
        error = (targets - predictions) * mask[:, None]
        count = jnp.maximum(jnp.sum(mask), 1.0)
        weights = -(error.T @ inputs) / count
        biases = None if layer.biases is None else -jnp.sum(error, axis=0) / count
        return (type(layer)(weights, biases),)

    if spec.grid_layout == "lanes":
        return lanes.update_direction(loss_fn, gradient_activations)
    return perceptron_direction if spec.method == "perceptron" else jax.grad(training_loss)


def _hyperparams(spec: TrainSpec, learning_rate: jax.Array) -> dict[str, jax.Array]:
    as_array = lambda value: jnp.asarray(value, learning_rate.dtype)  # noqa: E731
    return {
        "learning_rate": as_array(learning_rate),
        "momentum": as_array(spec.momentum),
        "beta1": as_array(spec.beta1),
        "beta2": as_array(spec.beta2),
        "eps": as_array(spec.eps),
    }


def _optimizer(spec: TrainSpec, hyperparams: dict[str, jax.Array]) -> optax.GradientTransformation:
    """The spec's optimizer, built around the run's (traced) hyperparameters."""
    return make_optimizer(spec.optimizer, **hyperparams)


def optimizer_for(spec: TrainSpec, learning_rate, dtype=None) -> optax.GradientTransformation:
    """The optimizer ``spec`` trains with at ``learning_rate``: the very one training builds
    (its hyperparameters as arrays of the parameters' ``dtype``)."""
    learning_rate = jnp.asarray(learning_rate, dtype)
    return _optimizer(spec, _hyperparams(spec, learning_rate))


def finish_history(metrics: EpochMetrics) -> tuple[History, jax.Array]:
    """Mark divergence: ``(history, diverged_epoch)`` from raw per-epoch metrics.

    A diverged run's NaN spreads through its parameters, so every later epoch reads NaN; the
    accuracy of those epochs is made NaN too, so every curve stops where the run broke.
    Test metrics given as None (no test split) become NaN. Works on JAX arrays (inside a
    program) or NumPy arrays, with epochs on the last axis; NumPy curves of runs that never
    diverged are returned as they are, without a copy.
    """
    xp = np if isinstance(metrics.loss, np.ndarray) else jnp
    loss = metrics.loss
    # On the host, a missing test split reads NaN through a read-only view of one NaN: a
    # grid's curves are cells x epochs, too many to fill with copies of it.
    missing = (
        np.broadcast_to(np.asarray(np.nan, loss.dtype), loss.shape)
        if xp is np
        else jnp.full_like(loss, jnp.nan)
    )
    metrics = EpochMetrics(*(missing if metric is None else metric for metric in metrics))
    finite = xp.isfinite(loss)
    all_finite = xp.all(finite, axis=-1)
    diverged_epoch = xp.where(all_finite, 0, xp.argmin(finite, axis=-1) + 1)
    if xp is np and bool(all_finite.all()):
        return History(*metrics), diverged_epoch
    end = xp.where(diverged_epoch == 0, loss.shape[-1] + 1, diverged_epoch)
    alive = xp.arange(1, loss.shape[-1] + 1) < xp.expand_dims(end, -1)
    history = History(*(xp.where(alive, metric, xp.nan).astype(metric.dtype) for metric in metrics))
    return history, diverged_epoch


def _predict(spec: TrainSpec, params: Params, inputs) -> jax.Array:
    activations = layer_activations(spec.architecture)
    return forward(params, inputs, activations, broadcast=spec.broadcast_layers)


def _evaluate(spec: TrainSpec, params: Params, inputs, targets) -> tuple[jax.Array, jax.Array]:
    """Loss and accuracy on a whole split, each as one reduction (about half the cost of
    reducing outputs, then samples, under ``vmap``)."""
    if spec.grid_layout == "lanes":
        activations = layer_activations(spec.architecture)
        return lanes.evaluate(spec.loss, params, inputs, targets, activations)
    return epoch_metrics(spec.loss, targets, _predict(spec, params, inputs))


def _start(spec: TrainSpec, params: Params, learning_rate, key, data: Data):
    """The state before the first epoch, and the loss and accuracy of the initial weights."""
    dtype = data.x_train.dtype
    params = jax.tree_util.tree_map(lambda leaf: leaf.astype(dtype), params)
    learning_rate = jnp.asarray(learning_rate, dtype)
    initial_loss, initial_accuracy = _evaluate(spec, params, data.x_train, data.y_train)
    snapshots = None
    if spec.snapshot_epochs:
        # One slot per snapshot epoch and a spare one (see _keep_snapshot).
        count = len(spec.snapshot_epochs) + 1
        snapshots = jax.tree_util.tree_map(
            lambda leaf: jnp.broadcast_to(leaf, (count, *leaf.shape)), params
        )
    hyperparams = _hyperparams(spec, learning_rate)
    opt_state = _optimizer(spec, hyperparams).init(params)
    state = TrainState(params, opt_state, key, hyperparams, snapshots)
    return state, initial_loss, initial_accuracy


def epoch_hyperparams(spec: TrainSpec, hyperparams: dict[str, jax.Array], epoch_index):
    """The hyperparameters epoch ``epoch_index`` (0-based) trains with: the carried ones,
    with the schedule's rate for that epoch (``constant`` returns them untouched)."""
    if spec.schedule.name == "constant":
        return hyperparams
    peak = hyperparams["learning_rate"]
    rate = scheduled_rate(spec.schedule, spec.epochs, peak, epoch_index)
    return {**hyperparams, "learning_rate": rate}


def epoch_learning_rates(spec: TrainSpec, peak_rate, epochs: int | None = None) -> np.ndarray:
    """The learning rate of each epoch (1 to ``epochs``) of a run at ``peak_rate``, as the
    program computes it; ``peak_rate`` may be an array (a grid's rates: one row each)."""
    epochs = spec.epochs if epochs is None else epochs
    peak = jnp.asarray(peak_rate, jnp.asarray(0.0).dtype)[..., None]
    rates = epoch_hyperparams(spec, {"learning_rate": peak}, jnp.arange(epochs))["learning_rate"]
    return np.asarray(jnp.broadcast_to(rates, (*peak.shape[:-1], epochs)))


def _train_epoch(spec: TrainSpec, direction, state: TrainState, epoch_index, data: Data):
    """One pass over the training set: a ``lax.scan`` over its batches."""
    # Built around the run's (traced) learning rate, or the schedule's rate for this epoch
    # from it: one program serves every rate.
    optimizer = _optimizer(spec, epoch_hyperparams(spec, state.hyperparams, epoch_index))

    def step(carry, batch):
        params, opt_state = carry
        inputs, targets, mask = batch
        gradient = direction(params, inputs, targets, mask)
        updates, opt_state = optimizer.update(gradient, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    batches = epoch_batches(
        spec, epoch_key(spec, state.key, epoch_index), data.x_train, data.y_train
    )
    (params, opt_state), _ = jax.lax.scan(
        step, (state.params, state.opt_state), batches, unroll=spec.unroll
    )
    return state._replace(params=params, opt_state=opt_state)


def _snapshot_slots(spec: TrainSpec, epoch_numbers: jax.Array) -> jax.Array:
    """The slot each of ``epoch_numbers`` writes its parameters to: its snapshot's, or the
    spare last slot for an epoch that is not a snapshot epoch. Computed once per chunk, in one
    comparison of every epoch with every snapshot epoch, so the epochs only write."""
    epochs = jnp.asarray(spec.snapshot_epochs)
    hit = epoch_numbers[:, None] == epochs[None, :]
    return jnp.where(jnp.any(hit, axis=1), jnp.argmax(hit, axis=1), len(spec.snapshot_epochs))


def _keep_snapshot(state: TrainState, slot) -> TrainState:
    """Copy the parameters into ``slot`` (see :func:`_snapshot_slots`): written every epoch,
    somewhere, the buffer is updated in place with no branch."""
    snapshots = jax.tree_util.tree_map(
        lambda buffer, leaf: buffer.at[slot].set(leaf), state.snapshots, state.params
    )
    return state._replace(snapshots=snapshots)


def kept_snapshots(snapshots: Params | None, axis: int = 0) -> Params | None:
    """The snapshots of a :class:`TrainState` without its spare slot (``axis`` is the snapshot
    axis: 0 for one network, 1 for cells stacked in front)."""
    if snapshots is None:
        return None
    cut = (slice(None),) * axis + (slice(None, -1),)
    return jax.tree_util.tree_map(lambda buffer: buffer[cut], snapshots)


def _emits_predictions(spec: TrainSpec, data: Data) -> bool:
    """One small network emits each epoch's predictions and computes the metrics after the
    loop in one vectorised pass (faster than reducing in the loop); under vmap, and for large
    data sets, the metrics are reduced inside the loop."""
    has_test = data.x_test is not None
    samples = data.x_train.shape[0] + (data.x_test.shape[0] if has_test else 0)
    stored = spec.chunk_length * samples * data.y_train.shape[1]
    return not spec.batched and stored <= _MAX_STORED_PREDICTIONS


def _trained_epoch(spec: TrainSpec, direction, data: Data, state: TrainState, epoch_index):
    """Train one epoch and emit its predictions or its metrics."""
    state = _train_epoch(spec, direction, state, epoch_index, data)
    has_test = data.x_test is not None
    if _emits_predictions(spec, data):
        test = _predict(spec, state.params, data.x_test) if has_test else None
        return state, (_predict(spec, state.params, data.x_train), test)
    metrics = _evaluate(spec, state.params, data.x_train, data.y_train)
    if has_test:
        metrics = metrics + _evaluate(spec, state.params, data.x_test, data.y_test)
    return state, metrics


def _run_chunk(spec: TrainSpec, direction, state: TrainState, data: Data, first_epoch):
    """``spec.chunk_length`` epochs from ``first_epoch``: the new state and their metrics."""
    trained_epoch = functools.partial(_trained_epoch, spec, direction, data)

    def epoch(state, epoch):
        epoch_index, slot = epoch
        # The snapshots stay out of the branch below: passed through it, their buffer is
        # copied every epoch (a quarter of a small grid's time); written after it, in place.
        snapshots, state = state.snapshots, state._replace(snapshots=None)
        if not spec.chunk_epochs:
            state, emitted = trained_epoch(state, epoch_index)
        else:
            # A chunked run's last chunk reaches past its end: those epochs are skipped. The
            # branch is taken for every chunk, so runs of any length share one program.
            shapes = jax.eval_shape(trained_epoch, state, epoch_index)[1]
            state, emitted = jax.lax.cond(
                epoch_index < spec.epochs,
                trained_epoch,
                lambda state, _: (
                    state,
                    jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                ),
                state,
                epoch_index,
            )
        state = state._replace(snapshots=snapshots)
        if spec.snapshot_epochs:
            # A skipped epoch's slot is the spare one (see _snapshot_slots).
            state = _keep_snapshot(state, slot)
        return state, emitted

    epoch_indices = first_epoch + jnp.arange(spec.chunk_length)
    slots = _snapshot_slots(spec, epoch_indices + 1) if spec.snapshot_epochs else epoch_indices
    state, emitted = jax.lax.scan(epoch, state, (epoch_indices, slots))
    has_test = data.x_test is not None
    if _emits_predictions(spec, data):
        predictions, test_predictions = emitted
        metrics = epoch_metrics(spec.loss, data.y_train, predictions)
        if has_test:
            metrics = metrics + epoch_metrics(spec.loss, data.y_test, test_predictions)
    else:
        metrics = emitted
    if not has_test:
        metrics = metrics + (None, None)  # filled with NaN once, on the host
    return state, EpochMetrics(*metrics)


@functools.lru_cache(maxsize=128)
def make_trainer(spec: TrainSpec) -> Trainer:
    """Build the pure ``start``, ``run_chunk`` and ``finish`` functions for ``spec``.

    They are not jitted here, so callers can ``jit`` or ``jit(vmap(...))`` them.
    """
    validate_spec(spec)
    direction = _update_direction(spec)
    return Trainer(
        functools.partial(_start, spec),
        functools.partial(_run_chunk, spec, direction),
        finish_history,
    )


@functools.lru_cache(maxsize=128)
def make_train(spec: TrainSpec):
    """Build the pure ``train(params, learning_rate, key, data) -> TrainResult`` for ``spec``.

    The whole run (every epoch of every chunk) is one function, so ``jit(make_train(spec))``
    is one compiled program and ``jit(vmap(make_train(spec)))`` trains a grid as one program.
    :func:`train_network` is the jitted single-network entry point.
    """
    trainer = make_trainer(spec)
    num_chunks = -(-spec.epochs // spec.chunk_length)

    def train(params: Params, learning_rate: jax.Array, key: jax.Array, data: Data) -> TrainResult:
        state, initial_loss, initial_accuracy = trainer.start(params, learning_rate, key, data)

        def chunk(state, first_epoch):
            return trainer.run_chunk(state, data, first_epoch)

        first_epochs = jnp.arange(num_chunks) * spec.chunk_length
        state, metrics = jax.lax.scan(chunk, state, first_epochs)
        # (chunks, length) per metric -> (epochs,)
        metrics = EpochMetrics(
            *(None if m is None else m.reshape(-1)[: spec.epochs] for m in metrics)
        )
        history, diverged_epoch = trainer.finish(metrics)
        return TrainResult(
            state.params,
            history,
            initial_loss,
            initial_accuracy,
            diverged_epoch,
            spec.epochs,
            kept_snapshots(state.snapshots),
        )

    return train


@functools.lru_cache(maxsize=128)
def _jitted_train(spec: TrainSpec):
    return jax.jit(make_train(spec))


def to_device_data(dataset, dtype=None) -> Data:
    """Turn a :class:`backprop_lab.core.data.Dataset` into the arrays the trainer takes."""
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
    """The spec to train one network alone: broadcast layers when every layer is tiny (and no
    grid layout: it has no cells)."""
    sizes = spec.architecture.layer_sizes
    tiny = all(
        n_in * n_out <= _BROADCAST_MAX_WEIGHTS
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False)
    )
    return spec._replace(broadcast_layers=tiny, grid_layout="cells")


def train_network(
    spec: TrainSpec, params: Params, learning_rate: float, key: jax.Array, data: Data
) -> TrainResult:
    """Train one network with the compiled program for ``spec``."""
    dtype = data.x_train.dtype
    return _jitted_train(single_network_spec(spec))(
        params, jnp.asarray(learning_rate, dtype), key, data
    )
