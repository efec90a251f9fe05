"""Helpers for tests that run ``bplab-train`` as a real process and inject faults into it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def command(name: str) -> str:
    return str(BIN / name)


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    env.update(extra)
    return env


def start_training(
    folder: Path, *overrides: str, store: str | None = None, **popen
) -> subprocess.Popen:
    """``bplab-train OVERRIDES`` started in ``folder`` (its outputs/ land there)."""
    store = store or f"sqlite:///{folder / 'mlflow.db'}"
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [command("bplab-train"), *overrides, f"tracking.uri={store}"],
        cwd=folder,
        stdout=popen.pop("stdout", open(folder / "stdout.txt", "w")),  # noqa: SIM115
        stderr=popen.pop("stderr", open(folder / "stderr.txt", "w")),  # noqa: SIM115
        env=popen.pop("env", environment()),
        **popen,
    )


def output(folder: Path) -> tuple[str, str]:
    return (folder / "stdout.txt").read_text(), (folder / "stderr.txt").read_text()


def journals(folder: Path) -> list[Path]:
    return sorted(folder.rglob("journal.bin"))


def wait_for_training(folder: Path, process: subprocess.Popen, timeout_s: float = 90) -> Path:
    """Wait until the run's journal holds at least one chunk of epochs; return the journal."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for journal in journals(folder):
            if journal.stat().st_size > 0:
                return journal
        if process.poll() is not None:
            raise AssertionError(f"bplab-train ended early: {output(folder)}")
        time.sleep(0.05)
    raise AssertionError(f"no epoch was journaled within {timeout_s} s: {output(folder)}")


def wait_for_exit(process: subprocess.Popen, timeout_s: float) -> float:
    """Seconds until ``process`` exits; kills it and fails if it takes longer than ``timeout_s``."""
    started = time.monotonic()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the process did not exit within {timeout_s} s") from None
    return time.monotonic() - started


def runs(uri: str) -> list:
    """Every run of every experiment in the store.

    The client comes from the project's own opener: a test that polls a fresh SQLite store
    while the processes under test create it must take the same lock they do, or its own
    connection races their table migration."""
    from mlflow.entities import ViewType

    from backprop_lab.tracking.store import client as locked_client

    client = locked_client(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)


def metric_steps(uri: str, run_id: str, name: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(point.step for point in MlflowClient(uri).get_metric_history(run_id, name))


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SqliteServer:
    """``mlflow server`` on loopback over an SQLite file, in its own process group."""

    def __init__(self, folder: Path, database: Path):
        self.folder, self.database, self.port = folder, database, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120) -> None:
        import urllib.request

        self.process = subprocess.Popen(
            [
                command("mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.database}",
                "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=environment(),
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise AssertionError("mlflow server did not start")

    def kill(self) -> None:
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class LineReader:
    """Collect a stream's lines on a thread, each with the time it arrived."""

    def __init__(self, stream):
        import threading

        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line))

    def wait_for(self, text: str, timeout_s: float) -> float:
        """The time the first line containing ``text`` arrived (waiting up to ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for arrived, line in list(self.lines):
                if text in line:
                    return arrived
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout_s} s: {self.text}")

    @property
    def text(self) -> str:
        return "".join(line for _, line in self.lines)
