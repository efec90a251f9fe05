"""A local SQLite store's runs opened, tagged and closed with plain SQL, without MLflow.

Importing MLflow's SQLAlchemy store costs one to two seconds of CPU on these machines (it
pulls in SQLAlchemy, Alembic, pandas and MLflow's GenAI modules), and opening it checks the
schema's migrations: together most of a short ``bplab-train``'s wall time. For a store whose
tables are exactly the ones the installed MLflow makes (same Alembic revision, same columns),
the few writes a run needs are a handful of SQL statements:

* the experiment, found by name or inserted (with its tags), as ``create_experiment`` does;
* the run's ``runs`` row (RUNNING), its ``mlflow.runName`` tag, tags and params, as
  ``create_run`` and ``log_batch`` do;
* tags set or replaced, the status read or changed, as ``set_tag`` and ``set_terminated`` do;
* artifacts copied into the run's ``file://`` artifact folder, as the local artifact
  repository does.

Any other store (a server, PostgreSQL, a fresh file without tables, an older or newer MLflow
schema) goes through ``MlflowClient``. ``tests/tracking/test_local_store.py`` reads runs
written both ways back through ``MlflowClient`` and requires them to be the same.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from pathlib import Path

from backprop_lab.tracking.sqlite_store import insert_run, schema_matches, upsert_tags

# The Alembic revisions of the MLflow versions these writes were checked against (the lock's).
# A store at another revision is left to MLflow's client, which knows how to migrate it.
KNOWN_REVISIONS = frozenset({"dc11669786a5"})
# MLflow's own limits (mlflow.utils.validation): longer values go through the client, which
# refuses them with its own message.
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_KEY_LENGTH = 250
_TIMEOUT_S = 30.0
_usable: set[Path] = set()


def now_ms() -> int:
    return int(time.time() * 1000)


def connect(database: Path) -> sqlite3.Connection:
    return sqlite3.connect(database, timeout=_TIMEOUT_S)


def usable(database: Path | None) -> bool:
    """Whether ``database`` is an SQLite store whose tables this module can write."""
    if database is None:
        return False
    if database in _usable:
        return True
    if not database.is_file() or database.stat().st_size == 0:
        return False
    try:
        connection = connect(database)
        try:
            revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()
            ok = revision is not None and revision[0] in KNOWN_REVISIONS
            ok = ok and schema_matches(connection)
            # Experiments outside the default workspace: MLflow's client refuses such a store
            # (with its own message); these statements know only the default workspace.
            other = "SELECT 1 FROM experiments WHERE workspace != 'default' LIMIT 1"
            ok = ok and connection.execute(other).fetchone() is None
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    if ok:
        _usable.add(database)
    return ok


def fits(tags: Mapping[str, str], params: Mapping[str, str] = {}) -> bool:  # noqa: B006
    """Whether every key and value is within MLflow's limits (else the client decides)."""
    return (
        all(len(key) <= MAX_KEY_LENGTH for key in (*tags, *params))
        and all(len(value) <= MAX_PARAM_LENGTH for value in params.values())
        and all(len(value) <= MAX_TAG_LENGTH for value in tags.values())
    )


def ensure_experiment(
    database: Path,
    name: str,
    artifact_location: str,
    default_tags: Mapping[str, str] = {},  # noqa: B006
) -> tuple[str, str]:
    """The id and artifact location of experiment ``name``: found (restored if deleted) or
    created. ``default_tags`` are set where the experiment has no value for them yet (a kind
    someone chose is kept). The caller holds the store lock, so no other process adds it
    meanwhile."""
    connection = connect(database)
    try:
        with connection:
            found = connection.execute(
                "SELECT experiment_id, artifact_location, lifecycle_stage FROM experiments "
                "WHERE name = ? AND workspace = 'default'",
                (name,),
            ).fetchone()
            if found is None:
                created = now_ms()
                cursor = connection.execute(
                    "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                    "creation_time, last_update_time, workspace) "
                    "VALUES (?, ?, 'active', ?, ?, 'default')",
                    (name, artifact_location, created, created),
                )
                found = (cursor.lastrowid, artifact_location, "active")
            elif found[2] == "deleted":
                # As MLflow's restore_experiment: the experiment and every run of it.
                connection.execute(
                    "UPDATE experiments SET lifecycle_stage = 'active', last_update_time = ? "
                    "WHERE experiment_id = ?",
                    (now_ms(), found[0]),
                )
                connection.execute(
                    "UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL "
                    "WHERE experiment_id = ?",
                    (found[0],),
                )
            connection.executemany(
                "INSERT OR IGNORE INTO experiment_tags (key, value, experiment_id) "
                "VALUES (?, ?, ?)",
                [(key, value, found[0]) for key, value in default_tags.items()],
            )
    finally:
        connection.close()
    return str(found[0]), found[1]


def find_experiment(database: Path, name: str) -> str | None:
    """The id of experiment ``name`` (deleted ones included, as MLflow's look-up does)."""
    connection = connect(database)
    try:
        found = connection.execute(
            "SELECT experiment_id FROM experiments WHERE name = ? AND workspace = 'default'",
            (name,),
        ).fetchone()
    finally:
        connection.close()
    return None if found is None else str(found[0])


def create_run(
    database: Path,
    experiment_id: str,
    artifact_location: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
) -> str:
    """A RUNNING run with its name, tags and params, in one transaction; its id."""
    run_id = uuid.uuid4().hex
    connection = connect(database)
    try:
        with connection:
            insert_run(
                connection, run_id, run_name, int(experiment_id), artifact_location, tags,
                params, status="RUNNING", start_time_ms=now_ms(), end_time_ms=None,
            )  # fmt: skip
    finally:
        connection.close()
    return run_id


def set_tags(database: Path, run_id: str, tags: Mapping[str, str]) -> None:
    connection = connect(database)
    try:
        with connection:
            upsert_tags(connection, run_id, tags)
    finally:
        connection.close()


def run_info(database: Path, run_id: str) -> tuple[str, str, str] | None:
    """``(status, experiment_id, artifact_uri)`` of a run, or None if the store lacks it."""
    connection = connect(database)
    try:
        found = connection.execute(
            "SELECT status, experiment_id, artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)
        ).fetchone()
    finally:
        connection.close()
    return None if found is None else (found[0], str(found[1]), found[2])


def child_statuses(database: Path, parent_run_id: str) -> set[str]:
    """The statuses of a run's active children, as ``search_runs`` on
    ``tags.mlflow.parentRunId`` finds them."""
    connection = connect(database)
    try:
        rows = connection.execute(
            "SELECT runs.status FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
            "WHERE tags.key = 'mlflow.parentRunId' AND tags.value = ? "
            "AND runs.lifecycle_stage = 'active'",
            (parent_run_id,),
        ).fetchall()
    finally:
        connection.close()
    return {status for (status,) in rows}


def experiment_location(database: Path, experiment_id: str) -> str:
    connection = connect(database)
    try:
        (location,) = connection.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = ?",
            (int(experiment_id),),
        ).fetchone()
    finally:
        connection.close()
    return location


def set_status(database: Path, run_id: str, status: str, *, ended: bool = True) -> None:
    """``set_terminated`` (status and end time) or, with ``ended=False``, ``update_run``."""
    connection = connect(database)
    try:
        with connection:
            if ended:
                connection.execute(
                    "UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                    (status, now_ms(), run_id),
                )
            else:
                connection.execute(
                    "UPDATE runs SET status = ? WHERE run_uuid = ?", (status, run_id)
                )
    finally:
        connection.close()


def artifact_folder(artifact_uri: str) -> Path | None:
    """The local folder of a ``file://`` (or plain path) artifact URI, else None."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme not in ("", "file") or parsed.netloc not in ("", "localhost"):
        return None
    return Path(urllib.parse.unquote(parsed.path))


def copy_artifacts(source: Path, artifact_uri: str) -> bool:
    """Copy a folder's files into a run's artifact folder (contents only, not permissions, as
    MLflow's local artifact repository does); False when the URI is not a local folder."""
    target = artifact_folder(artifact_uri)
    if target is None:
        return False
    for folder, _, files in os.walk(source):
        destination = target / Path(folder).relative_to(source)
        destination.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(Path(folder) / name, destination / name)
    return True
