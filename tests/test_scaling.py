"""Scaling out: parallel launchers, a real PostgreSQL-backed tracking server, nothing lost.

These tests start real processes (Hydra launchers, PostgreSQL, ``mlflow server``) and are
marked slow; ``make test-all`` and CI run them. The PostgreSQL ones need Debian's postgresql
package, which ``.ci/run`` installs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAIN = str(BIN / "bplab-train")

pytestmark = pytest.mark.slow


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    return client, client.search_runs([found.experiment_id], max_results=1000)


def _train(
    args: list[str], cwd: Path, timeout: int = 600, check: bool = True
) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [TRAIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _children(runs, parent_id: str):
    return [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_id]


def _multirun_parent(runs):
    parents = [run for run in runs if run.data.tags.get("backprop_lab.kind") == "multirun"]
    assert len(parents) == 1, [run.info.run_name for run in runs]
    return parents[0]


def test_joblib_multirun_of_six_jobs_on_a_fresh_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _train(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=3",
            "experiment=xor_mlp",
            "training.epochs=50",
            "optimizer.learning_rate=0.1,0.5,1.0",
            "seed=0,1",
            f"tracking.uri={uri}",
        ],
        tmp_path,
    )
    _, runs = _runs(uri, "xor_mlp")
    parent = _multirun_parent(runs)
    children = _children(runs, parent.info.run_id)
    assert len(children) == 6
    assert {run.info.status for run in children} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    pairs = {
        (run.data.params["optimizer.learning_rate"], run.data.params["seed"]) for run in children
    }
    assert len(pairs) == 6


def test_submitit_local_multirun_records_its_jobs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _train(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.cpus_per_task=1",
            "experiment=xor_mlp",
            "training.epochs=50",
            "optimizer.learning_rate=0.5,1.0",
            f"tracking.uri={uri}",
        ],
        tmp_path,
    )
    _, runs = _runs(uri, "xor_mlp")
    parent = _multirun_parent(runs)
    children = _children(runs, parent.info.run_id)
    assert sorted(run.data.params["optimizer.learning_rate"] for run in children) == ["0.5", "1.0"]
    assert {run.info.status for run in children} == {"FINISHED"}


def _write_xor_csv(path: Path, bad_cell: bool = False) -> None:
    rows = ["x1,x2,y", "0,0,0", "0,1,1", "1,0,1", "1,1,0"]
    if bad_cell:
        rows[3] = "1,oops,1"
    path.write_text("\n".join(rows) + "\n")


def test_resume_runs_only_the_missing_jobs_of_an_interrupted_sweep(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("a", "b", "d"):
        _write_xor_csv(tmp_path / f"{name}.csv")
    _write_xor_csv(tmp_path / "c.csv", bad_cell=True)
    sweep = [
        "-m",
        "experiment=xor_mlp",
        "training.epochs=50",
        "data=csv",
        "data.feature_columns=[x1,x2]",
        "data.target_columns=[y]",
        f"data.path={tmp_path / 'a.csv'},{tmp_path / 'b.csv'},{tmp_path / 'c.csv'},{tmp_path / 'd.csv'}",
        "resume=true",
        f"tracking.uri={uri}",
    ]
    # The third job meets a bad cell while loading its data and stops the sweep: d never runs.
    interrupted = _train(sweep, tmp_path, check=False)
    assert interrupted.returncode != 0
    assert "row 4, column 'x2'" in interrupted.stderr  # the header is row 1
    _, runs = _runs(uri, "xor_mlp")
    finished = sorted(
        Path(run.data.params["data.path"]).name
        for run in runs
        if run.data.tags.get("backprop_lab.kind") == "single"
    )
    assert finished == ["a.csv", "b.csv"]

    _write_xor_csv(tmp_path / "c.csv")  # the data is fixed; the same sweep is run again
    resumed = _train(sweep, tmp_path)
    assert resumed.stdout.count("skipped") == 2, resumed.stdout
    _, runs = _runs(uri, "xor_mlp")
    singles = [run for run in runs if run.data.tags.get("backprop_lab.kind") == "single"]
    assert sorted(Path(run.data.params["data.path"]).name for run in singles) == [
        "a.csv",
        "b.csv",
        "c.csv",
        "d.csv",
    ]
    assert {run.info.status for run in singles} == {"FINISHED"}


# ---------------------------------------------------------------------------------------------
# A real PostgreSQL-backed MLflow server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TrackingServer:
    """``scripts/tracking_server.sh`` on free ports, with its state in a temporary folder."""

    def __init__(self, state: Path):
        self.state, self.port, self.pg_port = state, _free_port(), _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(
            os.environ,
            BPLAB_SERVER_PORT=str(self.port),
            BPLAB_PG_PORT=str(self.pg_port),
            BPLAB_SERVER_STATE=str(self.state),
            BPLAB_DETACH="1",
            BPLAB_MLFLOW=str(BIN / "mlflow"),
        )
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "tracking_server.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"tracking.uri={self.uri}" in done.stdout

    def kill_mlflow(self) -> None:
        # The server runs in its own process group (setsid): kill it with all its workers.
        pid = int((self.state / "mlflow.pid").read_text())
        os.killpg(pid, signal.SIGKILL)
        for _ in range(50):
            try:
                urllib.request.urlopen(self.uri + "/health", timeout=0.5)
            except OSError:
                return
            time.sleep(0.2)
        raise AssertionError("the MLflow server did not go away")

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int((self.state / "mlflow.pid").read_text()), signal.SIGKILL)
        pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        command = [
            str(pg_bin / "pg_ctl"),
            "-D",
            str(self.state / "postgres"),
            "-m",
            "immediate",
            "stop",
        ]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, capture_output=True, check=False)


@pytest.fixture()
def server(tmp_path):
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.fail(
            "PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does this)"
        )
    # PostgreSQL runs as the 'postgres' user, which cannot enter pytest's private tmp_path.
    state = Path(tempfile.mkdtemp(prefix="bplab-server-"))
    if os.geteuid() == 0:
        shutil.chown(state, "postgres")
    tracking_server = TrackingServer(state)
    try:
        tracking_server.start()
        yield tracking_server
    finally:
        tracking_server.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_a_run_against_a_postgres_backed_mlflow_server_reads_back(server, tmp_path):
    _train(["experiment=xor_mlp", "training.epochs=200", f"tracking.uri={server.uri}"], tmp_path)
    client, runs = _runs(server.uri, "xor_mlp")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 200
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"weights.json", "weights.npz", "config.yaml", "history.csv"} <= artifacts
    report = subprocess.run(
        [
            str(BIN / "bplab-report"),
            "--tracking-uri",
            server.uri,
            "--experiment",
            "xor_mlp",
            "--out",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "xor_mlp" / "report" / "report.html").is_file()


def test_an_unreachable_server_fails_fast_before_training(tmp_path):
    done = _train(
        ["experiment=xor_mlp", f"tracking.uri=http://127.0.0.1:{_free_port()}"],
        tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "cannot reach the MLflow tracking server" in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("record.json"))


def test_a_run_whose_server_disappears_is_recovered_by_bplab_sync(server, tmp_path):
    epochs = 3000
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    job = subprocess.Popen(
        [
            TRAIN,
            "experiment=xor_mlp",
            "data=moons",
            "data.num_samples=3000",
            "model.hidden_sizes=[16,16]",
            f"training.epochs={epochs}",
            "tracking.plots=false",
            f"tracking.uri={server.uri}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    # Wait until the run exists on the server (training has started), then take the server away.
    from mlflow.tracking import MlflowClient

    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            experiment = MlflowClient(server.uri).get_experiment_by_name("xor_mlp")
            if experiment and MlflowClient(server.uri).search_runs([experiment.experiment_id]):
                break
        except Exception:
            pass
        time.sleep(0.2)
    else:
        job.kill()
        raise AssertionError("the run never appeared on the server")
    server.kill_mlflow()
    output, _ = job.communicate(timeout=600)
    assert job.returncode == 1, output  # the run is not in its store yet
    assert "bplab-sync" in output and "PENDING" in output, output
    (record,) = list(tmp_path.rglob("mlflow_record/record.json"))

    server.start()  # the same PostgreSQL cluster: the run it had is still there, RUNNING
    synced = subprocess.run(
        [str(BIN / "bplab-sync"), str(tmp_path / "outputs")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert synced.returncode == 0, synced.stderr
    client, runs = _runs(server.uri, "xor_mlp")
    (run,) = runs
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == epochs
    assert len(client.get_metric_history(run.info.run_id, "test_accuracy")) == epochs
    assert "weights.npz" in {item.path for item in client.list_artifacts(run.info.run_id)}
    again = subprocess.run(
        [str(BIN / "bplab-sync"), str(tmp_path / "outputs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "nothing to sync" in again.stdout


def test_the_database_refuses_other_local_users_without_the_password(server):
    """PostgreSQL takes a password over TCP and only its own user on the socket."""
    psql = str(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1] / "psql")
    password_file = server.state / "pg_password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    query = ["-p", str(server.pg_port), "-U", "postgres", "-w", "-d", "mlflow", "-tAc", "select 1"]
    env = {"PATH": os.environ["PATH"], "HOME": "/tmp"}
    with_password = subprocess.run(
        [psql, "-h", "127.0.0.1", *query],
        capture_output=True, text=True,
        env={**env, "PGPASSWORD": password_file.read_text().strip()},
    )  # fmt: skip
    assert with_password.stdout.strip() == "1", with_password.stderr
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another local user")
    for host in ("127.0.0.1", "/tmp"):
        refused = subprocess.run(
            ["runuser", "-u", "nobody", "--", psql, "-h", host, *query],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert refused.returncode != 0
        assert refused.stdout.strip() != "1"
        assert "authentication failed" in refused.stderr or "no password" in refused.stderr
