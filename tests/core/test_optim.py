"""Learning-rate schedules: their rates against the formulas they cite, training under them
against a loop that applies those rates by hand, and ``constant`` against today's training,
bit for bit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from backprop_lab.core import train as train_module
from backprop_lab.core.data import make_dataset
from backprop_lab.core.model import Architecture, init_params
from backprop_lab.core.optim import SCHEDULE_NAMES, Schedule
from backprop_lab.core.sweep import cell, seed_keys, train_grid
from backprop_lab.core.train import (
    TrainSpec,
    epoch_learning_rates,
    to_device_data,
    train_network,
    validate_spec,
)
from backprop_lab.errors import BackpropLabError

ARCH = Architecture((2, 3, 1), "tanh", "sigmoid")
MOONS = to_device_data(make_dataset("moons", num_samples=40, noise=0.1, test_fraction=0.25))
EPOCHS = 30


def _init(key):
    return init_params(key, ARCH, "glorot_uniform", 1.0)


def test_the_schedules_are_the_four_of_the_issue():
    assert SCHEDULE_NAMES == ("constant", "exponential", "cosine", "warmup_cosine")


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        (Schedule("constant"), lambda e: 1.0),
        (Schedule("exponential", decay_rate=0.8, transition_epochs=3), lambda e: 0.8 ** (e / 3)),
        (
            Schedule("cosine", final_fraction=0.1),
            lambda e: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * e / EPOCHS)),
        ),
        (
            # Goyal et al.'s linear warm-up, then the cosine over the epochs left.
            Schedule("warmup_cosine", warmup_epochs=5, initial_fraction=0.2, final_fraction=0.0),
            lambda e: (
                0.2 + 0.8 * e / 5
                if e < 5
                else 0.5 * (1 + math.cos(math.pi * (e - 5) / (EPOCHS - 5)))
            ),
        ),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_each_epoch_trains_at_the_schedules_formula_times_the_peak(schedule, formula):
    spec = TrainSpec(ARCH, epochs=EPOCHS, schedule=schedule)
    rates = epoch_learning_rates(spec, 0.4)
    assert rates.shape == (EPOCHS,)
    expected = [0.4 * formula(epoch) for epoch in range(EPOCHS)]
    # float32 keeps the factor to about 6e-8 absolute: near the cosine's end (factor ~0.004)
    # that is a relative error above 1e-6, hence the absolute tolerance, scaled by the peak.
    np.testing.assert_allclose(rates, expected, rtol=2e-6, atol=0.4 * 1e-7)
    # A grid's rates: one row per peak rate.
    rows = epoch_learning_rates(spec, np.array([0.4, 2.0]))
    np.testing.assert_allclose(rows, [expected, np.asarray(expected) * 5], rtol=2e-6, atol=2e-7)


def _by_hand(spec: TrainSpec, peak: float, seed: int):
    """Full-batch SGD written out: each epoch one optax.sgd step at that epoch's rate."""
    from backprop_lab.core.losses import get_loss
    from backprop_lab.core.model import forward, layer_activations

    init_key, _ = seed_keys(seed)
    params = _init(init_key)
    loss = get_loss(spec.loss)
    activations = layer_activations(ARCH)
    rates = epoch_learning_rates(spec, peak)
    for epoch in range(spec.epochs):
        gradient = jax.grad(lambda p: loss(MOONS.y_train, forward(p, MOONS.x_train, activations)))(
            params
        )
        optimizer = optax.sgd(float(rates[epoch]))
        updates, _ = optimizer.update(gradient, optimizer.init(params))
        params = optax.apply_updates(params, updates)
    return params


@pytest.mark.parametrize("name", ["exponential", "cosine", "warmup_cosine"])
def test_training_under_a_schedule_equals_a_loop_that_applies_its_rates(name):
    schedule = Schedule(name, decay_rate=0.9, warmup_epochs=4, initial_fraction=0.25)
    spec = TrainSpec(ARCH, epochs=EPOCHS, batching="full", schedule=schedule)
    init_key, shuffle_key = seed_keys(3)
    trained = train_network(spec, _init(init_key), 1.5, shuffle_key, MOONS)
    expected = _by_hand(spec, 1.5, 3)
    for got, want in zip(
        jax.tree_util.tree_leaves(trained.params), jax.tree_util.tree_leaves(expected), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # And the schedule mattered: a constant rate ends elsewhere.
    constant = train_network(
        spec._replace(schedule=Schedule()), _init(init_key), 1.5, shuffle_key, MOONS
    )
    assert not np.allclose(constant.params[0].weights, trained.params[0].weights, atol=1e-4)


@pytest.mark.parametrize("name", ["cosine", "warmup_cosine"])
def test_a_grid_with_a_schedule_equals_its_cells_trained_one_at_a_time(name):
    schedule = Schedule(name, warmup_epochs=5)
    spec = TrainSpec(
        ARCH, loss="bce", optimizer="adam", epochs=EPOCHS, batching="minibatch", batch_size=8,
        schedule=schedule,
    )  # fmt: skip
    rates, seeds = [0.003, 0.03, 0.3], [4, 9]
    grid = train_grid(spec, _init, rates, seeds, MOONS)
    for r, rate in enumerate(rates):
        for s, seed in enumerate(seeds):
            init_key, shuffle_key = seed_keys(seed)
            alone = train_network(spec, _init(init_key), rate, shuffle_key, MOONS)
            in_grid = cell(grid, r, s)
            np.testing.assert_allclose(
                in_grid.history.loss, alone.history.loss, rtol=1e-4, atol=1e-6
            )
            np.testing.assert_allclose(
                in_grid.history.test_accuracy, alone.history.test_accuracy, atol=1e-6
            )
            for got, want in zip(
                jax.tree_util.tree_leaves(in_grid.params),
                jax.tree_util.tree_leaves(alone.params),
                strict=True,
            ):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _epoch_before_schedules(spec, direction, state, epoch_index, data):
    """``core.train._train_epoch`` as it was before schedules existed, verbatim."""
    optimizer = train_module._optimizer(spec, state.hyperparams)

    def step(carry, batch):
        params, opt_state = carry
        inputs, targets, mask = batch
        gradient = direction(params, inputs, targets, mask)
        updates, opt_state = optimizer.update(gradient, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    batches = train_module.epoch_batches(
        spec, train_module.epoch_key(spec, state.key, epoch_index), data.x_train, data.y_train
    )
    (params, opt_state), _ = jax.lax.scan(
        step, (state.params, state.opt_state), batches, unroll=spec.unroll
    )
    return state._replace(params=params, opt_state=opt_state)


def _fresh_programs():
    for cached in (train_module.make_trainer, train_module.make_train, train_module._jitted_train):
        cached.cache_clear()


def _train_both_ways(monkeypatch, spec, rates, seeds):
    def run():
        _fresh_programs()
        single = [
            train_network(spec, _init(seed_keys(seed)[0]), rate, seed_keys(seed)[1], MOONS)
            for rate in rates
            for seed in seeds
        ]
        return single, train_grid(spec._replace(chunk_epochs=7), _init, rates, seeds, MOONS)

    now = run()
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "_train_epoch", _epoch_before_schedules)
        before = run()
    _fresh_programs()
    return now, before


@pytest.mark.parametrize(
    ("optimizer", "batching"), [("sgd", "online"), ("adam", "minibatch"), ("momentum", "shuffled")]
)
def test_constant_schedule_is_bitwise_todays_training(monkeypatch, optimizer, batching):
    spec = TrainSpec(
        ARCH, loss="bce", optimizer=optimizer, epochs=EPOCHS, batching=batching, batch_size=8
    )
    assert spec.schedule == Schedule("constant")
    (single, grid), (single_before, grid_before) = _train_both_ways(
        monkeypatch, spec, [0.01, 0.5], [0, 5]
    )
    leaves = jax.tree_util.tree_leaves
    for now, before in zip(single, single_before, strict=True):
        for got, want in zip(
            leaves((now.params, now.history)), leaves((before.params, before.history)), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    for got, want in zip(
        leaves((grid.result.params, grid.result.history)),
        leaves((grid_before.result.params, grid_before.result.history)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_warm_up_as_long_as_training_is_refused_in_one_line():
    spec = TrainSpec(ARCH, epochs=10, schedule=Schedule("warmup_cosine", warmup_epochs=10))
    with pytest.raises(
        BackpropLabError,
        match=r"^schedule.warmup_epochs=10 is invalid: the warm-up must be shorter than training \(training.epochs=10\)",
    ) as error:
        validate_spec(spec)
    assert "\n" not in str(error.value)
    validate_spec(spec._replace(schedule=Schedule("warmup_cosine", warmup_epochs=9)))


def test_the_peak_rate_stays_traced_so_a_grid_of_peaks_compiles_once():
    spec = TrainSpec(ARCH, epochs=5, batching="full", schedule=Schedule("cosine"))
    train = jax.jit(train_module.make_train(spec))
    init_key, shuffle_key = seed_keys(0)
    for rate in (0.1, 0.2, 0.7):
        train(_init(init_key), jnp.asarray(rate, jnp.float32), shuffle_key, MOONS)
    assert train._cache_size() == 1
