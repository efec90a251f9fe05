"""Explorer jobs from a run being recorded, or from runs read back from the MLflow store.

Both paths meet in :func:`explorer_job`, which takes a run's cells as a grid (the arrays of
``grid.npz``; a single run is a 1 × 1 grid) and its trajectory (the arrays of
``trajectory.npz``). Runs read from the store come through :mod:`backprop_lab.report.jobs`, which
checks every artifact as untrusted data first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backprop_lab.core.model import num_layers_in
from backprop_lab.errors import BackpropLabError
from backprop_lab.explorer.data import CURVE_NAMES, DEFAULT_MAX_BYTES, ExplorerJob
from backprop_lab.explorer.page import EXPLORER_ARTIFACT, render_explorer, write_explorer

SNAPSHOTS_NOTE_TAG = "backprop_lab.snapshots_note"


def single_cells(
    history: dict[str, np.ndarray],
    learning_rate: float,
    seed: int,
    initial_loss: float,
    solved: bool,
    diverged_epoch: int,
) -> dict[str, np.ndarray]:
    """A single run's curves and verdicts in the layout of ``grid.npz`` (a 1 × 1 grid)."""
    cells = {
        name: np.asarray(values, dtype=np.float64)[None, None, :]
        for name, values in history.items()
        if name in CURVE_NAMES
    }
    return {
        **cells,
        "learning_rates": np.array([learning_rate], dtype=np.float64),
        "seeds": np.array([seed], dtype=np.int64),
        "initial_loss": np.array([[initial_loss]], dtype=np.float64),
        "solved": np.array([[bool(solved)]]),
        "diverged_epoch": np.array([[int(diverged_epoch)]]),
    }


def explorer_job(
    name: str,
    label: str,
    run_id: str,
    architecture,
    dataset,
    cells: dict[str, np.ndarray],
    trajectory: dict[str, np.ndarray],
    notes=(),
) -> ExplorerJob:
    """An :class:`ExplorerJob` from a grid's arrays and its trajectory's (a single run's
    snapshots, without the grid's axes, get them)."""
    rates = np.atleast_1d(np.asarray(cells["learning_rates"], dtype=np.float64))
    seeds = np.atleast_1d(np.asarray(cells["seeds"]))
    snapshots = {key: np.asarray(v) for key, v in trajectory.items() if key.startswith("layer")}
    if snapshots and snapshots["layer0_weights"].ndim == 3:  # a single run: (snapshots, ...)
        snapshots = {key: v[None, None] for key, v in snapshots.items()}
    curves = {key: np.asarray(cells[key], dtype=np.float64) for key in CURVE_NAMES if key in cells}
    shape = (rates.size, seeds.size)
    initial = cells.get("initial_loss")
    return ExplorerJob(
        name=name,
        label=label,
        run_id=run_id,
        architecture=architecture,
        learning_rates=rates,
        seeds=seeds,
        curves=curves,
        initial_loss=np.full(shape, np.nan) if initial is None else np.asarray(initial, float),
        solved=np.asarray(cells.get("solved", np.zeros(shape, bool))).reshape(shape),
        diverged_epoch=np.asarray(cells.get("diverged_epoch", np.zeros(shape, int))).reshape(shape),
        snapshot_epochs=np.asarray(trajectory.get("epochs", []), dtype=np.int64).reshape(-1)
        if snapshots
        else np.array([], dtype=np.int64),
        snapshots=snapshots,
        dataset=dataset,
        notes=[note for note in notes if note],
    )


# ---------------------------------------------------------------------------------------------
# A run being recorded


def record_explorer(record, job, cells: dict[str, np.ndarray], trajectory) -> int:
    """Write ``explorer.html`` among a run record's artifacts; return its size (0: none).

    A run without a trajectory gets none; an explorer that cannot be built is noted in the
    tag ``backprop_lab.explorer_skipped`` and never fails the run.
    """
    if not trajectory:
        return 0
    try:
        explorer = explorer_job(
            record.run_name,
            record.run_name,
            record.run_id or "",
            job.architecture,
            job.dataset,
            cells,
            trajectory,
            [job.snapshot_note],
        )
        kind = "grid" if job.grid else "single run"
        subtitle = (
            f"{record.experiment_name}: {kind}, {explorer.cells} cell"
            f"{'s' if explorer.cells != 1 else ''}, {explorer.epochs} epochs"
        )
        page = render_explorer(record.run_name, [explorer], subtitle=subtitle)
        return write_explorer(record.artifact_dir / EXPLORER_ARTIFACT, page)
    except (Exception, MemoryError) as error:
        record.tags["backprop_lab.explorer_skipped"] = f"{type(error).__name__}: {error}"[:500]
        return 0


# ---------------------------------------------------------------------------------------------
# Runs read back from the store (report jobs: every artifact already checked)


def from_report_job(job) -> ExplorerJob | None:
    """The explorer job of a report's job, or None when it has no usable trajectory."""
    if job.trajectory is None or job.architecture is None or not job.usable:
        return None
    notes = [job.run.data.tags.get(SNAPSHOTS_NOTE_TAG, "")]
    if job.kind == "grid":
        cells = job.grid
        if num_layers_in(job.trajectory) == 0:
            return None
    else:
        cfg = job.cfg
        cells = single_cells(
            job.history,
            float(cfg.optimizer.learning_rate),
            int(cfg.seed),
            job.metric("initial_loss"),
            job.metric("solved") == 1.0,
            int(np.nan_to_num(job.metric("diverged_epoch"))),
        )
    label = job.label or job.name
    return explorer_job(
        job.name,
        label,
        job.run.info.run_id,
        job.architecture,
        job.dataset,
        cells,
        job.trajectory,
        notes,
    )


def explorer_jobs(report_jobs) -> list[ExplorerJob]:
    """The jobs that have a trajectory, in order."""
    found = (from_report_job(job) for job in report_jobs)
    return [job for job in found if job is not None]


def runs_of(mlflow_client, run_id: str) -> tuple[object, list]:
    """``(run, job runs)``: a single or grid run stands for itself, a multirun for its jobs,
    a grid's per-rate child for its grid."""
    from backprop_lab.report.store import JOB_KINDS, PARENT_TAG, run_kind

    try:
        run = mlflow_client.get_run(run_id)
    except Exception:
        raise BackpropLabError(f"no run {run_id!r} in the tracking store") from None
    kind = run_kind(run)
    if kind == "grid_row" and run.data.tags.get(PARENT_TAG):
        return runs_of(mlflow_client, run.data.tags[PARENT_TAG])
    if kind in JOB_KINDS:
        return run, [run]
    children = mlflow_client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{run.info.run_id}'",
        max_results=5000,
    )
    jobs = sorted(
        (child for child in children if run_kind(child) in JOB_KINDS),
        key=lambda child: (child.info.start_time or 0, child.info.run_id),
    )
    return run, jobs


def explorer_for_run(
    mlflow_client, run_id: str, downloads: Path, max_bytes: int = DEFAULT_MAX_BYTES
) -> str:
    """The explorer page of one run (a multirun: of all its jobs), read from the store."""
    from backprop_lab.report.jobs import load_job
    from backprop_lab.report.labels import label_jobs
    from backprop_lab.report.store import run_name

    run, job_runs = runs_of(mlflow_client, run_id)
    if not job_runs:
        raise BackpropLabError(f"run {run_id} has no single or grid runs below it to show")
    jobs = [load_job(mlflow_client, job_run, downloads) for job_run in job_runs]
    label_jobs(jobs)
    found = explorer_jobs(jobs)
    if not found:
        problems = "; ".join(problem for job in jobs for problem in job.problems)
        raise BackpropLabError(
            f"run {run_id} has no trajectory to show (trajectory.npz is written by runs with "
            f"tracking.snapshots > 0)" + (f"; {problems}" if problems else "")
        )
    experiment = mlflow_client.get_experiment(run.info.experiment_id).name
    count = len(found)
    subtitle = f"{experiment}: run {run_name(run)} ({run.info.run_id}), {count} job" + (
        "s" if count != 1 else ""
    )
    notes = [f"{job.name}: {problem}" for job in jobs for problem in job.problems if job.problems]
    return render_explorer(experiment, found, subtitle=subtitle, notes=notes, max_bytes=max_bytes)
