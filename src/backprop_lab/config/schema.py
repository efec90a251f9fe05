"""The config schema: one dataclass per group, registered in Hydra's ConfigStore.

The dataclasses give every key a type, so a wrong type fails while Hydra composes the config;
``validate.py`` then checks every value's range before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


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
    # A CSV's one column of class labels (whole numbers 0..K-1 or names), one-hot encoded;
    # instead of target_columns.
    class_column: str | None = None
    # Unset: the largest class label plus one (or the number of distinct names).
    num_classes: int | None = None
    # none, or standardize: mean 0 and standard deviation 1 per feature, by the training split.
    scale: str = "none"


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
class ScheduleConfig:
    """How the learning rate moves over the epochs; ``optimizer.learning_rate`` is its peak."""

    # constant, exponential, cosine or warmup_cosine.
    name: str = "constant"
    # exponential: the rate is multiplied by decay_rate every transition_epochs epochs.
    decay_rate: float = 0.95
    transition_epochs: int = 1
    # warmup_cosine: a straight line from initial_fraction x the peak up to the peak over
    # warmup_epochs epochs, then the cosine.
    warmup_epochs: int = 0
    initial_fraction: float = 0.1
    # cosine and warmup_cosine: the last epoch's rate, as a fraction of the peak.
    final_fraction: float = 0.0


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
    # Grids also log every seed's loss curve in its rate's child run (grid.npz has them all).
    seed_curves: bool = False
    # A single run logs every epoch up to this many; longer runs log this many evenly spaced
    # epochs (history.csv keeps them all).
    max_logged_epochs: int = 20000
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
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    report: ReportConfig = field(default_factory=ReportConfig)


def register_configs() -> None:
    """Register the schema so ``conf/train.yaml`` composes on top of it."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=Config)
