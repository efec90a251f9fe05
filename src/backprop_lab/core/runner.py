"""Running training programs chunk by chunk from Python.

:func:`run_in_chunks` calls a compiled chunk of epochs again and again, copying each chunk's
metrics back while the next one runs, and stops between chunks when asked (Ctrl-C, SIGTERM):
the reaction time is the length of a chunk, which :func:`chunk_epochs_for` keeps near a tenth
of a second. :func:`train_from_seed` is one network from its seed; ``core.sweep.train_grid``
is a grid of them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from backprop_lab.core.model import Params, count_parameters
from backprop_lab.core.train import (
    Data,
    EpochMetrics,
    History,
    TrainResult,
    TrainSpec,
    TrainState,
    finish_history,
    kept_snapshots,
    make_trainer,
)


class ChunkProgress(NamedTuple):
    """What :func:`run_in_chunks` reports after each chunk."""

    epochs_done: int
    total_epochs: int
    # This chunk's metrics, NumPy, epochs on the last axis (already cut to the epochs done).
    metrics: EpochMetrics
    first_epoch: int


def run_in_chunks(
    spec: TrainSpec,
    run_chunk: Callable,
    state,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
):
    """Run ``run_chunk(state, first_epoch) -> (state, metrics)`` until the run is done or
    ``should_stop()`` says so; return ``(state, metrics, epochs_done)``.

    ``metrics`` are NumPy arrays of shape ``(..., epochs_done)``: memory grows with the epochs
    trained, not with the epochs asked for. The next chunk is dispatched before the last
    one's metrics are copied back, so the host's work overlaps the device's. A stop request is
    honoured after the chunks in flight; the first chunk always runs.
    """
    length = spec.chunk_length
    curves = _Curves(spec.epochs)
    epochs_done, next_epoch = 0, 0
    in_flight = None  # (first epoch, metrics still on the device)
    while True:
        launched = None
        stop = in_flight is not None and should_stop is not None and should_stop()
        if next_epoch < spec.epochs and not stop:
            state, device_metrics = run_chunk(state, jnp.asarray(next_epoch, jnp.int32))
            launched = (next_epoch, device_metrics)
            next_epoch += length
        if in_flight is not None:
            first, device_metrics = in_flight
            count = min(length, spec.epochs - first)
            chunk = EpochMetrics(
                *(None if m is None else np.asarray(m)[..., :count] for m in device_metrics)
            )
            curves.append(chunk)
            epochs_done = first + count
            if on_chunk is not None:
                on_chunk(ChunkProgress(epochs_done, spec.epochs, chunk, first))
        in_flight = launched
        if in_flight is None:
            return state, curves.done(), epochs_done


class _Curves:
    """The per-epoch metrics of a run as its chunks come, in buffers that grow by doubling (up
    to the run's epochs) and are returned as views of the epochs done.

    Joining the chunks at the end would copy every curve once more while the user waits: a
    stopped grid of 48 cells × 3.5 million epochs spent 3.5 s there. Growing copies at most
    as much again in total, but while the device trains the next chunk.
    """

    def __init__(self, epochs: int):
        self.epochs = epochs
        self.buffers: list[np.ndarray | None] | None = None
        self.filled = 0

    def append(self, chunk: EpochMetrics) -> None:
        count = next(m.shape[-1] for m in chunk if m is not None)
        if self.buffers is None:
            capacity = min(self.epochs, max(count * 16, 1))
            self.buffers = [
                None if m is None else np.empty((*m.shape[:-1], capacity), m.dtype) for m in chunk
            ]
        capacity = next(b.shape[-1] for b in self.buffers if b is not None)
        if self.filled + count > capacity:
            capacity = min(self.epochs, max(2 * capacity, self.filled + count))
            self.buffers = [None if b is None else self._grown(b, capacity) for b in self.buffers]
        for buffer, m in zip(self.buffers, chunk, strict=True):
            if buffer is not None:
                buffer[..., self.filled : self.filled + count] = m
        self.filled += count

    def _grown(self, buffer: np.ndarray, capacity: int) -> np.ndarray:
        grown = np.empty((*buffer.shape[:-1], capacity), buffer.dtype)
        grown[..., : self.filled] = buffer[..., : self.filled]
        return grown

    def done(self) -> EpochMetrics:
        if self.buffers is None:
            return EpochMetrics(None, None, None, None)
        return EpochMetrics(*(None if b is None else b[..., : self.filled] for b in self.buffers))


def chunk_epochs_for(
    spec: TrainSpec, num_samples: int, cells: int = 1, target_seconds: float = 0.1
) -> int:
    """Epochs per chunk so one chunk takes about ``target_seconds`` on a CPU core.

    Stopping (Ctrl-C, SIGTERM) waits for the chunks in flight (the one running and the one
    queued behind it), so this bounds the reaction time. A faster device simply reacts sooner.
    """
    epoch_seconds = estimated_epoch_seconds(spec, num_samples, cells)
    # Not capped by spec.epochs: runs of any length then share one program, so a run of e
    # epochs and epoch e of a longer run give the same bits. Rounded down to 1, 2 or 5 times a
    # power of ten, which divides the round epoch counts people choose (a last chunk that
    # reaches past the end skips its extra epochs, but still steps through them).
    return _round_number_at_most(max(1, int(target_seconds / epoch_seconds)))


def estimated_epoch_seconds(spec: TrainSpec, num_samples: int, cells: int = 1) -> float:
    """Seconds one epoch of ``cells`` networks takes on one CPU core, roughly.

    The estimate is cheap: a fixed cost per optimizer step plus a cost per weight and sample,
    measured on the CPU machines this project runs on (it overestimates large matrix products,
    which run faster per weight).
    """
    params = count_parameters(spec.architecture)
    if spec.batching == "full":
        steps, batch = 1, num_samples
    elif spec.batching == "minibatch":
        batch = min(spec.batch_size, num_samples)
        steps = -(-num_samples // batch)
    else:
        steps, batch = num_samples, 1
    # Seconds per optimizer step: ~60 ns of overhead plus ~1.5 ns per weight per sample, for
    # every cell; evaluation adds one forward pass over the data per epoch.
    step_seconds = 6e-8 + 1.5e-9 * params * batch * cells
    return steps * step_seconds + 1.5e-9 * params * num_samples * cells


def _round_number_at_most(value: int) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... that is at most ``value``."""
    power = 10 ** (len(str(value)) - 1)
    return max(step * power for step in (1, 2, 5) if step * power <= value)


def seed_keys(seed: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The ``(init_key, shuffle_key)`` pair every run derives from its configured seed."""
    init_key, shuffle_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, shuffle_key


class SeededPrograms(NamedTuple):
    """Jitted programs from a seed to a trained network: start it, then run it chunk by chunk."""

    start: Callable
    run_chunk: Callable


@functools.lru_cache(maxsize=64)
def seeded_programs(spec: TrainSpec, init_fn: Callable[[jax.Array], Params]) -> SeededPrograms:
    """``start(seed, learning_rate, data)`` derives the keys from the seed, draws the initial
    weights with ``init_fn`` and evaluates them, all in one compiled call; ``run_chunk(state,
    data, first_epoch)`` trains one chunk. Cached per (spec, init_fn)."""
    trainer = make_trainer(spec)

    def start(seed, learning_rate, data: Data):
        init_key, shuffle_key = seed_keys(seed)
        return trainer.start(init_fn(init_key), learning_rate, shuffle_key, data)

    return SeededPrograms(jax.jit(start), jax.jit(trainer.run_chunk))


class Trained(NamedTuple):
    """What :func:`run_programs` returns: the final state and the run's metrics (NumPy)."""

    state: TrainState
    initial_loss: jax.Array
    initial_accuracy: jax.Array
    history: History
    diverged_epoch: np.ndarray
    epochs_done: int


def run_programs(
    spec: TrainSpec,
    programs,
    start_args: tuple,
    data: Data,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
    timings: dict[str, float] | None = None,
) -> Trained:
    """Start a run (one network or a set of cells) and train it chunk by chunk.

    ``timings``, when given, receives the seconds spent compiling (the first call of each
    program: tracing, compiling or loading from the compilation cache) and training.
    """
    started = time.perf_counter()
    state, initial_loss, initial_accuracy = jax.block_until_ready(programs.start(*start_args, data))
    seconds = {"compile": time.perf_counter() - started}
    calls = []

    def run_chunk(state, first_epoch):
        if calls:
            return programs.run_chunk(state, data, first_epoch)
        # The first call compiles (synchronously) and dispatches; the run itself is async.
        before = time.perf_counter()
        outcome = programs.run_chunk(state, data, first_epoch)
        calls.append(time.perf_counter() - before)
        return outcome

    started = time.perf_counter()
    state, metrics, epochs_done = run_in_chunks(
        spec, run_chunk, state, should_stop=should_stop, on_chunk=on_chunk
    )
    seconds["compile"] += calls[0]
    seconds["train"] = time.perf_counter() - started - calls[0]
    if timings is not None:
        timings.update(seconds)
    history, diverged_epoch = finish_history(metrics)
    return Trained(state, initial_loss, initial_accuracy, history, diverged_epoch, epochs_done)


def train_from_seed(
    spec: TrainSpec,
    init_fn: Callable[[jax.Array], Params],
    seed: int,
    learning_rate: float,
    data: Data,
    **options,
) -> TrainResult:
    """Train one network from its seed, chunk by chunk (see :func:`run_programs` for the
    options ``should_stop``, ``on_chunk`` and ``timings``)."""
    dtype = data.x_train.dtype
    start_args = (jnp.asarray(seed, jnp.uint32), jnp.asarray(learning_rate, dtype))
    run = run_programs(spec, seeded_programs(spec, init_fn), start_args, data, **options)
    to_host = lambda tree: jax.tree_util.tree_map(np.asarray, tree)  # noqa: E731
    snapshots = kept_snapshots(run.state.snapshots)
    return TrainResult(
        to_host(run.state.params),
        run.history,
        np.asarray(run.initial_loss),
        np.asarray(run.initial_accuracy),
        np.asarray(run.diverged_epoch),
        run.epochs_done,
        None if snapshots is None else to_host(snapshots),
    )
