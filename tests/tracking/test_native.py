"""What MLflow's own UI and API see: the experiment's kind, dataset inputs, the rate table.

Descriptions are checked against MLflow's own ``mlflow.data.from_pandas`` and tables against
``MlflowClient.log_table``/``load_table``; a grid is read back through ``MlflowClient`` after
being published live, and after ``bplab-sync`` published it later.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.tracking import MlflowClient

from backprop_lab import pipeline, sync
from backprop_lab.core.analysis import rate_rows
from backprop_lab.core.data import fingerprint, make_dataset
from backprop_lab.tracking import RunRecord, ensure_experiment, native, publishing, ui_command

REPO_ROOT = Path(__file__).resolve().parents[2]
GRID = [
    "experiment=xor_mlp",
    "training.epochs=40",
    "sweep.learning_rates=[0.5,2.0,8.0]",
    "sweep.seeds=2",
    "tracking.plots=false",
]


def _mlflow_description(dataset, features, targets, names, source):
    """What ``mlflow.log_input(mlflow.data.from_pandas(...))`` stores for these arrays."""
    import mlflow.data

    frame = pd.DataFrame(np.hstack([features, targets]), columns=names)
    entity = mlflow.data.from_pandas(
        frame, source=source, targets=names[-1], name=dataset.name, digest="unused"
    )._to_mlflow_entity()
    return {key: getattr(entity, key) for key in ("source_type", "source", "schema", "profile")}


def test_a_generated_data_set_is_described_as_mlflow_from_pandas_does():
    moons = make_dataset("moons", num_samples=40, noise=0.1, test_fraction=0.5, seed=3)
    config = {"name": "moons", "num_samples": 40, "noise": 0.1, "test_fraction": 0.5, "seed": 3,
              "path": None, "feature_columns": [], "target_columns": []}  # fmt: skip
    training, test = native.dataset_inputs(moons, config)
    source = CodeDatasetSource(
        {"mlflow.source.name": "backprop_lab.core.data.make_dataset", "data.name": "moons",
         "data.num_samples": "40", "data.noise": "0.1", "data.test_fraction": "0.5",
         "data.seed": "3"}
    )  # fmt: skip
    for item, features, targets, context in (
        (training, moons.x_train, moons.y_train, "training"),
        (test, moons.x_test, moons.y_test, "test"),
    ):
        expected = _mlflow_description(moons, features, targets, ["x1", "x2", "y"], source)
        assert {key: item[key] for key in expected} == expected
        assert item["name"] == "moons" and item["context"] == context
        split = fingerprint(
            moons._replace(x_train=features, y_train=targets, x_test=None, y_test=None)
        )
        assert item["digest"] == split[:8]
    assert training["digest"] != test["digest"]


def test_a_csv_is_a_local_source_with_its_column_names(tmp_path, monkeypatch):
    table = tmp_path / "points.csv"
    table.write_text("a,b,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    monkeypatch.chdir(tmp_path)
    dataset = make_dataset("csv", path="points.csv", feature_columns=["a", "b"],
                           target_columns=["label"])  # fmt: skip
    config = {"name": "csv", "path": "points.csv", "feature_columns": ["a", "b"],
              "target_columns": ["label"]}  # fmt: skip
    (training,) = native.dataset_inputs(dataset, config)
    expected = _mlflow_description(
        dataset, dataset.x_train, dataset.y_train, ["a", "b", "label"],
        resolve_dataset_source(str(table)),
    )  # fmt: skip
    assert {key: training[key] for key in expected} == expected
    assert training["name"] == "points"
    # Without a test split the digest is the start of the run's data_sha256 tag.
    assert training["digest"] == fingerprint(dataset)[:8]


def test_a_table_is_the_file_and_tag_log_table_writes(tmp_path, store):
    # ``store`` is also $MLFLOW_TRACKING_URI: ``load_table`` searches through ``mlflow.search_runs``.
    client = MlflowClient(store)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    columns = {"learning_rate": [0.5, 2.0], "success_rate": [1.0, float("nan")], "cells": [4, 4]}

    theirs = client.create_run(experiment).info.run_id
    client.log_table(theirs, columns, "rates.json")
    record = RunRecord(folder=str(tmp_path / "record"), experiment_name="e", run_name="r",
                       tracking_uri="")  # fmt: skip
    native.add_table(record, "rates.json", columns)
    native.add_table(record, "rates.json", columns)  # once in the tag
    mine = client.create_run(experiment, tags=record.tags).info.run_id
    client.log_artifacts(mine, str(record.artifact_dir))

    assert (
        client.get_run(mine).data.tags["mlflow.loggedArtifacts"]
        == (client.get_run(theirs).data.tags["mlflow.loggedArtifacts"])
    )
    tables = client.load_table(experiment, "rates.json", run_ids=[mine, theirs],
                               extra_columns=["run_id"])  # fmt: skip
    by_run = {run: frame.drop(columns="run_id") for run, frame in tables.groupby("run_id")}
    pd.testing.assert_frame_equal(
        by_run[mine].reset_index(drop=True), by_run[theirs].reset_index(drop=True)
    )


# ---------------------------------------------------------------------------------------------
# A grid, published live and by bplab-sync


def _grid_view(client: MlflowClient, run_id: str) -> SimpleNamespace:
    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return SimpleNamespace(run=run, experiment=experiment, children=children)


def _check_native(client: MlflowClient, view: SimpleNamespace, tmp_path: Path) -> None:
    assert view.experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    sha = view.run.data.tags["backprop_lab.data_sha256"]
    for run in (view.run, *view.children):
        (item,) = run.inputs.dataset_inputs
        assert (item.dataset.name, item.dataset.digest) == ("xor", sha[:8])
        assert [(tag.key, tag.value) for tag in item.tags] == [("mlflow.data.context", "training")]
        assert json.loads(item.dataset.source)["tags"]["data.name"] == "xor"
    assert len(view.children) == 3
    for child in view.children:
        rate = float(child.data.params["optimizer.learning_rate"])
        assert child.data.metrics["learning_rate"] == pytest.approx(rate)
        assert "mlflow.loggedArtifacts" not in child.data.tags
    # The rate table: one row per rate, as the grid's own arrays give it.
    assert json.loads(view.run.data.tags["mlflow.loggedArtifacts"]) == [
        {"path": "rates.json", "type": "table"}
    ]
    table = client.load_table(
        view.experiment.experiment_id, "rates.json", run_ids=[view.run.info.run_id]
    )
    grid = np.load(client.download_artifacts(view.run.info.run_id, "grid.npz", str(tmp_path)))
    rows = rate_rows(grid)
    assert list(table["learning_rate"]) == pytest.approx([row.rate for row in rows])
    assert list(table["success_rate"]) == pytest.approx([row.success_rate for row in rows])
    for name in ("median_final_loss", "diverged", "cells"):
        expected = [getattr(row, name) for row in rows]
        got = list(table[name])
        assert [None if math.isnan(v) else v for v in got] == pytest.approx(
            [None if math.isnan(v) else v for v in expected]
        )
    # Searchable by data set, as the runs table's Dataset filter does.
    found = client.search_runs(
        [view.experiment.experiment_id], f"datasets.digest = '{sha[:8]}'", max_results=100
    )
    assert len(found) == 4


def test_a_grid_shows_natively_in_mlflow(compose, store, tmp_path):
    summary = pipeline.execute(compose(GRID), output_dir=tmp_path / "job", overrides=GRID)
    client = MlflowClient(store)
    _check_native(client, _grid_view(client, summary.run_id), tmp_path / "dl")


def test_a_grid_published_by_sync_shows_natively_too(compose, store, tmp_path):
    def server_gone(*args, **kwargs):
        raise ConnectionError("connection refused")

    with pytest.MonkeyPatch.context() as server_down:
        for name in ("publish", "publish_metrics", "publish_artifacts_and_close", "create_run"):
            server_down.setattr(publishing, name, server_gone)
        summary = pipeline.execute(compose(GRID), output_dir=tmp_path / "job", overrides=GRID)
    assert summary.status == "PENDING" and summary.run_id is None
    report = sync.sync([str(tmp_path / "job")])
    assert report.ok and len(report.published) == 1
    client = MlflowClient(store)
    _check_native(client, _grid_view(client, report.published[0].run_id), tmp_path / "dl")


# ---------------------------------------------------------------------------------------------
# The experiment's kind, and where the UI opens


def test_older_experiments_get_the_model_training_kind_but_a_chosen_kind_stays(store):
    client = MlflowClient(store)
    ensure_experiment(store, "fresh")
    old = client.create_experiment("made_before")  # as older versions did: no kind
    chosen = client.create_experiment("chosen", tags={"mlflow.experimentKind": "genai_development"})
    assert ensure_experiment(store, "made_before") == old
    ensure_experiment(store, "chosen")
    kinds = {
        name: client.get_experiment_by_name(name).tags.get("mlflow.experimentKind")
        for name in ("fresh", "made_before", "chosen")
    }
    assert kinds == {
        "fresh": "custom_model_development",
        "made_before": "custom_model_development",
        "chosen": "genai_development",
    }
    assert chosen


def test_the_printed_command_opens_the_runs_in_the_model_training_view():
    local = ui_command("sqlite:////x/mlflow.db", "7")
    assert local == (
        "mlflow ui --backend-store-uri sqlite:////x/mlflow.db, then open "
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert ui_command("http://host:5050/", "7") == (
        "open http://host:5050/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert "Model training" in ui_command("sqlite:////x/mlflow.db")
