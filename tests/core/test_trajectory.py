"""Trajectories: which epochs a run keeps, what that costs, and that each snapshot is exact.

"Exact" means bitwise: the snapshot at epoch e equals the parameters of the same config
trained for e epochs (on the CPU, where the same program and inputs give the same bits).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from backprop_lab.core.data import logic_gate, playground
from backprop_lab.core.model import Architecture, count_parameters, init_params, params_to_arrays
from backprop_lab.core.runner import seed_keys, train_from_seed
from backprop_lab.core.sweep import train_grid
from backprop_lab.core.train import TrainSpec, to_device_data
from backprop_lab.core.trajectory import snapshot_bytes, snapshot_epochs, snapshot_plan

XOR_NET = Architecture((2, 2, 1), "sigmoid", "sigmoid")

# ---------------------------------------------------------------------------------------------
# The plan


@pytest.mark.parametrize("total", [1, 25, 59, 60, 300, 1000, 5000, 1_000_000])
def test_snapshot_epochs_start_at_0_end_at_the_last_and_grow_denser_early(total):
    epochs = snapshot_epochs(total, 60)
    assert epochs[0] == 0 and epochs[-1] == total
    assert list(epochs) == sorted(set(epochs))
    assert len(epochs) == min(total + 1, 60)
    gaps = np.diff(epochs)
    # Dense early, sparser later: the gaps never shrink by more than rounding.
    assert (np.diff(gaps) >= -1).all()
    if total >= 1000:
        assert epochs[:5] == (0, 1, 2, 3, 4)  # the first epochs one by one
        assert gaps[-1] > 10 * gaps[0]


def test_no_snapshots_when_none_are_asked_for():
    assert snapshot_epochs(1000, 0) == ()
    assert snapshot_epochs(1000, 2) == (0, 1000)


def test_the_cost_is_snapshots_times_parameters_times_cells_times_four_bytes():
    # 2-2-1 with biases: 9 numbers; 60 snapshots of a 32 x 32 grid in float32.
    assert count_parameters(XOR_NET) == 9
    assert snapshot_bytes(XOR_NET, 1024, 60) == 60 * 9 * 1024 * 4 == 2_211_840
    assert snapshot_bytes(XOR_NET, 1, 60, itemsize=8) == 4320


def test_under_the_limit_every_snapshot_is_kept_without_a_note():
    plan = snapshot_plan(1000, 60, XOR_NET, 1024, 64 * 2**20)
    assert len(plan.epochs) == 60 and plan.note == ""


def test_above_the_limit_fewer_snapshots_are_kept_and_the_note_says_so():
    each = snapshot_bytes(XOR_NET, 1024, 1)
    plan = snapshot_plan(1000, 60, XOR_NET, 1024, 20 * each + 5)
    assert 2 <= len(plan.epochs) <= 20
    assert plan.epochs[0] == 0 and plan.epochs[-1] == 1000
    assert snapshot_bytes(XOR_NET, 1024, len(plan.epochs)) <= 20 * each + 5
    assert f"keeps {len(plan.epochs)} of 60" in plan.note
    assert "tracking.max_snapshot_bytes" in plan.note


def test_a_limit_below_two_snapshots_keeps_none_and_says_so():
    plan = snapshot_plan(1000, 60, XOR_NET, 1024, 100)
    assert plan.epochs == () and "keeps no trajectory snapshots" in plan.note


# ---------------------------------------------------------------------------------------------
# Exactness


def _bits(params) -> list[bytes]:
    return [np.asarray(v).tobytes() for v in params_to_arrays(params).values()]


def _snapshot(snapshots, index: int, batch: tuple = ()):
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[(*batch, index)], snapshots)


CASES = {
    # (architecture, data, spec overrides): online SGD, shuffled momentum, mini-batch Adam.
    "online_sgd": (XOR_NET, logic_gate("xor"), {"optimizer": "sgd"}),
    "shuffled_momentum": (
        Architecture((2, 3, 1), "tanh", "sigmoid"),
        logic_gate("xor"),
        {"optimizer": "momentum", "batching": "shuffled"},
    ),
    "minibatch_adam": (
        Architecture((2, 4, 1), "relu", "sigmoid"),
        playground("moons", num_samples=40, seed=3),
        {"optimizer": "adam", "batching": "minibatch", "batch_size": 8, "loss": "bce"},
    ),
}


@pytest.mark.parametrize(
    "case",
    [
        "online_sgd",
        pytest.param("shuffled_momentum", marks=pytest.mark.slow),
        pytest.param("minibatch_adam", marks=pytest.mark.slow),
    ],
)
def test_a_single_runs_snapshot_at_epoch_e_equals_the_run_trained_for_e_epochs(case):
    architecture, dataset, options = CASES[case]
    data = to_device_data(dataset)
    total, chunk = 45, 7  # several chunks, the last one partly past the end
    epochs = (0, 1, 3, 7, 8, 20, 44, 45)
    spec = TrainSpec(
        architecture, epochs=total, chunk_epochs=chunk, snapshot_epochs=epochs, **options
    )

    def init(key):
        return init_params(key, architecture)

    learning_rate = 0.05 if options["optimizer"] == "adam" else 0.5
    full = train_from_seed(spec, init, 3, learning_rate, data)
    # Epoch 0, inside the first chunk, at a chunk's end, inside the last chunk, the last.
    for index, epoch in enumerate(epochs):
        if epoch not in (0, 3, 7, 44, 45) and case == "online_sgd":
            continue
        short = spec._replace(epochs=epoch, snapshot_epochs=()) if epoch else None
        expected = (
            train_from_seed(short, init, 3, learning_rate, data).params
            if short
            else init(seed_keys(3)[0])
        )
        assert _bits(_snapshot(full.snapshots, index)) == _bits(expected), f"epoch {epoch}"


def test_a_grids_snapshots_equal_the_grid_trained_for_fewer_epochs():
    data = to_device_data(logic_gate("xor"))
    total, chunk = 30, 4
    epochs = (0, 1, 2, 5, 11, 17, 29, 30)
    compared = (17,)  # and the last, which is the final parameters
    spec = TrainSpec(XOR_NET, epochs=total, chunk_epochs=chunk, snapshot_epochs=epochs)
    rates, seeds = [0.3, 2.0, 40.0], [0, 5]

    def init(key):
        return init_params(key, XOR_NET)

    full = train_grid(spec, init, rates, seeds, data).result
    assert params_to_arrays(full.snapshots)["layer0_weights"].shape == (3, 2, len(epochs), 2, 2)
    for index, epoch in enumerate(epochs):
        if epoch not in compared:
            continue
        short = train_grid(
            spec._replace(epochs=epoch, snapshot_epochs=()), init, rates, seeds, data
        )
        got = jax.tree_util.tree_map(
            lambda leaf, i=index: np.asarray(leaf)[:, :, i], full.snapshots
        )
        assert _bits(got) == _bits(short.result.params), f"epoch {epoch}"
    assert _bits(
        jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[:, :, -1], full.snapshots)
    ) == _bits(full.params)


def test_a_configured_runs_snapshots_equal_the_same_config_trained_for_fewer_epochs(compose):
    """Through the shell's own preparation: chunk length and snapshot plan as a user gets them."""
    from backprop_lab.jobs import prepare, train_job

    base = ["experiment=xor_mlp", "sweep.learning_rates=[0.5,3]", "sweep.seeds=2"]
    job = prepare(compose([*base, "training.epochs=400"]))
    assert len(job.spec.snapshot_epochs) == 60
    full = train_job(job, 0).result
    assert _bits(
        jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[:, :, -1], full.snapshots)
    ) == _bits(full.params)
    for index in (37,):
        epoch = job.spec.snapshot_epochs[index]
        short_job = prepare(compose([*base, f"training.epochs={epoch}"]))
        assert short_job.spec.chunk_epochs == job.spec.chunk_epochs  # one program for any length
        short = train_job(short_job, 0).result
        got = jax.tree_util.tree_map(
            lambda leaf, i=index: np.asarray(leaf)[:, :, i], full.snapshots
        )
        assert _bits(got) == _bits(short.params), f"epoch {epoch}"
