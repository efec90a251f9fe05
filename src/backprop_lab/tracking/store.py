"""The MLflow store: where it is, whether it can be used, and creating it safely.

The embedded default store is ``sqlite:///<project root>/mlflow.db`` with artifacts under
``<project root>/mlartifacts``; ``tracking.uri`` or ``MLFLOW_TRACKING_URI`` choose another.

Three guarantees live here:

* **Fail fast.** :func:`check_store` finds an unreachable server, a read-only or non-SQLite
  database file, or an artifact folder that cannot be written in well under two seconds,
  before any training, and says so in one line.
* **Parallel starts.** MLflow creates its tables on the first connection to a fresh SQLite
  file, and two processes doing so at once crash in alembic. :func:`store_lock` serialises
  that first connection across processes with ``flock`` on a sibling ``.lock`` file.
* **Bounded waits.** An HTTP store that goes away is retried twice with short timeouts, not
  for minutes (MLflow's defaults), unless the user set ``MLFLOW_HTTP_REQUEST_*`` themselves.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from backprop_lab.errors import BackpropLabError
from backprop_lab.paths import project_root, safe_name
from backprop_lab.tracking.store_schema import check_mlflow_tables

# MLflow's HTTP client retries a lost server for minutes by default; a job should notice in
# seconds and keep its record for bplab-sync instead.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

# Stores MLflow can use directly: an HTTP(S) tracking server or a SQLAlchemy database.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_SQLITE_HEADER = b"SQLite format 3\x00"
SQLITE_PREFIX = "sqlite:///"


# ---------------------------------------------------------------------------------------------
# Importing MLflow (about a second) on a second thread

_import_thread: threading.Thread | None = None


def start_importing_mlflow() -> None:
    """Begin importing MLflow on a background thread, so it overlaps Hydra and JAX start-up.

    Every use of MLflow in this package waits for that import first: MLflow's modules import
    each other in cycles and break when two threads import them at once.
    """
    global _import_thread
    if _import_thread is None:
        _import_thread = threading.Thread(
            target=_import_mlflow_modules, name="bplab-mlflow-import", daemon=True
        )
        _import_thread.start()


def _import_mlflow_modules() -> None:
    with contextlib.suppress(Exception):
        import mlflow.entities  # noqa: F401
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        import mlflow.tracking  # noqa: F401


def _wait_for_mlflow() -> None:
    if _import_thread is not None:
        _import_thread.join()


# ---------------------------------------------------------------------------------------------
# Where the store is


def default_tracking_uri() -> str:
    return f"{SQLITE_PREFIX}{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store.

    Relative SQLite paths are made absolute, so every working directory shares one store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith(SQLITE_PREFIX) and not uri.startswith(SQLITE_PREFIX + "/"):
        path = Path(uri[len(SQLITE_PREFIX) :])
        if not path.is_absolute():
            uri = f"{SQLITE_PREFIX}{path.resolve()}"
    return uri


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store, else None."""
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a local store live beside its database; a server chooses its own.

    The experiment's folder name is made safe (``..``, slashes and overlong names cannot
    leave ``mlartifacts/``).
    """
    database = sqlite_path(uri)
    if database is None:
        return None
    return (database.parent / "mlartifacts" / safe_name(experiment_name)).as_uri()


def ui_command(uri: str, experiment_id: str | None = None) -> str:
    """The command that opens the MLflow UI on the same store, and where to look there: the
    experiment's runs table in the UI's model-training view (see :mod:`.native`)."""
    from backprop_lab.tracking.native import runs_page

    server = uri.rstrip("/") if is_remote(uri) else "http://127.0.0.1:5000"
    where = (
        f"open {server}/{runs_page(experiment_id)}"
        if experiment_id is not None
        else f"open {server} and choose Model training (top left)"
    )
    if is_remote(uri):
        return where
    return f"mlflow ui --backend-store-uri {uri}, then {where}"


def find_experiment_id(uri: str, name: str) -> str | None:
    """The id of experiment ``name`` in a store that answers, else None (never raises)."""
    with contextlib.suppress(Exception):
        from backprop_lab.tracking import local_store

        database = sqlite_path(uri)
        if local_store.usable(database):
            return local_store.find_experiment(database, name)
        experiment = client(uri).get_experiment_by_name(name)
        return experiment.experiment_id if experiment is not None else None
    return None


# ---------------------------------------------------------------------------------------------
# Whether it can be used


def _scheme(uri: str) -> str:
    return uri.split(":", 1)[0].split("+", 1)[0].lower()


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """Raise a one-line error unless the tracking server answers ``/health``."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as reply:
            if reply.status != 200:
                raise OSError(f"HTTP {reply.status}")
    except (OSError, urllib.error.URLError) as error:
        reason = getattr(error, "reason", error)
        raise BackpropLabError(
            f"cannot reach the MLflow tracking server at {uri} ({reason}); start it "
            "(make tracking-server) or choose another store with tracking.uri=..."
        ) from None


def _check_sqlite_file(uri: str, database: Path) -> None:
    """An existing database file must be SQLite, an MLflow store (or empty) at the installed
    MLflow's schema, and writable (checked in under 2 s)."""
    if not database.is_file() and not database.is_dir():
        # /dev/null or a FIFO: SQLite "opens" it and MLflow fails a minute later, unclearly.
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} is not a regular file; give a database file"
        )
    try:
        with database.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except IsADirectoryError:
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} is a folder, not a database"
        ) from None
    except OSError as error:
        raise BackpropLabError(
            f"tracking.uri={uri}: cannot read {database} ({error.strerror})"
        ) from None
    if header and header != _SQLITE_HEADER:
        raise BackpropLabError(
            f"tracking.uri={uri}: {database} is not an SQLite database; give another file"
        )
    # A read-only file or file system (SQLite also writes journal files beside the database).
    for path in (database, database.parent):
        if not os.access(path, os.W_OK):
            raise BackpropLabError(
                f"tracking.uri={uri}: the store cannot be written ({path} is read-only); check "
                "its permissions or choose another store"
            )
    try:
        connection = sqlite3.connect(database, timeout=1.5)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
            if header:
                check_mlflow_tables(uri, database, connection, store_lock(uri))
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise BackpropLabError(
            f"tracking.uri={uri}: the store cannot be written ({error}); check the file's "
            "permissions or choose another store"
        ) from None


def _check_writable_folder(uri: str, folder: Path, what: str) -> None:
    if folder.exists() and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise BackpropLabError(f"tracking.uri={uri}: {what} {folder} cannot be written")


def check_sqlite_store(uri: str, *, create: bool) -> None:
    """A local store's folder, database file and artifact folder must be usable.

    With ``create``, the store's own folder is made if missing, but not a chain of folders:
    a typo should not make ``/nonexistent/dir`` appear.
    """
    database = sqlite_path(uri)
    if database is None:
        return
    if create:
        try:
            database.parent.mkdir(exist_ok=True)
        except OSError as error:
            raise BackpropLabError(
                f"tracking.uri={uri}: cannot create folder {database.parent} ({error.strerror})"
            ) from None
    if database.exists():
        _check_sqlite_file(uri, database)
    elif create:
        _check_writable_folder(uri, database.parent, "the folder")
    _check_writable_folder(uri, database.parent / "mlartifacts", "the artifact folder")


def check_store(uri: str, *, create: bool = True, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store cannot be used."""
    scheme = _scheme(uri)
    if scheme not in ("http", "https", *_DATABASE_SCHEMES):
        raise BackpropLabError(
            f"tracking.uri={uri} is not a store backprop-lab can use: give sqlite:///ABSOLUTE/PATH.db, "
            "a database URI (postgresql+psycopg2://...) or a tracking server (http://HOST:PORT)"
        )
    _check_uri_syntax(uri)
    if is_remote(uri):
        check_server(uri, timeout_s)
    elif scheme == "sqlite":
        if sqlite_path(uri) is None or str(sqlite_path(uri)) in ("", ":memory:"):
            # SQLAlchemy reads ``sqlite://`` as an in-memory database: every run recorded there
            # would vanish when the command ends.
            raise BackpropLabError(
                f"tracking.uri={uri} is an in-memory database, which keeps nothing after the "
                "command ends; give sqlite:///ABSOLUTE/PATH.db"
            )
        check_sqlite_store(uri, create=create)
    else:
        check_database_driver(uri)


def _check_uri_syntax(uri: str) -> None:
    """A malformed address (``http://[::1``) must fail here, not deep inside urllib."""
    import urllib.parse

    try:
        urllib.parse.urlsplit(uri).port  # noqa: B018 (parsing the port is the check)
    except ValueError as error:
        raise BackpropLabError(f"tracking.uri={uri} is not a valid address ({error})") from None


def check_database_driver(uri: str) -> None:
    """A database store needs its SQLAlchemy dialect and Python driver; without them MLflow
    fails with a ModuleNotFoundError traceback, and only after training."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, ValueError) as error:
        raise BackpropLabError(
            f"tracking.uri={uri} is not a valid database URI ({error})"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as error:
        module = getattr(error, "name", None) or str(error)
        raise BackpropLabError(
            f"tracking.uri={uri}: the {url.get_backend_name()} driver {dialect.driver!r} "
            f"(Python module {module!r}) is not installed; install it, name an installed driver "
            f"({url.get_backend_name()}+DRIVER://...) or choose another store"
        ) from None


def check_store_exists(uri: str) -> None:
    """For commands that only read: the store must already exist (never create a typo'd one)."""
    database = sqlite_path(uri)
    if database is not None and not database.exists():
        raise BackpropLabError(
            f"no MLflow store at {uri}: {database} does not exist (run bplab-train or make demo first)"
        )
    check_store(uri, create=False)


# ---------------------------------------------------------------------------------------------
# Errors from MLflow, sorted for people

_UNREACHABLE_MARKERS = (
    "connect",
    "max retries",
    "unable to open",
    "timed out",
    "api request",
    "refused",
    "unavailable",
    "disk i/o",
)
_FULL_MARKERS = ("database or disk is full", "no space left", "disk quota")


def _error_text(error: BaseException) -> str:
    texts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        texts.append(f"{type(error).__name__}: {error}".lower())
        error = error.__cause__ or error.__context__
    return " | ".join(texts)


def is_store_full_error(error: BaseException) -> bool:
    """Whether an exception means the store's disk (or quota) is full."""
    if isinstance(error, OSError) and error.errno in (28, 122):  # ENOSPC, EDQUOT
        return True
    return any(marker in _error_text(error) for marker in _FULL_MARKERS)


def is_unreachable_error(error: BaseException) -> bool:
    """Whether an exception from MLflow means the store could not be reached (vs. a bug)."""
    if isinstance(error, OSError | ConnectionError | TimeoutError):
        return True
    name = type(error).__name__
    if name in ("OperationalError", "MlflowException", "RestException"):
        text = str(error).lower()
        return any(marker in text for marker in _UNREACHABLE_MARKERS + _FULL_MARKERS)
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and is_unreachable_error(cause)


# ---------------------------------------------------------------------------------------------
# Creating the store and its experiments


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<database>.lock`` (a no-op for other stores)."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    import fcntl

    with open(f"{database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


_ready_stores: set[str] = set()


def client(uri: str):
    """An ``MlflowClient`` for ``uri``. The first one of a process connects under the store
    lock, so a fresh SQLite file gets its tables exactly once."""
    _wait_for_mlflow()
    from mlflow.tracking import MlflowClient

    if uri in _ready_stores or sqlite_path(uri) is None:
        return MlflowClient(tracking_uri=uri)
    with store_lock(uri):
        # The client, or its first call, makes the SQLAlchemy engine, which creates or upgrades
        # the tables: both happen under the lock.
        mlflow_client = MlflowClient(tracking_uri=uri)
        mlflow_client.search_experiments(max_results=1)
    _ready_stores.add(uri)
    return mlflow_client


def ensure_experiment(uri: str, name: str) -> str:
    """Create the store and the experiment if needed; return the experiment id.

    The experiment is tagged as model training (:mod:`.native`), so MLflow's UI opens it on its
    runs; one made by an older version gets the tag now, unless someone chose a kind for it.
    """
    from backprop_lab.tracking.native import EXPERIMENT_KIND_TAG, MODEL_TRAINING

    mlflow_client = client(uri)
    with store_lock(uri):
        existing = mlflow_client.get_experiment_by_name(name)
        if existing is not None:
            if existing.lifecycle_stage == "deleted":
                mlflow_client.restore_experiment(existing.experiment_id)
            if EXPERIMENT_KIND_TAG not in existing.tags:
                mlflow_client.set_experiment_tag(
                    existing.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING
                )
            return existing.experiment_id
        try:
            return mlflow_client.create_experiment(
                name,
                artifact_location=artifact_location(uri, name),
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
            )
        except Exception:
            # Another process (on another host) created it between our look-up and create.
            existing = mlflow_client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id
