"""What the explorer page holds: arrays packed exactly, curves sampled at the snapshots, and
a page that stays under its byte budget by keeping fewer snapshots, and says so."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from backprop_lab.core.data import logic_gate
from backprop_lab.core.model import Architecture, count_parameters, init_params, params_to_arrays
from backprop_lab.core.sweep import train_grid
from backprop_lab.core.train import TrainSpec, to_device_data
from backprop_lab.core.trajectory import snapshot_epochs as snapshot_epochs_for
from backprop_lab.explorer.data import (
    CURVE_POINTS,
    Thinning,
    curve_epochs,
    decode_array,
    encode_array,
    job_payload,
)
from backprop_lab.explorer.page import render_explorer
from backprop_lab.explorer.sources import explorer_job, single_cells

XOR_NET = Architecture((2, 2, 1), "sigmoid", "sigmoid")


def synthetic_job(rates=3, seeds=4, epochs=200, snapshots=60, architecture=XOR_NET, seed=0):
    """A grid with random parameters (the worst case for compression) and made-up curves."""
    rng = np.random.default_rng(seed)
    sizes = architecture.layer_sizes
    snapshot_epochs = np.array(snapshot_epochs_for(epochs, snapshots))
    count = len(snapshot_epochs)
    trajectory = {"epochs": snapshot_epochs}
    for index, (inputs, units) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        trajectory[f"layer{index}_weights"] = rng.normal(
            size=(rates, seeds, count, units, inputs)
        ).astype(np.float32)
        trajectory[f"layer{index}_biases"] = rng.normal(size=(rates, seeds, count, units)).astype(
            np.float32
        )
    loss = np.exp(-np.arange(1, epochs + 1) / 50.0) * rng.uniform(0.1, 1, (rates, seeds, 1))
    loss[0, 0, epochs // 2 :] = np.nan  # a diverged cell
    diverged = np.zeros((rates, seeds), int)
    diverged[0, 0] = epochs // 2 + 1
    cells = {
        "learning_rates": np.logspace(-1, 1, rates),
        "seeds": np.arange(seeds),
        "loss": loss,
        "accuracy": np.clip(1 - loss, 0, 1),
        "initial_loss": np.full((rates, seeds), 1.5),
        "solved": loss[..., -1] < 0.05,
        "diverged_epoch": diverged,
    }
    return (
        explorer_job(
            "a grid", "a grid", "run-id", architecture, logic_gate("xor"), cells, trajectory
        ),
        trajectory,
        cells,
    )


def payload_of(page: str) -> dict:
    text = re.search(r'<script type="application/json" id="bplab-data">(.*?)</script>', page, re.S)
    return json.loads(text.group(1))


# ---------------------------------------------------------------------------------------------
# Arrays


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("delta", [False, True])
def test_arrays_come_back_bit_for_bit(dtype, delta):
    rng = np.random.default_rng(1)
    values = (rng.normal(size=(5, 7, 13)) * 10.0 ** rng.integers(-8, 8, (5, 7, 13))).astype(dtype)
    values[0, 0, :3] = [np.nan, np.inf, -np.inf]
    values[1, 1, :] = 0.0
    back = decode_array(encode_array(values, delta=delta))
    assert back.dtype == dtype and back.shape == values.shape
    assert back.tobytes() == values.tobytes()


def test_delta_encoding_makes_trained_trajectories_smaller():
    spec = TrainSpec(XOR_NET, epochs=300, snapshot_epochs=snapshot_epochs_for(300, 60))
    grid = train_grid(
        spec,
        lambda key: init_params(key, XOR_NET),
        [0.5, 2.0],
        range(8),
        to_device_data(logic_gate("xor")),
    )
    arrays = params_to_arrays(grid.result.snapshots)
    trajectory = np.concatenate([v.reshape(16, 60, -1) for v in arrays.values()], -1)
    trajectory = trajectory.transpose(0, 2, 1).astype(np.float32)  # snapshots last
    plain, delta = encode_array(trajectory), encode_array(trajectory, delta=True)
    assert len(delta["zlib"]) < 0.9 * len(plain["zlib"])


def test_curves_are_sampled_at_0_every_snapshot_and_evenly_between():
    snapshots = [0, 1, 2, 3, 5, 8, 13, 400, 5000]
    epochs = curve_epochs(5000, snapshots)
    assert set(snapshots) <= set(epochs.tolist())
    assert epochs[0] == 0 and epochs[-1] == 5000
    assert len(epochs) <= CURVE_POINTS + len(snapshots) + 1
    assert (np.diff(epochs) > 0).all()


def test_parameters_are_laid_out_cell_by_cell_in_the_models_order():
    job, trajectory, _ = synthetic_job()
    payload = job_payload(job, Thinning())
    params = decode_array(payload["params"])
    parameters = count_parameters(XOR_NET)
    assert params.shape == (12, parameters, 60)
    cell, snapshot = 7, 23  # rate 1, seed 3
    expected = np.concatenate(
        [
            trajectory["layer0_weights"][1, 3, snapshot].ravel(),  # one row per unit
            trajectory["layer0_biases"][1, 3, snapshot],
            trajectory["layer1_weights"][1, 3, snapshot].ravel(),
            trajectory["layer1_biases"][1, 3, snapshot],
        ]
    )
    assert params[cell, :, snapshot].tobytes() == expected.tobytes()


def test_a_cells_curve_and_verdicts_are_its_own():
    job, _, cells = synthetic_job()
    payload = job_payload(job, Thinning())
    sampled = payload["curve_epochs"]
    loss = decode_array(payload["curves"]["loss"])
    assert loss.shape == (12, len(sampled))
    assert loss[5, 0] == np.float32(1.5)  # epoch 0: the initial loss
    at = len(sampled) // 2
    assert loss[5, at] == np.float32(cells["loss"][1, 1, sampled[at] - 1])
    assert payload["diverged_epoch"][0] == 101 and payload["final_loss"][0] is None
    assert payload["solved"] == [int(v) for v in cells["solved"].ravel()]
    assert "test_loss" not in payload["curves"]  # XOR has no test split


def test_a_single_run_is_a_one_by_one_grid():
    history = {"loss": np.linspace(1, 0.1, 30), "accuracy": np.linspace(0.5, 1, 30)}
    cells = single_cells(history, 0.5, 7, 1.2, True, 0)
    trajectory = {
        "epochs": np.array([0, 10, 30]),
        "layer0_weights": np.zeros((3, 2, 2), np.float32),
        "layer0_biases": np.zeros((3, 2), np.float32),
        "layer1_weights": np.ones((3, 1, 2), np.float32),
        "layer1_biases": np.zeros((3, 1), np.float32),
    }
    job = explorer_job("run", "run", "id", XOR_NET, None, cells, trajectory)
    payload = job_payload(job, Thinning())
    assert payload["learning_rates"] == [0.5] and payload["seeds"] == [7]
    assert decode_array(payload["params"]).shape == (1, 9, 3)
    assert payload["data"] is None and payload["solved"] == [1]


def test_a_64_input_softmax_job_brings_its_test_classes_and_no_plane():
    from backprop_lab.core.data import classification_dataset

    rng = np.random.default_rng(1)
    features, labels = rng.normal(size=(1200, 64)), rng.integers(0, 10, size=1200)
    names = tuple(f"digit {k}" for k in range(10))
    dataset = classification_dataset("toy", features, labels, classes=names, test_fraction=0.5)
    architecture = Architecture((64, 32, 10), "sigmoid", "softmax")
    job, _, _ = synthetic_job(rates=1, seeds=2, epochs=20, snapshots=5, architecture=architecture)
    job.dataset = dataset
    payload = job_payload(job, Thinning())
    # No input plane to draw for 64 inputs; the confusion matrix needs the test samples.
    assert payload["data"] is None
    classes = payload["classes"]
    assert classes["names"] == list(names) and classes["split"] == "test"
    # 600 test samples, every second one kept to stay within MAX_CLASS_SAMPLES (500).
    x = decode_array(classes["x"])
    np.testing.assert_array_equal(x, dataset.x_test[::2])
    assert classes["labels"] == np.argmax(dataset.y_test[::2], axis=1).tolist()
    # A sigmoid network on two inputs draws its plane and brings no classes.
    assert job_payload(synthetic_job()[0], Thinning())["classes"] is None


# ---------------------------------------------------------------------------------------------
# The size budget


def test_a_grid_of_hundreds_of_cells_with_60_snapshots_fits_the_default_budget_whole():
    # Random parameters: incompressible, unlike a trained network's.
    job, _, _ = synthetic_job(rates=16, seeds=24, epochs=2000)
    page = render_explorer("big grid", [job])
    assert len(page.encode()) < 3_000_000
    payload = payload_of(page)["jobs"][0]
    assert len(payload["snapshot_epochs"]) == 60 and len(payload["param_cells"]) == 384
    assert payload["notes"] == []


def test_above_the_budget_a_page_keeps_fewer_snapshots_and_says_so():
    job, _, _ = synthetic_job(rates=16, seeds=16, epochs=1000)
    whole = len(render_explorer("grid", [job]).encode())
    page = render_explorer("grid", [job], max_bytes=whole // 2)
    assert len(page.encode()) <= whole // 2
    payload = payload_of(page)["jobs"][0]
    kept = payload["snapshot_epochs"]
    assert kept[0] == 0 and kept[-1] == 1000 and 8 <= len(kept) < 60
    assert any(f"keeps {len(kept)} of the run's 60 snapshots" in note for note in payload["notes"])


def test_far_above_the_budget_a_page_keeps_some_cells_then_curves_only():
    wide = Architecture((2, 32, 32, 1), "relu", "sigmoid")
    job, _, _ = synthetic_job(rates=4, seeds=8, epochs=500, architecture=wide)
    for budget, expect_cells in ((600_000, True), (100_000, False)):
        page = render_explorer("wide", [job], max_bytes=budget)
        payload = payload_of(page)["jobs"][0]
        if expect_cells:
            assert len(page.encode()) <= budget
            assert 0 < len(payload["param_cells"]) < 64
            assert any("keeps the parameters of" in note for note in payload["notes"])
        else:
            # Curves only: the page still opens and says why there is no network to draw.
            assert payload["params"] is None and payload["param_cells"] == []
            assert any("keeps no parameters" in note for note in payload["notes"])
