"""Run records: everything a run will hold in MLflow, kept on disk as training goes.

A record is a folder in the job's output folder:

* ``record.json``: params, tags, status, the MLflow run id once known, the process that owns
  the run (host, pid and the pid's start time), and at the end the run's metrics;
* ``journal.bin``: per-epoch metric rows appended after every chunk of training, so the epochs
  done so far survive ``kill -9``, an OOM kill or a power cut;
* ``artifacts/``: the files the run will log.

It is written before the MLflow run exists (params and tags first), updated as training goes
and closed with a status. Publishing (``publish.py``) sends it to MLflow; a record that could
not be sent, or whose process died, is found and sent later by ``bplab-sync``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from backprop_lab.errors import BackpropLabError

RECORD_FILE = "record.json"
# In a multirun's sweep folder: the parent run its jobs log under (a file, so that jobs on other
# nodes of a shared file system find it too).
PARENT_RUN_FILE = "mlflow_parent_run.json"
JOURNAL_FILE = "journal.bin"
# MLflow rejects longer param values.
_MAX_PARAM_LENGTH = 6000
# Longest run name MLflow accepts.
MAX_RUN_NAME = 250


def _process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot; Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def this_process() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start_ticks(pid)}


def process_alive(process: Mapping[str, Any]) -> bool | None:
    """Whether the process that wrote a record still runs: None when it is on another host."""
    if not process or process.get("host") != socket.gethostname():
        return None
    pid = int(process.get("pid", 0))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    started = process.get("started")
    return started is None or _process_start_ticks(pid) == started


@dataclass
class RunRecord:
    """Everything one MLflow run holds, kept on disk until it is published.

    ``metrics`` maps a metric name to ``[[step, value], ...]``; ``status`` is the MLflow status
    the run ends with and ``reason`` why it ended so, when it did not finish. ``run_id`` is set
    once MLflow has created the run.
    """

    folder: str
    experiment_name: str
    run_name: str
    tracking_uri: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, list[list[float]]] = field(default_factory=dict)
    status: str = "RUNNING"
    reason: str = ""
    run_id: str | None = None
    parent_run_id: str | None = None
    published: bool = False
    children: list[str] = field(default_factory=list)
    # Dataset inputs to log (``native.dataset_inputs``); a grid's children take their parent's.
    inputs: list[dict[str, str]] = field(default_factory=list)
    # One timestamp for all of the run's metric points, so publishing twice adds nothing twice.
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    process: dict[str, Any] = field(default_factory=dict)
    # Columns of journal.bin, one row per epoch, and how many points of it to publish.
    journal_columns: list[str] = field(default_factory=list)
    journal_points: int = 1000
    epochs_done: int = 0
    # Seconds spent in each phase: start_up, compile, train, record, figures, publish.
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def artifact_dir(self) -> Path:
        return Path(self.folder) / "artifacts"

    @property
    def journal_path(self) -> Path:
        return Path(self.folder) / JOURNAL_FILE

    def save(self) -> None:
        """Write ``record.json`` atomically (a crash leaves the old or the new one)."""
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        temporary = Path(self.folder) / f"{RECORD_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
        # A shallow dict: dataclasses.asdict deep-copies every metric point first.
        payload = {name: getattr(self, name) for name in self.__dataclass_fields__}
        temporary.write_text(json.dumps(payload, separators=(",", ":"), allow_nan=True))
        temporary.replace(Path(self.folder) / RECORD_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> RunRecord:
        """Read a record; a damaged one raises a one-line :class:`BackpropLabError`."""
        path = Path(folder) / RECORD_FILE
        try:
            payload = json.loads(path.read_text())
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            payload["folder"] = str(folder)
            known = set(cls.__dataclass_fields__)
            return cls(**{key: value for key, value in payload.items() if key in known})
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
            raise BackpropLabError(f"{path} is not a readable run record ({error})") from None

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall-clock seconds to ``timings[phase]``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started

    # --- as training goes

    def open(self, journal_columns: list[str]) -> None:
        """Start the record: owned by this process, RUNNING, with an empty journal."""
        self.process = this_process()
        self.status = "RUNNING"
        self.journal_columns = list(journal_columns)
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.journal_path.write_bytes(b"")
        self.save()

    def append_epochs(self, rows: np.ndarray) -> None:
        """Append per-epoch rows ``(epochs, columns)`` to the journal (float64, flushed)."""
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        with self.journal_path.open("ab") as journal:
            journal.write(rows.tobytes())
            journal.flush()
        self.epochs_done += len(rows)

    def read_journal(self) -> dict[str, np.ndarray]:
        """The journal's columns; a last row cut short by a crash is dropped."""
        width = len(self.journal_columns)
        if not width or not self.journal_path.is_file():
            return {}
        values = np.fromfile(self.journal_path, dtype=np.float64)
        rows = values[: len(values) // width * width].reshape(-1, width)
        return {name: rows[:, index] for index, name in enumerate(self.journal_columns)}

    def close(self, status: str, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        self.save()

    # --- what MLflow will hold

    def add_params(self, flat: Mapping[str, Any]) -> None:
        for key, value in flat.items():
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            if len(text) <= _MAX_PARAM_LENGTH:
                self.params[key] = text

    def add_curve(self, name: str, values, *, first_step: int = 1, steps=None) -> None:
        """Add a per-epoch curve; non-finite values are left out (MLflow charts skip them)."""
        values = np.asarray(values, dtype=np.float64).ravel()
        if steps is None:
            steps = np.arange(first_step, first_step + len(values))
        steps = np.asarray(steps, dtype=np.int64).ravel()
        count = min(len(steps), len(values))
        # Vectorised: a stopped run's curves are recorded while its user waits.
        finite = np.isfinite(values[:count])
        self.metrics[name] = [
            [step, value]
            for step, value in zip(
                steps[:count][finite].tolist(), values[:count][finite].tolist(), strict=True
            )
        ]

    def add_scalar(self, name: str, value: float | None, step: int = 0) -> None:
        if value is not None and math.isfinite(float(value)):
            self.metrics[name] = [[int(step), float(value)]]

    def metrics_from_journal(self) -> None:
        """Curves from the journal, for a run whose process ended before it wrote them (killed
        outright, or quit at once on a second Ctrl-C), and the epochs it holds."""
        columns = self.read_journal()
        for name, values in columns.items():
            steps = curve_steps(len(values), self.journal_points)
            if np.isfinite(values).any():
                self.add_curve(name, values[steps - 1], steps=steps)
        # The journal is appended after every chunk, record.json less often: trust the journal.
        journaled = max((len(values) for values in columns.values()), default=0)
        self.epochs_done = max(self.epochs_done, journaled)
        if self.epochs_done:
            self.add_scalar("epochs_done", self.epochs_done)


def read_parent_run(sweep_dir: str | Path) -> dict | None:
    """``{"run_id", "tracking_uri", "experiment_name"}`` of a multirun's parent, if any."""
    path = Path(sweep_dir) / PARENT_RUN_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def curve_steps(num_epochs: int, max_points: int) -> np.ndarray:
    """Epochs (1-based) to log when a curve is downsampled; always the first and the last."""
    if num_epochs <= max_points:
        return np.arange(1, num_epochs + 1)
    return np.unique(np.round(np.linspace(1, num_epochs, max_points)).astype(int))


class FoundRecords(NamedTuple):
    """What :func:`find_records` found under some folders."""

    # Not yet in MLflow in full: finished, stopped, or left by a process that died.
    pending: list[RunRecord]
    # Still being written by a live process (or one on another host): left alone.
    running: list[RunRecord]
    # ``(path, why)`` of records that cannot be read.
    damaged: list[tuple[str, str]]


def _orphan_reason(record: RunRecord) -> str:
    process = record.process or {}
    return (
        f"its process (pid {process.get('pid', '?')} on {process.get('host', '?')}) ended without "
        f"closing the run after {record.epochs_done} epochs: killed by SIGKILL, the OOM killer "
        "or a power cut"
    )


def _curves_missing(record: RunRecord) -> bool:
    """Whether a journaled curve with any finite value is missing from the record."""
    missing = [name for name in record.journal_columns if name not in record.metrics]
    if not missing:
        return False
    columns = record.read_journal()
    return any(name in columns and np.isfinite(columns[name]).any() for name in missing)


def find_records(folder: str | Path) -> FoundRecords:
    """Top-level records under ``folder`` that are not (fully) published yet.

    A record left RUNNING by a process that no longer exists is an orphan: it is closed as
    FAILED with the reason, and its journal's epochs become its metrics.
    """
    root = Path(folder)
    if not root.exists():
        raise BackpropLabError(f"folder {str(root)!r} does not exist")
    records, damaged, child_folders = [], [], set()
    for path in sorted(root.rglob(RECORD_FILE)):
        try:
            record = RunRecord.load(path.parent)
        except BackpropLabError as error:
            damaged.append((str(path), str(error)))
            continue
        records.append(record)
        child_folders.update(str((path.parent / child).resolve()) for child in record.children)
    pending, running = [], []
    for record in records:
        if record.published or str(Path(record.folder).resolve()) in child_folders:
            continue
        if record.status == "RUNNING":
            if process_alive(record.process) is not False:
                running.append(record)
                continue
            record.metrics_from_journal()
            record.close("FAILED", _orphan_reason(record))
        elif _curves_missing(record):
            # Closed in a hurry (a second Ctrl-C exits at once), maybe while its curves were
            # being added: they are all in the journal.
            record.metrics_from_journal()
            record.save()
        pending.append(record)
    return FoundRecords(pending, running, damaged)
