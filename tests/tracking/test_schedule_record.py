"""What a run under a learning-rate schedule leaves in MLflow: the schedule's parameters as
params, and the rate each epoch trained at as the curve ``learning_rate``, checked against the
schedule's formula written out here (not against the code that computed it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from backprop_lab import pipeline

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EPOCHS, WARMUP, PEAK = 12, 3, 0.3
IRIS = [
    "experiment=xor_mlp", "data=iris", "data.scale=standardize", "model.hidden_sizes=[5]",
    "model.output_activation=softmax", "loss=cce", "training.batching=full",
    f"training.epochs={EPOCHS}", f"optimizer.learning_rate={PEAK}", "tracking.plots=false",
]  # fmt: skip


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=list(overrides))


def _warmup_cosine(epoch: int, peak: float) -> float:
    """Linear from 0.1 x peak up to the peak over WARMUP epochs, then a cosine down to 0."""
    if epoch < WARMUP:
        return peak * (0.1 + 0.9 * epoch / WARMUP)
    return peak * 0.5 * (1 + math.cos(math.pi * (epoch - WARMUP) / (EPOCHS - WARMUP)))


def _curve(client, run_id, name):
    points = sorted(client.get_metric_history(run_id, name), key=lambda point: point.step)
    return [point.step for point in points], np.array([point.value for point in points])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("schedule")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    overrides = [*IRIS, "schedule=warmup_cosine", f"schedule.warmup_epochs={WARMUP}"]
    single = pipeline.execute(
        _compose([*overrides, f"tracking.uri={uri}"]), output_dir=root / "single"
    )
    grid_overrides = [*overrides, "sweep.learning_rates=[0.1,1.0]", "sweep.seeds=2"]
    grid = pipeline.execute(
        _compose([*grid_overrides, f"tracking.uri={uri}"]), output_dir=root / "grid"
    )
    return MlflowClient(uri), single, grid, root


def test_the_schedule_is_logged_as_params(recorded):
    client, single, _, _ = recorded
    params = client.get_run(single.run_id).data.params
    assert params["schedule.name"] == "warmup_cosine"
    assert params["schedule.warmup_epochs"] == str(WARMUP)
    assert params["schedule.initial_fraction"] == "0.1"
    assert params["schedule.final_fraction"] == "0.0"
    assert params["optimizer.learning_rate"] == str(PEAK)


def test_a_single_run_records_the_rate_of_every_epoch(recorded):
    client, single, _, _ = recorded
    steps, rates = _curve(client, single.run_id, "learning_rate")
    assert steps == list(range(1, EPOCHS + 1))
    expected = [_warmup_cosine(epoch, PEAK) for epoch in range(EPOCHS)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-8)


def test_each_grid_row_records_its_rates_and_grid_npz_holds_them_all(recorded):
    client, _, grid, root = recorded
    run = client.get_run(grid.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{grid.run_id}'"
    )
    assert len(children) == 2
    for child in children:
        peak = float(child.data.params["optimizer.learning_rate"])
        _, rates = _curve(client, child.info.run_id, "learning_rate")
        expected = [_warmup_cosine(epoch, peak) for epoch in range(EPOCHS)]
        np.testing.assert_allclose(rates, expected, rtol=1e-6, atol=1e-8)
    path = client.download_artifacts(grid.run_id, "grid.npz", str(root / "downloaded"))
    with np.load(path) as arrays:
        np.testing.assert_allclose(
            arrays["epoch_learning_rates"],
            [[_warmup_cosine(epoch, peak) for epoch in range(EPOCHS)] for peak in (0.1, 1.0)],
            rtol=1e-6,
            atol=1e-8,
        )


def test_a_constant_rate_records_no_rate_curve(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = pipeline.execute(_compose([*IRIS, f"tracking.uri={uri}"]), output_dir=tmp_path)
    client = MlflowClient(uri)
    # One point (step 0, so the UI can chart against the rate), not a curve.
    history = client.get_metric_history(summary.run_id, "learning_rate")
    assert [(point.step, point.value) for point in history] == [(0, pytest.approx(PEAK))]
    assert client.get_run(summary.run_id).data.params["schedule.name"] == "constant"
