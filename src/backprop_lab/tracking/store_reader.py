"""Reading a local SQLite store's experiments, runs and artifacts with plain SQL.

``bplab-report`` reads the store in a process per CPU core, and each of them imported MLflow
(seconds of CPU apiece: see :mod:`.local_store`) for a handful of reads. For a store whose
tables are exactly the installed MLflow's (the stores :mod:`.local_store` writes),
:class:`StoreReader` answers the calls a report makes, with the answers ``MlflowClient``
gives:

* ``search_experiments()``: the active experiments of the default workspace;
* ``get_experiment(id)``;
* ``search_runs([experiment ids])``: the active runs, with their tags, params and latest
  metrics (MLflow's ``latest_metrics``; a NaN point reads back as NaN);
* ``get_run(id)``;
* ``list_artifacts(id)`` and ``download_artifacts(id, name, folder)`` for a run whose
  artifacts are a local folder (``file://``), as MLflow's local artifact repository lists
  and copies them. Anything else (``s3://``, a server's ``mlflow-artifacts:``) is left to
  ``MlflowClient``, made when first needed.

It only reads. ``tests/tracking/test_store_reader.py`` checks every answer against
``MlflowClient`` on the same store.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backprop_lab.tracking.local_store import artifact_folder

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str | None
    experiment_id: str
    user_id: str | None
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str | None

    @property
    def run_uuid(self) -> str:
        return self.run_id


@dataclass(frozen=True)
class RunData:
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_dir: bool
    file_size: int | None


class PagedRuns(list):
    """A page of runs, as ``search_runs`` returns them: every run fits in one page here."""

    token: str | None = None


_RUN_COLUMNS = (
    "run_uuid, name, experiment_id, user_id, status, start_time, end_time, lifecycle_stage, "
    "artifact_uri"
)


class StoreReader:
    """The read calls of ``MlflowClient`` that reports make, on a local SQLite store."""

    def __init__(self, database: Path, uri: str):
        self._database = database
        self._uri = uri
        self._mlflow_client = None

    # -----------------------------------------------------------------------------------------
    # Experiments

    def search_experiments(self) -> list[Experiment]:
        rows = self._query(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
            "WHERE lifecycle_stage = 'active' AND workspace = 'default' ORDER BY experiment_id"
        )
        tags = self._experiment_tags()
        return [
            Experiment(str(row[0]), row[1], row[2], row[3], tags.get(row[0], {})) for row in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        rows = self._query(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
            "WHERE experiment_id = ?",
            (_integer(experiment_id),),
        )
        if not rows:
            raise LookupError(f"no experiment {experiment_id!r} in {self._uri}")
        row = rows[0]
        return Experiment(
            str(row[0]), row[1], row[2], row[3], self._experiment_tags().get(row[0], {})
        )

    def _experiment_tags(self) -> dict[int, dict[str, str]]:
        tags: dict[int, dict[str, str]] = {}
        for experiment_id, key, value in self._query(
            "SELECT experiment_id, key, value FROM experiment_tags"
        ):
            tags.setdefault(experiment_id, {})[key] = value
        return tags

    # -----------------------------------------------------------------------------------------
    # Runs

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedRuns:
        """The active runs of the experiments (no filter: reports select runs themselves)."""
        if filter_string:
            raise ValueError("StoreReader.search_runs takes no filter")
        ids = [_integer(experiment_id) for experiment_id in experiment_ids]
        if not ids:
            return PagedRuns()
        marks = ", ".join("?" for _ in ids)
        where = f"experiment_id IN ({marks}) AND lifecycle_stage = 'active'"
        runs = self._runs(where, ids)
        # MLflow's order: the newest first.
        runs.sort(key=lambda run: (-(run.info.start_time or 0), run.info.run_id))
        return PagedRuns(runs if max_results is None else runs[:max_results])

    def get_run(self, run_id: str) -> Run:
        runs = self._runs("run_uuid = ?", [run_id])
        if not runs:
            raise LookupError(f"no run {run_id!r} in {self._uri}")
        return runs[0]

    def _runs(self, where: str, arguments: Sequence[Any]) -> list[Run]:
        connection = self._connect()
        try:
            rows = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where}", arguments
            ).fetchall()
            selected = f"SELECT run_uuid FROM runs WHERE {where}"
            tags = _by_run(
                connection.execute(
                    f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({selected})",
                    arguments,
                )
            )
            params = _by_run(
                connection.execute(
                    f"SELECT run_uuid, key, value FROM params WHERE run_uuid IN ({selected})",
                    arguments,
                )
            )
            metrics = _by_run(
                connection.execute(
                    "SELECT run_uuid, key, CASE WHEN is_nan THEN 'nan' ELSE value END "
                    f"FROM latest_metrics WHERE run_uuid IN ({selected})",
                    arguments,
                ),
                float,
            )
        finally:
            connection.close()
        return [
            Run(
                RunInfo(
                    run_id=row[0],
                    run_name=row[1],
                    experiment_id=str(row[2]),
                    user_id=row[3],
                    status=row[4],
                    start_time=row[5],
                    end_time=row[6],
                    lifecycle_stage=row[7],
                    artifact_uri=row[8],
                ),  # fmt: skip
                RunData(tags.get(row[0], {}), params.get(row[0], {}), metrics.get(row[0], {})),
            )
            for row in rows
        ]

    # -----------------------------------------------------------------------------------------
    # Artifacts

    def _artifact_root(self, run_id: str) -> Path | None:
        rows = self._query("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,))
        if not rows:
            raise LookupError(f"no run {run_id!r} in {self._uri}")
        if not rows[0][0]:
            raise LookupError(f"run {run_id!r} has no artifact location")
        return artifact_folder(rows[0][0])

    def list_artifacts(self, run_id: str) -> list[FileInfo]:
        """The run's top-level artifacts (sorted by name; sizes of files only)."""
        try:
            root = self._artifact_root(run_id)
        except LookupError:
            if self._query("SELECT 1 FROM runs WHERE run_uuid = ?", (run_id,)):
                return []  # no artifact location: nothing listed, as MLflow lists nothing
            raise
        if root is None:
            return self._mlflow().list_artifacts(run_id)
        if not root.is_dir():
            return []
        found = []
        for entry in sorted(os.scandir(root), key=lambda entry: entry.name):
            is_dir = entry.is_dir()
            found.append(FileInfo(entry.name, is_dir, None if is_dir else entry.stat().st_size))
        return found

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str:
        """Copy the run's top-level artifact ``path`` into ``dst_path``; its new path."""
        root = self._artifact_root(run_id)
        if root is None:
            return self._mlflow().download_artifacts(run_id, path, dst_path)
        if "/" in path or path in ("", ".", ".."):
            raise ValueError(f"not a top-level artifact: {path!r}")
        source = root / path
        # Stricter than MLflow, which follows links: a report reads only the run's own files
        # (a link in a shared artifact folder could name any file, or /dev/zero).
        if source.is_symlink() or not source.is_file():
            raise ValueError(f"{path!r} is not a file of the run's artifacts")
        target = Path(dst_path) / path
        shutil.copyfile(source, target)
        return str(target)

    # -----------------------------------------------------------------------------------------

    def _mlflow(self):
        if self._mlflow_client is None:
            from backprop_lab.tracking.store import client

            self._mlflow_client = client(self._uri)
        return self._mlflow_client

    def _connect(self) -> sqlite3.Connection:
        # Opened as MLflow opens it (a read-only connection could not roll back the journal a
        # crashed writer left), and only ever read.
        return sqlite3.connect(self._database, timeout=_TIMEOUT_S)

    def _query(self, sql: str, arguments: Sequence[Any] = ()) -> list[tuple]:
        connection = self._connect()
        try:
            return connection.execute(sql, arguments).fetchall()
        finally:
            connection.close()


def _integer(experiment_id: str) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise LookupError(f"no experiment {experiment_id!r}") from None


def _by_run(rows, convert=lambda value: value) -> dict[str, dict[str, Any]]:
    grouped: dict[str, dict[str, Any]] = {}
    for run_id, key, value in rows:
        grouped.setdefault(run_id, {})[key] = convert(value)
    return grouped
