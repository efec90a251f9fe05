"""Grids of learning rates × seeds trained as one ``jit(vmap(train))`` program.

A grid of ``L`` rates and ``S`` seeds is flattened to ``L·S`` cells. Each cell's initial
weights come from its seed's key, drawn for all cells in one vectorised ``jax.random`` call,
and every cell runs the same compiled program as a single network would, so a cell of the
grid equals the same config trained alone. When JAX sees several devices, the cells are
split into shards along one mesh axis, one shard per device, which train side by side (on a
CPU, :mod:`backprop_lab.devices` shows XLA one device per core). Each shard's program is
compiled for its own number of cells, so a grid's bits depend on its shard count: it is part
of what a run records.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from backprop_lab.core.lanes import from_lanes, resolved_layout, to_lanes
from backprop_lab.core.model import Params
from backprop_lab.core.runner import estimated_epoch_seconds, run_programs, seed_keys
from backprop_lab.core.train import (
    Data,
    History,
    TrainResult,
    TrainSpec,
    kept_snapshots,
    make_trainer,
)
from backprop_lab.errors import BackpropLabError


class GridResult(NamedTuple):
    """A trained grid: every field of ``result`` has leading axes ``(rates, seeds)``;
    ``shards`` is the number of devices its cells were split across."""

    learning_rates: np.ndarray
    seeds: np.ndarray
    result: TrainResult
    shards: int = 1


def log_spaced(start: float, stop: float, num: int) -> list[float]:
    """``num`` learning rates evenly spaced in log10 between ``start`` and ``stop``."""
    return [float(value) for value in np.logspace(math.log10(start), math.log10(stop), num)]


# Splitting a grid across CPU devices costs a longer first compilation (about 0.7 s more on
# two cores; the persistent compilation cache keeps it for the next run) and halves the
# training on two cores: it pays from about a second of training.
MIN_SECONDS_TO_SPLIT = 1.0


def default_shards(spec: TrainSpec, num_samples: int, num_cells: int) -> int:
    """The shards a grid is split into: one per device JAX sees, at most one per cell; on a
    CPU, only when its training is estimated to take ``MIN_SECONDS_TO_SPLIT`` or more."""
    devices = jax.device_count()
    if devices == 1 or num_cells == 1:
        return 1
    if jax.default_backend() == "cpu":
        seconds = spec.epochs * estimated_epoch_seconds(spec, num_samples, num_cells)
        if seconds < MIN_SECONDS_TO_SPLIT:
            return 1
    return min(devices, num_cells)


def _shard_cells(tree, num_cells: int, shards: int):
    """Pad the leading (cell) axis to a multiple of ``shards`` and split it over that many
    devices (the first ``shards`` JAX sees)."""
    devices = jax.devices()
    if shards > len(devices):
        raise BackpropLabError(
            f"this grid is split into {shards} shards, but JAX sees {len(devices)} "
            f"device(s); set XLA_FLAGS=--xla_force_host_platform_device_count={shards} on a CPU"
        )
    if shards == 1:
        return tree
    padded = -(-num_cells // shards) * shards
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - num_cells, axis=0)])  # noqa: E731
    tree = jax.tree_util.tree_map(pad, tree)
    mesh = Mesh(np.array(devices[:shards]), ("cells",))
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("cells")))


class CellPrograms(NamedTuple):
    """The jitted programs of a set of cells: start them, then run them a chunk at a time.

    Between chunks the state has its cells first, as ``vmap`` lays it out, except the
    snapshots of a grid trained in lanes: they keep the cells last (moving a buffer of every
    snapshot at every chunk cost a tenth of a small grid's time). ``cells_first`` turns
    the final snapshots into the usual layout.
    """

    start: Callable
    run_chunk: Callable
    cells_first: Callable = lambda snapshots: snapshots


def _snapshots_cells_first(snapshots):
    return jax.tree_util.tree_map(lambda leaf: np.moveaxis(np.asarray(leaf), -1, 0), snapshots)


@functools.lru_cache(maxsize=32)
def cell_programs(spec: TrainSpec, init_fn: Callable[[jax.Array], Params]) -> CellPrograms:
    """Compiled programs from the cells' seeds and rates to their trained networks.

    ``start(cell_seeds, cell_rates, data)`` derives each cell's keys from its seed, draws every
    cell's weights in one vectorised call and evaluates them; ``run_chunk(states, data,
    first_epoch)`` trains every cell for one chunk of epochs. Cached per (spec, init_fn), so
    repeated grids of the same shape compile once.
    """
    layout = resolved_layout(spec)
    trainer = make_trainer(spec._replace(batched=True, grid_layout=layout))
    # Each cell starts on its own, under vmap: cells first.
    start_one = make_trainer(spec._replace(batched=True, grid_layout="cells")).start

    def start_cell(seed, learning_rate, data: Data):
        init_key, shuffle_key = seed_keys(seed)
        return start_one(init_fn(init_key), learning_rate, shuffle_key, data)

    def start(cell_seeds: jax.Array, cell_rates: jax.Array, data: Data):
        state, *metrics = jax.vmap(start_cell, in_axes=(0, 0, None))(cell_seeds, cell_rates, data)
        if layout == "lanes":
            state = state._replace(snapshots=to_lanes(state.snapshots))
        return state, *metrics

    def run_chunk(states, data: Data, first_epoch):
        if layout == "cells":
            return jax.vmap(trainer.run_chunk, in_axes=(0, None, None))(states, data, first_epoch)
        # Cells last inside the chunk (see core.lanes); outside, all but the snapshots first.
        snapshots = states.snapshots
        states = to_lanes(states._replace(snapshots=None))._replace(snapshots=snapshots)
        states, metrics = trainer.run_chunk(states, data, first_epoch)
        snapshots = states.snapshots
        states = from_lanes(states._replace(snapshots=None))._replace(snapshots=snapshots)
        return states, from_lanes(metrics)

    if layout == "cells":
        return CellPrograms(jax.jit(start), jax.jit(run_chunk))
    return CellPrograms(jax.jit(start), jax.jit(run_chunk), _snapshots_cells_first)


def cell_inputs(
    learning_rates: Sequence[float], seeds: Sequence[int], dtype
) -> tuple[jax.Array, jax.Array]:
    """``(cell_seeds, cell_rates)``: the grid flattened rate-major, cell ``r·S + s`` for rate
    ``r`` and seed ``s``, as :func:`train_grid` trains it."""
    rates = np.asarray(learning_rates, dtype=np.float64)
    seed_array = np.asarray(seeds, dtype=np.int64)
    cell_rates = jnp.asarray(np.repeat(rates, len(seed_array)), dtype=dtype)
    cell_seeds = jnp.asarray(np.tile(seed_array, len(rates)), dtype=jnp.uint32)
    return cell_seeds, cell_rates


def train_grid(
    spec: TrainSpec,
    init_fn: Callable[[jax.Array], Params],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    data: Data,
    *,
    shards: int | None = None,
    **options,
) -> GridResult:
    """Train every (learning rate, seed) cell of a grid as one compiled program per chunk.

    Args:
      spec: the static training spec shared by every cell; ``spec.chunk_epochs`` epochs run
        per compiled call (0: the whole run in one call).
      init_fn: ``key -> params``; vmapped over the cells' init keys, so the whole grid's
        weights are drawn in one call. Explicit weights ignore the key.
      learning_rates: the grid's rows.
      seeds: the grid's columns; each gives the cell's init and shuffle keys.
      data: the training (and test) arrays, shared by every cell.
      shards: how many devices the cells are split across (None: :func:`default_shards`;
        1: one device). The result's bits depend on it.
      options: ``should_stop`` (asked between chunks; True ends training early),
        ``on_chunk`` (called after each chunk with its metrics, flattened over cells) and
        ``timings`` (see :func:`backprop_lab.core.train.run_programs`).
    """
    rates = np.asarray(learning_rates, dtype=np.float64)
    seed_array = np.asarray(seeds, dtype=np.int64)
    num_rates, num_seeds = len(rates), len(seed_array)
    num_cells = num_rates * num_seeds
    inputs = cell_inputs(rates, seed_array, data.x_train.dtype)
    if shards is None:
        shards = default_shards(spec, data.x_train.shape[0], num_cells)
    inputs = _shard_cells(inputs, num_cells, shards)
    programs = cell_programs(spec, init_fn)
    run = run_programs(spec, programs, inputs, data, **options)
    states = run.state

    def unflatten(leaf):
        return np.asarray(leaf)[:num_cells].reshape(num_rates, num_seeds, *np.shape(leaf)[1:])

    result = TrainResult(
        jax.tree_util.tree_map(unflatten, states.params),
        History(*(unflatten(metric) for metric in run.history)),
        unflatten(run.initial_loss),
        unflatten(run.initial_accuracy),
        unflatten(run.diverged_epoch),
        run.epochs_done,
        None
        if states.snapshots is None
        else jax.tree_util.tree_map(
            unflatten, kept_snapshots(programs.cells_first(states.snapshots), axis=1)
        ),
    )
    return GridResult(rates, seed_array, result, shards)


def cell(grid: GridResult, rate_index: int, seed_index: int) -> TrainResult:
    """The :class:`TrainResult` of one cell."""
    result = grid.result
    return jax.tree_util.tree_map(
        lambda leaf: leaf[rate_index, seed_index], result._replace(epochs_done=None)
    )._replace(epochs_done=result.epochs_done)
