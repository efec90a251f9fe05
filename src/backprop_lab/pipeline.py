"""The shell around the core: a validated config in, a trained and recorded run out.

:func:`execute` is what ``bplab-train`` runs for each job: validate the config, build the data
set and the compiled program, train (one network, or a learning-rate × seed grid as one
vmapped program), and record everything in MLflow.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from backprop_lab import tracking
from backprop_lab.config import (
    build_architecture,
    build_dataset,
    build_spec,
    config_hash_of,
    flatten,
    is_grid,
    solved,
    sweep_learning_rates,
    sweep_seeds,
    to_container,
    validate,
)
from backprop_lab.core.data import DATASET_ARTIFACT, Dataset, check_fits, fingerprint, save_dataset
from backprop_lab.core.model import Architecture
from backprop_lab.core.train import TrainSpec
from backprop_lab.errors import BackpropLabError
from backprop_lab.tracking import TAG_PREFIX, RunRecord

# Show a progress bar when a job trains more sample-updates than this (about a second).
_PROGRESS_MIN_UPDATES = 30_000_000


@dataclass
class RunSummary:
    """What a job reports back: enough to print a summary and find the run again."""

    run_id: str | None
    run_name: str
    experiment_name: str
    tracking_uri: str
    kind: str
    final_loss: float
    final_accuracy: float
    status: str
    record_folder: str
    skipped: bool = False
    cells: int = 1
    solved_fraction: float = float("nan")
    diverged_epoch: int = 0
    best_learning_rate: float = float("nan")
    best_solved_fraction: float = float("nan")


def set_precision(precision: str) -> None:
    """float64 needs ``jax_enable_x64`` before arrays are made; float32 is JAX's default."""
    import jax

    jax.config.update("jax_enable_x64", precision == "float64")


def describe_overrides(overrides: list[str]) -> str:
    """A run name that says what varied: the command-line overrides, without the preset."""
    varied = [
        item for item in overrides if not item.startswith(("experiment=", "tracking.", "hydra"))
    ]
    return ",".join(varied)


def _initial_params_fn(cfg: DictConfig, architecture):
    """``key -> params``: explicit numbers from the config, or a seeded random draw."""
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


class _Progress:
    """A rich progress bar fed by the core's progress hook."""

    def __init__(self, total_epochs: int, label: str, enabled: bool):
        self.enabled = enabled
        self.total = total_epochs
        self.label = label

    def __enter__(self):
        from backprop_lab.core import train as train_module

        if not self.enabled:
            return self
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        from rich.markup import escape

        task = self._bar.add_task(escape(self.label), total=self.total)
        train_module.progress_hook = lambda done: self._bar.update(task, completed=done)
        return self

    def __exit__(self, *exc):
        from backprop_lab.core import train as train_module

        if self.enabled:
            train_module.progress_hook = None
            self._bar.stop()
        return False


def _curve_steps(num_epochs: int, max_points: int) -> np.ndarray:
    """Epochs (1-based) to log when a curve is downsampled; always the first and the last."""
    if num_epochs <= max_points:
        return np.arange(1, num_epochs + 1)
    return np.unique(np.round(np.linspace(1, num_epochs, max_points)).astype(int))


def _write_common_artifacts(
    record: RunRecord, cfg: DictConfig, overrides: list[str], command: str, dataset: Dataset
) -> None:
    folder = record.artifact_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    save_dataset(folder / DATASET_ARTIFACT, dataset)
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    (folder / "reproduce.md").write_text(
        "# Reproduce this run\n\n"
        f"Commit: `{record.tags.get(TAG_PREFIX + 'git_commit', 'unknown')}` "
        f"(dirty: {record.tags.get(TAG_PREFIX + 'git_dirty', 'unknown')})\n\n"
        f"```\n{command}\n```\n\n"
        "or, from the tracked run itself: `bplab-rerun RUN_ID`.\n"
    )


def _history_table(history) -> dict[str, np.ndarray]:
    return {
        name: np.asarray(getattr(history, name))
        for name in ("loss", "accuracy", "test_loss", "test_accuracy")
    }


def _record_metrics(record: RunRecord, cfg, result, history) -> tuple[float, float]:
    """Put a single run's per-epoch curves and summary numbers into its record."""
    from backprop_lab.core.sweep import epochs_to_target

    # Every epoch goes to MLflow up to tracking.max_logged_epochs; a longer run logs that many
    # evenly spaced epochs (first and last included) and keeps every epoch in history.csv.
    steps = _curve_steps(len(history["loss"]), cfg.tracking.max_logged_epochs)
    for name, values in history.items():
        if np.isfinite(values).any():
            record.add_curve(name, values[steps - 1], steps=steps)
    record.add_scalar("initial_loss", float(result.initial_loss))
    record.add_scalar("initial_accuracy", float(result.initial_accuracy))
    diverged_epoch = int(result.diverged_epoch)
    record.add_scalar("diverged", float(diverged_epoch > 0))
    record.add_scalar("diverged_epoch", float(diverged_epoch))
    final_loss, final_accuracy = float(history["loss"][-1]), float(history["accuracy"][-1])
    record.add_scalar(
        "solved", float(solved(cfg, final_accuracy, final_loss, int(result.diverged_epoch)))
    )
    record.add_scalar("improved", float(final_loss < float(result.initial_loss)))
    # epochs_to_target is logged only when the target was reached; reached_target says whether.
    reached_epoch = int(epochs_to_target(history["loss"], cfg.training.target_loss))
    record.add_scalar("reached_target", float(reached_epoch > 0))
    if reached_epoch:
        record.add_scalar("epochs_to_target", float(reached_epoch))
    return final_loss, final_accuracy


def _record_artifacts(record: RunRecord, cfg, result, history, architecture, dataset) -> None:
    """Write a single run's weights, history table and figures into its record."""
    from backprop_lab import plots
    from backprop_lab.core.model import params_to_arrays, params_to_dict

    diverged_epoch = int(result.diverged_epoch)
    folder = record.artifact_dir
    np.savez(folder / "weights.npz", **params_to_arrays(result.params))
    (folder / "weights.json").write_text(json.dumps(params_to_dict(result.params), indent=1))
    header = "epoch," + ",".join(history)
    rows = np.column_stack([np.arange(1, len(history["loss"]) + 1), *history.values()])
    np.savetxt(folder / "history.csv", rows, delimiter=",", header=header, comments="", fmt="%.9g")
    if cfg.tracking.plots:
        plots.loss_curve(history, folder / "loss_curve.png", title=record.run_name)
        if architecture.num_inputs == 2 and architecture.num_outputs == 1 and diverged_epoch == 0:
            plots.network_decision_boundary(
                architecture,
                result.params,
                dataset.x_train,
                dataset.y_train,
                folder / "decision_boundary.png",
                title=record.run_name,
            )


def _record_grid(record: RunRecord, cfg, grid, command_overrides):
    from backprop_lab import plots
    from backprop_lab.core.model import params_to_arrays
    from backprop_lab.core.sweep import best_rate_index, epochs_to_target

    result = grid.result
    history = _history_table(result.history)
    losses = history["loss"]
    num_rates, num_seeds, num_epochs = losses.shape
    final_accuracy = np.nan_to_num(history["accuracy"][..., -1], nan=0.0)
    solved_cells = solved(cfg, final_accuracy, losses[..., -1], result.diverged_epoch)
    # "Improved": the final loss is below the loss before training (a run that never moves is not).
    improved = np.nan_to_num(losses[..., -1], nan=np.inf) < np.asarray(result.initial_loss)
    to_target = epochs_to_target(np.nan_to_num(losses, nan=np.inf), cfg.training.target_loss)
    folder = record.artifact_dir
    arrays = {
        "learning_rates": grid.learning_rates,
        "seeds": grid.seeds,
        "initial_loss": np.asarray(result.initial_loss),
        "diverged_epoch": np.asarray(result.diverged_epoch),
        "solved": solved_cells,
        "improved": improved,
        "epochs_to_target": to_target,
        **{name: values for name, values in history.items()},
    }
    arrays.update(params_to_arrays(result.params))
    np.savez_compressed(folder / "grid.npz", **arrays)
    with (folder / "cells.csv").open("w") as table:
        table.write(
            "learning_rate,seed,final_loss,final_accuracy,solved,diverged_epoch,epochs_to_target\n"
        )
        for r in range(num_rates):
            for s in range(num_seeds):
                table.write(
                    f"{grid.learning_rates[r]:.9g},{grid.seeds[s]},{losses[r, s, -1]:.9g},"
                    f"{history['accuracy'][r, s, -1]:.9g},{int(solved_cells[r, s])},{int(result.diverged_epoch[r, s])},{int(to_target[r, s])}\n"
                )
    if cfg.tracking.plots:
        plots.grid_loss_curves(
            grid.learning_rates, losses, folder / "loss_by_learning_rate.png", title=record.run_name
        )
        plots.success_by(
            [f"{rate:.3g}" for rate in grid.learning_rates],
            solved_cells.mean(axis=1),
            folder / "success_by_learning_rate.png",
            xlabel="learning rate",
            log_x_values=grid.learning_rates,
            title=record.run_name,
        )
    record.add_scalar("success_rate", float(solved_cells.mean()))
    record.add_scalar("improved_fraction", float(improved.mean()))
    record.add_scalar("diverged_fraction", float((result.diverged_epoch > 0).mean()))
    record.add_scalar("cells", float(num_rates * num_seeds))
    with np.errstate(all="ignore"):
        median_final = np.array(
            [np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in losses[..., -1]]
        )
    best = best_rate_index(solved_cells.mean(axis=1), median_final)
    record.add_scalar("best_learning_rate", float(grid.learning_rates[best]))
    record.add_scalar("best_success_rate", float(solved_cells[best].mean()))

    # One child run per learning rate: what the MLflow UI compares.
    steps = _curve_steps(num_epochs, cfg.tracking.max_curve_points)
    base_params = dict(record.params)
    for r, rate in enumerate(grid.learning_rates):
        name = f"lr={rate:.4g}"
        child = RunRecord(
            folder=str(Path(record.folder) / "children" / f"lr_{r:03d}"),
            experiment_name=record.experiment_name,
            run_name=name,
            tracking_uri=record.tracking_uri,
            tags={**record.tags, TAG_PREFIX + "kind": "grid_row", TAG_PREFIX + "grid_row": str(r)},
            status="FINISHED",
        )
        child.add_params(
            {**base_params, "optimizer.learning_rate": f"{rate:.9g}", "grid.num_seeds": num_seeds}
        )
        row_losses = losses[r]
        for s, seed in enumerate(grid.seeds):
            child.add_curve(f"loss/seed_{int(seed):03d}", row_losses[s, steps - 1], steps=steps)
        with np.errstate(all="ignore"):
            child.add_curve(
                "loss_median", np.nanmedian(row_losses[:, steps - 1], axis=0), steps=steps
            )
            child.add_curve("loss_mean", np.nanmean(row_losses[:, steps - 1], axis=0), steps=steps)
            child.add_curve(
                "loss_q25", np.nanpercentile(row_losses[:, steps - 1], 25, axis=0), steps=steps
            )
            child.add_curve(
                "loss_q75", np.nanpercentile(row_losses[:, steps - 1], 75, axis=0), steps=steps
            )
            child.add_curve(
                "accuracy_mean",
                np.nanmean(history["accuracy"][r][:, steps - 1], axis=0),
                steps=steps,
            )
        finals = row_losses[:, -1]
        child.add_scalar("success_rate", float(solved_cells[r].mean()))
        child.add_scalar("improved_fraction", float(improved[r].mean()))
        child.add_scalar("diverged_fraction", float((result.diverged_epoch[r] > 0).mean()))
        if np.isfinite(finals).any():
            child.add_scalar("final_loss_median", float(np.nanmedian(finals)))
            child.add_scalar("final_loss_mean", float(np.nanmean(finals)))
            child.add_scalar("final_loss_std", float(np.nanstd(finals)))
        reached = to_target[r][to_target[r] > 0]
        child.add_scalar("reached_target_fraction", float((to_target[r] > 0).mean()))
        if reached.size:
            child.add_scalar("epochs_to_target_median", float(np.median(reached)))
        child.save()
        record.children.append(str(Path("children") / f"lr_{r:03d}"))
    with np.errstate(all="ignore"):
        final_loss = (
            float(np.nanmedian(losses[..., -1]))
            if np.isfinite(losses[..., -1]).any()
            else float("nan")
        )
    return (
        final_loss,
        float(np.nanmean(final_accuracy)),
        (
            float(solved_cells.mean()),
            float(grid.learning_rates[best]),
            float(solved_cells[best].mean()),
        ),
    )


class Job(NamedTuple):
    """A validated config turned into what training needs."""

    dataset: Dataset
    architecture: Architecture
    spec: TrainSpec
    init_fn: Callable
    learning_rates: list[float]
    seeds: list[int]
    grid: bool


def prepare(cfg: DictConfig) -> Job:
    """Validate ``cfg`` and build the data set, the network and the training spec.

    Every bad input raises :class:`BackpropLabError` here, before anything is recorded.
    """
    from backprop_lab.core.train import validate_spec

    validate(cfg)
    set_precision(cfg.training.precision)
    dataset = build_dataset(cfg)
    architecture = build_architecture(cfg, dataset)
    check_fits(dataset, architecture.num_inputs, architecture.num_outputs)
    if cfg.training.batching == "minibatch" and cfg.training.batch_size > len(dataset.x_train):
        raise BackpropLabError(
            f"training.batch_size={cfg.training.batch_size} is larger than the {len(dataset.x_train)} "
            f"training samples of {dataset.name!r}; use a smaller batch or training.batching=full"
        )
    spec = build_spec(cfg, architecture)
    validate_spec(spec)
    return Job(
        dataset,
        architecture,
        spec,
        _initial_params_fn(cfg, architecture),
        sweep_learning_rates(cfg) or [float(cfg.optimizer.learning_rate)],
        sweep_seeds(cfg) or [int(cfg.seed)],
        is_grid(cfg),
    )


def _single_program(spec: TrainSpec, init_fn: Callable):
    """One compiled program from seed to trained network: key derivation, init and training."""
    import jax

    from backprop_lab.core.sweep import seed_keys
    from backprop_lab.core.train import make_train

    train = make_train(spec)

    def seed_to_result(seed, learning_rate, data):
        init_key, shuffle_key = seed_keys(seed)
        params = jax.tree_util.tree_map(
            lambda leaf: leaf.astype(data.x_train.dtype), init_fn(init_key)
        )
        return train(params, learning_rate, shuffle_key, data)

    return jax.jit(seed_to_result)


def train_job(job: Job, seed: int):
    """Train a prepared job: a :class:`TrainResult`, or a :class:`GridResult` for a grid."""
    import jax
    import jax.numpy as jnp

    from backprop_lab.core.sweep import train_grid
    from backprop_lab.core.train import single_network_spec, to_device_data

    data = to_device_data(job.dataset)
    if job.grid:
        return train_grid(job.spec, job.init_fn, job.learning_rates, job.seeds, data)
    program = _single_program(single_network_spec(job.spec), job.init_fn)
    result = program(
        jnp.asarray(seed, jnp.uint32), jnp.asarray(job.learning_rates[0], data.x_train.dtype), data
    )
    return jax.block_until_ready(result)


def find_finished(uri: str, experiment_name: str, digest: str) -> str | None:
    """The id of a FINISHED run of this experiment with this config hash, if there is one."""
    mlflow_client = tracking.client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_PREFIX}config_hash` = '{digest}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def execute(
    cfg: DictConfig,
    *,
    output_dir: str | Path,
    overrides: list[str] | None = None,
    parent_run_id: str | None = None,
    tracking_uri: str | None = None,
    console=None,
) -> RunSummary:
    """Validate, train and record one job. Bad input raises before any run is created.

    Args:
      cfg: the composed config.
      output_dir: the job's folder (Hydra's output dir); the run record is kept there.
      overrides: the command-line overrides, for the run name and the reproduce command.
      parent_run_id: the multirun's parent run, when this job is one of its children.
      tracking_uri: the store to use instead of the configured one (a multirun's parent's).
    """
    overrides = list(overrides or [])
    job = prepare(cfg)
    dataset, architecture, spec, grid = job.dataset, job.architecture, job.spec, job.grid
    rates, seeds = job.learning_rates, job.seeds
    cells = len(rates) * len(seeds)

    uri = tracking.resolve_tracking_uri(tracking_uri or cfg.tracking.uri)
    tracking.check_reachable(uri)
    experiment_name = cfg.tracking.experiment_name or cfg.name
    container = to_container(cfg)
    digest = config_hash_of(container)
    varied = describe_overrides(overrides)
    if cfg.tracking.run_name:
        run_name = cfg.tracking.run_name
    elif grid:
        run_name = f"grid {len(rates)} lr x {len(seeds)} seeds" + (f" {varied}" if varied else "")
    else:
        run_name = varied or f"{cfg.name} seed={cfg.seed}"
    command = "bplab-train " + " ".join(shlex.quote(item) for item in overrides)

    if cfg.resume:
        tracking.ensure_experiment(uri, experiment_name)
        finished = find_finished(uri, experiment_name, digest)
        if finished:
            return RunSummary(
                finished,
                run_name,
                experiment_name,
                uri,
                "grid" if grid else "single",
                float("nan"),
                float("nan"),
                "FINISHED",
                "",
                skipped=True,
                cells=cells,
            )

    tags = tracking.provenance_tags(cfg.training.precision, int(cfg.seed))
    tags.update(
        {
            TAG_PREFIX + "kind": "grid" if grid else "single",
            TAG_PREFIX + "config_hash": digest,
            TAG_PREFIX + "preset": cfg.name,
            TAG_PREFIX + "command": command[:5000],
            TAG_PREFIX + "overrides": " ".join(overrides)[:5000],
            TAG_PREFIX + "data_sha256": fingerprint(dataset),
            TAG_PREFIX + "data_path": str(Path(cfg.data.path).resolve()) if cfg.data.path else "",
            "mlflow.note.content": (cfg.description or cfg.name),
        }
    )
    record = RunRecord(
        folder=str(Path(output_dir) / "mlflow_record"),
        experiment_name=experiment_name,
        run_name=run_name[:250],
        tracking_uri=uri,
        tags=tags,
        parent_run_id=parent_run_id,
    )
    record.add_params(flatten(container))
    # MLflow's start-up (import, store, experiment, run) overlaps compilation and training;
    # the metrics then go out while the figures are drawn.
    background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bplab-tracking")
    opening = background.submit(tracking.create_run, record)
    sending = None
    try:
        _write_common_artifacts(record, cfg, overrides, command, dataset)
        total_updates = cfg.training.epochs * len(dataset.x_train) * cells
        show_progress = (
            bool(cfg.tracking.progress)
            and total_updates >= _PROGRESS_MIN_UPDATES
            and sys.stderr.isatty()
        )
        if show_progress:
            spec = spec._replace(progress_every=max(1, spec.epochs // 200))
        started = time.perf_counter()
        with _Progress(spec.epochs, run_name, show_progress):
            trained = train_job(job._replace(spec=spec), int(cfg.seed))
        record.add_scalar("train_seconds", time.perf_counter() - started)
        if grid:
            final_loss, final_accuracy, (solved_fraction, best_rate, best_solved) = _record_grid(
                record, cfg, trained, overrides
            )
            diverged_epoch = 0
        else:
            curves = _history_table(trained.history)
            final_loss, final_accuracy = _record_metrics(record, cfg, trained, curves)
            if _opened(opening):
                sending = background.submit(tracking.publish_metrics, record)
            _record_artifacts(record, cfg, trained, curves, architecture, dataset)
            solved_fraction = float(
                solved(cfg, final_accuracy, final_loss, int(trained.diverged_epoch))
            )
            best_rate, best_solved = float(rates[0]), solved_fraction
            diverged_epoch = int(trained.diverged_epoch)
        record.status = "FINISHED"
        record.save()
    except BaseException as error:
        record.status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        record.save()
        if _opened(opening):
            message = (
                "interrupted (Ctrl-C)"
                if isinstance(error, KeyboardInterrupt)
                else f"{type(error).__name__}: {error}"
            )
            tracking.end_run(uri, record.run_id, record.status, message)
        background.shutdown(wait=False)
        raise
    status = "FINISHED"
    try:
        if not _opened(opening):
            raise ConnectionError("the tracking store could not be reached")
        if sending is not None:
            sending.result()
            tracking.publish_artifacts_and_close(record)
        else:
            tracking.publish(record)
    except Exception as error:
        if not tracking.is_unreachable_error(error):
            tracking.end_run(
                uri, record.run_id, "FAILED", f"publishing failed: {type(error).__name__}: {error}"
            )
            raise
        # The store went away: the record waits on disk for bplab-sync.
        status = "PENDING"
        if console is not None:
            from rich.markup import escape

            console.print(
                escape(
                    f"the tracking store {uri} could not be reached; the run is kept in "
                    f"{record.folder}. Upload it later with: bplab-sync {record.folder}"
                ),
                style="yellow",
            )
    finally:
        background.shutdown(wait=False)
    return RunSummary(
        record.run_id,
        record.run_name,
        experiment_name,
        uri,
        "grid" if grid else "single",
        final_loss,
        final_accuracy,
        status,
        record.folder,
        cells=cells,
        solved_fraction=solved_fraction,
        diverged_epoch=diverged_epoch,
        best_learning_rate=best_rate,
        best_solved_fraction=best_solved,
    )


def _opened(opening) -> bool:
    """Whether the background creation of the MLflow run succeeded (waiting for it if needed).

    An unreachable store is not an error here: training goes on and the record is kept.
    """
    try:
        opening.result()
    except Exception as error:
        if tracking.is_unreachable_error(error):
            return False
        raise
    return True


def ui_command(uri: str) -> str:
    """The command that opens the MLflow UI on the same store."""
    if tracking.is_remote(uri):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def format_summary(summary: RunSummary) -> str:
    """One line for the console (rich markup; names from the user are escaped)."""
    from rich.markup import escape

    if summary.skipped:
        return f"skipped (already FINISHED as run {summary.run_id}; resume=true)"
    fmt = lambda value: "nan" if value is None or math.isnan(value) else f"{value:.6g}"  # noqa: E731
    parts = [f"[bold]{escape(summary.run_name)}[/]"]
    if summary.kind == "grid":
        parts.append(f"{summary.cells} cells, {summary.solved_fraction:.0%} solved")
        parts.append(
            f"best lr {summary.best_learning_rate:.4g} ({summary.best_solved_fraction:.0%} of seeds solved)"
        )
        parts.append(f"median final loss {fmt(summary.final_loss)}")
    else:
        parts += [f"loss {fmt(summary.final_loss)}", f"accuracy {fmt(summary.final_accuracy)}"]
    if summary.diverged_epoch:
        parts.append(f"[red]diverged at epoch {summary.diverged_epoch}[/]")
    parts.append(f"run {summary.run_id}")
    if summary.status != "FINISHED":
        parts.append(f"[yellow]{summary.status}[/]")
    return " | ".join(parts)
