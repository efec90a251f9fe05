"""Metric points and finished child runs written straight into a local SQLite store.

MLflow's SQLAlchemy store turns every metric point into an ORM object: about 0.1 ms a point,
so a 1,024-cell grid's curves (a quarter of a million points) cost half a minute, far more
than training them. A plain ``executemany`` into the same two tables costs about a
microsecond a point. The rows are exactly what ``MlflowClient.log_batch`` writes:

* ``metrics``: one row per point ``(key, value, timestamp, run_uuid, step, is_nan)``;
  re-sending a point is a no-op (``INSERT OR IGNORE`` on MLflow's primary key);
* ``latest_metrics``: per key, the point that is greatest by ``(step, timestamp, value)``,
  MLflow's own rule for "the" value of a metric.

Only finite values are sent (records leave NaN and inf out).

A grid's children (one run per learning rate, with params, tags and aggregate curves but no
artifacts) go the same way: :func:`write_finished_runs` inserts each child's ``runs`` row,
its tags, params, metrics and dataset inputs in one transaction, rows exactly like those
``create_run``, ``log_batch``, ``log_inputs`` and ``set_terminated`` leave (about 40 ms a run
through MLflow's client, and thirty of them is most of a grid's recording time otherwise).
A data set the experiment already has (the grid run logged it) is linked, not copied.

The schema is checked first; if a future MLflow changes these tables, the functions return
False and the caller falls back to the client. ``tests/tracking/test_sqlite_store.py``
checks that runs read back through ``MlflowClient`` are the same either way.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from backprop_lab.tracking.native import CONTEXT_TAG

_METRICS_COLUMNS = ("key", "value", "timestamp", "run_uuid", "step", "is_nan")
_LATEST_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
_RUNS_COLUMNS = (
    "run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id", "status",
    "start_time", "end_time", "source_version", "lifecycle_stage", "artifact_uri",
    "experiment_id", "deleted_time",
)  # fmt: skip
_TAGS_COLUMNS = ("key", "value", "run_uuid")
_PARAMS_COLUMNS = ("key", "value", "run_uuid")
_DATASETS_COLUMNS = (
    "dataset_uuid", "experiment_id", "name", "digest", "dataset_source_type", "dataset_source",
    "dataset_schema", "dataset_profile",
)  # fmt: skip
_INPUTS_COLUMNS = (
    "input_uuid",
    "source_type",
    "source_id",
    "destination_type",
    "destination_id",
    "step",
)
_INPUT_TAGS_COLUMNS = ("input_uuid", "name", "value")
_EXPECTED = {
    "metrics": _METRICS_COLUMNS,
    "latest_metrics": _LATEST_COLUMNS,
    "runs": _RUNS_COLUMNS,
    "tags": _TAGS_COLUMNS,
    "params": _PARAMS_COLUMNS,
    "datasets": _DATASETS_COLUMNS,
    "inputs": _INPUTS_COLUMNS,
    "input_tags": _INPUT_TAGS_COLUMNS,
}

_INSERT_POINTS = (
    "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
    "VALUES (?, ?, ?, ?, ?, 0)"
)
_UPSERT_LATEST = (
    "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
    "VALUES (?, ?, ?, ?, 0, ?) "
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, "
    "timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan "
    "WHERE (excluded.step, excluded.timestamp, excluded.value) > "
    "(latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)"
)


def _columns(connection: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in connection.execute(f"PRAGMA table_info({table})"))


def schema_matches(connection: sqlite3.Connection) -> bool:
    """Whether the store's tables are the ones this module writes."""
    return all(
        set(_columns(connection, table)) == set(columns) for table, columns in _EXPECTED.items()
    )


def _metric_rows(run_id: str, points: Iterable[tuple[str, float, int, int]]):
    """``metrics`` rows and, per key, the ``latest_metrics`` row by MLflow's rule."""
    rows = [
        (key, float(value), int(timestamp), run_id, int(step))
        for key, value, timestamp, step in points
    ]
    latest: dict[str, tuple] = {}
    for key, value, timestamp, _, step in rows:
        candidate = (step, timestamp, value)
        if key not in latest or candidate > latest[key]:
            latest[key] = candidate
    latest_rows = [
        (key, value, timestamp, step, run_id) for key, (step, timestamp, value) in latest.items()
    ]
    return rows, latest_rows


def _insert_metrics(connection, run_id: str, points) -> None:
    rows, latest_rows = _metric_rows(run_id, points)
    connection.executemany(_INSERT_POINTS, rows)
    connection.executemany(_UPSERT_LATEST, latest_rows)


def _open(database: str | Path, timeout_s: float) -> sqlite3.Connection | None:
    """A connection to the store, or None when its tables are not the expected ones."""
    connection = sqlite3.connect(database, timeout=timeout_s)
    if schema_matches(connection):
        return connection
    connection.close()
    return None


def write_metrics(
    database: str | Path,
    run_id: str,
    points: Iterable[tuple[str, float, int, int]],
    timeout_s: float = 30.0,
) -> bool:
    """Insert ``(key, value, timestamp_ms, step)`` points of ``run_id``; False if the schema
    is not the expected one (nothing was written then)."""
    connection = _open(database, timeout_s)
    if connection is None:
        return False
    try:
        with connection:  # one transaction: all points or none
            _insert_metrics(connection, run_id, points)
    finally:
        connection.close()
    return True


class FinishedRun(NamedTuple):
    """A run to write whole: no artifacts, already ended with ``status``."""

    run_id: str
    name: str
    status: str
    start_time_ms: int
    end_time_ms: int
    tags: dict[str, str]
    params: dict[str, str]
    points: list[tuple[str, float, int, int]]
    # Dataset inputs as ``native.dataset_inputs`` describes them.
    inputs: Sequence[dict[str, str]] = ()


def run_artifact_uri(artifact_location: str, run_id: str) -> str:
    """``<experiment location>/<run id>/artifacts``, as MLflow's ``create_run`` builds it."""
    return artifact_location.rstrip("/") + f"/{run_id}/artifacts"


def upsert_tags(connection: sqlite3.Connection, run_id: str, tags) -> None:
    """Set or replace a run's tags (``set_tag``; MLflow's limit is 8,000 characters)."""
    connection.executemany(
        "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
        "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
        [(key, value[:8000], run_id) for key, value in tags.items()],
    )


def insert_run(
    connection: sqlite3.Connection,
    run_id: str,
    name: str,
    experiment_id: int,
    artifact_location: str,
    tags,
    params,
    *,
    status: str,
    start_time_ms: int,
    end_time_ms: int | None,
) -> None:
    """A run's ``runs`` row, its ``mlflow.runName`` tag, tags and params: the rows
    ``create_run`` and ``log_batch`` leave."""
    connection.execute(
        f"INSERT INTO runs ({', '.join(_RUNS_COLUMNS)}) VALUES ({', '.join('?' * 14)})",
        (
            run_id, name, "UNKNOWN", "", "", "unknown", status, start_time_ms, end_time_ms, "",
            "active", run_artifact_uri(artifact_location, run_id), experiment_id, None,
        ),
    )  # fmt: skip
    upsert_tags(connection, run_id, {**tags, "mlflow.runName": name})
    connection.executemany(
        "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
        [(key, value, run_id) for key, value in params.items()],
    )


def write_finished_runs(
    database: str | Path,
    experiment_id: str,
    artifact_location: str,
    runs: list[FinishedRun],
    timeout_s: float = 30.0,
) -> bool:
    """Insert whole finished runs of an experiment in one transaction; False (nothing written)
    if the schema is not the expected one."""
    connection = _open(database, timeout_s)
    if connection is None:
        return False
    datasets: dict[tuple[str, str], str] = {}
    try:
        with connection:
            for run in runs:
                insert_run(
                    connection, run.run_id, run.name, int(experiment_id), artifact_location,
                    run.tags, run.params, status=run.status, start_time_ms=run.start_time_ms,
                    end_time_ms=run.end_time_ms,
                )  # fmt: skip
                _insert_metrics(connection, run.run_id, run.points)
                _insert_inputs(connection, int(experiment_id), run.run_id, run.inputs, datasets)
    finally:
        connection.close()
    return True


def write_inputs(
    database: str | Path,
    experiment_id: str,
    run_id: str,
    inputs: Sequence[dict[str, str]],
    timeout_s: float = 30.0,
) -> bool:
    """Link a run to its dataset inputs (as ``log_inputs`` does); False if the schema is not
    the expected one (nothing was written then)."""
    if not inputs:
        return True
    connection = _open(database, timeout_s)
    if connection is None:
        return False
    try:
        with connection:
            _insert_inputs(connection, int(experiment_id), run_id, inputs, {})
    finally:
        connection.close()
    return True


def _insert_inputs(connection, experiment_id: int, run_id: str, inputs, datasets: dict) -> None:
    """A run's dataset inputs: the experiment's ``datasets`` row (found, or added once), the
    ``inputs`` edge to the run and its context tag. ``datasets`` caches uuids by (name, digest)."""
    for item in inputs:
        key = (item["name"], item["digest"])
        if key not in datasets:
            # INSERT OR IGNORE, then read back: processes starting together on one experiment
            # may add the same data set at once (it is unique per experiment, name and digest).
            connection.execute(
                f"INSERT OR IGNORE INTO datasets ({', '.join(_DATASETS_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, experiment_id, *key, item["source_type"], item["source"],
                 item["schema"], item["profile"]),
            )  # fmt: skip
            found = connection.execute(
                "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? "
                "AND digest = ?",
                (experiment_id, *key),
            ).fetchone()
            datasets[key] = found[0]
        input_uuid = uuid.uuid4().hex
        connection.execute(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, "
            "destination_id, step) VALUES (?, 'DATASET', ?, 'RUN', ?, 0)",
            (input_uuid, datasets[key], run_id),
        )
        connection.execute(
            "INSERT INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)",
            (input_uuid, CONTEXT_TAG, item["context"]),
        )
