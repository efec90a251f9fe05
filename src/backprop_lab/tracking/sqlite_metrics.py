"""Metric points written straight into a local SQLite store, in one transaction.

MLflow's SQLAlchemy store turns every metric point into an ORM object: about 0.1 ms a point,
so a 1,024-cell grid's curves (a quarter of a million points) cost half a minute, far more
than training them. A plain ``executemany`` into the same two tables costs about a
microsecond a point. The rows are exactly what ``MlflowClient.log_batch`` writes:

* ``metrics``: one row per point ``(key, value, timestamp, run_uuid, step, is_nan)``;
  re-sending a point is a no-op (``INSERT OR IGNORE`` on MLflow's primary key);
* ``latest_metrics``: per key, the point that is greatest by ``(step, timestamp, value)``,
  MLflow's own rule for "the" value of a metric.

Only finite values are sent (records leave NaN and inf out). The schema is checked first;
if a future MLflow changes these tables, :func:`write_metrics` returns False and the caller
falls back to ``log_batch``. ``tests/tracking/test_sqlite_metrics.py`` checks that the runs
read back through ``MlflowClient`` are the same either way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

_METRICS_COLUMNS = ("key", "value", "timestamp", "run_uuid", "step", "is_nan")
_LATEST_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")

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
    """Whether the store's metric tables are the ones this module writes."""
    return set(_columns(connection, "metrics")) == set(_METRICS_COLUMNS) and set(
        _columns(connection, "latest_metrics")
    ) == set(_LATEST_COLUMNS)


def write_metrics(
    database: str | Path,
    run_id: str,
    points: Iterable[tuple[str, float, int, int]],
    timeout_s: float = 30.0,
) -> bool:
    """Insert ``(key, value, timestamp_ms, step)`` points of ``run_id``; False if the schema
    is not the expected one (nothing was written then)."""
    rows = [
        (key, float(value), int(timestamp), run_id, int(step))
        for key, value, timestamp, step in points
    ]
    latest: dict[str, tuple] = {}
    for key, value, timestamp, _, step in rows:
        candidate = (step, timestamp, value)
        if key not in latest or candidate > latest[key]:
            latest[key] = candidate
    connection = sqlite3.connect(database, timeout=timeout_s)
    try:
        if not schema_matches(connection):
            return False
        with connection:  # one transaction: all points or none
            connection.executemany(_INSERT_POINTS, rows)
            connection.executemany(
                _UPSERT_LATEST,
                [
                    (key, value, timestamp, step, run_id)
                    for key, (step, timestamp, value) in latest.items()
                ],
            )
    finally:
        connection.close()
    return True
