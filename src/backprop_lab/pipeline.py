"""The shell around the core: a validated config in, a trained and recorded run out.

:func:`execute` is what ``bplab-train`` runs for each job, in the order of
lightning-hydra-template's ``train()``: prepare, name and tag, resume check, open the record,
train, record, publish. Bad input raises before anything is created; from the moment the
record is opened the run always ends in a recorded state:

* FINISHED, or KILLED (Ctrl-C, SIGTERM, a SLURM time limit) with the epochs done so far;
* FAILED with the error, when something breaks;
* left RUNNING only if the process is killed outright (``kill -9``, the OOM killer), and
  then ``bplab-sync`` finds the record's journal and closes it.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from omegaconf import DictConfig

import backprop_lab
from backprop_lab import cluster, progress, recording, tracking
from backprop_lab.config import config_hash_of, flatten, to_container
from backprop_lab.core import analysis
from backprop_lab.core.data import fingerprint
from backprop_lab.interrupt import StopRequest, run_on_worker, stoppable
from backprop_lab.jobs import Job, prepare, train_job
from backprop_lab.tracking import TAG_PREFIX, RunRecord, native
from backprop_lab.tracking.records import MAX_RUN_NAME
from backprop_lab.tracking.session import TrackedRun

__all__ = ["RunSummary", "execute", "format_summary", "prepare", "train_job"]


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
    epochs_done: int = 0
    epochs: int = 0
    # Why the run did not finish, or why it is not in the store yet.
    reason: str = ""
    exit_status: int = 0


class RunPlan(NamedTuple):
    """Where a job's run goes and what it is called."""

    uri: str
    experiment_name: str
    run_name: str
    digest: str
    command: str


def describe_overrides(overrides: list[str]) -> str:
    """A run name that says what varied: the command-line overrides, without the preset."""
    varied = [
        item for item in overrides if not item.startswith(("experiment=", "tracking.", "hydra"))
    ]
    return ",".join(varied)


def plan_run(cfg: DictConfig, job: Job, overrides: list[str], tracking_uri: str | None) -> RunPlan:
    """Check the store (fast, before training) and name the run after what varied."""
    uri = tracking.resolve_tracking_uri(tracking_uri or cfg.tracking.uri)
    tracking.check_store(uri)
    varied = describe_overrides(overrides)
    if cfg.tracking.run_name:
        run_name = cfg.tracking.run_name
    elif job.grid:
        shape = f"grid {len(job.learning_rates)} lr x {len(job.seeds)} seeds"
        run_name = shape + (f" {varied}" if varied else "")
    else:
        run_name = varied or f"{cfg.name} seed={cfg.seed}"
    return RunPlan(
        uri,
        cfg.tracking.experiment_name or cfg.name,
        run_name[:MAX_RUN_NAME],
        config_hash_of(to_container(cfg)),
        "bplab-train " + " ".join(shlex.quote(item) for item in overrides),
    )


def find_finished(uri: str, experiment_name: str, digest: str) -> str | None:
    """The id of a FINISHED run of this experiment with this config hash, if there is one."""
    tracking.ensure_experiment(uri, experiment_name)
    mlflow_client = tracking.client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name)
    runs = mlflow_client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_PREFIX}config_hash` = '{digest}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def run_tags(cfg: DictConfig, job: Job, plan: RunPlan, overrides: list[str]) -> dict[str, str]:
    """Provenance, the config hash, the command, the data set's fingerprint, the chunking."""
    tags = tracking.provenance_tags(cfg.training.precision, int(cfg.seed))
    tags.update(
        {
            TAG_PREFIX + "kind": "grid" if job.grid else "single",
            TAG_PREFIX + "config_hash": plan.digest,
            TAG_PREFIX + "preset": cfg.name,
            TAG_PREFIX + "command": plan.command[:5000],
            TAG_PREFIX + "overrides": " ".join(overrides)[:5000],
            TAG_PREFIX + "data_sha256": fingerprint(job.dataset),
            TAG_PREFIX + "data_path": str(Path(cfg.data.path).resolve()) if cfg.data.path else "",
            # Reruns use the same chunk length: the same program, so the same bits.
            TAG_PREFIX + "chunk_epochs": str(job.spec.chunk_epochs),
            "mlflow.note.content": (cfg.description or cfg.name),
        }
    )
    if job.snapshot_note:
        tags[TAG_PREFIX + "snapshots_note"] = job.snapshot_note
    if job.grid:
        # The devices the cells were split across: part of the program, so of its bits.
        tags[TAG_PREFIX + "grid_shards"] = str(job.shards)
        tags[TAG_PREFIX + "grid_layout"] = job.spec.grid_layout
    tags.update(cluster.job_tags())
    return tags


def open_record(
    cfg: DictConfig,
    job: Job,
    plan: RunPlan,
    output_dir: str | Path,
    overrides: list[str],
    parent_run_id: str | None,
) -> RunRecord:
    """The run's record on disk, RUNNING: params, tags and artifacts first, then the journal."""
    record = RunRecord(
        folder=str(Path(output_dir) / "mlflow_record"),
        experiment_name=plan.experiment_name,
        run_name=plan.run_name,
        tracking_uri=plan.uri,
        tags=run_tags(cfg, job, plan, overrides),
        parent_run_id=parent_run_id,
        journal_points=int(cfg.tracking.max_logged_epochs),
    )
    resolved = to_container(cfg)
    record.add_params(flatten(resolved))
    record.inputs = native.dataset_inputs(job.dataset, resolved["data"])
    recording.write_common_artifacts(record, cfg, overrides, plan.command, job.dataset)
    columns = (
        ["loss_median", "loss_q25", "loss_q75", "accuracy_mean"]
        if job.grid
        else list(recording.HISTORY_NAMES)
    )
    record.open(columns)
    return record


def journal_rows(job: Job, metrics) -> np.ndarray:
    """One chunk's per-epoch rows for the journal: a run's four metrics, or a grid's
    loss quartiles and mean accuracy across its cells."""
    if not job.grid:
        loss = np.asarray(metrics.loss, dtype=np.float64)
        columns = [loss if m is None else np.asarray(m, dtype=np.float64) for m in metrics]
        rows = np.stack(columns, axis=1)
        rows[:, [m is None for m in metrics]] = np.nan  # no test split
        return rows
    loss = np.asarray(metrics.loss, dtype=np.float64)[: job.cells]
    quantiles = analysis.seed_quantile_curves(loss)
    accuracy = np.asarray(metrics.accuracy, dtype=np.float64)[: job.cells]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an epoch where every cell diverged
        accuracy_mean = np.nanmean(accuracy, axis=0)
    return np.stack(
        [quantiles["median"], quantiles["q25"], quantiles["q75"], accuracy_mean], axis=1
    )


def _estimated_seconds(job: Job) -> float:
    from backprop_lab.core.runner import chunk_epochs_for

    per_chunk = chunk_epochs_for(job.spec, len(job.dataset.x_train), job.cells, 1.0)
    return job.spec.epochs / per_chunk


def train_recorded(cfg: DictConfig, job: Job, record: RunRecord, stop: StopRequest):
    """Train chunk by chunk on a worker thread; each chunk goes to the record's journal."""
    show = progress.wants_bar(cfg.tracking.progress, _estimated_seconds(job))
    started = time.perf_counter()
    with progress.EpochBar(record.run_name, job.spec.epochs, show) as bar:

        def on_chunk(chunk) -> None:
            record.append_epochs(journal_rows(job, chunk.metrics))
            bar.update(chunk.epochs_done)

        timings: dict[str, float] = {}
        trained = run_on_worker(
            lambda: train_job(
                job, int(cfg.seed), should_stop=stop, on_chunk=on_chunk, timings=timings
            )
        )
    record.add_scalar("train_seconds", time.perf_counter() - started)
    record.add_scalar("compile_seconds", timings.get("compile"))
    record.timings.update(timings)
    return trained


def record_results(cfg: DictConfig, job: Job, record: RunRecord, trained, stop: StopRequest, files):
    """Close the record's training phase with its status, then write its results."""
    result = trained.result if job.grid else trained
    if int(result.epochs_done) < job.spec.epochs:
        record.status, record.reason = "KILLED", stop.reason or "stopped early"
    else:
        record.status = "FINISHED"
    with progress.phase("recording", cfg.tracking.progress):
        if job.grid:
            return recording.record_grid(record, cfg, job, trained, files), result
        return recording.record_single(record, cfg, job, trained, files), result


def _say(message: str) -> None:
    """A warning on stderr (at once: a job may run for hours after it)."""
    print(f"bplab-train: {message}", file=sys.stderr, flush=True)


def execute(
    cfg: DictConfig,
    *,
    output_dir: str | Path,
    overrides: list[str] | None = None,
    parent_run_id: str | None = None,
    tracking_uri: str | None = None,
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
    entered = time.perf_counter()
    job = prepare(cfg)
    plan = plan_run(cfg, job, overrides, tracking_uri)
    if tracking.local_database(plan.uri) is None:
        # MLflow's client will be needed: import it while JAX compiles and trains.
        tracking.start_importing_mlflow()
    if cfg.resume:
        finished = find_finished(plan.uri, plan.experiment_name, plan.digest)
        if finished:
            return _skipped(plan, job, finished)
    record = open_record(cfg, job, plan, output_dir, overrides, parent_run_id)
    record.timings["start_up"] = (
        time.time() - backprop_lab.IMPORTED_AT - (time.perf_counter() - entered)
    )
    run = TrackedRun(record, warn=_say)

    def force_exit(reason: str) -> None:
        record.close("KILLED", f"{reason}; exited at once on a second signal")
        run.abort("KILLED", record.reason, timeout_s=1.0)

    def first_signal(reason: str) -> None:
        _say(f"{reason}: stopping after the current chunk (again to quit at once)")

    try:
        with stoppable(on_first=first_signal, on_force_exit=force_exit) as stop:
            trained = train_recorded(cfg, job, record, stop)
            with record.timed("record"):
                files = recording.FileWriter()
                outcome, result = record_results(cfg, job, record, trained, stop, files)
                sending = run.send_metrics()
            with record.timed("figures"):
                if cfg.tracking.plots and record.status == "FINISHED":
                    draw_figures(record, outcome, cfg.tracking.progress)
                elif cfg.tracking.plots:
                    # Stopped: the user is waiting. bplab-report draws them from the record.
                    record.tags[TAG_PREFIX + "figures_skipped"] = "the run was stopped early"
            with record.timed("record"):
                files.wait()
                record.save()
            with record.timed("publish"):
                status, message = _publish(cfg, run, sending)
            record.save()
    except BaseException as error:
        _close_after_error(record, run, error)
        raise
    finally:
        run.close()
    if message:
        _say(message)
    return _summary(plan, job, record, outcome, result, status, message, stop)


def draw_figures(record: RunRecord, outcome, show_progress: bool) -> None:
    """Draw the run's figures; one that cannot be drawn is noted, never fatal."""
    with progress.phase("drawing figures", show_progress):
        try:
            outcome.draw()
        except (Exception, MemoryError) as error:
            record.tags[TAG_PREFIX + "figures_skipped"] = f"{type(error).__name__}: {error}"[:500]


def _publish(cfg: DictConfig, run: TrackedRun, sending) -> tuple[str, str]:
    with progress.phase("publishing to MLflow", cfg.tracking.progress):
        return run.finish(sending)


def _close_after_error(record: RunRecord, run: TrackedRun, error: BaseException) -> None:
    interrupted = isinstance(error, KeyboardInterrupt)
    status = "KILLED" if interrupted else "FAILED"
    reason = "interrupted (Ctrl-C)" if interrupted else f"{type(error).__name__}: {error}"
    record.close(status, reason)
    run.abort(status, reason)


def _skipped(plan: RunPlan, job: Job, run_id: str) -> RunSummary:
    nan = float("nan")
    kind = "grid" if job.grid else "single"
    return RunSummary(
        run_id, plan.run_name, plan.experiment_name, plan.uri, kind, nan, nan, "FINISHED", "",
        skipped=True, cells=job.cells,
    )  # fmt: skip


def _summary(plan, job, record, outcome, result, status, message, stop) -> RunSummary:
    if record.status == "KILLED":
        status, exit_status = "KILLED", stop.exit_status
    else:
        exit_status = 1 if status == "PENDING" else 0
    return RunSummary(
        record.run_id,
        record.run_name,
        plan.experiment_name,
        plan.uri,
        "grid" if job.grid else "single",
        outcome.final_loss,
        outcome.final_accuracy,
        status,
        record.folder,
        cells=job.cells,
        solved_fraction=outcome.solved_fraction,
        diverged_epoch=outcome.diverged_epoch,
        best_learning_rate=outcome.best_learning_rate,
        best_solved_fraction=outcome.best_solved_fraction,
        epochs_done=int(result.epochs_done),
        epochs=job.spec.epochs,
        reason=record.reason or message,
        exit_status=exit_status,
    )


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
    if summary.status == "KILLED":
        parts.append(
            f"[yellow]KILLED after {summary.epochs_done} of {summary.epochs} epochs: "
            f"{escape(summary.reason)}[/]"
        )
    elif summary.status != "FINISHED":
        parts.append(f"[yellow]{summary.status}[/]")
    return " | ".join(parts)
