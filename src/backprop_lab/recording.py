"""What a trained job leaves in its run record: metrics, artifacts and, for a grid, children.

A single run records its per-epoch curves (every epoch up to ``tracking.max_logged_epochs``),
its verdicts (solved, improved, diverged, epochs to target), ``weights.npz``/``weights.json``,
``history.csv``, ``trajectory.npz``, ``explorer.html`` and its figures (with decision-boundary
images by epoch for MLflow's image view). A grid records ``grid.npz`` (every cell's full curves,
verdicts and final weights), ``cells.csv``, its trajectory and explorer, its figures and one
child run per learning rate with that rate's aggregates: what the MLflow UI compares.
Every statistic comes from :mod:`backprop_lab.core.analysis`.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from backprop_lab.config import success_rule
from backprop_lab.core import analysis
from backprop_lab.core.data import DATASET_ARTIFACT, save_dataset
from backprop_lab.core.model import params_to_arrays, params_to_dict
from backprop_lab.core.trajectory import TRAJECTORY_ARTIFACT
from backprop_lab.explorer.images import record_boundary_images
from backprop_lab.explorer.sources import record_explorer, single_cells
from backprop_lab.tracking import TAG_PREFIX, RunRecord, curve_steps, native

HISTORY_NAMES = ("loss", "accuracy", "test_loss", "test_accuracy")


class Outcome(NamedTuple):
    """What a recorded job comes to, for the console summary; ``draw`` draws its figures
    (called after its metrics started on their way to MLflow)."""

    final_loss: float
    final_accuracy: float
    solved_fraction: float
    best_learning_rate: float
    best_solved_fraction: float
    diverged_epoch: int = 0
    draw: Callable[[], None] = lambda: None


def write_common_artifacts(
    record: RunRecord, cfg: DictConfig, overrides: list[str], command: str, dataset
) -> None:
    """The resolved config, the overrides, how to reproduce the run, and its data set."""
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


def save_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """An ``.npz`` that ``np.load`` reads, compressed at zlib's fastest level: a 1,024-cell
    grid's curves compress about twice as fast as with ``np.savez_compressed`` (level 6) and
    end up only a few per cent larger. ``compress=False`` for a stopped run, whose user waits:
    writing is then as fast as the disk."""
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=1) as archive:
        for name, values in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(values), allow_pickle=False)


class FileWriter:
    """Large artifacts written on a thread: zlib releases the GIL, so compressing a grid
    overlaps the figures and the metrics on their way to MLflow. :meth:`wait` before the
    artifacts are published."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bplab-files")
        self._pending = []

    def submit(self, function: Callable, *args) -> None:
        self._pending.append(self._pool.submit(function, *args))

    def wait(self) -> None:
        for future in self._pending:
            future.result()
        self._pending.clear()
        self._pool.shutdown(wait=True)


def history_arrays(history) -> dict[str, np.ndarray]:
    return {name: np.asarray(getattr(history, name)) for name in HISTORY_NAMES}


def trajectory_arrays(
    epochs: tuple[int, ...], snapshots, epochs_done: int
) -> dict[str, np.ndarray] | None:
    """The snapshot epochs reached (``epochs``) and the parameters at each (the snapshot axis
    comes after a grid's ``(rates, seeds)`` axes); None without snapshots."""
    if snapshots is None or not epochs:
        return None
    reached = np.asarray(epochs) <= epochs_done
    arrays = params_to_arrays(snapshots)
    batch_axes = arrays["layer0_weights"].ndim - 3  # (..., snapshots, units, inputs)
    index = (slice(None),) * batch_axes + (reached,)
    return {"epochs": np.asarray(epochs)[reached]} | {
        name: values[index] for name, values in arrays.items()
    }


def write_trajectory(folder: Path, trajectory: dict[str, np.ndarray] | None) -> None:
    """``trajectory.npz``: the arrays of :func:`trajectory_arrays` (nothing without them)."""
    if trajectory is not None:
        save_npz(folder / TRAJECTORY_ARTIFACT, trajectory)


def write_history_csv(path: Path, history: dict[str, np.ndarray], block: int = 65536) -> None:
    """``epoch,loss,...`` with every epoch, written a block of rows at a time (a few seconds
    for millions of epochs, in bounded memory)."""
    count = len(next(iter(history.values())))
    row_format = ",".join(["%d", *["%.9g"] * len(history)]) + "\n"
    with path.open("w") as table:
        table.write("epoch," + ",".join(history) + "\n")
        for start in range(0, count, block):
            stop = min(start + block, count)
            rows = np.column_stack(
                [np.arange(start + 1, stop + 1), *(v[start:stop] for v in history.values())]
            )
            table.write((row_format * len(rows)) % tuple(rows.ravel()))


# A stopped run is waited for by someone (or by SLURM's kill timer): once history.csv would take
# more than about a second to format, its every-epoch history goes to the binary history.npz
# instead (a fraction of a second for any length), which bplab-report reads as well.
STOPPED_CSV_MAX_EPOCHS = 500_000


# A stopped run skips its explorer past this many cell-epochs (seconds of work while someone
# waits); `bplab-view RUN_ID` builds it later from the recorded artifacts.
STOPPED_EXPLORER_MAX_VALUES = 5_000_000


def _explorer_unless_waited_for(record, job, cells, trajectory, cell_epochs: int) -> None:
    if record.status == "KILLED" and cell_epochs > STOPPED_EXPLORER_MAX_VALUES:
        record.tags[TAG_PREFIX + "explorer_skipped"] = (
            "the run was stopped early; bplab-view RUN_ID builds its explorer"
        )
        return
    record_explorer(record, job, cells, trajectory)


def _write_history(record: RunRecord, files: FileWriter, history: dict[str, np.ndarray]) -> None:
    count = len(next(iter(history.values())))
    if record.status == "KILLED" and count > STOPPED_CSV_MAX_EPOCHS:
        files.submit(save_npz, record.artifact_dir / "history.npz", history, False)
        return
    files.submit(write_history_csv, record.artifact_dir / "history.csv", history)


# ---------------------------------------------------------------------------------------------
# One network


def record_single(record: RunRecord, cfg: DictConfig, job, result, files: FileWriter) -> Outcome:
    """Put a single run's curves, verdicts, weights, history and figures into its record."""
    history = history_arrays(result.history)
    done = int(result.epochs_done)
    summary = analysis.run_summary(
        success_rule(cfg),
        history["loss"][:done],
        history["accuracy"][:done],
        float(result.initial_loss),
        int(result.diverged_epoch),
    )
    _single_metrics(record, cfg, history, done, summary, float(result.initial_accuracy))
    # Also a metric: MLflow sorts and charts params as text ("10" before "2").
    record.add_scalar("learning_rate", float(job.learning_rates[0]))
    # Under a schedule, the rate of every epoch instead (a curve).
    _scheduled_rates(record, cfg, job, job.learning_rates[0], done)
    folder = record.artifact_dir
    np.savez(folder / "weights.npz", **params_to_arrays(result.params))
    (folder / "weights.json").write_text(json.dumps(params_to_dict(result.params), indent=1))
    _write_history(record, files, {name: v[:done] for name, v in history.items()})
    trajectory = trajectory_arrays(job.spec.snapshot_epochs, result.snapshots, done)
    files.submit(write_trajectory, folder, trajectory)
    cells = single_cells(
        {name: values[:done] for name, values in history.items()},
        job.learning_rates[0], job.seeds[0], summary.initial_loss, summary.solved,
        summary.diverged_epoch,
    )  # fmt: skip
    _explorer_unless_waited_for(record, job, cells, trajectory, done)
    if cfg.tracking.plots:
        record_boundary_images(record, job.architecture, job.dataset, trajectory)
    return Outcome(
        summary.final_loss,
        summary.final_accuracy,
        float(summary.solved),
        float(job.learning_rates[0]),
        float(summary.solved),
        summary.diverged_epoch,
        lambda: _single_figures(record, job, result),
    )


def _single_metrics(record, cfg, history, done: int, summary, initial_accuracy: float) -> None:
    # Every epoch goes to MLflow up to tracking.max_logged_epochs; a longer run logs that many
    # evenly spaced epochs (first and last included) and keeps every epoch in history.csv.
    steps = curve_steps(done, cfg.tracking.max_logged_epochs)
    for name, values in history.items():
        if np.isfinite(values[:done]).any():
            record.add_curve(name, values[steps - 1], steps=steps)
    record.add_scalar("initial_loss", summary.initial_loss)
    record.add_scalar("initial_accuracy", initial_accuracy)
    record.add_scalar("diverged", float(summary.diverged_epoch > 0))
    record.add_scalar("diverged_epoch", float(summary.diverged_epoch))
    record.add_scalar("solved", float(summary.solved))
    record.add_scalar("improved", float(summary.improved))
    record.add_scalar("epochs_done", float(done))
    # epochs_to_target is logged only when the target was reached; reached_target says whether.
    record.add_scalar("reached_target", float(summary.epochs_to_target > 0))
    if summary.epochs_to_target:
        record.add_scalar("epochs_to_target", float(summary.epochs_to_target))


def _scheduled_rates(record, cfg, job, peak_rate: float, done: int, max_points=None) -> None:
    """The rate each epoch trained at, as the curve ``learning_rate`` (only under a schedule:
    a constant rate is the param ``optimizer.learning_rate``)."""
    from backprop_lab.core.train import epoch_learning_rates

    if job.spec.schedule.name == "constant" or done < 1:
        return
    steps = curve_steps(done, max_points or cfg.tracking.max_logged_epochs)
    rates = epoch_learning_rates(job.spec, peak_rate, done)
    record.add_curve("learning_rate", rates[steps - 1], steps=steps)


def _single_figures(record, job, result) -> None:
    from backprop_lab import plots

    history = history_arrays(result.history)
    done = int(result.epochs_done)
    folder = record.artifact_dir
    plots.loss_curve(
        {name: values[:done] for name, values in history.items()},
        folder / "loss_curve.png",
        title=record.run_name,
    )
    architecture = job.architecture
    draws = architecture.num_inputs == 2 and architecture.num_outputs == 1
    if draws and int(result.diverged_epoch) == 0:
        plots.network_decision_boundary(
            architecture,
            result.params,
            job.dataset.x_train,
            job.dataset.y_train,
            folder / "decision_boundary.png",
            title=record.run_name,
        )


# ---------------------------------------------------------------------------------------------
# A grid of learning rates × seeds


def grid_arrays(cfg: DictConfig, grid, spec, has_test: bool = True) -> dict[str, np.ndarray]:
    """Everything ``grid.npz`` holds: axes, curves, verdicts and final weights, and under a
    schedule the rate of every epoch of every row (``epoch_learning_rates``).

    Without a test split (``has_test=False``) there are no test curves: they would be NaN for
    every cell and epoch, as many values as the training curves (readers treat a missing test
    curve as no test split).
    """
    from backprop_lab.core.train import epoch_learning_rates

    result = grid.result
    history = history_arrays(result.history)
    if not has_test:
        del history["test_loss"], history["test_accuracy"]
    outcomes = analysis.cell_outcomes(
        success_rule(cfg),
        history["loss"][..., : max(int(result.epochs_done), 1)],
        history["accuracy"][..., : max(int(result.epochs_done), 1)],
        np.asarray(result.initial_loss),
        np.asarray(result.diverged_epoch),
    )
    done = max(int(result.epochs_done), 1)
    schedule = (
        {}
        if spec.schedule.name == "constant"
        else {"epoch_learning_rates": epoch_learning_rates(spec, grid.learning_rates, done)}
    )
    return {
        **schedule,
        "learning_rates": grid.learning_rates,
        "seeds": grid.seeds,
        "initial_loss": np.asarray(result.initial_loss),
        "diverged_epoch": np.asarray(result.diverged_epoch),
        "solved": outcomes.solved,
        "improved": outcomes.improved,
        "epochs_to_target": outcomes.epochs_to_target,
        "epochs_done": np.asarray(int(result.epochs_done)),
        **history,
        **params_to_arrays(result.params),
    }


def record_grid(record: RunRecord, cfg: DictConfig, job, grid, files: FileWriter) -> Outcome:
    """Put a grid's arrays, table, figures, scalars and per-rate children into its record
    (``grid.npz`` and the trajectory are written by ``files``)."""
    arrays = grid_arrays(cfg, grid, job.spec, job.dataset.has_test)
    folder = record.artifact_dir
    files.submit(save_npz, folder / "grid.npz", arrays, record.status != "KILLED")
    done = int(grid.result.epochs_done)
    trajectory = trajectory_arrays(job.spec.snapshot_epochs, grid.result.snapshots, done)
    files.submit(write_trajectory, folder, trajectory)
    curves = {key: arrays[key][..., :done] for key in HISTORY_NAMES if key in arrays}
    view = {**arrays, **curves}
    _explorer_unless_waited_for(
        record, job, view, trajectory, done * len(view["seeds"]) * len(view["learning_rates"])
    )
    _write_cells_table(folder / "cells.csv", view)
    rows = analysis.rate_rows(view)
    summary = analysis.grid_summary(view, rows)
    for name in ("success_rate", "improved_fraction", "diverged_fraction"):
        record.add_scalar(name, getattr(summary, name))
    record.add_scalar("cells", float(summary.cells))
    record.add_scalar("epochs_done", float(done))
    record.add_scalar("best_learning_rate", summary.best_learning_rate)
    record.add_scalar("best_success_rate", summary.best_success_rate)
    for row_index, row in enumerate(rows):
        child = _record_rate_child(record, cfg, view, row_index, row)
        _scheduled_rates(child, cfg, job, row.rate, done, cfg.tracking.max_curve_points)
        child.save()
    # After the children, which copy the grid's tags: the table is the grid run's alone.
    native.add_table(record, native.RATE_TABLE, native.rate_table(rows))
    return Outcome(
        summary.median_final_loss,
        summary.mean_final_accuracy,
        summary.success_rate,
        summary.best_learning_rate,
        summary.best_success_rate,
        draw=lambda: _grid_figures(record, view, rows),
    )


def _write_cells_table(path: Path, grid: dict[str, np.ndarray]) -> None:
    losses, accuracy = grid["loss"], grid["accuracy"]
    with path.open("w") as table:
        table.write(
            "learning_rate,seed,final_loss,final_accuracy,solved,diverged_epoch,epochs_to_target\n"
        )
        for r, rate in enumerate(grid["learning_rates"]):
            for s, seed in enumerate(grid["seeds"]):
                table.write(
                    f"{rate:.9g},{seed},{losses[r, s, -1]:.9g},{accuracy[r, s, -1]:.9g},"
                    f"{int(grid['solved'][r, s])},{int(grid['diverged_epoch'][r, s])},"
                    f"{int(grid['epochs_to_target'][r, s])}\n"
                )


def _grid_figures(record: RunRecord, grid: dict[str, np.ndarray], rows) -> None:
    from backprop_lab import plots

    folder = record.artifact_dir
    rates = grid["learning_rates"]
    plots.grid_loss_curves(
        rates, grid["loss"], folder / "loss_by_learning_rate.png", title=record.run_name
    )
    plots.success_by(
        [f"{rate:.3g}" for rate in rates],
        np.array([row.success_rate for row in rows]),
        folder / "success_by_learning_rate.png",
        xlabel="learning rate",
        log_x_values=rates,
        title=record.run_name,
    )


def _record_rate_child(record: RunRecord, cfg, grid, row_index: int, row) -> RunRecord:
    """One child run per learning rate: its seeds' curves and their aggregates (the caller
    saves it)."""
    num_epochs = grid["loss"].shape[-1]
    steps = curve_steps(num_epochs, cfg.tracking.max_curve_points)
    child = RunRecord(
        folder=str(Path(record.folder) / "children" / f"lr_{row_index:03d}"),
        experiment_name=record.experiment_name,
        run_name=f"lr={row.rate:.4g}",
        tracking_uri=record.tracking_uri,
        tags={
            **record.tags,
            TAG_PREFIX + "kind": "grid_row",
            TAG_PREFIX + "grid_row": str(row_index),
        },
        status=record.status,
        reason=record.reason,
    )
    child.params = dict(record.params)
    child.add_params(
        {"optimizer.learning_rate": f"{row.rate:.9g}", "grid.num_seeds": len(grid["seeds"])}
    )
    losses = grid["loss"][row_index]
    if cfg.tracking.seed_curves:
        for s, seed in enumerate(grid["seeds"]):
            child.add_curve(f"loss/seed_{int(seed):03d}", losses[s, steps - 1], steps=steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        quantiles = analysis.seed_quantile_curves(losses[:, steps - 1])
        accuracy_mean = analysis.seed_quantile_curves(grid["accuracy"][row_index][:, steps - 1])
    for name in ("median", "mean", "q25", "q75"):
        child.add_curve(f"loss_{name}", quantiles[name], steps=steps)
    child.add_curve("accuracy_mean", accuracy_mean["mean"], steps=steps)
    child.add_scalar("learning_rate", row.rate)
    child.add_scalar("success_rate", row.success_rate)
    child.add_scalar("improved_fraction", row.improved)
    child.add_scalar("diverged_fraction", row.diverged)
    child.add_scalar("final_loss_median", row.median_final_loss)
    child.add_scalar("final_loss_mean", row.mean_final_loss)
    child.add_scalar("final_loss_std", row.std_final_loss)
    child.add_scalar("reached_target_fraction", row.reached_fraction)
    child.add_scalar("epochs_to_target_median", row.median_epochs_to_target)
    record.children.append(str(Path("children") / f"lr_{row_index:03d}"))
    return child
