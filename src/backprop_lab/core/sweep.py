"""Grids of learning rates × seeds trained as one ``jit(vmap(train))`` program.

A grid of ``L`` rates and ``S`` seeds is flattened to ``L·S`` cells. Each cell's initial
weights come from its seed's key, drawn for all cells in one vectorised ``jax.random`` call,
and every cell runs the same compiled program as a single network would, so a cell of the
grid equals the same config trained alone. When JAX sees several devices, the cells are
split across them along one mesh axis.
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

from backprop_lab.core.model import Params
from backprop_lab.core.runner import run_programs, seed_keys
from backprop_lab.core.train import (
    Data,
    History,
    TrainResult,
    TrainSpec,
    make_trainer,
)


class GridResult(NamedTuple):
    """A trained grid: every field of ``result`` has leading axes ``(rates, seeds)``."""

    learning_rates: np.ndarray
    seeds: np.ndarray
    result: TrainResult


def log_spaced(start: float, stop: float, num: int) -> list[float]:
    """``num`` learning rates evenly spaced in log10 between ``start`` and ``stop``."""
    return [float(value) for value in np.logspace(math.log10(start), math.log10(stop), num)]


def _shard_cells(tree, num_cells: int):
    """Pad the leading (cell) axis to a multiple of the device count and shard it."""
    devices = jax.devices()
    if len(devices) == 1:
        return tree, num_cells
    padded = -(-num_cells // len(devices)) * len(devices)
    pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - num_cells, axis=0)])  # noqa: E731
    tree = jax.tree_util.tree_map(pad, tree)
    sharding = NamedSharding(Mesh(np.array(devices), ("cells",)), PartitionSpec("cells"))
    return jax.device_put(tree, sharding), padded


class CellPrograms(NamedTuple):
    """The jitted programs of a set of cells: start them, then run them a chunk at a time."""

    start: Callable
    run_chunk: Callable


@functools.lru_cache(maxsize=32)
def cell_programs(spec: TrainSpec, init_fn: Callable[[jax.Array], Params]) -> CellPrograms:
    """Compiled programs from the cells' seeds and rates to their trained networks.

    ``start(cell_seeds, cell_rates, data)`` derives each cell's keys from its seed, draws every
    cell's weights in one vectorised call and evaluates them; ``run_chunk(states, data,
    first_epoch)`` trains every cell for one chunk of epochs. Cached per (spec, init_fn), so
    repeated grids of the same shape compile once.
    """
    trainer = make_trainer(spec._replace(batched=True))

    def start_cell(seed, learning_rate, data: Data):
        init_key, shuffle_key = seed_keys(seed)
        return trainer.start(init_fn(init_key), learning_rate, shuffle_key, data)

    def start(cell_seeds: jax.Array, cell_rates: jax.Array, data: Data):
        return jax.vmap(start_cell, in_axes=(0, 0, None))(cell_seeds, cell_rates, data)

    def run_chunk(states, data: Data, first_epoch):
        return jax.vmap(trainer.run_chunk, in_axes=(0, None, None))(states, data, first_epoch)

    return CellPrograms(jax.jit(start), jax.jit(run_chunk))


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
    shard: bool = True,
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
      shard: split the cells across devices when JAX sees more than one.
      options: ``should_stop`` (asked between chunks; True ends training early),
        ``on_chunk`` (called after each chunk with its metrics, flattened over cells) and
        ``timings`` (see :func:`backprop_lab.core.train.run_programs`).
    """
    rates = np.asarray(learning_rates, dtype=np.float64)
    seed_array = np.asarray(seeds, dtype=np.int64)
    num_rates, num_seeds = len(rates), len(seed_array)
    num_cells = num_rates * num_seeds
    inputs = cell_inputs(rates, seed_array, data.x_train.dtype)
    if shard:
        inputs, _ = _shard_cells(inputs, num_cells)
    run = run_programs(spec, cell_programs(spec, init_fn), inputs, data, **options)
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
        None if states.snapshots is None else jax.tree_util.tree_map(unflatten, states.snapshots),
    )
    return GridResult(rates, seed_array, result)


def cell(grid: GridResult, rate_index: int, seed_index: int) -> TrainResult:
    """The :class:`TrainResult` of one cell."""
    result = grid.result
    return jax.tree_util.tree_map(
        lambda leaf: leaf[rate_index, seed_index], result._replace(epochs_done=None)
    )._replace(epochs_done=result.epochs_done)
