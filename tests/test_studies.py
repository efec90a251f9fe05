"""The studies' findings hold in the data: each preset is trained exactly as configured.

Only training (no MLflow): the presets are composed with Hydra, prepared and trained through
the same pipeline functions ``bplab-train`` uses, and the article's claims are checked on the
resulting grids.
"""

from __future__ import annotations

import numpy as np
import pytest

from backprop_lab.config import success_rule
from backprop_lab.core.analysis import solved
from backprop_lab.jobs import prepare, train_job


def _grid(compose, overrides):
    cfg = compose(overrides)
    grid = train_job(prepare(cfg), int(cfg.seed))
    history = grid.result.history
    cells_solved = solved(
        success_rule(cfg),
        history.accuracy[..., -1],
        history.loss[..., -1],
        grid.result.diverged_epoch,
    )
    return cfg, grid, cells_solved


@pytest.mark.parametrize("gate", ["and", "or", "nand"])
def test_a_single_threshold_unit_learns_the_linearly_separable_gates(compose, gate):
    _, grid, cells_solved = _grid(compose, ["experiment=perceptron_gates", f"data={gate}"])
    # At every rate but the smallest, every seed classifies all four rows.
    assert cells_solved[1:].all()


def test_no_single_threshold_unit_ever_solves_xor(compose):
    _, grid, cells_solved = _grid(compose, ["experiment=perceptron_gates", "data=xor"])
    assert grid.result.history.accuracy.shape[:2] == (4, 32)
    assert not cells_solved.any()
    # Not at the end, and not at any epoch along the way: one line gets at most 3 of 4 rows.
    assert np.nanmax(grid.result.history.accuracy) <= 0.75


def test_threshold_hidden_units_trained_by_plain_backprop_never_improve(compose):
    _, grid, cells_solved = _grid(
        compose, ["experiment=threshold_vs_sigmoid", "+arm=threshold_backprop"]
    )
    final = grid.result.history.loss[..., -1]
    improved = final < grid.result.initial_loss
    assert improved.mean() == 0.0
    assert not cells_solved.any()
    # The gradient is zero, so the weights are exactly the initial ones.
    np.testing.assert_array_equal(grid.result.history.loss[..., 0], grid.result.initial_loss)


def test_a_straight_through_estimator_and_sigmoid_units_do_learn_xor(compose):
    _, _, ste_solved = _grid(compose, ["experiment=threshold_vs_sigmoid", "+arm=threshold_ste"])
    _, _, sigmoid_solved = _grid(compose, ["experiment=threshold_vs_sigmoid", "+arm=sigmoid"])
    assert ste_solved.mean(axis=1).max() > 0.5
    assert sigmoid_solved.mean(axis=1).max() > 0.5


def test_the_hand_set_two_line_network_solves_xor(compose):
    _, grid, cells_solved = _grid(
        compose, ["experiment=threshold_vs_sigmoid", "+arm=threshold_handset"]
    )
    assert cells_solved.all()
    assert grid.result.history.accuracy[0, 0, -1] == 1.0


def test_a_sigmoid_2_2_1_network_solves_xor_for_most_seeds_at_a_good_rate(compose):
    _, grid, cells_solved = _grid(
        compose, ["experiment=xor_mlp", "sweep.learning_rates=[0.5,2.0]", "sweep.seeds=32"]
    )
    assert cells_solved.mean(axis=1).max() > 0.5


@pytest.mark.parametrize("data", ["xor", "homework"])
def test_rates_too_small_or_too_large_do_not_converge_within_the_budget(compose, data):
    cfg, grid, cells_solved = _grid(compose, ["experiment=learning_rates", f"data={data}"])
    success = cells_solved.mean(axis=1)
    rates = grid.learning_rates
    best = int(np.argmax(success))
    assert success[best] > 0.5
    assert rates[0] < rates[best] < rates[-1]
    # The smallest and the largest rates never reach the target loss in 1,000 epochs.
    assert success[0] == 0.0 and success[-1] == 0.0
    assert np.all(success[rates <= 0.01] == 0.0)
    assert np.all(success[rates >= 300] == 0.0)


def test_the_article_homework_loss_falls_every_epoch(compose):
    cfg = compose(["experiment=seed_homework"])
    result = train_job(prepare(cfg), int(cfg.seed))
    loss = np.asarray(result.history.loss)
    assert loss.shape == (25,)
    assert np.all(np.diff(np.concatenate([[float(result.initial_loss)], loss])) < 0)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_64_32_10_mlp_classifies_digits_at_its_best_rate_and_not_at_the_extremes(
    compose, schedule
):
    cfg, grid, _ = _grid(compose, ["experiment=digits", f"schedule={schedule}"])
    assert tuple(cfg.model.hidden_sizes) == (32,)
    assert grid.result.params[0].weights.shape[-2:] == (32, 64)
    assert grid.result.params[1].weights.shape[-2:] == (10, 32)
    test_accuracy = np.median(grid.result.history.test_accuracy[..., -1], axis=1)
    # The bar: at least 95% of the 359 held-out images at the best rate.
    assert test_accuracy.max() >= 0.95
    # The regimes: the smallest rate crawls (near chance, 10%), the largest overshoots.
    assert test_accuracy[0] < 0.5 and test_accuracy[-1] < test_accuracy.max() - 0.2
