"""Sending run records to MLflow in a few batched calls.

One ``log_metric`` call per epoch costs 5–10 ms on SQLite; ``MlflowClient.log_batch`` sends up
to 1,000 metrics per call at about 0.1 ms each, and a local SQLite store takes the points
straight into its tables at about a microsecond each (:mod:`.sqlite_store`). A run is created
(RUNNING, with its params and tags, and the process that owns it) as soon as training starts,
and completed when it ends.

A local SQLite store whose schema is the installed MLflow's is written with plain SQL
(:mod:`.local_store`), so a run on the embedded store never imports MLflow; any other store
(a server, PostgreSQL, a fresh file) goes through ``MlflowClient``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path

from backprop_lab.tracking import local_store, native
from backprop_lab.tracking.provenance import TAG_PREFIX
from backprop_lab.tracking.records import RunRecord
from backprop_lab.tracking.sqlite_store import (
    FinishedRun,
    write_finished_runs,
    write_inputs,
    write_metrics,
)
from backprop_lab.tracking.store import (
    artifact_location,
    client,
    ensure_experiment,
    sqlite_path,
    store_lock,
)

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


def local_database(uri: str) -> Path | None:
    """The database of a local SQLite store that :mod:`.local_store` can write, else None."""
    database = sqlite_path(uri)
    return database if local_store.usable(database) else None


def _tags_of(record: RunRecord) -> dict[str, str]:
    tags = dict(record.tags)
    if record.reason:
        tags[ERROR_TAG] = record.reason[:5000]
    return tags


def _local_experiment(database: Path, uri: str, name: str) -> tuple[str, str]:
    with store_lock(uri):
        return local_store.ensure_experiment(
            database,
            name,
            artifact_location(uri, name),
            {native.EXPERIMENT_KIND_TAG: native.MODEL_TRAINING},
        )


def experiment_id_for(uri: str, name: str) -> str:
    """Create the store and the experiment if needed; return the experiment id (with plain
    SQL on the embedded store, else through MLflow's client)."""
    database = local_database(uri)
    if database is None:
        return ensure_experiment(uri, name)
    return _local_experiment(database, uri, name)[0]


def run_status(uri: str, run_id: str) -> str | None:
    """A run's status, or None if the store does not have it."""
    database = local_database(uri)
    if database is not None:
        info = local_store.run_info(database, run_id)
        return None if info is None else info[0]
    return client(uri).get_run(run_id).info.status


def child_statuses(uri: str, run_id: str) -> set[str]:
    """The statuses of a run's active child runs."""
    database = local_database(uri)
    if database is not None:
        return local_store.child_statuses(database, run_id)
    mlflow_client = client(uri)
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    children = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return {child.info.status for child in children}


def create_run(record: RunRecord) -> str:
    """Create the MLflow run (status RUNNING) with its params, tags and dataset inputs; return
    its id."""
    uri = record.tracking_uri
    tags = {**record.tags, **_process_tags(record)}
    tags[RECORD_FOLDER_TAG] = str(Path(record.folder).resolve())
    if record.parent_run_id:
        tags["mlflow.parentRunId"] = record.parent_run_id
    database = local_database(uri)
    if database is not None and local_store.fits(tags, record.params):
        experiment_id, location = _local_experiment(database, uri, record.experiment_name)
        record.run_id = local_store.create_run(
            database, experiment_id, location, record.run_name, tags, record.params
        )
        write_inputs(database, experiment_id, record.run_id, record.inputs)
        return record.run_id
    mlflow_client = client(uri)
    from mlflow.entities import Param

    experiment_id = ensure_experiment(uri, record.experiment_name)
    run = mlflow_client.create_run(experiment_id, run_name=record.run_name, tags=tags)
    record.run_id = run.info.run_id
    params = [Param(key, value) for key, value in record.params.items()]
    mlflow_client.log_batch(record.run_id, params=params)
    _log_inputs(mlflow_client, uri, record)
    return record.run_id


def _log_inputs(mlflow_client, uri: str, record: RunRecord) -> None:
    """MLflow's ``log_inputs`` looks a data set up, then adds it: processes starting together
    on one experiment race there (a unique-constraint error). One process at a time on a local
    store; elsewhere, the loser tries again and finds the winner's row."""
    with store_lock(uri):
        try:
            native.log_inputs(mlflow_client, record.run_id, record.inputs)
        except Exception as error:
            if "unique" not in str(error).lower():
                raise
            native.log_inputs(mlflow_client, record.run_id, record.inputs)


def publish_metrics(record: RunRecord, *, known_running: bool = False) -> None:
    """Send the record's metrics and tags (creating the run if MLflow does not know it yet).

    ``known_running``: this process created the run and has not closed it, so its status
    need not be read back first.
    """
    if record.run_id is None:
        create_run(record)
        known_running = True
    points = [
        (name, value, record.timestamp_ms, int(step))
        for name, curve in record.metrics.items()
        for step, value in curve
    ]
    database = local_database(record.tracking_uri)
    info = None if database is None else local_store.run_info(database, record.run_id)
    if info is not None and local_store.fits(_tags_of(record)):
        if not known_running and info[0] != "RUNNING":
            local_store.set_status(database, record.run_id, "RUNNING", ended=False)
        write_metrics(database, record.run_id, points)
        local_store.set_tags(database, record.run_id, _tags_of(record))
        return
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import Metric, RunTag

    if not known_running and mlflow_client.get_run(record.run_id).info.status != "RUNNING":
        # A run closed earlier (say by `bplab-sync --check` while its record waited) is
        # reopened so its status can tell what really happened.
        mlflow_client.update_run(record.run_id, status="RUNNING")
    tags = [RunTag(key, value) for key, value in _tags_of(record).items()]
    database = sqlite_path(record.tracking_uri)
    if database is not None and write_metrics(database, record.run_id, points):
        mlflow_client.log_batch(record.run_id, tags=tags)
        return
    metrics = [Metric(name, value, timestamp, step) for name, value, timestamp, step in points]
    mlflow_client.log_batch(record.run_id, metrics=metrics, tags=tags)


def publish_artifacts_and_close(record: RunRecord) -> None:
    """Send the artifacts, publish the children, and close the run with its status."""
    database = local_database(record.tracking_uri)
    info = None if database is None else local_store.run_info(database, record.run_id)
    if info is not None and local_store.fits(record.tags):
        _close_locally(database, record, info)
        return
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import RunTag

    # Tags added after the metrics went (a figure skipped, the timings) go now.
    mlflow_client.log_batch(record.run_id, tags=[RunTag(k, v) for k, v in record.tags.items()])
    if record.artifact_dir.is_dir() and any(record.artifact_dir.iterdir()):
        mlflow_client.log_artifacts(record.run_id, str(record.artifact_dir))
    pending = _pending_children(record)
    if pending:
        experiment = mlflow_client.get_experiment(
            mlflow_client.get_run(record.run_id).info.experiment_id
        )
        written = _write_children_directly(
            record, pending, experiment.experiment_id, experiment.artifact_location
        )
        if not written:
            for child in pending:
                publish(child)
    mlflow_client.set_terminated(record.run_id, status=record.status)
    record.published = True
    record.save()


def _close_locally(database: Path, record: RunRecord, info: tuple[str, str, str]) -> None:
    """:func:`publish_artifacts_and_close` on a store :mod:`.local_store` writes."""
    _, experiment_id, artifact_uri = info
    local_store.set_tags(database, record.run_id, record.tags)
    has_artifacts = record.artifact_dir.is_dir() and any(record.artifact_dir.iterdir())
    if has_artifacts and not local_store.copy_artifacts(record.artifact_dir, artifact_uri):
        client(record.tracking_uri).log_artifacts(record.run_id, str(record.artifact_dir))
    pending = _pending_children(record)
    location = local_store.experiment_location(database, experiment_id)
    if pending and not _write_children_directly(record, pending, experiment_id, location):
        for child in pending:
            publish(child)
    local_store.set_status(database, record.run_id, record.status)
    record.published = True
    record.save()


def _pending_children(record: RunRecord) -> list[RunRecord]:
    children = [RunRecord.load(Path(record.folder) / child) for child in record.children]
    pending = [child for child in children if not child.published]
    for child in pending:
        child.parent_run_id = record.run_id
        child.inputs = child.inputs or record.inputs  # trained on the parent's data set
    return pending


def _write_children_directly(
    parent: RunRecord, children: list[RunRecord], experiment_id: str, location: str
) -> bool:
    """Finished children without artifacts, into a local SQLite store in one transaction."""
    database = sqlite_path(parent.tracking_uri)
    if database is None or any(
        child.run_id is not None or child.status == "RUNNING" or child.artifact_dir.is_dir()
        for child in children
    ):
        return False
    now = int(time.time() * 1000)
    runs = []
    for child in children:
        child.run_id = uuid.uuid4().hex
        tags = {**_tags_of(child), "mlflow.parentRunId": parent.run_id}
        points = [
            (name, value, child.timestamp_ms, int(step))
            for name, curve in child.metrics.items()
            for step, value in curve
        ]
        runs.append(
            FinishedRun(child.run_id, child.run_name, child.status, child.timestamp_ms, now,
                        tags, dict(child.params), points, child.inputs)
        )  # fmt: skip
    if not write_finished_runs(database, experiment_id, location, runs):
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
        database = local_database(uri)
        if database is not None and local_store.run_info(database, run_id) is not None:
            if error:
                local_store.set_tags(database, run_id, {ERROR_TAG: error[:5000]})
            local_store.set_status(database, run_id, status)
            return
        mlflow_client = client(uri)
        if error:
            mlflow_client.set_tag(run_id, ERROR_TAG, error[:5000])
        mlflow_client.set_terminated(run_id, status=status)
