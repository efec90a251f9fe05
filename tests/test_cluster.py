"""SLURM jobs: job ids, why a signal stopped a run, a signal during start-up, the job lines.

``scontrol`` is replaced by a script that prints what the real one prints in each case
(measured on SLURM 22.05); ``tests/test_slurm.py`` runs the same paths on a real SLURM.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from backprop_lab import cluster, interrupt

ARRAY_TASK = {"SLURM_JOB_ID": "13", "SLURM_ARRAY_JOB_ID": "12", "SLURM_ARRAY_TASK_ID": "0"}


def test_a_job_is_named_as_squeue_names_it():
    assert cluster.slurm_job_id(ARRAY_TASK) == "12_0"
    assert cluster.slurm_job_id({"SLURM_JOB_ID": "7"}) == "7"
    assert cluster.slurm_job_id({}) is None
    assert cluster.job_tags({}) == {}
    assert cluster.job_tags({**ARRAY_TASK, "SLURM_RESTART_COUNT": "2"}) == {
        cluster.JOB_TAG: "12_0",
        cluster.RESTART_TAG: "2",
    }
    assert cluster.in_slurm_job({**ARRAY_TASK, "SUBMITIT_EXECUTOR": "slurm"})
    assert not cluster.in_slurm_job({**ARRAY_TASK, "SUBMITIT_EXECUTOR": "local"})
    assert not cluster.in_slurm_job({"SUBMITIT_EXECUTOR": "slurm"})


def test_a_requeued_attempt_keeps_its_record_apart(tmp_path):
    assert cluster.attempt_dir(tmp_path, {}) == tmp_path
    assert cluster.attempt_dir(tmp_path, {"SLURM_RESTART_COUNT": "0"}) == tmp_path
    assert cluster.attempt_dir(tmp_path, {"SLURM_RESTART_COUNT": "1"}) == tmp_path / "restart_1"


@pytest.fixture()
def fake_scontrol(tmp_path, monkeypatch):
    """``set_job(fields)``: what ``scontrol show job -o`` answers from now on."""
    answer = tmp_path / "answer.txt"
    script = tmp_path / "scontrol"
    script.write_text(f"#!/bin/sh\ncat {answer}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    for name, value in ARRAY_TASK.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)

    def set_job(**fields: str) -> None:
        answer.write_text(" ".join(f"{key}={value}" for key, value in fields.items()) + "\n")

    set_job(JobId="13", JobState="RUNNING", Reason="None", Restarts="0")
    return set_job


def test_slurm_signals_are_told_apart_by_what_scontrol_says(fake_scontrol):
    assert cluster.stop_reason(signal.SIGUSR2).startswith("stopped at the SLURM time limit")
    fake_scontrol(JobState="COMPLETING", Reason="TimeLimit", Restarts="0")
    assert cluster.stop_reason(signal.SIGTERM) == (
        "stopped at the SLURM time limit of job 12_0 (SIGTERM)"
    )
    fake_scontrol(JobState="COMPLETING", Reason="None", Restarts="1")
    assert "requeued by SLURM" in cluster.stop_reason(signal.SIGTERM)
    assert cluster.will_run_again()
    fake_scontrol(JobState="COMPLETING", Reason="None", Restarts="0")
    assert "cancelled or preempted" in cluster.stop_reason(signal.SIGTERM)
    assert not cluster.will_run_again()
    # interrupt names SLURM's reasons, and keeps its own outside SLURM.
    assert "cancelled or preempted" in interrupt.reason_for(signal.SIGTERM)


def test_the_reasons_outside_slurm_are_unchanged(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert cluster.stop_reason(signal.SIGTERM) is None
    assert interrupt.reason_for(signal.SIGUSR2) == interrupt.REASONS[signal.SIGUSR2]


def test_a_signal_during_start_up_stops_the_run_at_its_first_chunk(fake_scontrol):
    told = []
    with interrupt.hold_stop_signals():
        os.kill(os.getpid(), signal.SIGUSR2)  # SLURM's warning while the job still starts
        with interrupt.stoppable(on_first=told.append) as stop:
            assert stop()
            assert stop.signal == signal.SIGUSR2
        assert "SLURM time limit of job 12_0" in told[0]
        # Outside training the signal is still held, not acted on.
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with interrupt.stoppable() as stop:
        assert not stop()


def test_slurms_second_sigterm_at_a_time_limit_does_not_force_an_exit(tmp_path, fake_scontrol):
    """slurmstepd and srun both send SIGTERM at a time limit; a person's second signal (two
    Ctrl-C, or SIGTERM outside SLURM) still exits at once. (Signals closer than a quarter of a
    second are one everywhere: a terminal's Ctrl-C that a launcher also passes on.)"""
    program = textwrap.dedent(
        """
        import os, signal, sys, time
        from backprop_lab.interrupt import stoppable
        with stoppable(on_force_exit=lambda reason: print("forced", flush=True)) as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.4)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            print("stopped" if stop() else "running", stop.reason, flush=True)
        """
    )
    fake_scontrol(JobState="COMPLETING", Reason="TimeLimit", Restarts="0")
    in_slurm = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert in_slurm.returncode == 0, in_slurm.stderr
    assert in_slurm.stdout.startswith("stopped stopped at the SLURM time limit of job 12_0")
    outside = dict(os.environ)
    outside.pop("SLURM_JOB_ID")
    by_hand = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=outside
    )
    assert by_hand.returncode == 143 and by_hand.stdout == "forced\n"


def test_the_job_lines_name_each_slurm_job_and_count_the_unfinished(initialized_store, tmp_path):
    from mlflow.tracking import MlflowClient

    shutil.copyfile(initialized_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweep")
    parent = client.create_run(experiment).info.run_id

    def child(job: str, restart: int, status: str, reason: str = "") -> str:
        tags = {"mlflow.parentRunId": parent, cluster.JOB_TAG: job}
        tags[cluster.RESTART_TAG] = str(restart)
        if reason:
            tags["backprop_lab.error"] = reason
        run_id = client.create_run(experiment, tags=tags, run_name=f"job {job}").info.run_id
        client.set_terminated(run_id, status)
        return run_id

    requeued = child("12_10", 0, "KILLED", "requeued by SLURM")
    again = child("12_10", 1, "FINISHED")
    limited = child("12_2", 0, "KILLED", "stopped at the SLURM time limit of job 12_2")
    finished = child("12_1", 0, "FINISHED")
    lines, unfinished = cluster.job_lines(uri, parent)
    assert lines == [
        f"slurm job 12_1 | run {finished} | FINISHED | job 12_1",
        f"slurm job 12_2 | run {limited} | KILLED | job 12_2 | "
        "stopped at the SLURM time limit of job 12_2",
        f"slurm job 12_10 | run {requeued} | KILLED | job 12_10 | requeued by SLURM",
        f"slurm job 12_10 | run {again} | FINISHED | job 12_10",
    ]
    # The requeued job finished in the end: only the one stopped at its time limit did not.
    assert unfinished == 1
