"""MLflow tracking: the store, run records, and the multirun callback.

Every run is first written as a *record* — a folder holding its params, tags, per-epoch
metrics and artifacts — in the job's output folder, and then *published* to MLflow in a few
batched calls (``MlflowClient.log_batch``; one ``log_metric`` call per epoch would cost 5–10 ms
each on SQLite). A record that could not be published, because the tracking server went away,
stays on disk marked pending, and ``bplab-sync`` publishes it later: no finished run is lost.

The embedded default store is ``sqlite:///<project root>/mlflow.db`` with artifacts under
``<project root>/mlartifacts``; ``tracking.uri`` or ``MLFLOW_TRACKING_URI`` choose another.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backprop_lab.errors import BackpropLabError

PARENT_RUN_FILE = "mlflow_parent_run.json"
RECORD_FILE = "record.json"
TAG_PREFIX = "backprop_lab."
# MLflow rejects longer param values.
_MAX_PARAM_LENGTH = 6000


# ---------------------------------------------------------------------------------------------
# Importing MLflow (about a second) on a second thread

_import_thread = None


def start_importing_mlflow() -> None:
    """Begin importing MLflow on a background thread, so it overlaps Hydra and JAX start-up.

    Every use of MLflow in this module waits for that import first: MLflow's modules import
    each other in cycles and break when two threads import them at once.
    """
    global _import_thread
    import threading

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
# The store


def default_tracking_uri() -> str:
    from backprop_lab.config import project_root

    return f"sqlite:///{project_root() / 'mlflow.db'}"


def resolve_tracking_uri(configured: str | None = None) -> str:
    """``tracking.uri`` if set, else ``$MLFLOW_TRACKING_URI``, else the embedded SQLite store.

    Relative SQLite paths are made absolute, so every working directory shares one store.
    """
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_absolute():
            uri = f"sqlite:///{path.resolve()}"
    return uri


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def artifact_location(uri: str, experiment_name: str) -> str | None:
    """Artifacts of a local store live beside its database; a server chooses its own."""
    if is_remote(uri) or not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :])
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in experiment_name)
    return (database.parent / "mlartifacts" / slug).as_uri()


# Stores MLflow can use directly: an HTTP(S) tracking server or a SQLAlchemy database.
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when the tracking store cannot be used."""
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in ("http", "https", *_DATABASE_SCHEMES):
        raise BackpropLabError(
            f"tracking.uri={uri} is not a store backprop-lab can use: give sqlite:///ABSOLUTE/PATH.db, "
            "a database URI (postgresql+psycopg2://...) or a tracking server (http://HOST:PORT)"
        )
    if is_remote(uri):
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
    elif uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///") :])
        # Create the store's own folder, but not a chain of them: a typo should not make
        # /nonexistent/dir appear.
        try:
            database.parent.mkdir(exist_ok=True)
        except OSError as error:
            raise BackpropLabError(
                f"tracking.uri={uri}: cannot create folder {database.parent} ({error.strerror})"
            ) from None


def check_store_exists(uri: str) -> None:
    """For commands that only read: the store must already exist (never create a typo'd one)."""
    if uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///") :])
        if not database.is_file():
            raise BackpropLabError(
                f"no MLflow store at {uri}: {database} does not exist (run bplab-train or make demo first)"
            )
    else:
        check_reachable(uri)


def is_unreachable_error(error: BaseException) -> bool:
    """Whether an exception from MLflow means the store could not be reached (vs. a bug)."""
    if isinstance(error, OSError | ConnectionError | TimeoutError):
        return True
    name = type(error).__name__
    if name in ("OperationalError", "MlflowException", "RestException"):
        text = str(error).lower()
        markers = (
            "connect",
            "max retries",
            "unable to open",
            "timed out",
            "api request",
            "refused",
            "unavailable",
            "disk i/o",
        )
        return any(marker in text for marker in markers)
    cause = error.__cause__ or error.__context__
    return cause is not None and cause is not error and is_unreachable_error(cause)


def client(uri: str):
    _wait_for_mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(uri: str, name: str) -> str:
    """Create the store and the experiment if needed; return the experiment id.

    Call it once in the parent process before parallel jobs start: MLflow's first connection
    to a fresh SQLite file creates its tables, and two processes doing so at once crash.
    """
    mlflow_client = client(uri)
    existing = mlflow_client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location(uri, name))
    except Exception:
        # Another process created it between our look-up and our create.
        existing = mlflow_client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


# ---------------------------------------------------------------------------------------------
# Provenance


def _git(*args: str) -> str | None:
    from backprop_lab.config import project_root

    try:
        done = subprocess.run(
            ["git", *args],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance_tags(precision: str, seed: int) -> dict[str, str]:
    """Git commit and dirtiness, library versions, JAX backend and device, precision, seed."""
    from importlib.metadata import PackageNotFoundError, version

    import jax

    tags: dict[str, str] = {}
    commit = _git("rev-parse", "HEAD")
    tags["mlflow.source.git.commit"] = commit or "unknown"
    tags[TAG_PREFIX + "git_commit"] = commit or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    tags[TAG_PREFIX + "git_dirty"] = "unknown" if status is None else str(bool(status)).lower()
    for package in ("jax", "jaxlib", "optax", "mlflow", "hydra-core", "numpy", "backprop-lab"):
        try:
            tags[f"{TAG_PREFIX}version.{package}"] = version(package)
        except PackageNotFoundError:
            tags[f"{TAG_PREFIX}version.{package}"] = "not installed"
    device = jax.devices()[0]
    tags[TAG_PREFIX + "jax_backend"] = jax.default_backend()
    tags[TAG_PREFIX + "jax_device"] = f"{device.platform}:{getattr(device, 'device_kind', device)}"
    tags[TAG_PREFIX + "jax_device_count"] = str(jax.device_count())
    tags[TAG_PREFIX + "python"] = platform.python_version()
    tags[TAG_PREFIX + "precision"] = precision
    tags[TAG_PREFIX + "seed"] = str(seed)
    return tags


def config_hash(container: Mapping[str, Any]) -> str:
    """A stable hash of the parts of a config that change results (not tracking settings)."""
    relevant = {
        key: value
        for key, value in container.items()
        if key not in ("tracking", "resume", "description", "report")
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


# ---------------------------------------------------------------------------------------------
# Records


@dataclass
class RunRecord:
    """Everything one MLflow run holds, kept on disk until it is published.

    ``metrics`` maps a metric name to ``[[step, value], ...]``; ``status`` is the MLflow status
    the run ends with. ``run_id`` is set once MLflow has created the run.
    """

    folder: str
    experiment_name: str
    run_name: str
    tracking_uri: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[list[float]]] = field(default_factory=dict)
    status: str = "RUNNING"
    run_id: str | None = None
    parent_run_id: str | None = None
    published: bool = False
    children: list[str] = field(default_factory=list)
    # One timestamp for all of the run's metric points, so publishing twice adds nothing twice.
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def artifact_dir(self) -> Path:
        return Path(self.folder) / "artifacts"

    def save(self) -> None:
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        temporary = Path(self.folder) / (RECORD_FILE + ".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1, allow_nan=True))
        temporary.replace(Path(self.folder) / RECORD_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        payload = json.loads((Path(folder) / RECORD_FILE).read_text())
        payload["folder"] = str(folder)
        return cls(**payload)

    def add_params(self, flat: Mapping[str, Any]) -> None:
        for key, value in flat.items():
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            if len(text) <= _MAX_PARAM_LENGTH:
                self.params[key] = text

    def add_curve(self, name: str, values, *, first_step: int = 1, steps=None) -> None:
        """Add a per-epoch curve; non-finite values are left out (MLflow charts skip them)."""
        import math

        steps = range(first_step, first_step + len(values)) if steps is None else steps
        self.metrics[name] = [
            [int(step), float(value)]
            for step, value in zip(steps, values, strict=False)
            if math.isfinite(float(value))
        ]

    def add_scalar(self, name: str, value: float, step: int = 0) -> None:
        import math

        if value is not None and math.isfinite(float(value)):
            self.metrics[name] = [[int(step), float(value)]]


def create_run(record: RunRecord) -> str:
    """Create the MLflow run (status RUNNING) with its params and tags; return its id."""
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import Param

    experiment_id = ensure_experiment(record.tracking_uri, record.experiment_name)
    tags = dict(record.tags)
    if record.parent_run_id:
        tags["mlflow.parentRunId"] = record.parent_run_id
    run = mlflow_client.create_run(experiment_id, run_name=record.run_name, tags=tags)
    record.run_id = run.info.run_id
    params = [Param(key, value) for key, value in record.params.items()]
    mlflow_client.log_batch(record.run_id, params=params)
    return record.run_id


def publish_metrics(record: RunRecord) -> None:
    """Send the record's metrics and tags (creating the run if MLflow does not know it yet)."""
    if record.run_id is None:
        create_run(record)
    mlflow_client = client(record.tracking_uri)
    from mlflow.entities import Metric, RunTag

    run = mlflow_client.get_run(record.run_id)
    if run.info.status != "RUNNING":
        # A run closed earlier (say KILLED when its job lost the server) is reopened so its
        # status can tell what really happened.
        mlflow_client.update_run(record.run_id, status="RUNNING")
    metrics = [
        Metric(name, value, record.timestamp_ms, int(step))
        for name, points in record.metrics.items()
        for step, value in points
    ]
    tags = [RunTag(key, value) for key, value in record.tags.items()]
    mlflow_client.log_batch(record.run_id, metrics=metrics, tags=tags)


def publish_artifacts_and_close(record: RunRecord) -> None:
    """Send the artifacts, publish the children, and close the run with its status."""
    mlflow_client = client(record.tracking_uri)
    if record.artifact_dir.is_dir() and any(record.artifact_dir.iterdir()):
        mlflow_client.log_artifacts(record.run_id, str(record.artifact_dir))
    for child in record.children:
        child_record = RunRecord.load(Path(record.folder) / child)
        if not child_record.published:
            child_record.parent_run_id = record.run_id
            publish(child_record)
    mlflow_client.set_terminated(record.run_id, status=record.status)
    record.published = True
    record.save()


def publish(record: RunRecord) -> None:
    """Send a whole record to MLflow: metrics, tags, artifacts, children and final status."""
    publish_metrics(record)
    publish_artifacts_and_close(record)


def end_run(uri: str, run_id: str, status: str, error: str | None = None) -> None:
    """Close a run as FAILED or KILLED, keeping the error as a tag; never raises."""
    with contextlib.suppress(Exception):
        mlflow_client = client(uri)
        if error:
            mlflow_client.set_tag(run_id, TAG_PREFIX + "error", error[:5000])
        mlflow_client.set_terminated(run_id, status=status)


def pending_records(folder: str | Path) -> Iterator[RunRecord]:
    """Top-level records under ``folder`` that have not been published yet."""
    root = Path(folder)
    if not root.exists():
        raise BackpropLabError(f"folder {str(root)!r} does not exist")
    child_folders = set()
    found = sorted(root.rglob(RECORD_FILE))
    records = []
    for path in found:
        record = RunRecord.load(path.parent)
        records.append(record)
        child_folders.update(str((path.parent / child).resolve()) for child in record.children)
    for record in records:
        if not record.published and str(Path(record.folder).resolve()) not in child_folders:
            yield record


# ---------------------------------------------------------------------------------------------
# Hydra multirun: one parent run, created before the jobs start


def read_parent_run(sweep_dir: str | Path) -> dict | None:
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - Hydra is a dependency
    _HydraCallback = object


class MultirunTrackingCallback(_HydraCallback):
    """Before a multirun's jobs start: create the store, the experiment and a parent run.

    Jobs find the parent's id in ``<sweep dir>/mlflow_parent_run.json`` (a file, so it works
    for local processes and for cluster jobs on a shared file system alike) and log as its
    children. When the multirun ends the parent is closed FINISHED, or FAILED if a job failed;
    if the launcher process is interrupted, KILLED.
    """

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        uri = resolve_tracking_uri(config.tracking.uri)
        check_reachable(uri)
        experiment_name = config.tracking.experiment_name or config.name
        ensure_experiment(uri, experiment_name)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = [
            item
            for item in OmegaConf.select(config, "hydra.overrides.task") or []
            if not item.startswith("tracking.")
        ]
        record = RunRecord(
            folder=str(sweep_dir / "parent_record"),
            experiment_name=experiment_name,
            run_name=f"multirun {' '.join(overrides)}".strip()[:250],
            tracking_uri=uri,
            tags={
                TAG_PREFIX + "kind": "multirun",
                TAG_PREFIX + "overrides": " ".join(overrides)[:5000],
            },
        )
        create_run(record)
        self._uri, self._run_id, self._sweep_dir = uri, record.run_id, sweep_dir
        (sweep_dir / PARENT_RUN_FILE).write_text(
            json.dumps(
                {"run_id": record.run_id, "tracking_uri": uri, "experiment_name": experiment_name}
            )
        )
        atexit.register(self._close_if_running, "KILLED")

    def on_multirun_end(self, config, **kwargs) -> None:
        self._close_if_running(None)
        with contextlib.suppress(Exception):
            status = client(self._uri).get_run(self._run_id).info.status
            where = (
                f"open {self._uri}"
                if is_remote(self._uri)
                else f"mlflow ui --backend-store-uri {self._uri}"
            )
            print(f"multirun parent run {self._run_id} ({status}); its jobs are its child runs")
            print(f"MLflow UI: {where}")

    def _close_if_running(self, status: str | None) -> None:
        with contextlib.suppress(Exception):
            mlflow_client = client(self._uri)
            if mlflow_client.get_run(self._run_id).info.status != "RUNNING":
                return
            if status is None:
                children = mlflow_client.search_runs(
                    [mlflow_client.get_run(self._run_id).info.experiment_id],
                    filter_string=f"tags.mlflow.parentRunId = '{self._run_id}'",
                )
                failed = any(child.info.status in ("FAILED", "KILLED") for child in children)
                status = "FAILED" if failed else "FINISHED"
            mlflow_client.set_terminated(self._run_id, status=status)
