"""Runs written with plain SQL read back through MlflowClient exactly like the client's own."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from backprop_lab.tracking import local_store

TAGS = {"backprop_lab.kind": "single", "note": "é ünïcode", "long": "x" * 8000}
PARAMS = {"optimizer.learning_rate": "0.5", "model.hidden_sizes": "[2]", "seed": "0"}


@pytest.fixture()
def database(tmp_path, initialized_store):
    path = tmp_path / "mlflow.db"
    shutil.copyfile(initialized_store, path)
    local_store._usable.clear()
    return path


def _files(folder):
    return sorted(
        (str(path.relative_to(folder)), path.read_bytes())
        for path in folder.rglob("*")
        if path.is_file()
    )


def _comparable(client: MlflowClient, run_id: str):
    run = client.get_run(run_id)
    info = run.info
    artifacts = sorted(item.path for item in client.list_artifacts(run_id))
    return (
        info.run_name, info.status, info.lifecycle_stage, info.user_id,
        info.end_time is not None, info.artifact_uri.replace(run_id, "<id>"),
        run.data.tags, run.data.params, artifacts,
    )  # fmt: skip


def test_installed_mlflow_schema_is_one_these_writes_were_checked_against(database):
    # Fails when the lock moves MLflow to a new schema: check the writes again, then add it.
    connection = sqlite3.connect(database)
    (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision in local_store.KNOWN_REVISIONS
    assert local_store.usable(database)


def test_a_run_opened_and_closed_with_sql_reads_back_like_the_clients(tmp_path, database):
    uri = f"sqlite:///{database}"
    client = MlflowClient(uri)
    location = (tmp_path / "mlartifacts" / "study").as_uri()
    # The experiment: created once, then found again by name (and restored when deleted).
    experiment_id, found_location = local_store.ensure_experiment(
        database, "study", location, {"mlflow.experimentKind": "custom_model_development"}
    )
    assert (experiment_id, found_location) == local_store.ensure_experiment(
        database, "study", location
    )
    experiment = client.get_experiment_by_name("study")
    assert experiment.experiment_id == experiment_id
    assert experiment.artifact_location == location
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert local_store.find_experiment(database, "study") == experiment_id
    assert local_store.find_experiment(database, "other") is None
    # A kind someone chose is kept; a missing one is added.
    client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "genai_development")
    local_store.ensure_experiment(database, "study", location, {"mlflow.experimentKind": "x"})
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "genai_development"
    client.delete_experiment(experiment_id)
    assert local_store.ensure_experiment(database, "study", location)[0] == experiment_id
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"

    artifacts = tmp_path / "to_log"
    (artifacts / "figures").mkdir(parents=True)
    (artifacts / "weights.npz").write_bytes(b"\x00\x01weights")
    (artifacts / "figures" / "loss.png").write_bytes(b"png")

    by_client = client.create_run(experiment_id, run_name="xor seed=0", tags=dict(TAGS)).info.run_id
    client.log_batch(by_client, params=[Param(k, v) for k, v in PARAMS.items()])
    client.set_tag(by_client, "status_note", "later")
    client.log_artifacts(by_client, str(artifacts))
    client.set_terminated(by_client, status="KILLED")

    direct = local_store.create_run(database, experiment_id, location, "xor seed=0", TAGS, PARAMS)
    assert local_store.run_info(database, direct)[0] == "RUNNING"
    local_store.set_tags(database, direct, {"status_note": "later"})
    status, found_experiment, artifact_uri = local_store.run_info(database, direct)
    assert found_experiment == experiment_id
    assert local_store.copy_artifacts(artifacts, artifact_uri)
    local_store.set_status(database, direct, "KILLED")

    assert _comparable(client, direct) == _comparable(client, by_client)
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    client.download_artifacts(direct, "", str(downloaded))
    assert _files(downloaded) == _files(artifacts)
    found = client.search_runs(
        [experiment_id], "params.seed = '0' and attributes.status = 'KILLED'"
    )
    assert {run.info.run_id for run in found} == {direct, by_client}

    # A run reopened (update_run) keeps its end time; set_terminated sets a new one.
    local_store.set_status(database, direct, "RUNNING", ended=False)
    client.update_run(by_client, status="RUNNING")
    assert _comparable(client, direct) == _comparable(client, by_client)


def test_stores_these_writes_do_not_know_are_left_to_mlflow(tmp_path, database):
    assert not local_store.usable(tmp_path / "missing.db")
    (tmp_path / "empty.db").write_bytes(b"")
    assert not local_store.usable(tmp_path / "empty.db")
    assert not local_store.usable(None)
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE alembic_version SET version_num = 'future'")
    connection.close()
    assert not local_store.usable(database)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert not local_store.usable(other)


def test_values_over_mlflows_limits_are_left_to_the_client():
    assert local_store.fits(TAGS, PARAMS)
    assert not local_store.fits({}, {"p": "v" * 6001})
    assert not local_store.fits({"k" * 251: "v"})
    assert not local_store.fits({"k": "v" * 8001})
    assert local_store.artifact_folder("s3://bucket/a") is None
    assert str(local_store.artifact_folder("file:///tmp/a%20b/x")) == "/tmp/a b/x"


def test_a_run_on_the_embedded_store_is_recorded_whole_without_importing_mlflow(tmp_path, database):
    import os

    from faults import environment, output, runs, start_training

    env = {**environment(), "PYTHONPROFILEIMPORTTIME": "1"}
    process = start_training(
        tmp_path, "experiment=xor_mlp", "training.epochs=200", "sweep.seeds=2", env=env
    )
    assert process.wait(timeout=180) == 0, output(tmp_path)
    imported = [line.split("|")[-1].strip() for line in output(tmp_path)[1].splitlines()]
    assert "jax" in imported  # the import log is there, and MLflow is not in it
    assert not [name for name in imported if name.split(".")[0] == "mlflow"]
    (run,) = [r for r in runs(f"sqlite:///{database}") if "mlflow.parentRunId" not in r.data.tags]
    assert run.info.status == "FINISHED"
    assert run.data.params["training.epochs"] == "200"
    assert run.data.metrics["epochs_done"] == 200
    client = MlflowClient(f"sqlite:///{database}")
    assert {"grid.npz", "config.yaml"} <= {
        item.path for item in client.list_artifacts(run.info.run_id)
    }
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'"
    )
    assert len(children) >= 1
    # What MLflow's UI reads: the experiment's kind and each run's data set.
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    for each in (run, *children):
        inputs = client.get_run(each.info.run_id).inputs.dataset_inputs
        assert [item.dataset.name for item in inputs] == ["xor"]
    assert os.environ.get("PYTHONPROFILEIMPORTTIME") is None


def test_a_multirun_on_the_embedded_store_opens_and_closes_its_parent_without_mlflow(
    tmp_path, database
):
    """The parent run of a multirun is created, found and closed with plain SQL too: MLflow's
    import cost seconds per multirun."""
    from faults import environment, output, runs, start_training

    env = {**environment(), "PYTHONPROFILEIMPORTTIME": "1"}
    process = start_training(
        tmp_path, "-m", "experiment=xor_mlp", "training.epochs=20", "seed=0,1", env=env
    )
    assert process.wait(timeout=180) == 0, output(tmp_path)
    imported = [line.split("|")[-1].strip() for line in output(tmp_path)[1].splitlines()]
    assert "hydra" in imported
    assert not [name for name in imported if name.split(".")[0] == "mlflow"]
    recorded = runs(f"sqlite:///{database}")
    (parent,) = [r for r in recorded if r.data.tags.get("backprop_lab.kind") == "multirun"]
    assert parent.info.status == "FINISHED" and parent.info.end_time is not None
    jobs = [r for r in recorded if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["seed"] for r in jobs) == ["0", "1"]
    assert {r.info.status for r in jobs} == {"FINISHED"}
    assert f"multirun parent run {parent.info.run_id} (FINISHED)" in output(tmp_path)[0]
    experiment = MlflowClient(f"sqlite:///{database}").get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize(
    ("children", "stopped", "ended", "expected"),
    [
        ({"FINISHED"}, False, True, "FINISHED"),
        ({"FINISHED", "FAILED"}, False, True, "FAILED"),
        ({"FAILED", "KILLED"}, False, True, "KILLED"),
        ({"FINISHED"}, True, True, "KILLED"),
        (set(), False, True, "FINISHED"),
        # The process ended before the multirun (at exit): a job that raised makes it FAILED.
        ({"FINISHED", "FAILED"}, False, False, "FAILED"),
        ({"FINISHED"}, False, False, "KILLED"),
        ({"FINISHED", "FAILED"}, True, False, "KILLED"),
    ],
)
def test_a_multiruns_parent_closes_from_its_childrens_statuses_read_with_sql(
    tmp_path, database, monkeypatch, children, stopped, ended, expected
):
    from backprop_lab.tracking import multirun

    uri = f"sqlite:///{database}"
    location = (tmp_path / "mlartifacts").as_uri()
    experiment_id, _ = local_store.ensure_experiment(database, "study", location)
    parent = local_store.create_run(database, experiment_id, location, "parent", {}, {})
    for index, status in enumerate(sorted(children)):
        child = local_store.create_run(
            database, experiment_id, location, f"job {index}", {"mlflow.parentRunId": parent}, {}
        )
        local_store.set_status(database, child, status)
    # A deleted child does not count, as search_runs does not find it.
    deleted = local_store.create_run(
        database, experiment_id, location, "deleted", {"mlflow.parentRunId": parent}, {}
    )
    local_store.set_status(database, deleted, "FAILED")
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = ?", (deleted,)
        )
    connection.close()
    assert local_store.child_statuses(database, parent) == children
    monkeypatch.setattr(multirun, "sweep_stop", lambda: stopped)
    callback = multirun.MultirunTrackingCallback()
    callback._uri, callback._run_id = uri, parent
    callback._close_if_running(None, ended=ended)
    run = MlflowClient(uri).get_run(parent)
    assert run.info.status == expected and run.info.end_time is not None
    # Closed once: a second close (the atexit one) leaves it as it is.
    callback._close_if_running("KILLED")
    assert MlflowClient(uri).get_run(parent).info.status == expected


def test_an_experiment_restored_with_sql_gets_its_runs_back_as_mlflow_restores_them(
    tmp_path, database
):
    uri = f"sqlite:///{database}"
    location = (tmp_path / "mlartifacts" / "study").as_uri()
    experiment_id, _ = local_store.ensure_experiment(database, "study", location)
    runs = [
        local_store.create_run(database, experiment_id, location, f"run {i}", {}, {})
        for i in range(2)
    ]
    client = MlflowClient(uri)
    client.delete_experiment(experiment_id)
    assert {client.get_run(r).info.lifecycle_stage for r in runs} == {"deleted"}
    assert local_store.ensure_experiment(database, "study", location)[0] == experiment_id
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert {client.get_run(r).info.lifecycle_stage for r in runs} == {"active"}
    assert len(client.search_runs([experiment_id])) == 2


def test_a_store_with_experiments_outside_the_default_workspace_is_left_to_mlflow(database):
    connection = sqlite3.connect(database)
    with connection:
        connection.execute(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, workspace) "
            "VALUES ('elsewhere', '/tmp/x', 'active', 'other')"
        )
    connection.close()
    local_store._usable.clear()
    assert not local_store.usable(database)


def test_a_run_without_an_artifact_location_lists_nothing_as_mlflow_does(tmp_path, database):
    from backprop_lab.tracking.store_reader import StoreReader

    uri = f"sqlite:///{database}"
    experiment_id, _ = local_store.ensure_experiment(database, "study", "")
    run_id = local_store.create_run(database, experiment_id, "", "no artifacts", {}, {})
    reader = StoreReader(database, uri)
    assert reader.list_artifacts(run_id) == [] == MlflowClient(uri).list_artifacts(run_id)
    with pytest.raises(LookupError):
        reader.list_artifacts("no-such-run")
