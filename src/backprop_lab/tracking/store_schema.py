"""Whether an existing SQLite file is an MLflow store this MLflow can open.

MLflow takes over any SQLite file it is given: a user's own database gains MLflow's tables
beside theirs; a store whose tables were dropped, or one made by another MLflow version, fails
with a traceback (``OperationalError``, ``Detected out-of-date database schema``), in
``bplab-train`` only after training. :func:`check_mlflow_tables` says which in one line first.

The installed MLflow's schema revision is read from its Alembic migration files (a few
milliseconds), without importing MLflow.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from backprop_lab.errors import BackpropLabError

# Tables every MLflow store has had since its first schema.
_CORE_TABLES = ("alembic_version", "experiments", "runs")
_MLFLOW_TABLES = frozenset({*_CORE_TABLES, "metrics", "params", "tags", "experiment_tags"})
_REVISION = re.compile(r"^(down_)?revision\s*=\s*['\"]([0-9a-f]+)['\"]", re.MULTILINE)


@functools.cache
def installed_revisions() -> tuple[str | None, frozenset[str]]:
    """The installed MLflow's head schema revision and all its revisions ((None, {}) if unknown)."""
    try:
        spec = importlib.util.find_spec("mlflow")
        roots = list(spec.submodule_search_locations or []) if spec else []
    except (ImportError, ValueError):
        return None, frozenset()
    revisions, parents = set(), set()
    for root in roots:
        for path in (Path(root) / "store" / "db_migrations" / "versions").glob("*.py"):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for down, revision in _REVISION.findall(text):
                (parents if down else revisions).add(revision)
    heads = revisions - parents
    return (heads.pop() if len(heads) == 1 else None), frozenset(revisions)


def check_mlflow_tables(
    uri: str, database: Path, connection: sqlite3.Connection, lock: AbstractContextManager
) -> None:
    """An SQLite file with tables must hold MLflow's, at the installed MLflow's revision.

    ``lock`` is the store's lock: MLflow's tables are looked at again under it, since another
    process may be creating them right now and a half-made store is not a damaged one.
    """
    tables = _tables(connection)
    if tables and not _MLFLOW_TABLES.intersection(tables):
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} is an SQLite database but not an MLflow store "
            f"(it holds {shown}); give another file"
        )
    if not tables:
        return  # a fresh file: MLflow creates its tables
    with lock:
        tables = _tables(connection)
        missing = [name for name in _CORE_TABLES if name not in tables]
        query = "SELECT version_num FROM alembic_version"
        row = None if missing else connection.execute(query).fetchone()
    if missing or row is None:
        lost = ", ".join(missing) or "alembic_version's row"
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} is a damaged MLflow store ({lost} missing); "
            "restore it from a backup or choose another store"
        )
    _check_revision(uri, database, row[0])


def _tables(connection: sqlite3.Connection) -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    return sorted(name for (name,) in connection.execute(query).fetchall())


def _check_revision(uri: str, database: Path, revision: str) -> None:
    head, known = installed_revisions()
    if head is None or revision == head:
        return
    if revision in known:
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} was made by an older MLflow (schema {revision}, "
            f"this MLflow's is {head}); back it up and run `mlflow db upgrade {uri}`, or "
            "choose another store"
        )
    raise BackpropLabError(
        f"tracking.uri={uri}: {database} was made by a newer MLflow (schema {revision}, "
        f"unknown to the installed one); use that MLflow version or choose another store"
    )
