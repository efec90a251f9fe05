"""Grids trained as one vmapped program agree with networks trained one at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from backprop_lab.core.data import make_dataset
from backprop_lab.core.model import Architecture, init_params
from backprop_lab.core.sweep import cell, log_spaced, seed_keys, train_grid
from backprop_lab.core.train import TrainSpec, to_device_data, train_network

XOR = to_device_data(make_dataset("xor"))
ARCH = Architecture((2, 2, 1), "sigmoid", "sigmoid")


def _init(key):
    return init_params(key, ARCH, "glorot_uniform", 1.0)


def _alone(spec, rate, seed, data=XOR):
    init_key, shuffle_key = seed_keys(seed)
    return train_network(spec, _init(init_key), rate, shuffle_key, data)


@pytest.mark.parametrize("batching", ["online", "shuffled"])
def test_grid_cells_equal_networks_trained_alone(batching):
    spec = TrainSpec(ARCH, epochs=300, batching=batching)
    rates, seeds = [0.3, 1.7, 4.0], [11, 2, 7]
    grid = train_grid(spec, _init, rates, seeds, XOR)
    assert grid.result.history.loss.shape == (3, 3, 300)
    for r, rate in enumerate(rates):
        for s, seed in enumerate(seeds):
            alone = _alone(spec, rate, seed)
            in_grid = cell(grid, r, s)
            np.testing.assert_allclose(
                in_grid.history.loss, alone.history.loss, rtol=2e-4, atol=1e-6
            )
            for got, want in zip(
                jax.tree_util.tree_leaves(in_grid.params),
                jax.tree_util.tree_leaves(alone.params),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)


def test_rates_and_seeds_map_to_their_cells():
    spec = TrainSpec(ARCH, epochs=50)
    rates, seeds = [0.1, 3.0], [5, 9]
    grid = train_grid(spec, _init, rates, seeds, XOR)
    np.testing.assert_array_equal(grid.learning_rates, rates)
    np.testing.assert_array_equal(grid.seeds, seeds)
    # Cell (r, s) starts from seed s's weights: its first-epoch loss differs across seeds but
    # its initial loss is the same along a column.
    np.testing.assert_allclose(grid.result.initial_loss[0], grid.result.initial_loss[1])
    assert grid.result.initial_loss[0, 0] != grid.result.initial_loss[0, 1]
    swapped = _alone(spec, rates[1], seeds[0])
    np.testing.assert_allclose(cell(grid, 1, 0).history.loss, swapped.history.loss, rtol=2e-5)
    assert not np.allclose(cell(grid, 0, 0).history.loss, swapped.history.loss)


def test_a_diverging_cell_leaves_the_others_alone():
    arch = Architecture((2, 3, 1), "relu", "linear")
    spec = TrainSpec(arch, epochs=40, loss="mse")
    init = lambda key: init_params(key, arch, "normal", 1.0)  # noqa: E731
    calm = train_grid(spec, init, [0.01], [0, 1], XOR)
    mixed = train_grid(spec, init, [0.01, 1e6], [0, 1], XOR)
    assert (mixed.result.diverged_epoch[1] > 0).all()
    assert (mixed.result.diverged_epoch[0] == 0).all()
    np.testing.assert_allclose(mixed.result.history.loss[0], calm.result.history.loss[0], rtol=1e-6)
    first_bad = int(mixed.result.diverged_epoch[1, 0])
    curve = mixed.result.history.loss[1, 0]
    assert np.isfinite(curve[: first_bad - 1]).all() and np.isnan(curve[first_bad - 1 :]).all()


SHARD_SCRIPT = textwrap.dedent(
    """
    import json, jax, numpy as np
    from backprop_lab.core.data import make_dataset
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.sweep import train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data
    arch = Architecture((2, 2, 1))
    spec = TrainSpec(arch, epochs=100, batching=BATCHING, chunk_epochs=30, snapshot_epochs=(0, 50, 100))
    init = lambda key: init_params(key, arch)
    data = to_device_data(make_dataset("xor"))
    rates, seeds = [0.5, 1.0, 2.0], [0, 1, 2]   # 9 cells: padded to 12 on 4 devices
    sharded = train_grid(spec, init, rates, seeds, data, shards=4)
    single = train_grid(spec, init, rates, seeds, data)   # too little work to split
    print(json.dumps({
        "devices": jax.device_count(),
        "shards": [sharded.shards, single.shards],
        "max_difference": float(np.max(np.abs(sharded.result.history.loss - single.result.history.loss))),
        "snapshot_difference": float(np.max(np.abs(
            sharded.result.snapshots[0].weights - single.result.snapshots[0].weights))),
        "shape": list(sharded.result.history.loss.shape),
    }))
    """
)


@pytest.mark.parametrize("batching", ["shuffled", "online"])  # cells first, cells last
def test_sharded_and_unsharded_grids_agree(batching):
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    done = subprocess.run(
        [sys.executable, "-c", f"BATCHING = {batching!r}\n" + SHARD_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    assert result["shards"] == [4, 1]
    assert result["shape"] == [3, 3, 100]
    assert result["max_difference"] <= 1e-6
    assert result["snapshot_difference"] <= 1e-6


def test_log_spacing():
    rates = log_spaced(0.01, 100.0, 5)
    np.testing.assert_allclose(rates, [0.01, 0.1, 1.0, 10.0, 100.0], rtol=1e-12)


def test_a_grid_is_split_across_devices_only_when_its_training_pays_for_it(monkeypatch):
    """One shard per device (at most one per cell) from about a second of estimated training;
    below that, the longer compilation of a split program costs more than it saves."""
    import jax

    from backprop_lab.core import sweep
    from backprop_lab.core.runner import estimated_epoch_seconds

    monkeypatch.setattr(jax, "device_count", lambda: 4)
    spec = TrainSpec(Architecture((2, 2, 1)), epochs=2000)
    per_epoch = estimated_epoch_seconds(spec, 4, 1024)
    assert 2000 * per_epoch < sweep.MIN_SECONDS_TO_SPLIT
    assert sweep.default_shards(spec, 4, 1024) == 1
    long = spec._replace(epochs=int(2 * sweep.MIN_SECONDS_TO_SPLIT / per_epoch))
    assert sweep.default_shards(long, 4, 1024) == 4
    assert sweep.default_shards(long, 4, 1) == 1
    monkeypatch.setattr(jax, "device_count", lambda: 1)
    assert sweep.default_shards(long, 4, 1024) == 1
