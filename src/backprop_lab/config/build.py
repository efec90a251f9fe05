"""Values derived from a validated config: the data set, the network, the spec, the grid.

Each is computed by a function; ``cfg`` itself is never changed.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from backprop_lab.config.schema import ScheduleConfig
from backprop_lab.core.analysis import SuccessRule
from backprop_lab.core.data import BUNDLED_SETS, Dataset, make_dataset, scale_features
from backprop_lab.core.model import Architecture
from backprop_lab.core.optim import Schedule
from backprop_lab.core.train import TrainSpec
from backprop_lab.tracking.provenance import config_hash


def build_dataset(cfg: DictConfig) -> Dataset:
    """The configured data set, its features scaled (``data.scale``), cut to
    ``data.first_samples`` when set."""
    data = cfg.data
    if data.name in BUNDLED_SETS:
        from backprop_lab.bundled import load_bundled

        dataset = load_bundled(data.name, test_fraction=data.test_fraction, seed=data.seed)
    else:
        dataset = make_dataset(
            data.name,
            num_samples=data.num_samples,
            noise=data.noise,
            test_fraction=data.test_fraction,
            seed=data.seed,
            path=data.path,
            feature_columns=list(data.feature_columns),
            target_columns=list(data.target_columns),
            class_column=data.class_column,
            num_classes=data.num_classes,
        )
    dataset = scale_features(dataset, data.scale)
    if data.first_samples is not None:
        dataset = dataset._replace(
            x_train=dataset.x_train[: data.first_samples],
            y_train=dataset.y_train[: data.first_samples],
        )
    return dataset


def layer_sizes(cfg: DictConfig, num_features: int, num_targets: int) -> tuple[int, ...]:
    """Input, hidden and output sizes; input and output come from the data when unset."""
    model = cfg.model
    inputs = model.input_size if model.input_size is not None else num_features
    outputs = model.output_size if model.output_size is not None else num_targets
    return (int(inputs), *(int(size) for size in model.hidden_sizes), int(outputs))


def build_architecture(cfg: DictConfig, dataset: Dataset) -> Architecture:
    """The network's shape and activations for this config and data set."""
    model = cfg.model
    return Architecture(
        layer_sizes=layer_sizes(cfg, dataset.num_features, dataset.num_targets),
        hidden_activation=model.hidden_activation,
        output_activation=model.output_activation,
        use_bias=bool(model.use_bias),
        theta=float(model.theta),
    )


def build_spec(cfg: DictConfig, architecture: Architecture) -> TrainSpec:
    """The static :class:`TrainSpec` the compiled program is built from."""
    optimizer, training = cfg.optimizer, cfg.training
    return TrainSpec(
        architecture=architecture,
        loss=cfg.loss.name,
        optimizer=optimizer.name,
        momentum=float(optimizer.momentum),
        beta1=float(optimizer.beta1),
        beta2=float(optimizer.beta2),
        eps=float(optimizer.eps),
        epochs=int(training.epochs),
        batching=training.batching,
        batch_size=int(training.batch_size),
        method=training.method,
        unroll=int(training.unroll),
        schedule=build_schedule(cfg),
    )


def build_schedule(cfg: DictConfig) -> Schedule:
    """The learning-rate schedule of ``schedule.*`` (its peak is the run's learning rate)."""
    schedule = cfg.schedule
    return Schedule(
        name=schedule.name,
        decay_rate=float(schedule.decay_rate),
        transition_epochs=int(schedule.transition_epochs),
        warmup_epochs=int(schedule.warmup_epochs),
        initial_fraction=float(schedule.initial_fraction),
        final_fraction=float(schedule.final_fraction),
    )


def sweep_seeds(cfg: DictConfig) -> list[int] | None:
    """The grid's seeds (a count N means 0..N-1), or None when the config defines no grid."""
    seeds = cfg.sweep.seeds
    if seeds is None:
        return None
    if isinstance(seeds, list | ListConfig):
        return [int(seed) for seed in seeds]
    return list(range(int(seeds)))


def sweep_learning_rates(cfg: DictConfig) -> list[float] | None:
    """The grid's learning rates, or None when the config defines no grid."""
    from backprop_lab.core.sweep import log_spaced

    sweep = cfg.sweep
    if sweep.learning_rates is not None:
        return [float(rate) for rate in sweep.learning_rates]
    if sweep.log_space is not None:
        start, stop, num = (float(value) for value in sweep.log_space)
        return log_spaced(start, stop, int(num))
    return None


def is_grid(cfg: DictConfig) -> bool:
    """A config is a grid when it sweeps learning rates or seeds."""
    sweep = cfg.sweep
    return any(value is not None for value in (sweep.learning_rates, sweep.log_space, sweep.seeds))


def to_container(cfg: DictConfig) -> dict:
    """The resolved config as plain Python data."""
    return OmegaConf.to_container(cfg, resolve=True)


def flatten(container: dict, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys, keeping scalar values and short lists."""
    flat: dict[str, Any] = {}
    for key, value in container.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            if all(not isinstance(item, list | dict) for item in value):
                flat[name] = value
        else:
            flat[name] = value
    return flat


def success_rule(cfg: DictConfig) -> SuccessRule:
    """When this config's runs count as solved (see :mod:`backprop_lab.core.analysis`)."""
    training = cfg.training
    return SuccessRule(
        success_accuracy=float(training.success_accuracy),
        target_loss=float(training.target_loss),
        requires_target_loss=bool(training.success_requires_target_loss),
    )


# Keys added after runs were first recorded, at the values that train as before: left out of
# the hash, so that resume=true still finds those runs.
_ADDED_KEYS_AT_DEFAULT = {
    "data": {"class_column": None, "num_classes": None, "scale": "none"},
}


def config_hash_of(container: dict) -> str:
    """A stable hash of what changes a run's results (tracking settings and resume excluded)."""
    container = dict(container)
    for group, defaults in _ADDED_KEYS_AT_DEFAULT.items():
        if isinstance(container.get(group), dict):
            container[group] = {
                key: value
                for key, value in container[group].items()
                if not (key in defaults and value == defaults[key])
            }
    if container.get("schedule") == to_container(OmegaConf.structured(ScheduleConfig)):
        del container["schedule"]
    return config_hash(container)
