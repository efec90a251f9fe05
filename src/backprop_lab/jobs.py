"""A validated config turned into what training needs, and trained.

:func:`prepare` checks the config and builds the data set, the network, the static training
spec (with its chunk length and snapshot epochs) and the initial-weights function; every bad
input raises :class:`BackpropLabError` here, before anything is recorded. :func:`train_job`
trains one network or a learning-rate × seed grid, chunk by chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import NamedTuple

from omegaconf import DictConfig, OmegaConf

from backprop_lab.config import (
    build_architecture,
    build_dataset,
    build_spec,
    is_grid,
    sweep_learning_rates,
    sweep_seeds,
    validate,
)
from backprop_lab.core.data import Dataset, check_class_targets, check_fits
from backprop_lab.core.lanes import resolved_layout
from backprop_lab.core.losses import CATEGORICAL_LOSSES
from backprop_lab.core.model import Architecture
from backprop_lab.core.runner import chunk_epochs_for
from backprop_lab.core.sweep import default_shards
from backprop_lab.core.train import TrainSpec, single_network_spec
from backprop_lab.core.trajectory import snapshot_plan
from backprop_lab.errors import BackpropLabError


class Job(NamedTuple):
    """A validated config turned into what training needs."""

    dataset: Dataset
    architecture: Architecture
    spec: TrainSpec
    init_fn: Callable
    learning_rates: list[float]
    seeds: list[int]
    grid: bool
    # Why the trajectory keeps fewer snapshots than configured ("" when it keeps them all).
    snapshot_note: str = ""
    # The devices a grid's cells are split across (see core.sweep.train_grid); 1 for a run.
    shards: int = 1

    @property
    def cells(self) -> int:
        return len(self.learning_rates) * len(self.seeds)


def set_precision(precision: str) -> None:
    """float64 needs ``jax_enable_x64`` before arrays are made; float32 is JAX's default."""
    import jax

    jax.config.update("jax_enable_x64", precision == "float64")


def initial_params_fn(cfg: DictConfig, architecture: Architecture) -> Callable:
    """``key -> params``: explicit numbers from the config, or a seeded random draw.

    The one place a config becomes initial weights (training, ``bplab-explain``, reports).
    """
    import jax.numpy as jnp

    from backprop_lab.core.model import init_params, params_from_lists

    model = cfg.model
    if model.initial_weights is not None:
        explicit = params_from_lists(
            architecture,
            OmegaConf.to_container(model.initial_weights),
            None if model.initial_biases is None else OmegaConf.to_container(model.initial_biases),
            dtype=jnp.asarray(0.0).dtype,
        )
        return lambda key: explicit
    return lambda key: init_params(key, architecture, model.init, model.init_scale)


# Copies of the parameters training holds at once: the weights, their gradient and up to two
# optimizer moments (Adam), with room for the compiler's temporaries.
_PARAMETER_COPIES = 6


# Host copies of the per-epoch curves at their peak: the growing buffers (old and new while
# one doubles) and the arrays a record derives from them.
_CURVE_COPIES = 3


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_fits_in_memory(architecture: Architecture, cells: int, precision: str) -> None:
    """Refuse, in one line, a network (or grid) whose parameters alone would not fit in half
    of this machine's memory: better than an out-of-memory kill an hour later."""
    from backprop_lab.core.model import count_parameters

    numbers = count_parameters(architecture) * cells
    needed = numbers * (8 if precision == "float64" else 4) * _PARAMETER_COPIES
    available = _memory_bytes()
    if available is not None and needed > available // 2:
        raise BackpropLabError(
            f"model.hidden_sizes={list(architecture.layer_sizes[1:-1])}: {numbers:,} parameters "
            f"({cells:,} networks) need about {needed / 2**30:.1f} GiB to train, more than half "
            f"of this machine's {available / 2**30:.0f} GiB; use smaller layers or fewer cells"
        )


def check_curves_fit_in_memory(epochs: int, cells: int, curves: int, precision: str) -> None:
    """Refuse, in one line, a run whose per-epoch curves (every cell's loss and accuracy, each
    epoch) would not fit in half of this machine's memory. They are kept in full, so without
    this a long grid would train for hours and then be killed for memory."""
    values = epochs * cells * curves
    needed = values * (8 if precision == "float64" else 4) * _CURVE_COPIES
    available = _memory_bytes()
    if available is not None and needed > available // 2:
        networks = f"{cells:,} networks" if cells > 1 else "one network"
        raise BackpropLabError(
            f"training.epochs={epochs:,}: {networks} keep {values:,} per-epoch values, about "
            f"{needed / 2**30:.1f} GiB with their working copies, more than half of this "
            f"machine's {available / 2**30:.0f} GiB; train fewer epochs or cells"
        )


def prepare(cfg: DictConfig, dataset: Dataset | None = None) -> Job:
    """Validate ``cfg`` and build the data set, the network and the training spec.

    ``dataset`` replaces the configured data set: a recorded run's ``dataset.npz``, so a
    reader never rebuilds it from a path named in the run's config.
    """
    validate(cfg)
    set_precision(cfg.training.precision)
    dataset = build_dataset(cfg) if dataset is None else dataset
    architecture = build_architecture(cfg, dataset)
    check_fits(dataset, architecture.num_inputs, architecture.num_outputs)
    if cfg.loss.name in CATEGORICAL_LOSSES:
        check_class_targets(dataset)
    if cfg.training.batching == "minibatch" and cfg.training.batch_size > len(dataset.x_train):
        raise BackpropLabError(
            f"training.batch_size={cfg.training.batch_size} is larger than the "
            f"{len(dataset.x_train)} training samples of {dataset.name!r}; use a smaller batch "
            "or training.batching=full"
        )
    grid = is_grid(cfg)
    rates = sweep_learning_rates(cfg) or [float(cfg.optimizer.learning_rate)]
    seeds = sweep_seeds(cfg) or [int(cfg.seed)]
    cells = len(rates) * len(seeds)
    check_fits_in_memory(architecture, cells, cfg.training.precision)
    # Loss and accuracy on the training split, and on the test split when there is one.
    curves = 4 if dataset.has_test else 2
    check_curves_fit_in_memory(int(cfg.training.epochs), cells, curves, cfg.training.precision)
    spec = build_spec(cfg, architecture)
    if not grid:
        spec = single_network_spec(spec)
    else:
        # Resolved here, so the run records the layout its bits come from.
        spec = spec._replace(grid_layout=resolved_layout(spec))
    spec = spec._replace(chunk_epochs=chunk_epochs_for(spec, len(dataset.x_train), cells))
    plan = snapshot_plan(
        spec.epochs,
        cfg.tracking.snapshots,
        architecture,
        cells,
        cfg.tracking.max_snapshot_bytes,
    )
    spec = spec._replace(snapshot_epochs=plan.epochs)
    return Job(
        dataset,
        architecture,
        spec,
        initial_params_fn(cfg, architecture),
        rates,
        seeds,
        grid,
        plan.note,
        default_shards(spec, len(dataset.x_train), cells) if grid else 1,
    )


def train_job(job: Job, seed: int, **options):
    """Train a prepared job: a :class:`TrainResult`, or a :class:`GridResult` for a grid.

    ``options`` (``should_stop``, ``on_chunk``, ``timings``) go to the core's driver.
    """
    from backprop_lab.core.runner import train_from_seed
    from backprop_lab.core.sweep import train_grid
    from backprop_lab.core.train import to_device_data

    data = to_device_data(job.dataset)
    if job.grid:
        return train_grid(
            job.spec,
            job.init_fn,
            job.learning_rates,
            job.seeds,
            data,
            shards=job.shards,
            **options,
        )
    return train_from_seed(
        job.spec,
        job.init_fn,
        seed,
        job.learning_rates[0],
        data,
        **options,
    )
