"""``make demo`` runs its studies side by side and prints each one whole, in order."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.faults import environment, runs


@pytest.mark.slow
def test_the_demo_runs_studies_side_by_side_on_a_fresh_store_and_prints_them_in_order(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "backprop_lab.demo",
            "--only",
            "seed_example",
            "xor_mlp",
            "--jobs",
            "2",
            "--out",
            str(tmp_path / "report"),
        ],
        env=environment(MLFLOW_TRACKING_URI=store),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "2 studies on" in out and "2 at a time" in out
    first, second = (
        out.index("[1/2] bplab-train experiment=seed_example"),
        out.index("[2/2] bplab-train experiment=xor_mlp"),
    )
    # Each study's own lines come whole, under its heading, never interleaved.
    assert first < out.index("seed_example seed=0 |") < second < out.index("xor_mlp seed=0 |")
    assert out.count("done in") == 2
    assert "Demo finished in" in out
    # Both processes started together on a store that did not exist: both runs recorded.
    statuses = sorted(run.info.status for run in runs(store))
    assert statuses == ["FINISHED", "FINISHED"]
    for study in ("seed_example", "xor_mlp"):
        assert (tmp_path / "report" / study / "report" / "report.html").is_file()


@pytest.mark.slow
def test_a_failed_study_stops_the_demo_with_its_output(tmp_path):
    bad_store = tmp_path / "not-a-store.db"
    bad_store.write_text("this is not a database")
    done = subprocess.run(
        [sys.executable, "-m", "backprop_lab.demo", "--only", "xor_mlp", "--out", str(tmp_path)],
        env=environment(MLFLOW_TRACKING_URI=f"sqlite:///{bad_store}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert "bplab-train: error:" in done.stdout
    assert "make demo: study xor_mlp failed (exit 2)" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_ctrl_c_ends_the_demos_studies_killed_in_one_line(tmp_path):
    """Ctrl-C in the terminal reaches the demo and its studies (one process group)."""
    import os
    import signal
    import time

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backprop_lab.demo",
            "--only",
            "xor_architectures",
            "threshold_vs_sigmoid",
            "--out",
            str(tmp_path / "report"),
        ],
        env=environment(MLFLOW_TRACKING_URI=store),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "mlflow.db").exists() or not runs(store):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert "Traceback" not in out
    assert "make demo:" in out.splitlines()[-1]
    statuses = {run.info.status for run in runs(store)}
    assert "RUNNING" not in statuses and "KILLED" in statuses
    assert not (tmp_path / "report").exists()
