"""The report's plain-SQL reader answers every call exactly as MlflowClient does.

The reader (``tracking.store_reader``) spares each report process MLflow's import. Every
answer is compared with ``MlflowClient`` on a copy of the report tests' store, with a
deleted run, a deleted experiment, a NaN metric and experiment tags added.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from backprop_lab.cli.report import run as report_run
from backprop_lab.report.store import store_client
from backprop_lab.tracking import local_store
from backprop_lab.tracking.store_reader import StoreReader


@pytest.fixture(scope="module")
def stores(store, tmp_path_factory):
    """``(MlflowClient, StoreReader)`` on a copy of the store, with the odd cases added."""
    folder = tmp_path_factory.mktemp("reader")
    database = folder / "mlflow.db"
    shutil.copyfile(store.uri[len("sqlite:///") :], database)
    uri = f"sqlite:///{database}"
    client = MlflowClient(uri)
    client.delete_run(store.older.run_id)
    client.log_metric(store.grid.run_id, "not_a_number", float("nan"))
    client.log_metric(store.grid.run_id, "not_a_number_then_one", float("nan"), step=0)
    client.log_metric(store.grid.run_id, "not_a_number_then_one", 1.0, step=1)
    gone = client.create_experiment("gone")
    client.create_run(gone)
    client.delete_experiment(gone)
    (kept,) = [e for e in client.search_experiments() if e.name == "grid_study"]
    client.set_experiment_tag(kept.experiment_id, "note", "é ünïcode")
    local_store._usable.discard(database)
    reader = store_client(uri)
    assert isinstance(reader, StoreReader)
    return client, reader, store


def _experiment(experiment):
    return (
        experiment.experiment_id,
        experiment.name,
        experiment.artifact_location,
        experiment.lifecycle_stage,
        experiment.tags,
    )


def _metrics(metrics: dict) -> dict:
    return {key: "nan" if math.isnan(value) else value for key, value in metrics.items()}


def _run(run):
    info = run.info
    return (
        info.run_id, info.run_name, info.experiment_id, info.user_id, info.status,
        info.start_time, info.end_time, info.lifecycle_stage, info.artifact_uri,
        run.data.tags, run.data.params, _metrics(run.data.metrics),
    )  # fmt: skip


def test_experiments_read_back_as_mlflows_client_reads_them(stores):
    client, reader, _ = stores
    expected = sorted(_experiment(e) for e in client.search_experiments())
    assert sorted(_experiment(e) for e in reader.search_experiments()) == expected
    assert "gone" not in {e.name for e in reader.search_experiments()}
    for experiment in client.search_experiments():
        assert _experiment(reader.get_experiment(experiment.experiment_id)) == _experiment(
            experiment
        )


def test_runs_read_back_as_mlflows_client_reads_them(stores):
    client, reader, store = stores
    checked = 0
    for experiment in client.search_experiments():
        ids = [experiment.experiment_id]
        expected = client.search_runs(ids, max_results=5000)
        found = reader.search_runs(ids, max_results=5000)
        assert [_run(run) for run in found] == [_run(run) for run in expected]
        assert found.token is None
        assert len(reader.search_runs(ids, max_results=1)) == min(1, len(expected))
        for run in expected:
            assert _run(reader.get_run(run.info.run_id)) == _run(run)
            checked += 1
    assert checked >= 8
    everything = reader.search_runs([e.experiment_id for e in client.search_experiments()])
    assert store.older.run_id not in {run.info.run_id for run in everything}
    grid = reader.get_run(store.grid.run_id).data.metrics
    assert math.isnan(grid["not_a_number"]) and grid["not_a_number_then_one"] == 1.0
    with pytest.raises(LookupError):
        reader.get_run("no-such-run")


def test_artifacts_list_and_download_as_mlflows_client_does(stores, tmp_path):
    client, reader, store = stores
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    ids = [store.latest.run_id, store.grid.run_id, store.parent]
    for run_id in ids + [child.run_id for child in store.children]:
        listed = sorted((i.path, i.is_dir, i.file_size) for i in client.list_artifacts(run_id))
        assert (
            sorted((i.path, i.is_dir, i.file_size) for i in reader.list_artifacts(run_id)) == listed
        )
        files = [path for path, is_dir, _ in listed if not is_dir]
        for name in files:
            ours = reader.download_artifacts(run_id, name, str(tmp_path / "ours"))
            theirs = client.download_artifacts(run_id, name, str(tmp_path / "theirs"))
            assert Path(ours).read_bytes() == Path(theirs).read_bytes()
            assert ours.endswith("/" + name)
    assert {"grid.npz", "config.yaml"} <= {i.path for i in reader.list_artifacts(store.grid.run_id)}
    for name in ("../mlflow.db", "a/b", ""):
        with pytest.raises(ValueError):
            reader.download_artifacts(store.grid.run_id, name, str(tmp_path))


def test_a_report_read_with_sql_is_the_report_read_with_mlflows_client(
    stores, tmp_path, monkeypatch
):
    from backprop_lab import tracking

    _, _, store = stores
    # One process, so that the patch below holds for every read.
    argv = ["--tracking-uri", store.uri, "--jobs", "1"]
    argv += ["--experiment", "grid_study", "--experiment", "arch_study"]
    assert report_run([*argv, "--out", str(tmp_path / "sql")]) == 0
    monkeypatch.setattr(tracking, "local_database", lambda uri: None)
    assert isinstance(store_client(store.uri), MlflowClient)
    assert report_run([*argv, "--out", str(tmp_path / "mlflow")]) == 0

    def files(root):
        return {
            str(path.relative_to(root)): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file()
        }

    assert files(tmp_path / "sql") == files(tmp_path / "mlflow")


def test_bplab_report_on_the_embedded_store_never_imports_mlflow(store, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "MPLBACKEND": "Agg"}
    argv = ["--tracking-uri", store.uri, "--out", str(tmp_path), "--jobs", "2"]
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bplab-report"), *argv, "--experiment", "xor_mlp"]
        + ["--experiment", "seed_example"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines()]
    # The workers' import logs are there too (two reports were drawn), and MLflow is in none.
    assert imported.count("matplotlib") >= 2
    assert not [name for name in imported if name.split(".")[0] == "mlflow"]
    assert (tmp_path / "xor_mlp" / "report" / "report.md").is_file()
