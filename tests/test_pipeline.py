"""The shell around the core: a config in, a trained run recorded in MLflow out.

Every test trains in-process with :func:`backprop_lab.pipeline.execute` into a temporary
SQLite store and reads the run back with ``MlflowClient``, as a user of the store would.
Console-script behaviour (exit codes, multiruns) is in ``test_cli_*.py``.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlparse

import jax
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from backprop_lab import pipeline, rerun, sync
from backprop_lab.cli import sync as sync_cli
from backprop_lab.config import flatten, to_container
from backprop_lab.errors import BackpropLabError
from backprop_lab.tracking import RECORD_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
FAST = ["experiment=xor_mlp", "training.epochs=50", "tracking.plots=false"]


def _compose(overrides: list[str]):
    """The ``compose`` fixture's logic, for module-scoped fixtures."""
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=list(overrides))


def _runs(uri: str) -> list:
    """Every run in the store, of every experiment; [] when the SQLite file was never made."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        return []
    client = MlflowClient(uri)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    if not experiments:
        return []
    return client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL)


def _records_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob(RECORD_FILE)) if folder.exists() else []


def _steps_and_values(client: MlflowClient, run_id: str, name: str) -> tuple[list[int], np.ndarray]:
    points = sorted(client.get_metric_history(run_id, name), key=lambda point: point.step)
    return [point.step for point in points], np.array([point.value for point in points])


def _artifact_path(client: MlflowClient, run_id: str, name: str) -> Path:
    """The file behind a run's artifact in a local store (to tamper with it)."""
    uri = client.get_run(run_id).info.artifact_uri
    return Path(unquote(urlparse(uri).path)) / name


# ---------------------------------------------------------------------------------------------
# One single run on a data set with a test split, shared by the record checks


MOONS_EPOCHS = 20
MOONS_OVERRIDES = [
    "experiment=xor_mlp",
    "data=moons",
    f"training.epochs={MOONS_EPOCHS}",
    "model.hidden_sizes=[3]",
]


@pytest.fixture(scope="module")
def moons(tmp_path_factory):
    root = tmp_path_factory.mktemp("moons")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = _compose([*MOONS_OVERRIDES, f"tracking.uri={uri}"])
    summary = pipeline.execute(cfg, output_dir=root / "job", overrides=MOONS_OVERRIDES)
    client = MlflowClient(uri)
    artifacts = Path(client.download_artifacts(summary.run_id, "", str(root / "downloaded")))
    return SimpleNamespace(
        cfg=cfg,
        uri=uri,
        summary=summary,
        client=client,
        run=client.get_run(summary.run_id),
        artifacts=artifacts,
        root=root,
    )


def test_a_run_finishes_in_the_experiment_named_after_its_preset(moons):
    assert moons.summary.status == "FINISHED"
    assert moons.summary.kind == "single"
    assert moons.run.info.status == "FINISHED"
    assert moons.client.get_experiment(moons.run.info.experiment_id).name == "xor_mlp"
    assert [run.info.run_id for run in _runs(moons.uri)] == [moons.summary.run_id]
    # The run name says what varied (the preset itself and tracking settings left out).
    assert moons.run.info.run_name == "data=moons,training.epochs=20,model.hidden_sizes=[3]"


def test_a_run_logs_the_flattened_config_as_params(moons):
    params = moons.run.data.params
    assert params["optimizer.learning_rate"] == "2.0"
    assert params["optimizer.name"] == "sgd"
    assert params["model.hidden_activation"] == "sigmoid"
    assert params["model.hidden_sizes"] == "[3]"
    assert params["data.name"] == "moons"
    assert params["training.epochs"] == str(MOONS_EPOCHS)
    assert params["seed"] == "0"
    assert set(params) == set(flatten(to_container(moons.cfg)))


@pytest.mark.parametrize("name", ["loss", "accuracy", "test_loss", "test_accuracy"])
def test_a_run_logs_one_point_per_epoch(moons, name):
    steps, values = _steps_and_values(moons.client, moons.summary.run_id, name)
    assert steps == list(range(1, MOONS_EPOCHS + 1))
    assert np.isfinite(values).all()
    if name.endswith("accuracy"):
        assert ((values >= 0) & (values <= 1)).all()
    # The same curve as the history.csv artifact.
    table = np.genfromtxt(moons.artifacts / "history.csv", delimiter=",", names=True)
    np.testing.assert_allclose(values, table[name], rtol=1e-6)


def test_the_summary_and_the_last_epoch_agree(moons):
    _, losses = _steps_and_values(moons.client, moons.summary.run_id, "loss")
    _, accuracies = _steps_and_values(moons.client, moons.summary.run_id, "accuracy")
    assert moons.summary.final_loss == pytest.approx(losses[-1], rel=1e-6)
    assert moons.summary.final_accuracy == pytest.approx(accuracies[-1], rel=1e-6)
    metrics = moons.run.data.metrics
    for name in ("initial_loss", "initial_accuracy", "train_seconds", "solved", "diverged"):
        assert name in metrics
    assert metrics["diverged"] == 0.0


def test_a_run_logs_its_artifacts(moons):
    names = {item.path for item in moons.client.list_artifacts(moons.summary.run_id)}
    assert {"config.yaml", "overrides.yaml", "weights.npz", "weights.json", "history.csv"} <= names

    logged = OmegaConf.load(moons.artifacts / "config.yaml")
    assert logged.data.name == "moons"
    assert logged.training.epochs == MOONS_EPOCHS
    assert list(logged.model.hidden_sizes) == [3]
    assert list(OmegaConf.load(moons.artifacts / "overrides.yaml")) == MOONS_OVERRIDES

    header, *rows = (moons.artifacts / "history.csv").read_text().splitlines()
    assert header == "epoch,loss,accuracy,test_loss,test_accuracy"
    assert [int(float(row.split(",")[0])) for row in rows] == list(range(1, MOONS_EPOCHS + 1))


def test_weights_json_has_one_row_per_unit_and_matches_weights_npz(moons):
    payload = json.loads((moons.artifacts / "weights.json").read_text())
    assert set(payload) == {"layers"}
    layer_sizes = (2, 3, 1)
    assert len(payload["layers"]) == len(layer_sizes) - 1
    with np.load(moons.artifacts / "weights.npz") as arrays:
        assert sorted(arrays.files) == [
            "layer0_biases",
            "layer0_weights",
            "layer1_biases",
            "layer1_weights",
        ]
        for index, layer in enumerate(payload["layers"]):
            assert set(layer) == {"weights", "biases"}
            weights, biases = np.asarray(layer["weights"]), np.asarray(layer["biases"])
            assert weights.shape == (layer_sizes[index + 1], layer_sizes[index])
            assert biases.shape == (layer_sizes[index + 1],)
            np.testing.assert_array_equal(
                weights.astype(np.float32), arrays[f"layer{index}_weights"]
            )
            np.testing.assert_array_equal(biases.astype(np.float32), arrays[f"layer{index}_biases"])


def test_a_run_is_tagged_with_its_provenance(moons):
    tags = moons.run.data.tags
    commit = tags["mlflow.source.git.commit"]
    assert tags["backprop_lab.git_commit"] == commit
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", commit)
        assert tags["backprop_lab.git_dirty"] in ("true", "false")
    for package in ("jax", "optax", "mlflow", "hydra-core"):
        assert tags[f"backprop_lab.version.{package}"] == version(package)
    assert tags["backprop_lab.jax_backend"] == jax.default_backend()
    assert tags["backprop_lab.jax_device"].startswith(jax.devices()[0].platform + ":")
    assert tags["backprop_lab.precision"] == "float32"
    assert tags["backprop_lab.seed"] == "0"
    assert tags["backprop_lab.kind"] == "single"
    assert tags["backprop_lab.preset"] == "xor_mlp"
    assert re.fullmatch(r"[0-9a-f]{16}", tags["backprop_lab.config_hash"])
    assert "mlflow.parentRunId" not in tags


def test_the_local_record_is_marked_published(moons):
    record = json.loads((Path(moons.summary.record_folder) / RECORD_FILE).read_text())
    assert record["published"] is True
    assert record["status"] == "FINISHED"
    assert record["run_id"] == moons.summary.run_id


def test_the_experiment_name_can_be_overridden(compose, store, tmp_path):
    cfg = compose([*FAST, "training.epochs=5", "tracking.experiment_name=my_study"])
    summary = pipeline.execute(cfg, output_dir=tmp_path / "job")
    client = MlflowClient(store)
    assert summary.experiment_name == "my_study"
    assert (
        client.get_experiment(client.get_run(summary.run_id).info.experiment_id).name == "my_study"
    )
    assert client.get_experiment_by_name("xor_mlp") is None


# ---------------------------------------------------------------------------------------------
# The article's numbers, end to end


def test_seed_homework_loss_falls_every_epoch(compose, store, tmp_path):
    summary = pipeline.execute(
        compose(["experiment=seed_homework", "tracking.plots=false"]), output_dir=tmp_path / "job"
    )
    steps, losses = _steps_and_values(MlflowClient(store), summary.run_id, "loss")
    assert steps == list(range(1, 26))
    assert (np.diff(losses) < 0).all(), losses


def test_seed_example_weights_match_the_worked_example(compose, store, tmp_path):
    summary = pipeline.execute(
        compose(["experiment=seed_example", "tracking.plots=false"]), output_dir=tmp_path / "job"
    )
    client = MlflowClient(store)
    assert _steps_and_values(client, summary.run_id, "loss")[0] == [1]
    path = client.download_artifacts(summary.run_id, "weights.json", str(tmp_path / "downloaded"))
    layers = json.loads(Path(path).read_text())["layers"]
    # SEED-NOTES §5: w(h1 -> o1) = 0.3941 and w(x1 -> h1) = 0.1055 after one step.
    assert layers[1]["weights"][0][0] == pytest.approx(0.3941, abs=1e-4)
    assert layers[0]["weights"][0][0] == pytest.approx(0.1055, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# Bad input: its error, and no run


def _bad_csv(folder: Path) -> list[str]:
    table = folder / "table.csv"
    table.write_text("a,b,y\n0,0,0\n1,x1,1\n")
    return [
        "data=csv",
        f"data.path={table}",
        "data.feature_columns=[a,b]",
        "data.target_columns=[y]",
    ]


BAD_INPUTS = [
    pytest.param(
        ["model.nonexistent=3"], ConfigCompositionException, "nonexistent", id="unknown-key"
    ),
    pytest.param(
        ["+foo=1"], (ConfigCompositionException, BackpropLabError), "foo", id="appended-unknown-key"
    ),
    pytest.param(
        ["optimizer.learning_rate=abc"],
        ConfigCompositionException,
        "learning_rate",
        id="wrong-type",
    ),
    pytest.param(
        ["optimizer.learning_rate=-0.5"],
        BackpropLabError,
        "optimizer.learning_rate",
        id="negative-lr",
    ),
    pytest.param(
        ["optimizer.learning_rate=nan"], BackpropLabError, "optimizer.learning_rate", id="nan-lr"
    ),
    pytest.param(["training.epochs=0"], BackpropLabError, "training.epochs", id="zero-epochs"),
    pytest.param(
        ["model.hidden_activation=relux"],
        BackpropLabError,
        "model.hidden_activation",
        id="activation",
    ),
    pytest.param(["data.name=nope"], BackpropLabError, "data.name", id="data-set"),
    pytest.param(
        ["model.hidden_sizes=[0]"], BackpropLabError, "model.hidden_sizes", id="layer-size-0"
    ),
    pytest.param(["model.input_size=3"], BackpropLabError, "model.input_size", id="width-mismatch"),
    pytest.param(_bad_csv, BackpropLabError, "'x1' is not a number", id="csv-cell"),
]


@pytest.mark.parametrize(("overrides", "error", "fragment"), BAD_INPUTS)
def test_bad_input_raises_and_creates_no_run(
    compose, store_uri, tmp_path, overrides, error, fragment
):
    if callable(overrides):
        overrides = overrides(tmp_path)
    output_dir = tmp_path / "job"
    with pytest.raises(error) as raised:
        pipeline.execute(compose([*FAST, *overrides]), output_dir=output_dir, overrides=overrides)
    text = str(raised.value) + str(raised.value.__cause__ or "")
    assert fragment in text
    if isinstance(raised.value, BackpropLabError):
        assert "\n" not in str(raised.value)
    assert _runs(store_uri) == []
    assert _records_under(tmp_path) == []


def test_a_bad_input_leaves_an_existing_store_untouched(compose, store, tmp_path):
    pipeline.execute(compose([*FAST, "training.epochs=3"]), output_dir=tmp_path / "good")
    with pytest.raises(BackpropLabError):
        pipeline.execute(
            compose([*FAST, "optimizer.learning_rate=nan"]), output_dir=tmp_path / "bad"
        )
    assert len(_runs(store)) == 1
    assert not (tmp_path / "bad").exists()


def test_an_unreachable_tracking_server_fails_before_training(
    compose, store_uri, tmp_path, monkeypatch
):
    def must_not_train(*args, **kwargs):
        pytest.fail("training started although the tracking server is unreachable")

    monkeypatch.setattr(pipeline, "train_job", must_not_train)
    uri = "http://127.0.0.1:9"
    cfg = compose([*FAST, f"tracking.uri={uri}"])
    with pytest.raises(BackpropLabError, match=re.escape(uri)) as raised:
        pipeline.execute(cfg, output_dir=tmp_path / "job")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "job").exists()
    assert _records_under(tmp_path) == []
    assert _runs(store_uri) == []


# ---------------------------------------------------------------------------------------------
# Runs that end badly are closed with the right status


def _only_run(uri: str):
    runs = _runs(uri)
    assert len(runs) == 1
    return runs[0]


def test_an_error_during_training_marks_the_run_failed(compose, store, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the accelerator caught fire")

    monkeypatch.setattr(pipeline, "train_job", broken)
    with pytest.raises(RuntimeError, match="caught fire"):
        pipeline.execute(compose(FAST), output_dir=tmp_path / "job")
    run = _only_run(store)
    assert run.info.status == "FAILED"
    assert run.data.tags["backprop_lab.error"] == "RuntimeError: the accelerator caught fire"
    (record,) = _records_under(tmp_path)
    assert json.loads(record.read_text())["status"] == "FAILED"


def test_an_interrupt_during_training_marks_the_run_killed(compose, store, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pipeline.execute(compose(FAST), output_dir=tmp_path / "job")
    run = _only_run(store)
    assert run.info.status == "KILLED"
    assert "backprop_lab.error" in run.data.tags
    (record,) = _records_under(tmp_path)
    assert json.loads(record.read_text())["status"] == "KILLED"


# ---------------------------------------------------------------------------------------------
# Reproducing a run


def test_rerun_reproduces_a_single_run_bitwise(compose, store, tmp_path):
    summary = pipeline.execute(compose(FAST), output_dir=tmp_path / "job")
    assert rerun.rerun(summary.run_id, store) == (True, 0.0, "single")

    # And it can tell when they differ: nudge one logged weight.
    client = MlflowClient(store)
    weights_file = _artifact_path(client, summary.run_id, "weights.npz")
    with np.load(weights_file) as arrays:
        tampered = {key: arrays[key].copy() for key in arrays.files}
    tampered["layer0_weights"][0, 0] += 1e-3
    np.savez(weights_file, **tampered)
    identical, difference, kind = rerun.rerun(summary.run_id, store)
    assert not identical
    assert difference == pytest.approx(1e-3, rel=1e-2)


def test_rerun_of_an_unknown_run_id_is_a_one_line_error(store):
    with pytest.raises(BackpropLabError, match="no run 'not-a-run'") as raised:
        rerun.rerun("not-a-run", store)
    assert "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------------
# A learning-rate x seed grid


GRID_RATES, GRID_SEEDS, GRID_EPOCHS = [0.5, 2.0], [0, 1], 50
GRID_OVERRIDES = [
    "experiment=xor_mlp",
    f"training.epochs={GRID_EPOCHS}",
    "sweep.learning_rates=[0.5,2.0]",
    "sweep.seeds=2",
]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = _compose([*GRID_OVERRIDES, f"tracking.uri={uri}"])
    summary = pipeline.execute(cfg, output_dir=root / "job", overrides=GRID_OVERRIDES)
    client = MlflowClient(uri)
    run = client.get_run(summary.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    path = client.download_artifacts(summary.run_id, "grid.npz", str(root / "downloaded"))
    with np.load(path) as arrays:
        npz = {key: arrays[key] for key in arrays.files}
    return SimpleNamespace(
        uri=uri, summary=summary, client=client, run=run, children=children, npz=npz
    )


def test_a_grid_run_is_one_parent_with_a_child_per_learning_rate(grid):
    assert grid.summary.kind == "grid"
    assert grid.summary.cells == 4
    assert grid.run.info.status == "FINISHED"
    assert grid.run.data.tags["backprop_lab.kind"] == "grid"
    assert "success_rate" in grid.run.data.metrics
    assert grid.run.data.metrics["cells"] == 4
    assert len(_runs(grid.uri)) == 1 + len(GRID_RATES)
    rates = sorted(float(child.data.params["optimizer.learning_rate"]) for child in grid.children)
    assert rates == GRID_RATES
    for child in grid.children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["backprop_lab.kind"] == "grid_row"
        assert "success_rate" in child.data.metrics


def test_grid_children_log_their_rate_aggregates_per_epoch(grid):
    for child in grid.children:
        row = GRID_RATES.index(float(child.data.params["optimizer.learning_rate"]))
        steps, median = _steps_and_values(grid.client, child.info.run_id, "loss_median")
        assert steps == list(range(1, GRID_EPOCHS + 1))
        np.testing.assert_allclose(median, np.median(grid.npz["loss"][row], axis=0), rtol=1e-6)
        _, mean_accuracy = _steps_and_values(grid.client, child.info.run_id, "accuracy_mean")
        np.testing.assert_allclose(mean_accuracy, grid.npz["accuracy"][row].mean(axis=0), rtol=1e-6)
        # Every seed's curve is in grid.npz; MLflow gets the aggregates unless asked for more.
        assert not [key for key in child.data.metrics if key.startswith("loss/seed_")]


def test_a_grid_can_log_every_seeds_curve_in_its_children(compose, store, tmp_path):
    summary = pipeline.execute(
        compose([*GRID_OVERRIDES, "tracking.seed_curves=true", "tracking.plots=false"]),
        output_dir=tmp_path / "job",
    )
    client = MlflowClient(store)
    experiment = client.get_run(summary.run_id).info.experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{summary.run_id}'"
    )
    grid = np.load(client.download_artifacts(summary.run_id, "grid.npz", str(tmp_path / "dl")))
    for child in children:
        row = GRID_RATES.index(float(child.data.params["optimizer.learning_rate"]))
        for seed in GRID_SEEDS:
            steps, values = _steps_and_values(client, child.info.run_id, f"loss/seed_{seed:03d}")
            assert steps == list(range(1, GRID_EPOCHS + 1))
            np.testing.assert_allclose(values, grid["loss"][row, seed], rtol=1e-6)


def test_a_grid_read_back_from_mlflow_alone_rebuilds_its_per_rate_table(grid):
    """The children's params and metrics are the per-rate table; grid.npz agrees."""
    from backprop_lab.core.analysis import best_rate_index, rate_rows

    by_mlflow = sorted(
        (
            float(child.data.params["optimizer.learning_rate"]),
            child.data.metrics["success_rate"],
            child.data.metrics.get("final_loss_median", float("nan")),
            child.data.metrics["diverged_fraction"],
            child.data.metrics["improved_fraction"],
        )
        for child in grid.children
    )
    rows = rate_rows(grid.npz)
    expected = [
        (row.rate, row.success_rate, row.median_final_loss, row.diverged, row.improved)
        for row in rows
    ]
    np.testing.assert_allclose(np.array(by_mlflow), np.array(expected), rtol=1e-6)
    assert grid.run.data.metrics["best_learning_rate"] == rows[best_rate_index(rows)].rate


def test_grid_npz_holds_every_cell(grid):
    npz = grid.npz
    assert npz["loss"].shape == (len(GRID_RATES), len(GRID_SEEDS), GRID_EPOCHS)
    assert npz["accuracy"].shape == npz["loss"].shape
    np.testing.assert_allclose(npz["learning_rates"], GRID_RATES)
    np.testing.assert_array_equal(npz["seeds"], GRID_SEEDS)
    assert npz["layer0_weights"].shape == (len(GRID_RATES), len(GRID_SEEDS), 2, 2)
    assert npz["solved"].shape == (len(GRID_RATES), len(GRID_SEEDS))
    assert grid.run.data.metrics["success_rate"] == pytest.approx(npz["solved"].mean())


def test_each_grid_cell_equals_the_same_config_trained_alone(grid):
    for row, rate in enumerate(GRID_RATES):
        for column, seed in enumerate(GRID_SEEDS):
            cfg = _compose(
                [
                    "experiment=xor_mlp",
                    f"training.epochs={GRID_EPOCHS}",
                    f"optimizer.learning_rate={rate}",
                    f"seed={seed}",
                ]
            )
            job = pipeline.prepare(cfg)
            assert not job.grid
            alone = pipeline.train_job(job, seed)
            np.testing.assert_allclose(
                np.asarray(alone.history.loss), grid.npz["loss"][row, column], rtol=1e-5, atol=1e-7
            )
            np.testing.assert_allclose(
                np.asarray(alone.params[0].weights),
                grid.npz["layer0_weights"][row, column],
                rtol=1e-5,
                atol=1e-6,
            )


def test_rerun_reproduces_a_grid_bitwise(grid):
    assert rerun.rerun(grid.summary.run_id, grid.uri) == (True, 0.0, "grid")


def test_a_grid_records_the_layout_of_its_cells(grid):
    # An online XOR grid trains with its cells last (core.lanes): part of its bits.
    assert grid.run.data.tags["backprop_lab.grid_layout"] == "lanes"


def test_a_grid_recorded_before_layouts_were_tagged_reruns_with_its_cells_first(
    tmp_path, monkeypatch
):
    from backprop_lab import jobs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A grid trained as earlier versions trained every grid, recorded without the layout tag.
    monkeypatch.setattr(jobs, "resolved_layout", lambda spec: "cells")
    summary = pipeline.execute(
        _compose([*GRID_OVERRIDES, f"tracking.uri={uri}"]),
        output_dir=tmp_path / "job",
        overrides=GRID_OVERRIDES,
    )
    monkeypatch.undo()
    client = MlflowClient(uri)
    assert client.get_run(summary.run_id).data.tags["backprop_lab.grid_layout"] == "cells"
    client.delete_tag(summary.run_id, "backprop_lab.grid_layout")
    assert rerun.rerun(summary.run_id, uri) == (True, 0.0, "grid")
    # The tag is what decides: the same weights read as a lanes grid differ in their last bits.
    client.set_tag(summary.run_id, "backprop_lab.grid_layout", "lanes")
    identical, difference, _ = rerun.rerun(summary.run_id, uri)
    assert not identical and 0 < difference < 1e-3
    client.set_tag(summary.run_id, "backprop_lab.grid_layout", "diagonal")
    with pytest.raises(BackpropLabError, match="not a layout") as raised:
        rerun.rerun(summary.run_id, uri)
    assert "\n" not in str(raised.value)


def test_rerun_of_a_grid_child_is_a_one_line_error(grid):
    # A child holds no weights of its own: rerun says so instead of crashing.
    with pytest.raises(BackpropLabError) as raised:
        rerun.rerun(grid.children[0].info.run_id, grid.uri)
    assert "\n" not in str(raised.value)


def test_rerun_of_a_grid_child_names_its_kind(grid):
    with pytest.raises(BackpropLabError, match="grid_row"):
        rerun.rerun(grid.children[0].info.run_id, grid.uri)


# ---------------------------------------------------------------------------------------------
# resume=true


def test_resume_skips_a_config_that_already_finished(compose, store, tmp_path):
    cfg = compose([*FAST, "training.epochs=5", "resume=true"])
    first = pipeline.execute(cfg, output_dir=tmp_path / "first")
    assert not first.skipped
    second = pipeline.execute(cfg, output_dir=tmp_path / "second")
    assert second.skipped
    assert second.run_id == first.run_id
    assert len(_runs(store)) == 1
    assert _records_under(tmp_path / "second") == []
    # A different config is not skipped.
    other = pipeline.execute(
        compose([*FAST, "training.epochs=5", "resume=true", "seed=1"]),
        output_dir=tmp_path / "third",
    )
    assert not other.skipped
    assert len(_runs(store)) == 2


# ---------------------------------------------------------------------------------------------
# A tracking server that goes away, and bplab-sync


_PUBLISHERS = ("publish", "publish_metrics", "publish_artifacts_and_close")


def _server_gone(*args, **kwargs):
    raise ConnectionError("connection refused")


def _stop_tracking_publishers(patch: pytest.MonkeyPatch) -> None:
    """tracking's publishing functions fail (whichever of them the pipeline calls)."""
    from backprop_lab.tracking import publishing

    for name in _PUBLISHERS:
        patch.setattr(publishing, name, _server_gone)


def _stop_mlflow_after_create(patch: pytest.MonkeyPatch) -> None:
    """The store accepts the new run and its params, then refuses everything else."""
    real_log_batch = MlflowClient.log_batch

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        if metrics:
            raise ConnectionError("connection refused")
        return real_log_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    patch.setattr(MlflowClient, "log_batch", log_batch)
    from backprop_lab.tracking import publishing

    patch.setattr(publishing, "write_metrics", _server_gone)  # the direct SQLite path
    for name in ("log_artifacts", "log_artifact", "set_terminated"):
        patch.setattr(MlflowClient, name, _server_gone)


@pytest.mark.parametrize("stop_server", [_stop_tracking_publishers, _stop_mlflow_after_create])
def test_a_run_kept_on_disk_is_published_by_sync(compose, store, tmp_path, stop_server):
    # The run is created, then the server disappears before its results are sent.
    with pytest.MonkeyPatch.context() as server_down:
        stop_server(server_down)
        epochs = 30
        summary = pipeline.execute(
            compose([*FAST, f"training.epochs={epochs}"]), output_dir=tmp_path / "job"
        )
    assert summary.status == "PENDING"
    folder = Path(summary.record_folder)
    assert folder.is_dir()
    record = json.loads((folder / RECORD_FILE).read_text())
    assert record["published"] is False
    assert record["status"] == "FINISHED"
    assert len(record["metrics"]["loss"]) == epochs
    client = MlflowClient(store)
    assert client.get_run(summary.run_id).info.status == "RUNNING"
    assert client.get_metric_history(summary.run_id, "loss") == []

    report = sync.sync([str(tmp_path / "job")])
    assert [item.run_id for item in report.published] == [summary.run_id]
    assert report.ok
    run = client.get_run(summary.run_id)
    assert run.info.status == "FINISHED"
    for name in ("loss", "accuracy"):
        steps, _ = _steps_and_values(client, summary.run_id, name)
        assert steps == list(range(1, epochs + 1))
    assert {"weights.json", "history.csv"} <= {
        item.path for item in client.list_artifacts(summary.run_id)
    }
    assert json.loads((folder / RECORD_FILE).read_text())["published"] is True
    # Nothing is left to publish, and nothing is published twice.
    assert sync.sync([str(tmp_path / "job")]).published == []
    assert len(_runs(store)) == 1


def test_sync_publishes_the_good_records_when_one_cannot_be_published(compose, store, tmp_path):
    with pytest.MonkeyPatch.context() as server_down:
        _stop_tracking_publishers(server_down)
        good = pipeline.execute(compose(FAST), output_dir=tmp_path / "jobs" / "good")
        bad = pipeline.execute(compose(FAST), output_dir=tmp_path / "jobs" / "bad")
    assert good.status == bad.status == "PENDING"
    # The second record points at a store that cannot be used.
    record_file = Path(bad.record_folder) / RECORD_FILE
    record = json.loads(record_file.read_text())
    record["tracking_uri"] = "file:///not/a/store"
    record_file.write_text(json.dumps(record))

    report = sync.sync([str(tmp_path / "jobs")])
    assert [record.run_id for record in report.published] == [good.run_id]
    assert [record.run_id for record, _ in report.failed] == [bad.run_id]
    assert MlflowClient(store).get_run(good.run_id).info.status == "FINISHED"
    assert sync_cli.run([str(tmp_path / "jobs")]) == 1  # the bad one is still pending


def test_rerun_refuses_data_that_changed_since_the_run(compose, store, tmp_path, monkeypatch):
    data = tmp_path / "xor.csv"
    data.write_text("x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    monkeypatch.chdir(tmp_path)
    csv = [
        "data=csv",
        "data.path=xor.csv",
        "data.feature_columns=[x1,x2]",
        "data.target_columns=[y]",
    ]
    summary = pipeline.execute(compose([*FAST, *csv]), output_dir=tmp_path / "job")
    # From another folder the relative path is found through the run's absolute one.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert rerun.rerun(summary.run_id, store)[0] is True
    with data.open("a") as handle:
        handle.write("1,1,1\n")
    with pytest.raises(BackpropLabError, match="not the one run"):
        rerun.rerun(summary.run_id, store)


def test_a_single_run_logs_epochs_to_target_only_when_reached(compose, store, tmp_path):
    summary = pipeline.execute(
        compose([*FAST, "training.epochs=5", "training.target_loss=1e-9"]),
        output_dir=tmp_path / "job",
    )
    metrics = MlflowClient(store).get_run(summary.run_id).data.metrics
    assert metrics["reached_target"] == 0.0
    assert "epochs_to_target" not in metrics


def test_the_console_summary_of_a_grid_names_its_best_rate(grid):
    line = pipeline.format_summary(grid.summary)
    assert f"{grid.summary.cells} cells" in line
    rates = grid.npz["learning_rates"]
    assert grid.summary.best_learning_rate in rates.tolist()
    success = grid.npz["solved"].mean(axis=1)
    assert grid.summary.best_solved_fraction == success.max()
    assert f"best lr {grid.summary.best_learning_rate:.4g}" in line
    assert grid.summary.run_id in line


def test_the_console_summary_escapes_markup_in_run_names():
    summary = pipeline.RunSummary(
        "abc", "[/x] [bold]name", "e", "sqlite:///x.db", "single", 0.5, 1.0, "FINISHED", ""
    )
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(pipeline.format_summary(summary))
    assert "[/x] [bold]name" in console.export_text()


def test_rerun_reproduces_a_run_recorded_by_the_first_version(store, tmp_path):
    """A run logged by backprop-lab 0.1.0 (one program per run, no chunking, optax's
    inject_hyperparams, a config key since retired) is reproduced bit for bit."""
    import json as json_module

    recorded = REPO_ROOT / "tests" / "data" / "legacy_run"
    client = MlflowClient(store)
    experiment = client.create_experiment("legacy")
    tags = json_module.loads((recorded / "tags.json").read_text())
    run = client.create_run(experiment, tags=tags)
    for name in ("config.yaml", "weights.npz"):
        client.log_artifact(run.info.run_id, str(recorded / name))
    client.set_terminated(run.info.run_id)
    assert "offline_dir" in (recorded / "config.yaml").read_text()
    assert rerun.rerun(run.info.run_id, store) == (True, 0.0, "single")
