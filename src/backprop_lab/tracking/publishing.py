"""Sending run records to MLflow in a few batched calls.

One ``log_metric`` call per epoch costs 5–10 ms on SQLite; ``MlflowClient.log_batch`` sends up
to 1,000 metrics per call at about 0.1 ms each, and a local SQLite store takes the points
straight into its tables at about a microsecond each (:mod:`sqlite_metrics`). A run is created (RUNNING, with its params and
tags, and the process that owns it) as soon as training starts, and completed when it ends.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

from backprop_lab.tracking import native
from backprop_lab.tracking.provenance import TAG_PREFIX
from backprop_lab.tracking.records import RunRecord
from backprop_lab.tracking.sqlite_store import FinishedRun, write_finished_runs, write_metrics
from backprop_lab.tracking.store import client, ensure_experiment, sqlite_path

# Tags that let `bplab-sync --check` tell whether a RUNNING run's process is still alive.
PROCESS_TAGS = {"host": "host", "pid": "pid", "started": "pid_started"}
RECORD_FOLDER_TAG = TAG_PREFIX + "record_folder"
ERROR_TAG = TAG_PREFIX + "error"


def _process_tags(record: RunRecord) -> dict[str, str]:
    return {
        TAG_PREFIX + tag: str(record.process[key])
        for key, tag in PROCESS_TAGS.items()
        if record.process.get(key) is not None
    }


def create_run(record: RunRecord) -> str:
    """Create the MLflow run (status RUNNING) with its params, tags and dataset inputs; return
    its id."""
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import Param

    experiment_id = ensure_experiment(record.tracking_uri, record.experiment_name)
    tags = {**record.tags, **_process_tags(record)}
    tags[RECORD_FOLDER_TAG] = str(Path(record.folder).resolve())
    if record.parent_run_id:
        tags["mlflow.parentRunId"] = record.parent_run_id
    run = mlflow_client.create_run(experiment_id, run_name=record.run_name, tags=tags)
    record.run_id = run.info.run_id
    params = [Param(key, value) for key, value in record.params.items()]
    mlflow_client.log_batch(record.run_id, params=params)
    native.log_inputs(mlflow_client, record.run_id, record.inputs)
    return record.run_id


def publish_metrics(record: RunRecord, *, known_running: bool = False) -> None:
    """Send the record's metrics and tags (creating the run if MLflow does not know it yet).

    ``known_running``: this process created the run and has not closed it, so its status
    need not be read back first.
    """
    if record.run_id is None:
        create_run(record)
        known_running = True
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import Metric, RunTag

    if not known_running and mlflow_client.get_run(record.run_id).info.status != "RUNNING":
        # A run closed earlier (say by `bplab-sync --check` while its record waited) is
        # reopened so its status can tell what really happened.
        mlflow_client.update_run(record.run_id, status="RUNNING")
    points = [
        (name, value, record.timestamp_ms, int(step))
        for name, curve in record.metrics.items()
        for step, value in curve
    ]
    tags = [RunTag(key, value) for key, value in record.tags.items()]
    if record.reason:
        tags.append(RunTag(ERROR_TAG, record.reason[:5000]))
    database = sqlite_path(record.tracking_uri)
    if database is not None and write_metrics(database, record.run_id, points):
        mlflow_client.log_batch(record.run_id, tags=tags)
        return
    metrics = [Metric(name, value, timestamp, step) for name, value, timestamp, step in points]
    mlflow_client.log_batch(record.run_id, metrics=metrics, tags=tags)


def publish_artifacts_and_close(record: RunRecord) -> None:
    """Send the artifacts, publish the children, and close the run with its status."""
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import RunTag

    # Tags added after the metrics went (a figure skipped, the timings) go now.
    mlflow_client.log_batch(record.run_id, tags=[RunTag(k, v) for k, v in record.tags.items()])
    if record.artifact_dir.is_dir() and any(record.artifact_dir.iterdir()):
        mlflow_client.log_artifacts(record.run_id, str(record.artifact_dir))
    children = [RunRecord.load(Path(record.folder) / child) for child in record.children]
    pending = [child for child in children if not child.published]
    for child in pending:
        child.parent_run_id = record.run_id
        child.inputs = child.inputs or record.inputs  # trained on the parent's data set
    if pending and not _write_children_directly(mlflow_client, record, pending):
        for child in pending:
            publish(child)
    mlflow_client.set_terminated(record.run_id, status=record.status)
    record.published = True
    record.save()


def _write_children_directly(mlflow_client, parent: RunRecord, children: list[RunRecord]) -> bool:
    """Finished children without artifacts, into a local SQLite store in one transaction."""
    database = sqlite_path(parent.tracking_uri)
    if database is None or any(
        child.run_id is not None or child.status == "RUNNING" or child.artifact_dir.is_dir()
        for child in children
    ):
        return False
    experiment = mlflow_client.get_experiment(
        mlflow_client.get_run(parent.run_id).info.experiment_id
    )
    now = int(time.time() * 1000)
    runs = []
    for child in children:
        child.run_id = uuid.uuid4().hex
        tags = {**child.tags, "mlflow.parentRunId": parent.run_id}
        if child.reason:
            tags[ERROR_TAG] = child.reason[:5000]
        points = [
            (name, value, child.timestamp_ms, int(step))
            for name, curve in child.metrics.items()
            for step, value in curve
        ]
        runs.append(
            FinishedRun(child.run_id, child.run_name, child.status, child.timestamp_ms, now,
                        tags, dict(child.params), points, child.inputs)
        )  # fmt: skip
    if not write_finished_runs(
        database, experiment.experiment_id, experiment.artifact_location, runs
    ):
        for child in children:
            child.run_id = None
        return False
    for child in children:
        child.published = True
        child.save()
    return True


def publish(record: RunRecord) -> None:
    """Send a whole record to MLflow: metrics, tags, artifacts, children and final status."""
    publish_metrics(record)
    publish_artifacts_and_close(record)


def end_run(uri: str, run_id: str | None, status: str, error: str | None = None) -> None:
    """Close a run as FAILED or KILLED, keeping the error as a tag; never raises."""
    if run_id is None:
        return
    with contextlib.suppress(Exception):
        mlflow_client = client(uri)
        if error:
            mlflow_client.set_tag(run_id, ERROR_TAG, error[:5000])
        mlflow_client.set_terminated(run_id, status=status)
