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
from backprop_lab.core.train import Data, TrainResult, TrainSpec, make_train


class GridResult(NamedTuple):
    """A trained grid: every field of ``result`` has leading axes ``(rates, seeds)``."""

    learning_rates: np.ndarray
    seeds: np.ndarray
    result: TrainResult


def seed_keys(seed: int | jax.Array) -> tuple[jax.Array, jax.Array]:
    """The ``(init_key, shuffle_key)`` pair every run derives from its configured seed."""
    init_key, shuffle_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, shuffle_key


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


@functools.lru_cache(maxsize=32)
def _grid_program(spec: TrainSpec, init_fn: Callable[[jax.Array], Params]):
    """One compiled program from the cells' seeds and rates to their trained networks.

    Cached per (spec, init_fn), so repeated grids of the same shape compile once.
    """
    train = make_train(spec)

    def program(cell_seeds: jax.Array, cell_rates: jax.Array, data: Data) -> TrainResult:
        init_keys, shuffle_keys = jax.vmap(seed_keys)(cell_seeds)
        # Every cell's weights in one vectorised draw.
        cell_params = jax.vmap(init_fn)(init_keys)
        cell_params = jax.tree_util.tree_map(
            lambda leaf: leaf.astype(data.x_train.dtype), cell_params
        )
        return jax.vmap(train, in_axes=(0, 0, 0, None))(cell_params, cell_rates, shuffle_keys, data)

    return jax.jit(program)


def train_grid(
    spec: TrainSpec,
    init_fn: Callable[[jax.Array], Params],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    data: Data,
    *,
    shard: bool = True,
) -> GridResult:
    """Train every (learning rate, seed) cell of a grid as one compiled program.

    Args:
      spec: the static training spec shared by every cell.
      init_fn: ``key -> params``; vmapped over the cells' init keys, so the whole grid's
        weights are drawn in one call. Explicit weights ignore the key.
      learning_rates: the grid's rows.
      seeds: the grid's columns; each gives the cell's init and shuffle keys.
      data: the training (and test) arrays, shared by every cell.
      shard: split the cells across devices when JAX sees more than one.
    """
    rates = np.asarray(learning_rates, dtype=np.float64)
    seed_array = np.asarray(seeds, dtype=np.int64)
    num_rates, num_seeds = len(rates), len(seed_array)
    num_cells = num_rates * num_seeds
    cell_rates = jnp.asarray(np.repeat(rates, num_seeds), dtype=data.x_train.dtype)
    cell_seeds = jnp.asarray(np.tile(seed_array, num_rates), dtype=jnp.uint32)
    inputs = (cell_seeds, cell_rates)
    if shard:
        inputs, _ = _shard_cells(inputs, num_cells)
    result = _grid_program(spec, init_fn)(*inputs, data)

    def unflatten(leaf):
        return np.asarray(leaf)[:num_cells].reshape(num_rates, num_seeds, *leaf.shape[1:])

    return GridResult(rates, seed_array, jax.tree_util.tree_map(unflatten, result))


def cell(grid: GridResult, rate_index: int, seed_index: int) -> TrainResult:
    """The :class:`TrainResult` of one cell."""
    return jax.tree_util.tree_map(lambda leaf: leaf[rate_index, seed_index], grid.result)


def epochs_to_target(loss_history: np.ndarray, target_loss: float) -> np.ndarray:
    """First epoch (1-based) whose loss is at or below ``target_loss``; 0 where never reached.

    Works on any leading axes; the last axis is epochs.
    """
    reached = np.asarray(loss_history) <= target_loss
    first = np.argmax(reached, axis=-1) + 1
    return np.where(reached.any(axis=-1), first, 0)


def best_rate_index(success_rate: np.ndarray, median_final_loss: np.ndarray) -> int:
    """The row with the highest success rate; ties go to the lower median final loss (NaN
    counts as worst), then to the lower learning rate."""
    loss = np.where(np.isfinite(median_final_loss), median_final_loss, np.inf)
    return min(range(len(success_rate)), key=lambda row: (-success_rate[row], loss[row], row))
