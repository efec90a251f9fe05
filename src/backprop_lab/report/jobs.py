"""A job of the selection (a single or grid run) with its artifacts read back and checked.

What is missing or malformed goes to :attr:`Job.problems`, which the report lists as notes;
the parts of the report that need it leave the job out. Nothing here raises for bad data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from backprop_lab.core import analysis
from backprop_lab.core.data import DATASET_ARTIFACT
from backprop_lab.core.trajectory import TRAJECTORY_ARTIFACT
from backprop_lab.errors import BackpropLabError
from backprop_lab.report.store import run_kind, run_name
from backprop_lab.tracking.artifacts import (
    RunArtifacts,
    UnreadableArtifact,
    read_config,
    read_dataset,
    read_history,
    read_json,
    read_npz,
    read_text,
    read_yaml,
)

# Rebuilding an old run's generated data set runs the generator: cap what a config may ask.
MAX_REBUILT_SAMPLES = 100_000
# grid.npz: curves have axes (rates, seeds, epochs), per-cell values (rates, seeds).
_GRID_CURVES = ("loss", "accuracy")
_GRID_CELLS = ("solved", "improved", "diverged_epoch", "epochs_to_target")


@dataclass
class Job:
    """A single or grid run of the selection, with its artifacts read back."""

    run: Any
    kind: str
    label: str = ""
    # Short forms for axis labels: what varied, without the keys; and the keys that varied.
    short_label: str = ""
    varied: dict[str, str] = field(default_factory=dict)
    cfg: Any = None
    config_text: str = ""
    overrides: list[str] = field(default_factory=list)
    history: dict[str, np.ndarray] | None = None
    weights_json: dict | None = None
    weights: dict[str, np.ndarray] | None = None
    grid: dict[str, np.ndarray] | None = None
    problems: list[str] = field(default_factory=list)
    dataset: Any = None
    architecture: Any = None
    # trajectory.npz: the snapshot epochs and the parameters at each (None: the run has none).
    trajectory: dict[str, np.ndarray] | None = None

    @property
    def name(self) -> str:
        return run_name(self.run)

    @property
    def metrics(self) -> dict[str, float]:
        return self.run.data.metrics

    def metric(self, name: str) -> float:
        return float(self.metrics.get(name, float("nan")))

    @property
    def usable(self) -> bool:
        """Whether the job has the record its kind needs (grid.npz or history.csv)."""
        return self.grid is not None if self.kind == "grid" else self.history is not None

    # --- statistics, all from core.analysis

    @cached_property
    def rate_rows(self) -> list[analysis.RateRow]:
        return analysis.rate_rows(self.grid)

    @cached_property
    def grid_summary(self) -> analysis.GridSummary:
        return analysis.grid_summary(self.grid, self.rate_rows)

    @property
    def best_row(self) -> analysis.RateRow:
        return self.rate_rows[self.grid_summary.best_row]

    @property
    def solved_cells(self) -> int:
        return sum(row.solved for row in self.rate_rows)

    @cached_property
    def run_summary(self) -> analysis.RunSummary:
        """The curve statistics of a single run. Solved and diverged come from the run's own
        metrics instead, so the summary's verdicts are not used."""
        return analysis.run_summary(
            success_rule(self.cfg),
            self.history["loss"],
            self.history["accuracy"],
            self.metric("initial_loss"),
            diverged_epoch=0,
        )

    @property
    def epochs_to_target(self) -> float:
        """First epoch at or below the target loss (0 if never); NaN without a config."""
        return float("nan") if self.cfg is None else float(self.run_summary.epochs_to_target)


def success_rule(cfg) -> analysis.SuccessRule:
    """The run's rule for "solved" (the schema's defaults without a config)."""
    from backprop_lab.config import success_rule as config_rule

    return analysis.SuccessRule() if cfg is None else config_rule(cfg)


def has_test(record: dict[str, np.ndarray]) -> bool:
    """Whether a history or grid has test accuracy (a data set with a test split)."""
    return "test_accuracy" in record and bool(np.isfinite(record["test_accuracy"]).any())


def report_settings(jobs) -> Any:
    """What the study's preset asks the report to say (``report:`` of the first job's config);
    the schema's defaults when no job has a config."""
    from backprop_lab.config import ReportConfig

    return next((job.cfg.report for job in jobs if job.cfg is not None), ReportConfig())


# ---------------------------------------------------------------------------------------------
# Loading


def load_job(mlflow_client, run, folder: Path) -> Job:
    """Download and check a job's artifacts; what is missing or unreadable goes to ``problems``."""
    job = Job(run=run, kind=run_kind(run))
    try:
        artifacts = RunArtifacts(mlflow_client, run, folder)
    except Exception as error:  # an artifact store that cannot be read
        job.problems.append(f"its artifacts could not be listed ({type(error).__name__})")
        return job
    steps = [_load_config, _load_dataset, _load_architecture, _load_overrides]
    steps += [_load_grid] if job.kind == "grid" else [_load_history, _load_weights]
    steps.append(_load_trajectory)
    for step in steps:
        try:
            step(job, artifacts)
        except UnreadableArtifact as problem:
            job.problems.append(str(problem))
    return job


def load_config(mlflow_client, run, folder: Path):
    """Only the run's config (None when it has none that can be read)."""
    try:
        path = RunArtifacts(mlflow_client, run, folder).path("config.yaml")
        return None if path is None else read_config(path)
    except Exception:
        return None


def _load_config(job: Job, artifacts: RunArtifacts) -> None:
    path = artifacts.path("config.yaml")
    if path is None:
        raise UnreadableArtifact("it has no config.yaml")
    job.config_text = read_text(path, "config.yaml")
    job.cfg = read_config(path)


def _load_dataset(job: Job, artifacts: RunArtifacts) -> None:
    """The data set the run trained on, from its artifact; never from a path in its config."""
    if job.cfg is None:
        return
    data = job.cfg.data
    path = artifacts.path(DATASET_ARTIFACT)
    if path is not None:
        job.dataset = read_dataset(path, data.name)
        return
    # Runs older than dataset.npz: a generated data set is rebuilt from its settings. A CSV
    # never is, since that would open whatever file the run's config names.
    if data.name == "csv":
        raise UnreadableArtifact(
            f"it has no {DATASET_ARTIFACT} and its CSV data set is not read from data.path"
        )
    if int(data.num_samples) > MAX_REBUILT_SAMPLES:
        raise UnreadableArtifact(f"it has no {DATASET_ARTIFACT} and asks for too many samples")
    from backprop_lab.config import build_dataset

    try:
        job.dataset = build_dataset(job.cfg)
    except BackpropLabError as error:
        raise UnreadableArtifact(f"its data set could not be rebuilt ({error})") from None


def _load_architecture(job: Job, artifacts: RunArtifacts) -> None:
    """The network of the config, checked against the data set it trained on."""
    from backprop_lab.config import build_architecture
    from backprop_lab.core.data import check_fits
    from backprop_lab.core.model import validate_architecture

    model = None if job.cfg is None else job.cfg.model
    sizes_known = model is not None and None not in (model.input_size, model.output_size)
    if model is None or (job.dataset is None and not sizes_known):
        return
    try:
        architecture = build_architecture(job.cfg, job.dataset)
        validate_architecture(architecture)
    except BackpropLabError as error:
        raise UnreadableArtifact(f"its config.yaml describes no valid network ({error})") from None
    job.architecture = architecture
    if job.dataset is not None:
        try:
            check_fits(job.dataset, architecture.num_inputs, architecture.num_outputs)
        except BackpropLabError:
            job.dataset = None
            raise UnreadableArtifact(
                f"its {DATASET_ARTIFACT} does not fit the network of its config.yaml"
            ) from None


def _load_overrides(job: Job, artifacts: RunArtifacts) -> None:
    from omegaconf import ListConfig, OmegaConf

    path = artifacts.path("overrides.yaml")
    if path is None:
        return
    document = read_yaml(path, "overrides.yaml")
    if not isinstance(document, ListConfig):
        raise UnreadableArtifact("its overrides.yaml is not a list")
    job.overrides = [str(item) for item in OmegaConf.to_container(document)]


def _load_history(job: Job, artifacts: RunArtifacts) -> None:
    path = artifacts.path("history.csv")
    if path is None:
        raise UnreadableArtifact("it has no history.csv")
    job.history = read_history(path)


def _load_weights(job: Job, artifacts: RunArtifacts) -> None:
    path = artifacts.path("weights.json")
    if path is not None:
        payload = read_json(path, "weights.json")
        if not _params_fit(job.architecture, _arrays_of_json(payload)):
            raise UnreadableArtifact("its weights.json does not fit the network of its config")
        job.weights_json = payload
    path = artifacts.path("weights.npz")
    if path is not None:
        weights = read_npz(path, "weights.npz")
        if not _params_fit(job.architecture, weights):
            raise UnreadableArtifact("its weights.npz does not fit the network of its config")
        job.weights = weights


def _load_grid(job: Job, artifacts: RunArtifacts) -> None:
    path = artifacts.path("grid.npz")
    if path is None:
        raise UnreadableArtifact("it has no grid.npz")
    grid = read_npz(path, "grid.npz")
    check_grid(grid)
    job.grid = grid
    cells = (grid["learning_rates"].size, grid["seeds"].size)
    if not _params_fit(job.architecture, grid, cells):
        # The statistics stand; only the figures drawn from the parameters are left out.
        job.grid = {key: value for key, value in grid.items() if not key.startswith("layer")}
        raise UnreadableArtifact("its grid.npz parameters do not fit the network of its config")


def _load_trajectory(job: Job, artifacts: RunArtifacts) -> None:
    """The parameters at the snapshot epochs, checked against the network and the grid."""
    path = artifacts.path(TRAJECTORY_ARTIFACT)
    if path is None or job.architecture is None:
        return
    arrays = read_npz(path, TRAJECTORY_ARTIFACT)
    epochs = arrays.get("epochs")
    if (
        epochs is None
        or epochs.ndim != 1
        or epochs.dtype.kind not in "iu"
        or not epochs.size
        or (epochs < 0).any()
        or (np.diff(epochs) <= 0).any()
    ):
        raise UnreadableArtifact(f"its {TRAJECTORY_ARTIFACT} has no increasing epochs array")
    cells = ()
    if job.kind == "grid":
        if job.grid is None:
            return
        cells = (job.grid["learning_rates"].size, job.grid["seeds"].size)
    if not _params_fit(job.architecture, arrays, (*cells, epochs.size)):
        raise UnreadableArtifact(
            f"its {TRAJECTORY_ARTIFACT} does not fit the network of its config"
        )
    job.trajectory = arrays


# ---------------------------------------------------------------------------------------------
# Checks


def check_grid(grid: dict[str, np.ndarray]) -> None:
    """Raise unless ``grid`` has every array of a grid record, with consistent shapes."""
    for key in ("learning_rates", "seeds", *_GRID_CURVES, *_GRID_CELLS):
        if key not in grid:
            raise UnreadableArtifact(f"its grid.npz has no {key} array")
    rates, seeds = grid["learning_rates"], grid["seeds"]
    if rates.ndim != 1 or seeds.ndim != 1 or not rates.size or not seeds.size:
        raise UnreadableArtifact("its grid.npz has no learning rates or no seeds")
    if not np.isfinite(rates).all() or seeds.dtype.kind not in "iu":
        raise UnreadableArtifact("its grid.npz has learning rates or seeds that are not numbers")
    cells = (rates.size, seeds.size)
    epochs = grid["loss"].shape[2:3]
    for key in (*_GRID_CURVES, "test_loss", "test_accuracy"):
        if key in grid and (grid[key].shape != (*cells, *epochs) or not epochs or not epochs[0]):
            raise UnreadableArtifact(f"its grid.npz {key} array does not have the grid's shape")
    for key in (*_GRID_CELLS, "initial_loss"):
        if key in grid and grid[key].shape != cells:
            raise UnreadableArtifact(f"its grid.npz {key} array does not have the grid's shape")


def _arrays_of_json(payload) -> dict[str, np.ndarray] | None:
    """``weights.json`` in the layout of ``weights.npz`` (None when it has another shape)."""
    from backprop_lab.core.model import params_from_dict, params_to_arrays

    try:
        return params_to_arrays(params_from_dict(payload))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def _params_fit(architecture, arrays: dict[str, np.ndarray] | None, batch: tuple = ()) -> bool:
    """Whether parameter arrays fit the network: per layer, ``layer{i}_weights`` of shape
    ``(*batch, units, inputs)`` and, when present, ``layer{i}_biases`` of ``(*batch, units)``."""
    from backprop_lab.core.model import num_layers_in

    if arrays is None:
        return False
    if architecture is None:
        # Nothing is drawn from the parameters without a network to draw.
        return True
    sizes = architecture.layer_sizes
    if num_layers_in(arrays) != len(sizes) - 1:
        return False
    for index, (inputs, units) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        weights = arrays[f"layer{index}_weights"]
        biases = arrays.get(f"layer{index}_biases")
        if weights.shape != (*batch, units, inputs):
            return False
        if biases is not None and biases.shape != (*batch, units):
            return False
    return True


def finite_params(arrays: dict[str, np.ndarray], index: tuple = ()) -> bool:
    """Whether every parameter of one network of ``arrays`` is finite (a diverged one is not)."""
    return all(
        np.isfinite(array[index]).all() for key, array in arrays.items() if key.startswith("layer")
    )
