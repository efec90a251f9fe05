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
