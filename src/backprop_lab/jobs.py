"""A validated config turned into what training needs, and trained.

:func:`prepare` checks the config and builds the data set, the network, the static training
spec (with its chunk length and snapshot epochs) and the initial-weights function; every bad
input raises :class:`BackpropLabError` here, before anything is recorded. :func:`train_job`
trains one network or a learning-rate × seed grid, chunk by chunk.
"""

from __future__ import annotations

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
from backprop_lab.core.data import Dataset, check_fits
from backprop_lab.core.model import Architecture
from backprop_lab.core.train import TrainSpec, chunk_epochs_for, single_network_spec
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
    spec = build_spec(cfg, architecture)
    if not grid:
        spec = single_network_spec(spec)
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
    )


def train_job(job: Job, seed: int, *, should_stop=None, on_chunk=None):
    """Train a prepared job: a :class:`TrainResult`, or a :class:`GridResult` for a grid."""
    from backprop_lab.core.sweep import train_grid
    from backprop_lab.core.train import to_device_data, train_from_seed

    data = to_device_data(job.dataset)
    if job.grid:
        return train_grid(
            job.spec,
            job.init_fn,
            job.learning_rates,
            job.seeds,
            data,
            should_stop=should_stop,
            on_chunk=on_chunk,
        )
    return train_from_seed(
        job.spec,
        job.init_fn,
        seed,
        job.learning_rates[0],
        data,
        should_stop=should_stop,
        on_chunk=on_chunk,
    )
