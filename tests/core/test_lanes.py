"""A grid trained with its cells last ("lanes") trains every cell as backprop says it should.

Checked against the hand-written NumPy backprop (an independent reference) and against the
same grid with its cells first (the ``vmap`` program), field by field: curves, final weights,
snapshots, divergence.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import tests.reference_numpy as ref
from backprop_lab.core.data import make_dataset
from backprop_lab.core.lanes import lanes_possible, lanes_suit, resolved_layout
from backprop_lab.core.model import Architecture, init_params
from backprop_lab.core.optim import Schedule
from backprop_lab.core.runner import seed_keys
from backprop_lab.core.sweep import train_grid
from backprop_lab.core.train import TrainSpec, to_device_data, validate_spec
from backprop_lab.errors import BackpropLabError

MOONS = make_dataset("moons", num_samples=24, noise=0.1, test_fraction=0.25)


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _grid(spec, rates, seeds, dataset, layout, scheme="glorot_uniform"):
    arch = spec.architecture
    init = lambda key: init_params(key, arch, scheme, 1.0)  # noqa: E731
    return train_grid(
        spec._replace(grid_layout=layout), init, rates, seeds, to_device_data(dataset)
    ).result


@pytest.mark.parametrize(
    "arch, loss, optimizer, batching",
    [
        (Architecture((2, 3, 1), "tanh", "sigmoid"), "half_sse", "sgd", "online"),
        (Architecture((2, 4, 3, 2), "sigmoid", "sigmoid"), "mse", "momentum", "full"),
        (Architecture((2, 3, 1), "relu", "sigmoid"), "bce", "adam", "online"),
    ],
)
def test_each_lanes_cell_trains_as_numpy_backprop_does(arch, loss, optimizer, batching, x64):
    dataset = make_dataset("moons", num_samples=8, noise=0.1, test_fraction=0.0)
    x, y = np.asarray(dataset.x_train, np.float64), np.asarray(dataset.y_train, np.float64)
    if arch.num_outputs == 2:
        y = np.concatenate([y, 1.0 - y], axis=1)
        dataset = dataset._replace(y_train=y)
    epochs = 12
    spec = TrainSpec(arch, loss=loss, optimizer=optimizer, epochs=epochs, batching=batching)
    rates, seeds = [0.05, 0.4], [3, 8]
    grid = _grid(spec, rates, seeds, dataset, "lanes")
    batches = ref.online_batches(len(x)) if batching == "online" else ref.full_batches(len(x))
    names = ref.layer_activation_names(
        arch.hidden_activation, arch.output_activation, len(arch.layer_sizes) - 1
    )
    for r, rate in enumerate(rates):
        for s, seed in enumerate(seeds):
            start = init_params(seed_keys(seed)[0], arch)
            weights, biases, losses = ref.train(
                [np.asarray(layer.weights) for layer in start],
                [np.asarray(layer.biases) for layer in start],
                x,
                y,
                activations=names,
                loss=loss,
                optimizer=ref.Optimizer(optimizer, rate),
                epochs=[batches] * epochs,
            )
            np.testing.assert_allclose(grid.history.loss[r, s], losses, rtol=1e-9, atol=1e-12)
            for layer, w, b in zip(grid.params, weights, biases, strict=True):
                np.testing.assert_allclose(layer.weights[r, s], w, rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(layer.biases[r, s], b, rtol=1e-9, atol=1e-12)


LAYOUT_CASES = {
    "xor sgd, chunked, snapshots": (
        TrainSpec(
            Architecture((2, 2, 1)),
            epochs=40,
            chunk_epochs=7,
            snapshot_epochs=(0, 1, 13, 40),
        ),
        "xor",
    ),
    "moons with a test split, adam, cosine": (
        TrainSpec(
            Architecture((2, 5, 4, 1), "leaky_relu", "sigmoid"),
            loss="bce",
            optimizer="adam",
            epochs=25,
            schedule=Schedule("cosine", final_fraction=0.1),
        ),
        "moons",
    ),
    "threshold units, straight-through, nesterov, no biases": (
        TrainSpec(
            Architecture((2, 3, 1), "threshold", "sigmoid", use_bias=False),
            optimizer="nesterov",
            method="ste",
            epochs=20,
        ),
        "xor",
    ),
    "more samples than are evaluated one by one, adagrad": (
        TrainSpec(Architecture((2, 2, 1), "tanh", "sigmoid"), optimizer="adagrad", epochs=15),
        "moons80",
    ),
    "fan-in past the unrolled sums, rmsprop, full batches": (
        TrainSpec(
            Architecture((20, 6, 1), "hard_sigmoid", "linear"),
            loss="mse",
            optimizer="rmsprop",
            batching="full",
            epochs=15,
        ),
        "wide",
    ),
}


def _dataset(name):
    if name == "wide":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(10, 20))
        return make_dataset("xor")._replace(
            name="wide", x_train=x, y_train=(x[:, :1] > 0).astype(float)
        )
    if name == "moons80":  # 60 training samples: more than lanes evaluate one at a time
        return make_dataset("moons", num_samples=80, noise=0.1, test_fraction=0.25)
    return MOONS if name == "moons" else make_dataset(name)


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=list(LAYOUT_CASES))
def test_lanes_and_cells_give_the_same_grid(case, x64):
    spec, data_name = LAYOUT_CASES[case]
    dataset = _dataset(data_name)
    rates, seeds = [0.01, 0.3, 2.0], [0, 5]
    lanes = _grid(spec, rates, seeds, dataset, "lanes", scheme="normal")
    cells = _grid(spec, rates, seeds, dataset, "cells", scheme="normal")
    for name, got, want in (
        ("params", lanes.params, cells.params),
        ("history", lanes.history, cells.history),
        ("initial loss", lanes.initial_loss, cells.initial_loss),
        ("snapshots", lanes.snapshots, cells.snapshots),
    ):
        got_leaves, want_leaves = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
        assert len(got_leaves) == len(want_leaves), name
        for a, b in zip(got_leaves, want_leaves, strict=True):
            assert np.shape(a) == np.shape(b), name
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(lanes.diverged_epoch, cells.diverged_epoch)
    assert lanes.epochs_done == cells.epochs_done == spec.epochs
    if not data_name.startswith("moons"):
        assert np.isnan(lanes.history.test_loss).all()


def test_a_diverging_lanes_cell_leaves_the_others_alone():
    arch = Architecture((2, 3, 1), "relu", "linear")
    spec = TrainSpec(arch, epochs=40, loss="mse", grid_layout="lanes")
    init = lambda key: init_params(key, arch, "normal", 1.0)  # noqa: E731
    xor = to_device_data(make_dataset("xor"))
    calm = train_grid(spec, init, [0.01], [0, 1], xor).result
    mixed = train_grid(spec, init, [0.01, 1e6], [0, 1], xor).result
    assert (mixed.diverged_epoch[1] > 0).all() and (mixed.diverged_epoch[0] == 0).all()
    np.testing.assert_allclose(mixed.history.loss[0], calm.history.loss[0], rtol=1e-6)
    first_bad = int(mixed.diverged_epoch[1, 0])
    curve = mixed.history.loss[1, 0]
    assert np.isfinite(curve[: first_bad - 1]).all() and np.isnan(curve[first_bad - 1 :]).all()


@pytest.mark.parametrize(
    "arch, batching, method, possible, suits",
    [
        (Architecture((2, 2, 1)), "online", "backprop", True, True),
        (Architecture((2, 4, 1), "relu", "sigmoid"), "full", "backprop", True, True),
        (Architecture((2, 3, 1), "threshold", "sigmoid"), "online", "ste", True, True),
        # Wider layers train faster with their cells first.
        (Architecture((2, 8, 1)), "online", "backprop", True, False),
        (Architecture((2, 16, 16, 1), "relu", "sigmoid"), "full", "backprop", True, False),
        # Each cell draws its own order: the cells would not share their batches.
        (Architecture((2, 2, 1)), "shuffled", "backprop", False, False),
        (Architecture((2, 2, 1)), "minibatch", "backprop", False, False),
        # A softmax mixes the units of a layer, which lie on the second-to-last axis.
        (Architecture((2, 2, 2), "relu", "softmax"), "online", "backprop", False, False),
        (Architecture((2, 1), "threshold", "threshold"), "online", "perceptron", False, False),
    ],
)
def test_auto_layout_picks_lanes_only_where_they_suit(arch, batching, method, possible, suits):
    assert lanes_possible(arch, batching, method) is possible
    assert lanes_suit(arch, batching, method) is suits
    spec = TrainSpec(arch, batching=batching, method=method)
    assert resolved_layout(spec) == ("lanes" if suits else "cells")
    assert resolved_layout(spec._replace(grid_layout="cells")) == "cells"
    if possible:
        validate_spec(spec._replace(grid_layout="lanes"))


def test_an_impossible_layout_is_a_one_line_error():
    with pytest.raises(BackpropLabError) as raised:
        validate_spec(TrainSpec(Architecture((2, 2, 1)), batching="shuffled", grid_layout="lanes"))
    assert "\n" not in str(raised.value) and "online or full batches" in str(raised.value)
    with pytest.raises(BackpropLabError, match="unknown"):
        validate_spec(TrainSpec(Architecture((2, 2, 1)), grid_layout="diagonal"))
