"""The statistics every reader of runs shares, checked on small hand-made grids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backprop_lab.core import analysis
from backprop_lab.core.analysis import SuccessRule

NAN = np.nan


def test_epochs_to_target_counts_from_one_and_never_counts_nan():
    curves = np.array([[0.5, 0.2, 0.009, 0.001], [0.5, 0.4, 0.3, 0.2], [0.5, NAN, 0.001, 0.0]])
    np.testing.assert_array_equal(analysis.epochs_to_target(curves, 0.01), [3, 0, 3])


def test_solved_needs_accuracy_no_divergence_and_optionally_the_target_loss():
    accuracy = np.array([1.0, 1.0, 0.75, NAN])
    loss = np.array([0.001, 0.5, 0.001, NAN])
    diverged = np.array([0, 0, 0, 3])
    plain = SuccessRule(success_accuracy=1.0, target_loss=0.01)
    strict = plain._replace(requires_target_loss=True)
    np.testing.assert_array_equal(analysis.solved(plain, accuracy, loss, diverged), [1, 1, 0, 0])
    np.testing.assert_array_equal(analysis.solved(strict, accuracy, loss, diverged), [1, 0, 0, 0])


def test_improved_is_strictly_below_the_initial_loss():
    np.testing.assert_array_equal(
        analysis.improved([0.1, 0.5, NAN], [0.5, 0.5, 0.5]), [True, False, False]
    )


def _grid() -> dict[str, np.ndarray]:
    """2 rates × 3 seeds × 3 epochs; the second rate's last seed diverged at epoch 2."""
    loss = np.array(
        [
            [[0.4, 0.3, 0.2], [0.4, 0.3, 0.25], [0.4, 0.35, 0.3]],
            [[0.4, 0.01, 0.005], [0.4, 0.02, 0.008], [0.4, NAN, NAN]],
        ]
    )
    accuracy = np.array(
        [
            [[0.5, 0.5, 0.75], [0.5, 0.5, 0.75], [0.5, 0.5, 0.5]],
            [[0.5, 1.0, 1.0], [0.5, 1.0, 1.0], [0.5, NAN, NAN]],
        ]
    )
    diverged = np.array([[0, 0, 0], [0, 0, 2]])
    initial = np.full((2, 3), 0.5)
    outcomes = analysis.cell_outcomes(SuccessRule(), loss, accuracy, initial, diverged)
    return {
        "learning_rates": np.array([0.1, 1.0]),
        "seeds": np.array([0, 1, 2]),
        "loss": loss,
        "accuracy": accuracy,
        "diverged_epoch": diverged,
        "initial_loss": initial,
        "solved": outcomes.solved,
        "improved": outcomes.improved,
        "epochs_to_target": outcomes.epochs_to_target,
    }


def test_rate_rows_by_hand():
    slow, fast = analysis.rate_rows(_grid())
    assert (slow.rate, slow.cells, slow.solved) == (0.1, 3, 0)
    assert slow.median_final_loss == pytest.approx(0.25)
    assert slow.mean_final_loss == pytest.approx(0.25)
    assert slow.improved == pytest.approx(1.0)
    assert fast.solved == 2 and fast.success_rate == pytest.approx(2 / 3)
    assert fast.diverged == pytest.approx(1 / 3)
    assert fast.median_final_loss == pytest.approx(0.0065)  # the diverged seed is left out
    assert fast.reached == 2 and fast.median_epochs_to_target == pytest.approx(2.5)
    assert fast.best_accuracy_any_epoch == 1.0
    assert math.isnan(fast.median_test_accuracy)


def test_best_rate_prefers_success_then_lower_loss_then_the_lower_rate():
    rows = analysis.rate_rows(_grid())
    assert analysis.best_rate_index(rows) == 1
    tie = [rows[0]._replace(solved=1), rows[1]._replace(solved=1, median_final_loss=0.25)]
    assert analysis.best_rate_index(tie) == 0
    nan_loss = [rows[0]._replace(median_final_loss=NAN), rows[1]._replace(solved=0)]
    assert analysis.best_rate_index(nan_loss) == 1


def test_zero_success_ends_mark_the_too_small_and_too_large_rates():
    row = analysis.rate_rows(_grid())[0]
    rows = [
        row._replace(rate=r, solved=s) for r, s in [(0.01, 0), (0.1, 0), (1, 3), (10, 1), (100, 0)]
    ]
    assert analysis.zero_success_ends(rows) == (1, 4)
    assert analysis.zero_success_ends([r._replace(solved=0) for r in rows]) == (None, None)


def test_grid_summary_agrees_with_its_rows():
    grid = _grid()
    summary = analysis.grid_summary(grid)
    assert summary.cells == 6
    assert summary.success_rate == pytest.approx(2 / 6)
    assert summary.best_learning_rate == 1.0
    assert summary.best_success_rate == pytest.approx(2 / 3)
    assert summary.median_final_loss == pytest.approx(np.median([0.2, 0.25, 0.3, 0.005, 0.008]))


def test_seed_quantiles_skip_diverged_seeds_and_keep_all_nan_epochs_nan():
    curves = np.array([[1.0, 2.0, NAN], [3.0, NAN, NAN], [5.0, 4.0, NAN]])
    stats = analysis.seed_quantile_curves(curves)
    np.testing.assert_allclose(stats["median"][:2], [3.0, 3.0])
    np.testing.assert_allclose(stats["mean"][:2], [3.0, 3.0])
    np.testing.assert_allclose(stats["q25"][:2], [2.0, 2.5])
    assert np.isnan(stats["median"][2])


def test_run_summary_of_one_curve():
    summary = analysis.run_summary(
        SuccessRule(target_loss=0.1), [0.4, 0.5, 0.05], [0.5, 0.5, 1.0], 0.6, 0
    )
    assert summary.epochs_loss_fell == 2
    assert summary.lowest_loss_epoch == 3
    assert summary.epochs_to_target == 3
    assert summary.solved and summary.improved


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_percentile_gives_numpys_numbers_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    curves = rng.lognormal(size=(16, 300)).astype(dtype)
    for seed, start in [(2, 10), (5, 10), (7, 150), (9, 0)]:
        curves[seed, start:] = np.nan  # diverged seeds: NaN from their divergence on
    curves[:, 290:] = np.nan  # every seed diverged
    curves[3, 40] = np.inf
    for q in (25, 50, 75):
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            expected = np.nanpercentile(curves, q, axis=0)
        found = analysis.nan_percentile(curves, q)
        assert found.dtype == expected.dtype
        np.testing.assert_array_equal(found, expected)


def test_curves_are_judged_the_same_a_few_rows_at_a_time(monkeypatch):
    """Long curves are scanned in blocks of rows (no float64 copy of them all); the verdicts
    equal those of the whole arrays at once, NaN (diverged) epochs and float32 included."""
    from backprop_lab.core import analysis

    rng = np.random.default_rng(3)
    loss = rng.uniform(0.0, 0.05, size=(5, 7, 300)).astype(np.float32)
    loss[1, 2, 40:] = np.nan
    loss[4, 0, :] = np.nan
    accuracy = rng.uniform(0.0, 1.0, size=loss.shape).astype(np.float32)
    accuracy[3, 3, :] = np.nan
    whole_reached = np.nan_to_num(loss.astype(float), nan=np.inf) <= 0.01
    expected = np.where(whole_reached.any(-1), np.argmax(whole_reached, -1) + 1, 0)
    for block in (1, 7, 301, 1 << 22):
        monkeypatch.setattr(analysis, "_BLOCK_VALUES", block)
        np.testing.assert_array_equal(analysis.epochs_to_target(loss, 0.01), expected)
        grid = {
            "learning_rates": np.linspace(0.1, 1.0, 5),
            "seeds": np.arange(7),
            "loss": loss,
            "accuracy": accuracy,
            "diverged_epoch": np.zeros((5, 7), int),
            "initial_loss": np.full((5, 7), 0.25),
        }
        rule = analysis.SuccessRule(success_accuracy=0.5)
        outcomes = analysis.cell_outcomes(
            rule, loss, accuracy, grid["initial_loss"], grid["diverged_epoch"]
        )
        grid.update(outcomes._asdict())
        rows = analysis.rate_rows(grid)
        finite_best = [float(np.nanmax(accuracy[r].astype(float))) for r in range(5)]
        assert [row.best_accuracy_any_epoch for row in rows] == finite_best
        assert [row.median_final_loss for row in rows] == [
            float(np.median(loss[r, :, -1][np.isfinite(loss[r, :, -1])].astype(float)))
            for r in range(5)
        ]
    assert np.isnan(analysis._finite_max_of_curves(np.full((2, 3), np.nan, np.float32)))
