"""``bplab-sync``: publish runs kept on disk, and close runs whose process died.

Every job writes its run record (params, tags, a journal of per-epoch metrics, artifacts) into
its output folder as it trains, and publishes it at the end. ``bplab-sync FOLDER...`` finds the
records that are not (fully) in their store, because the server went away, the disk was full,
or the process was killed outright, and publishes them: it completes the runs MLflow already
knows and creates the ones it does not. A record whose process is gone is closed FAILED with
the reason and the epochs its journal holds. A damaged record is reported in one line and the
others are still published.

``bplab-sync --check`` looks at the store instead: every run still RUNNING whose process is
gone (same host, pid no longer alive) is closed as FAILED, with its record published first
when the record is still on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from backprop_lab import tracking
from backprop_lab.errors import BackpropLabError
from backprop_lab.tracking.publishing import ERROR_TAG, PROCESS_TAGS, RECORD_FOLDER_TAG
from backprop_lab.tracking.records import RunRecord, process_alive
from backprop_lab.tracking.store import sqlite_path


@dataclass
class SyncReport:
    """What a sync did: published records, records it could not publish, and what it skipped."""

    published: list[RunRecord] = field(default_factory=list)
    failed: list[tuple[RunRecord, str]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    running: list[RunRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.damaged


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(error, BackpropLabError):  # already a sentence for people
        return first[:300]
    return f"{type(error).__name__}: {first}"[:300]


def publish_record(record: RunRecord, tracking_uri: str | None = None) -> None:
    """Publish one pending record (to ``tracking_uri`` instead of its own store, if given)."""
    if tracking_uri:
        record.tracking_uri = tracking.resolve_tracking_uri(tracking_uri)
    else:
        # The record names its store itself: publish only into a store that exists, so a
        # copied or crafted record cannot make a database appear anywhere it says.
        database = sqlite_path(record.tracking_uri)
        if database is not None and not database.is_file():
            raise BackpropLabError(
                f"its store {record.tracking_uri} does not exist; give the store to publish "
                "it to with --tracking-uri"
            )
    tracking.check_store(record.tracking_uri, create=False)
    tracking.publish(record)


def sync(folders: list[str], tracking_uri: str | None = None, dry_run: bool = False) -> SyncReport:
    """Publish every pending record under ``folders``; one bad record never stops the rest."""
    report = SyncReport()
    for folder in folders:
        found = tracking.find_records(folder)
        report.damaged += found.damaged
        report.running += found.running
        for record in found.pending:
            if dry_run:
                report.published.append(record)
                continue
            try:
                publish_record(record, tracking_uri)
                report.published.append(record)
            except Exception as error:
                report.failed.append((record, _first_line(error)))
    return report


# ---------------------------------------------------------------------------------------------
# Runs left RUNNING in the store


@dataclass
class StaleRun:
    run_id: str
    run_name: str
    experiment: str
    host: str
    pid: str
    # True: its process is gone; None: it runs on another host, so it cannot be told.
    orphaned: bool | None
    closed: bool = False
    note: str = ""


def _process_of(tags: dict[str, str]) -> dict:
    process = {key: tags.get(tracking.TAG_PREFIX + tag) for key, tag in PROCESS_TAGS.items()}
    if process["pid"] is None:
        return {}
    started = process.get("started")
    return {
        "host": process["host"],
        "pid": int(process["pid"]),
        "started": int(started) if started not in (None, "None") else None,
    }


def _close_orphan(mlflow_client, run, uri: str) -> str:
    """Publish the run's record if it is still on disk, else close the run FAILED."""
    folder = run.data.tags.get(RECORD_FOLDER_TAG)
    if folder and (Path(folder) / tracking.RECORD_FILE).is_file():
        pending = [r for r in tracking.find_records(folder).pending if r.run_id == run.info.run_id]
        if pending:
            pending[0].tracking_uri = uri
            tracking.publish(pending[0])
            return f"published its record from {folder} ({pending[0].epochs_done} epochs)"
    process = _process_of(run.data.tags)
    reason = (
        f"its process (pid {process.get('pid')} on {process.get('host')}) ended without "
        "closing the run (killed by SIGKILL, the OOM killer or a power cut); found by bplab-sync --check"
    )
    mlflow_client.set_tag(run.info.run_id, ERROR_TAG, reason)
    mlflow_client.set_terminated(run.info.run_id, status="FAILED")
    return "closed as FAILED (no record on disk)"


def check_store(tracking_uri: str | None = None, close: bool = True) -> list[StaleRun]:
    """Runs still RUNNING in the store; those whose process is gone are closed."""
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_store_exists(uri)
    mlflow_client = tracking.client(uri)
    experiments = {e.experiment_id: e.name for e in mlflow_client.search_experiments()}
    found = []
    if not experiments:
        return found
    runs = mlflow_client.search_runs(
        list(experiments), filter_string="attributes.status = 'RUNNING'", max_results=50000
    )
    for run in runs:
        process = _process_of(run.data.tags)
        alive = process_alive(process) if process else None
        stale = StaleRun(
            run.info.run_id,
            run.info.run_name or "",
            experiments.get(run.info.experiment_id, "?"),
            str(process.get("host", "?")),
            str(process.get("pid", "?")),
            None if alive is None else not alive,
        )
        if stale.orphaned and close:
            try:
                stale.note = _close_orphan(mlflow_client, run, uri)
                stale.closed = True
            except Exception as error:
                stale.note = f"could not be closed: {_first_line(error)}"
        found.append(stale)
    return found
