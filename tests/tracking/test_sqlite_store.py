"""Metric points written straight into SQLite read back exactly as MLflow's own log_batch."""

from __future__ import annotations

import shutil
import sqlite3

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from backprop_lab.tracking.sqlite_store import schema_matches, write_metrics

POINTS = [
    ("loss", 0.5, 1000, 1),
    ("loss", 0.25, 1000, 2),
    ("loss", 0.125, 1000, 3),
    ("accuracy", 0.75, 1000, 1),
    ("accuracy", 1.0, 1000, 3),
    # Two points at one step: the larger timestamp is the latest; then the larger value.
    ("lr", 0.1, 1000, 5),
    ("lr", 0.3, 2000, 5),
    ("lr", 0.2, 2000, 5),
    ("solved", 1.0, 1000, 0),
    ("big", 1.7e308, 1000, 0),
]


def _read(client: MlflowClient, run_id: str):
    run = client.get_run(run_id)
    histories = {
        key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
        for key in {key for key, *_ in POINTS}
    }
    return run.data.metrics, histories


def test_direct_writes_read_back_like_log_batch(tmp_path, initialized_store):
    database = tmp_path / "mlflow.db"
    shutil.copyfile(initialized_store, database)
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.create_experiment("e")
    by_mlflow = client.create_run(experiment).info.run_id
    direct = client.create_run(experiment).info.run_id
    client.log_batch(by_mlflow, metrics=[Metric(k, v, t, s) for k, v, t, s in POINTS])
    assert write_metrics(database, direct, POINTS)
    assert _read(client, direct) == _read(client, by_mlflow)
    # The latest value of each metric follows MLflow's rule.
    assert client.get_run(direct).data.metrics["lr"] == 0.3
    # Sending the same points again changes nothing; a later step moves the latest value.
    assert write_metrics(database, direct, POINTS)
    assert _read(client, direct) == _read(client, by_mlflow)
    write_metrics(database, direct, [("loss", 0.0625, 1000, 4)])
    assert client.get_run(direct).data.metrics["loss"] == 0.0625
    found = client.search_runs([experiment], "metrics.loss < 0.1")
    assert [run.info.run_id for run in found] == [direct]


def test_an_unexpected_schema_writes_nothing(tmp_path):
    database = tmp_path / "other.db"
    connection = sqlite3.connect(database)
    connection.execute("create table metrics (key text, value real)")
    connection.execute("create table latest_metrics (key text)")
    connection.commit()
    assert not schema_matches(connection)
    connection.close()
    assert write_metrics(database, "run", POINTS) is False
    rows = sqlite3.connect(database).execute("select count(*) from metrics").fetchone()
    assert rows == (0,)


def test_finished_runs_written_directly_read_back_like_client_made_runs(
    tmp_path, initialized_store
):
    import uuid

    from mlflow.entities import Param, RunTag

    from backprop_lab.core.data import make_dataset
    from backprop_lab.tracking.native import dataset_inputs, log_inputs
    from backprop_lab.tracking.sqlite_store import FinishedRun, write_finished_runs

    moons = make_dataset("moons", num_samples=40, seed=0)

    database = tmp_path / "mlflow.db"
    shutil.copyfile(initialized_store, database)
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment).info.run_id
    tags = {"mlflow.parentRunId": parent, "backprop_lab.kind": "grid_row"}
    params = {"optimizer.learning_rate": "0.5", "model.hidden_sizes": "[2]"}

    inputs = dataset_inputs(moons, {"name": "moons", "num_samples": 40, "seed": 0})
    by_client = client.create_run(experiment, run_name="lr=0.5", tags=tags).info.run_id
    log_inputs(client, parent, inputs)  # the grid run logs the data set first
    log_inputs(client, by_client, inputs)
    client.log_batch(
        by_client,
        metrics=[Metric(k, v, t, s) for k, v, t, s in POINTS],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag("backprop_lab.error", "stopped")],
    )
    client.set_terminated(by_client, "KILLED")
    direct = uuid.uuid4().hex
    written = FinishedRun(
        direct, "lr=0.5", "KILLED", 1000, 2000, {**tags, "backprop_lab.error": "stopped"},
        params, POINTS, inputs,
    )  # fmt: skip
    location = client.get_experiment(experiment).artifact_location
    assert write_finished_runs(database, experiment, location, [written])

    mine, theirs = client.get_run(direct), client.get_run(by_client)
    for field in ("status", "lifecycle_stage", "run_name", "user_id", "experiment_id"):
        assert getattr(mine.info, field) == getattr(theirs.info, field), field
    assert mine.info.artifact_uri == theirs.info.artifact_uri.replace(by_client, direct)
    assert mine.data.params == theirs.data.params
    assert mine.data.tags == theirs.data.tags
    assert _read(client, direct) == _read(client, by_client)
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")
    assert {run.info.run_id for run in children} == {direct, by_client}
    found = client.search_runs([experiment], "params.`optimizer.learning_rate` = '0.5'")
    assert len(found) == 2

    # The data set is the grid run's (linked, not copied), with the same inputs and contexts.
    def described(run):
        return sorted(
            (item.dataset.name, item.dataset.digest, item.dataset.source_type,
             item.dataset.source, item.dataset.schema, item.dataset.profile,
             tuple((tag.key, tag.value) for tag in item.tags))
            for item in run.inputs.dataset_inputs
        )  # fmt: skip

    assert described(mine) == described(theirs) and len(described(mine)) == 2
    rows = sqlite3.connect(database).execute("select count(*) from datasets").fetchone()
    assert rows == (2,)  # the training and the test split, once each for the experiment
    found = client.search_runs(
        [experiment], "datasets.name = 'moons' and datasets.context = 'test'"
    )
    assert {run.info.run_id for run in found} == {parent, direct, by_client}
