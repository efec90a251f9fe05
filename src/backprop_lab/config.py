"""The config schema, registered in Hydra's ConfigStore, and validation at the door.

The dataclasses give every key a type, so an unknown key or a wrong type fails while Hydra
composes the config. :func:`validate` then checks values (ranges and names) before any work
starts, and raises one line that names the key, the value and what is allowed. Derived values
(the layer sizes, the training spec, the grid) are computed by functions here; ``cfg`` itself
is never changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from backprop_lab.core.activations import ACTIVATION_NAMES
from backprop_lab.core.analysis import SuccessRule
from backprop_lab.core.data import DATASET_NAMES, Dataset, make_dataset
from backprop_lab.core.losses import LOSSES
from backprop_lab.core.model import INIT_SCHEMES, Architecture
from backprop_lab.core.optim import OPTIMIZER_NAMES
from backprop_lab.core.train import BATCHING_MODES, TRAINING_METHODS, TrainSpec
from backprop_lab.errors import BackpropLabError
from backprop_lab.tracking.provenance import config_hash


@dataclass
class ModelConfig:
    hidden_sizes: list[int] = field(default_factory=lambda: [2])
    hidden_activation: str = "sigmoid"
    output_activation: str = "sigmoid"
    use_bias: bool = True
    # θ of threshold units: 1 when z > θ.
    theta: float = 0.0
    # Unset: taken from the data set's width.
    input_size: int | None = None
    output_size: int | None = None
    init: str = "glorot_uniform"
    init_scale: float = 1.0
    # Explicit initial weights, one matrix per layer with one row per unit (overrides init).
    initial_weights: Any = None
    initial_biases: Any = None


@dataclass
class DataConfig:
    name: str = "xor"
    num_samples: int = 200
    noise: float = 0.1
    test_fraction: float = 0.0
    seed: int = 0
    # Train on the first N samples only (the worked example uses 1).
    first_samples: int | None = None
    path: str | None = None
    feature_columns: list[str] = field(default_factory=list)
    target_columns: list[str] = field(default_factory=list)


@dataclass
class LossConfig:
    name: str = "half_sse"


@dataclass
class OptimizerConfig:
    name: str = "sgd"
    learning_rate: float = 0.5
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass
class TrainingConfig:
    epochs: int = 1000
    batching: str = "online"
    batch_size: int = 1
    method: str = "backprop"
    precision: str = "float32"
    unroll: int = 1
    # A run is "solved" when its final training accuracy reaches this.
    success_accuracy: float = 1.0
    # Epochs-to-target counts the first epoch whose loss is at or below this.
    target_loss: float = 0.01
    # Also require the final loss to reach target_loss for a run to count as solved
    # ("converged within the budget"), not only the accuracy.
    success_requires_target_loss: bool = False


@dataclass
class TrackingConfig:
    # Unset: $MLFLOW_TRACKING_URI, else sqlite:///<project root>/mlflow.db.
    uri: str | None = None
    # Unset: the preset's name.
    experiment_name: str | None = None
    # Unset: a name that says what varied.
    run_name: str | None = None
    # Grids log at most this many points per curve as metrics; full curves go to grid.npz.
    max_curve_points: int = 200
    # A single run logs every epoch up to this many; longer runs log this many evenly spaced
    # epochs (history.csv keeps them all).
    max_logged_epochs: int = 20000
    # Where runs are kept when the tracking server is unreachable (bplab-sync uploads them).
    offline_dir: str | None = None
    plots: bool = True
    progress: bool = True
    # Parameters kept at about this many epochs (dense early), for the explorer (0: none).
    snapshots: int = 60
    # Above this many bytes of snapshots a run keeps fewer (and says so).
    max_snapshot_bytes: int = 64 * 1024 * 1024


@dataclass
class SweepConfig:
    # A list of rates, or leave it unset and give log_space (start, stop, num).
    learning_rates: list[float] | None = None
    log_space: list[float] | None = None
    # An int N means seeds 0..N-1; a list means those seeds.
    seeds: Any = None


@dataclass
class ReportConfig:
    """What a study wants ``bplab-report`` to say about itself (kept in its preset)."""

    # What one job of a multirun is called in the findings ("architecture", "arm", ...).
    job_noun: str = "job"
    # The finding the index shows: "comparison" (across jobs, when there is one), "regimes"
    # (the too-small/too-large learning-rate ranges) or "first".
    headline: str = "comparison"
    # Position in the index of reports; ties are sorted by name.
    order: int = 100


@dataclass
class Config:
    name: str = "default"
    description: str = ""
    seed: int = 0
    resume: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def register_configs() -> None:
    """Register the schema so ``conf/train.yaml`` composes on top of it."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=Config)


# ---------------------------------------------------------------------------------------------
# Validation at the door


def _fail(key: str, value: Any, allowed: str) -> None:
    raise BackpropLabError(f"{key}={value!r} is invalid: {allowed}")


def _choice(key: str, value: str, choices) -> None:
    if value not in choices:
        _fail(key, value, "choose one of " + ", ".join(choices))


def _positive(key: str, value: float, *, allow_zero: bool = False) -> None:
    if value is None or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        _fail(key, value, "must be a finite number " + (">= 0" if allow_zero else "> 0"))


def sweep_seeds(cfg: DictConfig) -> list[int] | None:
    """The grid's seeds, or None when the config defines no grid."""
    seeds = cfg.sweep.seeds
    if seeds is None:
        return None
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            _fail("sweep.seeds", seeds, "give a count >= 1 or a list of seeds")
        return list(range(seeds))
    if (
        isinstance(seeds, list | ListConfig)
        and seeds
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        if len(set(seeds)) != len(seeds):
            _fail("sweep.seeds", list(seeds), "each seed may appear once")
        return [int(s) for s in seeds]
    _fail("sweep.seeds", seeds, "give a count >= 1 or a non-empty list of integer seeds")
    return None


def sweep_learning_rates(cfg: DictConfig) -> list[float] | None:
    """The grid's learning rates, or None when the config defines no grid."""
    from backprop_lab.core.sweep import log_spaced

    sweep = cfg.sweep
    if sweep.learning_rates is not None and sweep.log_space is not None:
        _fail(
            "sweep.log_space",
            list(sweep.log_space),
            "give either sweep.learning_rates or sweep.log_space, not both",
        )
    if sweep.learning_rates is not None:
        rates = [float(rate) for rate in sweep.learning_rates]
        if not rates:
            _fail("sweep.learning_rates", rates, "give at least one rate")
        for rate in rates:
            _positive("sweep.learning_rates", rate)
        if len(set(rates)) != len(rates):
            _fail("sweep.learning_rates", rates, "each rate may appear once")
        return rates
    if sweep.log_space is not None:
        values = list(sweep.log_space)
        if len(values) != 3 or values[0] <= 0 or values[1] <= 0 or int(values[2]) < 1:
            _fail(
                "sweep.log_space",
                values,
                "give [start, stop, num] with start, stop > 0 and num >= 1",
            )
        return log_spaced(float(values[0]), float(values[1]), int(values[2]))
    return None


def is_grid(cfg: DictConfig) -> bool:
    """A config is a grid when it sweeps learning rates or seeds."""
    return (
        cfg.sweep.learning_rates is not None
        or cfg.sweep.log_space is not None
        or cfg.sweep.seeds is not None
    )


def _unknown_keys(node: DictConfig, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that ``schema`` does not define (Hydra's ``+key=`` can add them)."""
    import dataclasses

    fields = {item.name: item for item in dataclasses.fields(schema)}
    unknown = []
    for key in node:
        if key not in fields:
            unknown.append(f"{prefix}{key}")
            continue
        nested = (
            fields[key].default_factory
            if fields[key].default_factory is not dataclasses.MISSING
            else None
        )
        if (
            nested is not None
            and dataclasses.is_dataclass(nested)
            and isinstance(node[key], DictConfig)
        ):
            unknown += _unknown_keys(node[key], nested, f"{prefix}{key}.")
    return unknown


def validate(cfg: DictConfig) -> None:
    """Check every value of a composed config; raise one line naming the first bad one."""
    unknown = _unknown_keys(cfg, Config)
    if unknown:
        raise BackpropLabError(
            f"unknown config key {unknown[0]!r}; see conf/ for the keys each group accepts "
            "(bplab-train --cfg job prints the whole config)"
        )
    model, data, training, optimizer = cfg.model, cfg.data, cfg.training, cfg.optimizer
    for position, size in enumerate(model.hidden_sizes):
        if size < 1:
            _fail(f"model.hidden_sizes[{position}]", size, "every layer needs at least 1 unit")
    for key in ("input_size", "output_size"):
        if model[key] is not None and model[key] < 1:
            _fail(
                f"model.{key}", model[key], "every layer needs at least 1 unit (or leave it unset)"
            )
    _choice("model.hidden_activation", model.hidden_activation, ACTIVATION_NAMES)
    _choice("model.output_activation", model.output_activation, ACTIVATION_NAMES)
    _choice("model.init", model.init, INIT_SCHEMES)
    _positive("model.init_scale", model.init_scale)
    if not math.isfinite(model.theta):
        _fail("model.theta", model.theta, "must be a finite number")
    _choice("data.name", data.name, DATASET_NAMES)
    if data.num_samples < 2:
        _fail("data.num_samples", data.num_samples, "must be at least 2")
    _positive("data.noise", data.noise, allow_zero=True)
    if not 0 <= data.test_fraction < 1:
        _fail("data.test_fraction", data.test_fraction, "must be in [0, 1)")
    if data.first_samples is not None and data.first_samples < 1:
        _fail("data.first_samples", data.first_samples, "must be at least 1 (or unset)")
    _choice("loss", cfg.loss.name, tuple(LOSSES))
    _choice("optimizer", optimizer.name, OPTIMIZER_NAMES)
    _positive("optimizer.learning_rate", optimizer.learning_rate)
    if not 0 <= optimizer.momentum < 1:
        _fail("optimizer.momentum", optimizer.momentum, "must be in [0, 1)")
    if training.epochs < 1:
        _fail("training.epochs", training.epochs, "must be at least 1")
    _choice("training.batching", training.batching, BATCHING_MODES)
    if training.batch_size < 1:
        _fail("training.batch_size", training.batch_size, "must be at least 1")
    _choice("training.method", training.method, TRAINING_METHODS)
    _choice("training.precision", training.precision, ("float32", "float64"))
    if training.unroll < 1:
        _fail("training.unroll", training.unroll, "must be at least 1")
    if cfg.tracking.max_logged_epochs < 2:
        _fail("tracking.max_logged_epochs", cfg.tracking.max_logged_epochs, "must be at least 2")
    if cfg.tracking.snapshots < 0:
        _fail("tracking.snapshots", cfg.tracking.snapshots, "must be >= 0 (0 keeps none)")
    if cfg.tracking.max_snapshot_bytes < 0:
        _fail("tracking.max_snapshot_bytes", cfg.tracking.max_snapshot_bytes, "must be >= 0")
    if cfg.tracking.max_curve_points < 2:
        _fail("tracking.max_curve_points", cfg.tracking.max_curve_points, "must be at least 2")
    sweep_learning_rates(cfg)
    sweep_seeds(cfg)
    _choice("report.headline", cfg.report.headline, ("comparison", "regimes", "first"))
    if cfg.loss.name == "bce" and model.output_activation not in ("sigmoid", "hard_sigmoid"):
        _fail(
            "model.output_activation",
            model.output_activation,
            "loss=bce needs probabilities: use a sigmoid (or hard_sigmoid) output, or another loss",
        )
    if training.method == "perceptron" and (
        list(model.hidden_sizes) or model.output_activation != "threshold"
    ):
        raise BackpropLabError(
            "training.method=perceptron trains a single layer of threshold units: "
            "set model.hidden_sizes=[] and model.output_activation=threshold"
        )


# ---------------------------------------------------------------------------------------------
# Derived values


def build_dataset(cfg: DictConfig) -> Dataset:
    """The configured data set, cut to ``data.first_samples`` when set."""
    data = cfg.data
    dataset = make_dataset(
        data.name,
        num_samples=data.num_samples,
        noise=data.noise,
        test_fraction=data.test_fraction,
        seed=data.seed,
        path=data.path,
        feature_columns=list(data.feature_columns),
        target_columns=list(data.target_columns),
    )
    if data.first_samples is not None:
        dataset = dataset._replace(
            x_train=dataset.x_train[: data.first_samples],
            y_train=dataset.y_train[: data.first_samples],
        )
    return dataset


def build_architecture(cfg: DictConfig, dataset: Dataset) -> Architecture:
    """Layer sizes from the config, with input and output sizes taken from the data if unset."""
    model = cfg.model
    inputs = model.input_size if model.input_size is not None else dataset.num_features
    outputs = model.output_size if model.output_size is not None else dataset.num_targets
    return Architecture(
        layer_sizes=(int(inputs), *(int(size) for size in model.hidden_sizes), int(outputs)),
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
    )


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


def config_hash_of(container: dict) -> str:
    """A stable hash of what changes a run's results (tracking settings and resume excluded)."""
    return config_hash(container)
