"""``bplab-explain --run RUN_ID [--epoch N] [--cell LR,SEED]``: a step of a recorded run.

Runs are trained in-process into a temporary SQLite store (as ``bplab-train`` records them),
then explained. The explained step must give the weights the run recorded: its final weights
at the last epoch, its trajectory snapshot at any other, and a replay must equal a snapshot bit
for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from backprop_lab import pipeline
from backprop_lab.cli import explain as cli
from backprop_lab.explain.run import explain_run
from backprop_lab.explain.sources import compose_config

BIN = Path(sys.executable).parent

RUNS = {
    # Online SGD, every epoch kept in the trajectory: the snapshot before any epoch exists.
    "sgd": ["experiment=xor_mlp", "training.epochs=30"],
    # Adam keeps a state that is not recorded: replayed.
    "adam": [
        "experiment=xor_mlp",
        "optimizer=adam",
        "optimizer.learning_rate=0.05",
        "training.epochs=150",
    ],
    # No trajectory at all: replayed, and checked against the final weights.
    "bare": [
        "experiment=xor_mlp",
        "training.batching=full",
        "training.epochs=20",
        "tracking.snapshots=0",
    ],
    # A grid of momentum cells trained on shuffled mini-batches (the last one padded).
    "grid": [
        "experiment=xor_mlp",
        "optimizer=momentum",
        "optimizer.learning_rate=0.5",
        "training.epochs=12",
        "training.batching=minibatch",
        "training.batch_size=3",
        "sweep.learning_rates=[0.5,2]",
        "sweep.seeds=2",
    ],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain_runs")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    ids = {}
    for name, overrides in RUNS.items():
        cfg = compose_config([*overrides, "tracking.plots=false", f"tracking.uri={uri}"])
        summary = pipeline.execute(cfg, output_dir=root / name, overrides=overrides)
        ids[name] = summary.run_id
    jax.config.update("jax_enable_x64", False)
    return SimpleNamespace(uri=uri, ids=ids, client=MlflowClient(uri), root=root)


def _explain(store, name: str, **options):
    return explain_run(store.ids[name], tracking_uri=store.uri, **options)


def _recorded(store, name: str, artifact: str) -> dict[str, np.ndarray]:
    path = store.client.download_artifacts(store.ids[name], artifact, str(store.root / "read"))
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _updated(explanation) -> dict[tuple[int, str, str], float]:
    return {(w.layer, w.unit, w.source): w.updated for w in explanation.backward}


def _assert_updates_equal(explanation, arrays: dict, index: tuple = (), atol: float = 1e-6):
    """Every explained new weight equals the recorded one (``layer{i}_weights`` rows per unit)."""
    from backprop_lab.core.explain import input_names, unit_names

    architecture = explanation.architecture
    names = unit_names(architecture)
    sources = [input_names(architecture), *names[:-1]]
    for w in explanation.backward:
        layer, unit = w.layer - 1, names[w.layer - 1].index(w.unit)
        if w.source == "1":
            recorded = arrays[f"layer{layer}_biases"][(*index, unit)]
        else:
            recorded = arrays[f"layer{layer}_weights"][
                (*index, unit, sources[layer].index(w.source))
            ]
        assert w.updated == pytest.approx(float(recorded), abs=atol), w.name


def _source(explained) -> dict:
    return dict(explained.context.source)


# ---------------------------------------------------------------------------------------------
# The run's last update, reproduced


def test_the_final_epoch_of_an_online_sgd_run_reproduces_its_final_weights(store):
    explained = _explain(store, "sgd")
    source = _source(explained)
    assert (source["epoch"], source["step"], source["steps"]) == (30, 4, 4)
    assert source["parameters_from"] == "snapshot at epoch 29"
    assert source["recorded_check"]["largest_difference"] <= 1e-6
    assert explained.explanation.agrees
    _assert_updates_equal(explained.explanation, _recorded(store, "sgd", "weights.npz"))
    assert any("snapshot at epoch 29 (trajectory.npz)" in note for note in explained.context.notes)


def test_adam_is_replayed_with_its_state_and_reproduces_its_final_weights(store):
    explained = _explain(store, "adam")
    source = _source(explained)
    assert source["parameters_from"] == "replay to epoch 149"
    assert source["optimizer_state_from"] == "replay"
    assert source["recorded_check"]["largest_difference"] <= 1e-6
    _assert_updates_equal(explained.explanation, _recorded(store, "adam", "weights.npz"))
    notes = " ".join(explained.context.notes)
    assert "adam keeps an optimizer state that runs do not record" in notes
    steps = explained.explanation.backward
    assert any(abs(w.step + 0.05 * w.gradient) > 1e-6 for w in steps)  # not η·g


def test_a_run_without_trajectory_is_replayed_to_its_final_weights(store):
    explained = _explain(store, "bare")
    source = _source(explained)
    assert source["parameters_from"] == "replay to epoch 19"
    assert source["recorded_check"]["against"] == "the final weights (weights.npz)"
    assert explained.explanation.batch_size == 4
    _assert_updates_equal(explained.explanation, _recorded(store, "bare", "weights.npz"))


def test_a_grid_cell_is_replayed_and_reproduces_that_cells_final_weights(store):
    grid = _recorded(store, "grid", "grid.npz")
    explained = _explain(store, "grid", cell="2,1")
    source = _source(explained)
    assert source["cell"] == {"learning_rate": 2.0, "seed": 1}
    assert explained.explanation.learning_rate == 2.0
    assert source["parameters_from"] == "replay to epoch 11"
    # Momentum's state is replayed; the replay is checked against the snapshot at epoch 11.
    assert "The replay equals the snapshot at epoch 11 bit for bit." in explained.context.notes
    assert source["recorded_check"]["largest_difference"] <= 1e-6
    # The epoch's last mini-batch is the padded one: one sample (4 = 3 + 1).
    assert explained.explanation.batch_size == 1
    _assert_updates_equal(explained.explanation, grid, (1, 1))

    buffer = StringIO()
    cli.render(*explained, console=Console(file=buffer, width=100))
    out = " ".join(buffer.getvalue().split())
    assert "Grid cell: learning rate 2, seed 1" in out
    assert "replayed from the run's config and data set to epoch 11" in out
    assert "SGD with momentum" in out and "So its step is not η·∂E/∂w" in out
    assert "Update: the momentum step (optax), not −η·∂E/∂w" in out


def test_an_earlier_step_of_the_epoch_is_followed_by_the_rest(store):
    explained = _explain(store, "sgd", epoch=10, sample=2)
    source = _source(explained)
    assert source["step"] == 2 and explained.explanation.inputs == (0.0, 1.0)
    check = source["recorded_check"]
    assert check["against"] == "the snapshot at epoch 10 (trajectory.npz)"
    assert check["largest_difference"] <= 1e-6
    assert any("step 1 is taken first" in note for note in explained.context.notes)


def test_a_recorded_run_gives_the_same_explanation_in_a_fresh_process(store, capsys):
    argv = ["--run", store.ids["sgd"], "--tracking-uri", store.uri, "--json", "--epoch", "7"]
    assert cli.run(argv) == 0
    here = json.loads(capsys.readouterr().out)
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(
        [str(BIN / "bplab-explain"), *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == here


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2


@pytest.mark.parametrize(
    ("name", "options", "fragment"),
    [
        (None, [], "no run 'not-a-run-id'"),
        ("sgd", ["--epoch", "0"], "out of range: run"),
        ("sgd", ["--epoch", "31"], "trained epochs 1 to 30"),
        ("sgd", ["--sample", "5"], "has samples 1 to 4"),
        ("sgd", ["--cell", "0.5,0"], "is a single run, not a grid"),
        ("grid", ["--cell", "1,0"], "is not in the grid"),
        ("grid", ["--cell", "2,9"], "learning rates 0.5, 2 × seeds 0, 1"),
        ("bare", ["--sample", "1"], "trains on the full batch"),
        ("child", [], "grid_row run"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(store, name, options, fragment, capsys):
    if name == "child":
        parent = store.client.get_run(store.ids["grid"])
        (child, *_) = store.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{store.ids['grid']}'",
        )
        run_id = child.info.run_id
    else:
        run_id = store.ids[name] if name else "not-a-run-id"
    assert cli.run(["--run", run_id, "--tracking-uri", store.uri, *options]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("bplab-explain: error:") and fragment in lines[0]
