"""Fault injection: every README promise about interruptions, tested under its fault.

Each case runs ``bplab-train`` (or ``bplab-sync``) as a real process and does to it what a
user, a cluster or the kernel does: Ctrl-C, SIGTERM, ``kill -9``, many processes started at
once on a fresh store, a store that cannot be written, a truncated record, a huge network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faults import (
    LineReader,
    SqliteServer,
    command,
    environment,
    journals,
    metric_steps,
    output,
    runs,
    start_training,
    wait_for_exit,
    wait_for_training,
)

# Runs that would train for hours: 200 samples per epoch, three million epochs.
LONG_SINGLE = [
    "experiment=xor_mlp",
    "data=moons",
    "data.test_fraction=0",
    "training.epochs=3000000",
]
LONG_GRID = [*LONG_SINGLE, "sweep.learning_rates=[0.1,0.5,2]", "sweep.seeds=16"]
STOP_SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143}


@pytest.fixture(autouse=True)
def _store(tmp_path, initialized_store):
    """Most cases start from a store whose tables exist: making them takes MLflow seconds,
    which would hide the timings under test. Parallel starts use a fresh one of their own."""
    shutil.copyfile(initialized_store, tmp_path / "mlflow.db")


def _the_run(uri: str):
    top = [run for run in runs(uri) if "mlflow.parentRunId" not in run.data.tags]
    assert len(top) == 1, [run.info.run_name for run in top]
    return top[0]


@pytest.mark.parametrize("name", STOP_SIGNALS)
@pytest.mark.parametrize("overrides", [LONG_SINGLE, LONG_GRID], ids=["single", "grid"])
def test_a_signal_stops_a_long_run_within_two_seconds_and_records_it_killed(
    tmp_path, name, overrides
):
    process = start_training(tmp_path, *overrides)
    wait_for_training(tmp_path, process)
    time.sleep(0.5)  # a few chunks in
    process.send_signal(STOP_SIGNALS[name])
    assert wait_for_exit(process, 10) < 2.0
    assert process.returncode == EXIT_STATUS[name], output(tmp_path)
    stdout, stderr = output(tmp_path)
    assert "Traceback" not in stderr
    assert "KILLED after" in stdout

    run = _the_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "KILLED"
    assert name in run.data.tags["backprop_lab.error"]
    epochs_done = int(run.data.metrics["epochs_done"])
    assert 0 < epochs_done < 3_000_000
    if overrides is LONG_SINGLE:
        steps = metric_steps(f"sqlite:///{tmp_path / 'mlflow.db'}", run.info.run_id, "loss")
        assert steps[0] == 1 and steps[-1] == epochs_done
    else:
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        children = [r for r in runs(store) if r.info.run_id != run.info.run_id]
        assert len(children) == 3
        assert {child.info.status for child in children} == {"KILLED"}


def test_a_second_ctrl_c_exits_at_once_and_the_run_is_still_killed(tmp_path):
    process = start_training(tmp_path, *LONG_SINGLE)
    journal = wait_for_training(tmp_path, process)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    time.sleep(0.4)  # a person pressing twice; closer signals count as one
    process.send_signal(signal.SIGINT)
    assert wait_for_exit(process, 10) < 1.5
    assert process.returncode == 130
    (record,) = tmp_path.rglob("record.json")
    assert json.loads(record.read_text())["status"] == "KILLED"
    # Whatever the store had time to receive, bplab-sync completes it: KILLED, never RUNNING.
    subprocess.run([command("bplab-sync"), str(tmp_path / "outputs")], env=environment())
    run = _the_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "KILLED"
    assert "second signal" in run.data.tags["backprop_lab.error"]
    # The epochs trained before the exit are not lost: the journal's curves reach the store.
    rows = journal.stat().st_size // (4 * 8)  # four float64 columns per epoch
    steps = metric_steps(f"sqlite:///{tmp_path / 'mlflow.db'}", run.info.run_id, "loss")
    assert steps[0] == 1 and steps[-1] == rows > 0
    assert run.data.metrics["epochs_done"] == rows


def _wait_for_run_in_store(uri: str, count: int = 1, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while len(runs(uri)) < count:
        assert time.monotonic() < deadline, "the run never reached the store"
        time.sleep(0.1)


def test_after_kill_9_sync_closes_the_run_and_publishes_the_epochs_done(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = start_training(tmp_path, *LONG_SINGLE)
    journal = wait_for_training(tmp_path, process)
    _wait_for_run_in_store(uri)
    time.sleep(0.5)
    process.kill()
    process.wait()
    assert _the_run(uri).info.status == "RUNNING"  # what kill -9 leaves behind

    done = subprocess.run(
        [command("bplab-sync"), str(tmp_path / "outputs")],
        capture_output=True,
        text=True,
        env=environment(),
    )
    assert done.returncode == 0, done.stderr
    run = _the_run(uri)
    assert run.info.status == "FAILED"
    assert "SIGKILL" in run.data.tags["backprop_lab.error"]
    rows = journal.stat().st_size // (4 * 8)  # four float64 columns per epoch
    steps = metric_steps(uri, run.info.run_id, "loss")
    assert steps[0] == 1 and steps[-1] == rows > 0
    assert run.data.metrics["epochs_done"] == rows
    assert f"after {rows} epochs" in run.data.tags["backprop_lab.error"]
    # Nothing is left to do, and nothing is published twice.
    again = subprocess.run(
        [command("bplab-sync"), str(tmp_path / "outputs")], capture_output=True, text=True
    )
    assert "nothing to sync" in again.stdout


def test_sync_check_closes_the_runs_whose_process_died(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dead = start_training(tmp_path / "dead", *LONG_SINGLE, store=uri)
    alive = start_training(tmp_path / "alive", *LONG_SINGLE, store=uri)
    wait_for_training(tmp_path / "dead", dead)
    wait_for_training(tmp_path / "alive", alive)
    _wait_for_run_in_store(uri, 2)
    dead.kill()
    dead.wait()
    try:
        done = subprocess.run(
            [command("bplab-sync"), "--check", "--tracking-uri", uri],
            capture_output=True,
            text=True,
            env=environment(),
        )
        assert done.returncode == 0, done.stderr
        statuses = {run.info.run_id: run.info.status for run in runs(uri)}
        assert sorted(statuses.values()) == ["FAILED", "RUNNING"]
        assert "closed" in done.stdout and "still running" in done.stdout
    finally:
        alive.send_signal(signal.SIGINT)
        wait_for_exit(alive, 10)


@pytest.mark.parametrize("count", [3, pytest.param(8, marks=pytest.mark.slow)], ids=["3", "8"])
def test_processes_started_together_on_a_fresh_store_all_finish(tmp_path, count):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    quick = ["experiment=xor_mlp", "training.epochs=50", "tracking.plots=false"]
    processes = [
        start_training(tmp_path, *quick, f"seed={seed}", store=uri,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for seed in range(count)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    found = runs(uri)
    assert len(found) == count and {run.info.status for run in found} == {"FINISHED"}
    records = sorted(tmp_path.rglob("record.json"))
    assert len({record.parent.parent for record in records}) == count  # one folder each


def test_a_locked_store_fails_in_one_line_within_two_seconds(tmp_path):
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("create table t (x)").connection.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, time
            connection = sqlite3.connect({str(database)!r}, isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        done = subprocess.run(
            [command("bplab-train"), "experiment=xor_mlp", f"tracking.uri=sqlite:///{database}"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=environment(),
        )
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be written" in lines[0], done.stderr
    assert elapsed < 2 + _START_UP_S
    assert not (tmp_path / "outputs").exists()


# bplab-train's own start-up (Python, Hydra, JAX) before it can check anything.
_START_UP_S = 4.0


@contextlib.contextmanager
def _read_only(folder: Path):
    """``folder`` as a read-only bind mount (read-only even for root), or skip the test."""
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_store_fails_in_one_line_within_two_seconds(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copyfile(tmp_path / "mlflow.db", store / "mlflow.db")
    with _read_only(store):
        started = time.monotonic()
        done = subprocess.run(
            [
                command("bplab-train"),
                "experiment=xor_mlp",
                f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=environment(),
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be written" in lines[0], done.stderr
    assert elapsed < 2 + _START_UP_S
    assert not (tmp_path / "outputs").exists()


def test_sync_publishes_the_good_record_and_names_the_truncated_one(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    quick = ["experiment=xor_mlp", "training.epochs=20", "tracking.plots=false"]
    for name in ("good", "bad"):
        process = start_training(tmp_path / name, *quick, store=uri)
        assert process.wait(timeout=120) == 0, output(tmp_path / name)
    # Two records that never reached the store (as if it was away), one of them cut short.
    records = {name: next((tmp_path / name).rglob("record.json")) for name in ("good", "bad")}
    for path in records.values():
        record = json.loads(path.read_text())
        record.update(published=False, run_id=None)
        path.write_text(json.dumps(record))
    text = records["bad"].read_text()
    records["bad"].write_text(text[: len(text) // 2])
    before = {run.info.run_id for run in runs(uri)}

    done = subprocess.run(
        [command("bplab-sync"), str(tmp_path)], capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"skipped {records['bad']}" in done.stderr
    assert "not a readable run record" in done.stderr
    (new,) = [run for run in runs(uri) if run.info.run_id not in before]
    assert new.info.status == "FINISHED"
    assert metric_steps(uri, new.info.run_id, "loss") == list(range(1, 21))
    assert json.loads(records["good"].read_text())["published"] is True


def test_a_very_wide_network_trains_and_records_in_bounded_memory(tmp_path):
    """200,000 hidden units: the figures and the record stay within 2 GB of memory."""
    script = textwrap.dedent(
        f"""
        import resource, subprocess, sys
        done = subprocess.run(
            [{command("bplab-train")!r}, "experiment=xor_mlp", "model.hidden_sizes=[200000]",
             "training.epochs=3", "tracking.uri=sqlite:///{tmp_path / "mlflow.db"}"],
            cwd={str(tmp_path)!r},
        )
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(done.returncode, peak_kb)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment()
    )
    returncode, peak_kb = (int(value) for value in done.stdout.split()[-2:])
    assert returncode == 0, done.stderr
    assert peak_kb < 2 * 1024 * 1024, f"peak memory {peak_kb / 1024:.0f} MB"
    (run,) = runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    assert "backprop_lab.figures_skipped" not in run.data.tags


def test_a_grid_whose_curves_cannot_fit_in_memory_is_refused_up_front(tmp_path):
    """Every cell's per-epoch curves are kept: 64 networks for 900 million epochs would fill
    hundreds of GiB after hours of training, so the run is refused before it starts."""
    store = tmp_path / "mlflow.db"
    done = subprocess.run(
        [
            command("bplab-train"),
            "experiment=xor_mlp",
            "training.epochs=900000000",
            "sweep.seeds=64",
            f"tracking.uri=sqlite:///{store}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=120,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("bplab-train: error: training.epochs=900,000,000: 64 networks keep ")
    assert "train fewer epochs or cells" in line
    assert not list(tmp_path.rglob("journal.bin"))
    assert not list(tmp_path.rglob("record.json"))


def test_journal_files_are_written_as_training_goes(tmp_path):
    process = start_training(tmp_path, *LONG_SINGLE)
    journal = wait_for_training(tmp_path, process)
    first = journal.stat().st_size
    time.sleep(1.0)
    assert journal.stat().st_size > first
    record = json.loads((journal.parent / "record.json").read_text())
    assert record["status"] == "RUNNING"
    assert record["process"]["pid"] == process.pid
    assert "optimizer.learning_rate" in record["params"]
    process.send_signal(signal.SIGINT)
    wait_for_exit(process, 10)
    assert journals(tmp_path) == [journal]


@pytest.mark.slow
def test_a_server_lost_mid_run_is_noticed_within_fifteen_seconds(tmp_path):
    server = SqliteServer(tmp_path / "server", tmp_path / "mlflow.db")
    server.start()
    try:
        process = start_training(
            tmp_path, *LONG_SINGLE, store=server.uri, stderr=subprocess.PIPE, text=True
        )
        errors = LineReader(process.stderr)
        wait_for_training(tmp_path, process)
        _wait_for_run_in_store(server.uri)
        server.kill()
        lost_at = time.monotonic()
        noticed = errors.wait_for("stopped answering", 30) - lost_at
        assert noticed < 15
        assert "bplab-sync" in errors.text
        process.send_signal(signal.SIGINT)
        assert wait_for_exit(process, 30) < 10  # no minutes of retries
        assert process.returncode == 130
        assert "Traceback" not in errors.text

        server.start()  # the store it had comes back: the run is still RUNNING there
        done = subprocess.run(
            [command("bplab-sync"), str(tmp_path / "outputs")],
            capture_output=True, text=True, env=environment(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        run = _the_run(server.uri)
        assert run.info.status == "KILLED"
        epochs = int(run.data.metrics["epochs_done"])
        assert metric_steps(server.uri, run.info.run_id, "loss")[-1] == epochs
    finally:
        server.kill()


@pytest.mark.slow
def test_a_full_store_gives_one_line_and_keeps_the_record(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copyfile(tmp_path / "mlflow.db", small / "mlflow.db")
        done = subprocess.run(
            [command("bplab-train"), "experiment=xor_mlp", "training.epochs=20000",
             f"tracking.uri=sqlite:///{small / 'mlflow.db'}"],
            capture_output=True, text=True, cwd=tmp_path, env=environment(), timeout=300,
        )  # fmt: skip
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is full" in lines[0] and "bplab-sync" in lines[0], done.stderr
    (record,) = tmp_path.rglob("record.json")
    kept = json.loads(record.read_text())
    assert kept["status"] == "FINISHED" and kept["published"] is False
    assert len(kept["metrics"]["loss"]) == 20000


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher, jobs",
    [
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["model.hidden_sizes=[1],[2]"]),
        (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], ["seed=range(0,6)"]),
        (["hydra/launcher=submitit_local"], ["model.hidden_sizes=[1],[2]"]),
    ],
    ids=["joblib-2", "joblib-6", "submitit_local-2"],
)
def test_a_multirun_exits_as_soon_as_its_jobs_are_done(tmp_path, launcher, jobs):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [command("bplab-train"), "-m", *launcher, "experiment=xor_mlp", "training.epochs=500",
         "tracking.plots=false", *jobs, f"tracking.uri={uri}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    printed = LineReader(process.stdout)
    errors = LineReader(process.stderr)
    done_at = printed.wait_for("multirun parent run", 600)
    wait_for_exit(process, 60)
    assert time.monotonic() - done_at < 5, "the launcher lingered after its jobs were done"
    assert process.returncode == 0, errors.text
    assert "Traceback" not in errors.text
    found = runs(uri)
    parents = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in found if "mlflow.parentRunId" in run.data.tags]
    expected = 6 if "range(0,6)" in jobs[0] else 2
    assert len(parents) == 1 and len(children) == expected
    assert {run.info.status for run in found} == {"FINISHED"}


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [True, False], ids=["terminal-ctrl-c", "kill-launcher"])
def test_ctrl_c_stops_a_joblib_multirun_and_records_every_job_killed(tmp_path, to_group):
    """A terminal's Ctrl-C reaches every process of the group; ``kill -INT`` only the launcher,
    which passes it on to its workers. Either way every job ends KILLED, and so does the parent."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [command("bplab-train"), "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         *LONG_SINGLE, "model.hidden_sizes=[1],[2],[3]", f"tracking.uri={uri}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=environment(), start_new_session=True,
    )  # fmt: skip
    printed, errors = LineReader(process.stdout), LineReader(process.stderr)
    deadline = time.monotonic() + 120
    while len([j for j in journals(tmp_path) if j.stat().st_size]) < 2:
        assert time.monotonic() < deadline and process.poll() is None, errors.text
        time.sleep(0.1)
    _wait_for_run_in_store(uri, 3)  # the parent and the two running jobs
    if to_group:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    assert wait_for_exit(process, 60) < 20
    assert process.returncode == 130, errors.text
    assert "Traceback" not in errors.text
    found = runs(uri)
    assert {run.info.status for run in found} == {"KILLED"}, printed.text
    children = [run for run in found if "mlflow.parentRunId" in run.data.tags]
    assert len(children) == 2  # the third job never started
    assert "[2] not started" in printed.text
    for child in children:
        assert 0 < child.data.metrics["epochs_done"] < 3_000_000
