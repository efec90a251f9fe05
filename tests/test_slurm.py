"""The cluster path, run for real: ``submitit_slurm`` multiruns on a single-node SLURM.

``scripts/slurm_local.sh`` starts munge, MariaDB, slurmdbd, slurmctld and slurmd on loopback
in a temporary folder (installing Debian's packages first when they are missing and this is
root) and stops them after the last test, whatever happened. Each test then does to the jobs
what a cluster does: a time limit, a requeue, ``scancel``. The tests are skipped, with the
reason, where SLURM cannot be started; CI sets ``BPLAB_REQUIRE_SLURM=1`` to make that a failure.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPT = REPO / "scripts" / "slurm_local.sh"
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# A run whose length is set in seconds of this machine's training (see _epochs_for).
LONG = ["experiment=xor_mlp", "data=moons", "data.test_fraction=0", "tracking.plots=false"]
SLURM = ["-m", "hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=1"]


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise AssertionError("no free ports")


def _running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class LocalSlurm:
    """``scripts/slurm_local.sh`` on free ports, with its state in a temporary folder."""

    def __init__(self, state: Path):
        self.state = state
        self.env = dict(
            os.environ,
            BPLAB_SLURM_STATE=str(state),
            BPLAB_SLURM_PORT=str(_free_ports(4)),
            SLURM_CONF=str(state / "slurm.conf"),
        )
        self.env.pop("MLFLOW_TRACKING_URI", None)

    def script(self, action: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(SCRIPT), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def command(self, *args: str) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def daemon_pids(self) -> dict[str, int]:
        pids = {}
        for name in DAEMONS:
            with contextlib.suppress(OSError, ValueError):
                pids[name] = int((self.state / "run" / f"{name}.pid").read_text())
        return pids

    def job_states(self, job: str, timeout_s: float = 60) -> dict[str, str]:
        """``{'12_0': 'COMPLETED', ...}`` from ``sacct`` for a job or a job array, once they
        have ended (accounting hears of it a moment after the job's result is written)."""
        deadline = time.monotonic() + timeout_s
        while True:
            lines = self.command("sacct", "-j", job, "-X", "-n", "-P", "-o", "JobID,State")
            states = dict(line.split("|")[:2] for line in lines.splitlines() if line)
            if time.monotonic() > deadline or not {"RUNNING", "COMPLETING"} & set(states.values()):
                return states
            time.sleep(0.5)


@pytest.fixture(scope="module")
def slurm():
    # A short path: munge's socket lives in it, and socket paths are limited to 107 bytes.
    state = Path(tempfile.mkdtemp(prefix="bplab-slurm-"))
    cluster = LocalSlurm(state)
    try:
        started = cluster.script("start")
        if started.returncode != 0:
            message = "SLURM could not be started by scripts/slurm_local.sh: " + " ".join(
                (started.stdout + started.stderr).split()[-60:]
            )
            if os.environ.get("BPLAB_REQUIRE_SLURM") == "1":
                pytest.fail(message)
            pytest.skip(message)
        assert f"export SLURM_CONF={state / 'slurm.conf'}" in started.stdout
        yield cluster
    finally:
        pids = cluster.daemon_pids()
        cluster.script("stop", timeout=120)
        survivors = {name: pid for name, pid in pids.items() if _running(pid)}
        shutil.rmtree(state, ignore_errors=True)
        assert not survivors, f"SLURM daemons still running after stop: {survivors}"


@functools.cache
def _epochs_per_second() -> float:
    """How fast the LONG run trains on this machine, measured: machines differ several-fold,
    and the tests need runs that outlast a time limit, yet finish in a later one."""
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs
    from backprop_lab.jobs import prepare, train_job

    register_configs()
    epochs = 100_000
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=[*LONG, f"training.epochs={epochs}"])
    job = prepare(cfg)
    train_job(job, 0)  # compiles
    # The fastest of three: a run must not end sooner than planned when the machine is idler.
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        train_job(job, 0)
        seconds.append(time.perf_counter() - started)
    return epochs / min(seconds)


def _epochs_for(seconds: float) -> int:
    return int(_epochs_per_second() * seconds)


def _train(
    slurm: LocalSlurm, args: list[str], cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "bplab-train"), *args],
        cwd=cwd,
        env=dict(slurm.env, PYTHONUNBUFFERED="1"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("xor_mlp")
    assert experiment is not None, f"no experiment in {uri}"
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def _kind(runs, kind: str):
    return [run for run in runs if run.data.tags.get("backprop_lab.kind") == kind]


def _children(runs, parent) -> list:
    return [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]


def _job_line(run) -> str:
    return f"slurm job {run.data.tags['backprop_lab.slurm_job_id']} | run {run.info.run_id} | "


def test_a_four_job_multirun_gives_four_finished_children_under_one_parent(slurm, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = _train(
        slurm,
        [
            *SLURM,
            "hydra.launcher.timeout_min=5",
            "experiment=xor_mlp",
            "training.epochs=50",
            "tracking.plots=false",
            "optimizer.learning_rate=0.1,0.5,1.0,2.0",
            f"tracking.uri={uri}",
        ],
        tmp_path,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-4000:]
    assert "Bypassing" not in printed and "sacct" not in printed
    _, runs = _runs(uri)
    (parent,) = _kind(runs, "multirun")
    children = _children(runs, parent)
    assert parent.info.status == "FINISHED"
    assert len(children) == 4
    assert {run.info.status for run in children} == {"FINISHED"}
    assert sorted(run.data.params["optimizer.learning_rate"] for run in children) == [
        "0.1",
        "0.5",
        "1.0",
        "2.0",
    ]
    # Each run names the SLURM job that ran it, and the multirun prints it next to the run id.
    jobs = sorted(run.data.tags["backprop_lab.slurm_job_id"] for run in children)
    array = jobs[0].split("_")[0]
    assert jobs == [f"{array}_{task}" for task in range(4)]
    for run in children:
        assert _job_line(run) + "FINISHED" in done.stdout
    # SLURM itself ran them: its accounting has the four array tasks, completed.
    assert slurm.job_states(array) == dict.fromkeys(jobs, "COMPLETED")


def test_a_job_at_its_time_limit_ends_killed_with_its_epochs_and_resume_finishes_it(
    slurm, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The long job trains for about 60 s. With timeout_min=1 and signal_delay_s=10, SLURM
    # sends SIGUSR2 20-50 s after the job starts (it checks limits every 30 s).
    long_epochs = _epochs_for(60)
    sweep = [*SLURM, *LONG, f"training.epochs=50,{long_epochs}", f"tracking.uri={uri}"]
    limited = _train(
        slurm,
        [*sweep, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=10"],
        tmp_path,
    )
    printed = limited.stdout + limited.stderr
    assert limited.returncode == 1, printed[-4000:]
    assert "1 job(s) did not finish" in limited.stdout and "resume=true" in limited.stdout
    assert "Bypassing" not in printed and "Traceback" not in printed

    client, runs = _runs(uri)
    assert "RUNNING" not in {run.info.status for run in runs}
    by_epochs = {run.data.params["training.epochs"]: run for run in _kind(runs, "single")}
    short, long = by_epochs["50"], by_epochs[str(long_epochs)]
    assert short.info.status == "FINISHED"
    assert long.info.status == "KILLED"
    job = long.data.tags["backprop_lab.slurm_job_id"]
    reason = long.data.tags["backprop_lab.error"]
    assert f"SLURM time limit of job {job}" in reason and "SIGUSR2" in reason
    # The record holds the epochs trained before the warning, every one of them journaled.
    epochs_done = int(long.data.metrics["epochs_done"])
    assert 0 < epochs_done < long_epochs
    steps = [point.step for point in client.get_metric_history(long.info.run_id, "loss")]
    assert max(steps) == epochs_done
    assert _job_line(long) + "KILLED" in limited.stdout and reason in limited.stdout
    # The job stopped itself before the limit and returned: SLURM did not have to kill it.
    array = job.split("_")[0]
    assert set(slurm.job_states(array).values()) == {"COMPLETED"}

    resumed = _train(slurm, [*sweep, "hydra.launcher.timeout_min=10", "resume=true"], tmp_path)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    _, runs = _runs(uri)
    singles = _kind(runs, "single")
    finished = Counter(
        run.data.tags["backprop_lab.config_hash"]
        for run in singles
        if run.info.status == "FINISHED"
    )
    # Every job of the sweep has exactly one FINISHED run; only the stopped one ran again.
    assert sorted(finished.values()) == [1, 1]
    assert len(singles) == 3
    (rerun,) = [
        run for run in singles if run.info.run_id not in (short.info.run_id, long.info.run_id)
    ]
    assert rerun.info.status == "FINISHED"
    assert rerun.data.params["training.epochs"] == str(long_epochs)
    assert int(rerun.data.metrics["epochs_done"]) == long_epochs


def test_a_requeued_job_runs_again_and_leaves_one_finished_run(slurm, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    epochs = _epochs_for(15)
    process = subprocess.Popen(
        [
            str(BIN / "bplab-train"),
            *SLURM,
            "hydra.launcher.timeout_min=10",
            *LONG,
            f"training.epochs={epochs}",
            f"tracking.uri={uri}",
        ],
        cwd=tmp_path,
        env=dict(slurm.env, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(path.stat().st_size for path in tmp_path.rglob("journal.bin")):
            assert time.monotonic() < deadline, "the job never started training"
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
        (job,) = slurm.command("squeue", "-h", "-o", "%i").split()
        # What preemption with PreemptMode=REQUEUE does, and what an administrator does.
        slurm.command("scontrol", "requeue", job)
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-4000:]
    _, runs = _runs(uri)
    singles = _kind(runs, "single")
    assert {run.data.tags["backprop_lab.slurm_job_id"] for run in singles} == {job}
    statuses = {run.data.tags["backprop_lab.slurm_restart_count"]: run for run in singles}
    assert sorted(statuses) == ["0", "1"]
    first, again = statuses["0"], statuses["1"]
    assert first.info.status == "KILLED"
    assert "requeued by SLURM" in first.data.tags["backprop_lab.error"]
    assert 0 < int(first.data.metrics["epochs_done"]) < epochs
    assert again.info.status == "FINISHED"
    assert int(again.data.metrics["epochs_done"]) == epochs
    assert _job_line(first) + "KILLED" in output and _job_line(again) + "FINISHED" in output
    assert "Bypassing" not in output
    # The second attempt kept its own record: the first one's is still on disk.
    assert len(list(tmp_path.rglob("mlflow_record/record.json"))) == 2
    assert slurm.job_states(job.split("_")[0]) == {job: "COMPLETED"}


def test_stop_cancels_running_jobs_and_stops_every_daemon(slurm, tmp_path):
    """Last in this module: it stops the cluster the tests above used."""
    job = slurm.command("sbatch", "--parsable", f"--chdir={tmp_path}", "--wrap", "sleep 600")
    job = job.strip()
    deadline = time.monotonic() + 60
    job_pids: list[int] = []
    while not job_pids:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
        listed = subprocess.run(
            ["scontrol", "listpids", job, "bplab-node"],
            env=slurm.env,
            capture_output=True,
            text=True,
        )  # fails until slurmd has started the job's batch step
        # A step's short-lived helpers can be listed and gone a moment later: the job's
        # processes are the listed ones still running.
        listed_pids = [int(line.split()[0]) for line in listed.stdout.splitlines()[1:]]
        job_pids = [pid for pid in listed_pids if _running(pid)]
    assert job_pids
    daemons = slurm.daemon_pids()
    assert sorted(daemons) == sorted(DAEMONS)

    stopped = slurm.script("stop", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert {name for name, pid in daemons.items() if _running(pid)} == set()
    assert [pid for pid in job_pids if _running(pid)] == []
    status = slurm.script("status")
    assert status.returncode != 0 and "running" not in status.stdout
