"""Statistics of trained runs and grids, in plain NumPy: one place for each rule.

The pipeline's MLflow aggregates, the console summary, ``bplab-report`` and the explorer all
call these functions, so "solved", "improved", "epochs to target" and "the best learning rate"
mean the same thing everywhere.

Conventions: a curve's last axis is epochs (1-based when reported); a diverged cell's curve is
NaN from the epoch it diverged; a grid's arrays have leading axes ``(rates, seeds)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np


class SuccessRule(NamedTuple):
    """When a run counts as solved.

    ``success_accuracy``: the final training accuracy it must reach. ``target_loss``: the loss
    that "epochs to target" counts down to. ``requires_target_loss``: also require the final
    loss to reach ``target_loss`` ("converged within the budget"), not only the accuracy.
    """

    success_accuracy: float = 1.0
    target_loss: float = 0.01
    requires_target_loss: bool = False


# Curves are scanned this many values at a time: a long grid's curves are gigabytes, and a
# float64 copy of them all would double that (a stopped grid's record waited on it).
_BLOCK_VALUES = 1 << 22


def _curve_blocks(curves: np.ndarray):
    """``(rows, block)``: the curves (epochs last) as rows, a few rows at a time, in float64."""
    rows = curves.reshape(-1, curves.shape[-1]) if curves.ndim else curves.reshape(1, 1)
    step = max(1, _BLOCK_VALUES // max(1, rows.shape[1]))
    for start in range(0, rows.shape[0], step):
        yield slice(start, start + step), np.asarray(rows[start : start + step], dtype=float)


def epochs_to_target(loss_history, target_loss: float) -> np.ndarray:
    """First epoch (1-based) whose loss is at or below ``target_loss``; 0 where never reached.

    Works on any leading axes; the last axis is epochs. NaN (a diverged epoch) never counts.
    """
    loss = np.asarray(loss_history)
    first = np.zeros(loss.shape[:-1] if loss.ndim else (), dtype=np.int64).reshape(-1)
    for rows, block in _curve_blocks(loss):
        # NaN <= target is False: a diverged epoch never counts.
        reached = block <= target_loss
        first[rows] = np.where(reached.any(axis=-1), np.argmax(reached, axis=-1) + 1, 0)
    return first.reshape(loss.shape[:-1] if loss.ndim else ())


def solved(rule: SuccessRule, final_accuracy, final_loss, diverged_epoch) -> np.ndarray:
    """Whether runs count as solved: accuracy (and, if asked, loss) reached, not diverged.

    Elementwise, so a grid's cells are judged in one call.
    """
    accuracy = np.nan_to_num(np.asarray(final_accuracy, dtype=float), nan=0.0)
    loss = np.nan_to_num(np.asarray(final_loss, dtype=float), nan=np.inf)
    ok = (accuracy >= rule.success_accuracy) & (np.asarray(diverged_epoch) == 0)
    if rule.requires_target_loss:
        ok = ok & (loss <= rule.target_loss)
    return ok


def improved(final_loss, initial_loss) -> np.ndarray:
    """The final loss is below the loss before training (a run that never moves has not)."""
    final = np.nan_to_num(np.asarray(final_loss, dtype=float), nan=np.inf)
    return final < np.asarray(initial_loss, dtype=float)


def _of_finite(statistic):
    """``statistic`` of an array's finite values (NaN and inf, a diverged cell's, left out);
    NaN when there are none."""

    def of_finite(values) -> float:
        values = np.asarray(values, dtype=float).ravel()
        finite = values[np.isfinite(values)]
        return float(statistic(finite)) if finite.size else math.nan

    of_finite.__doc__ = f"{statistic.__name__} of the finite values; NaN when there are none."
    return of_finite


finite_median = _of_finite(np.median)
finite_mean = _of_finite(np.mean)
finite_std = _of_finite(np.std)
finite_max = _of_finite(np.max)


def _finite_max_of_curves(curves) -> float:
    """:func:`finite_max` of whole curves, read a block at a time (the maximum is exact in any
    float width)."""
    best = -math.inf
    for _, block in _curve_blocks(np.asarray(curves)):
        finite = block[np.isfinite(block)]
        if finite.size:
            best = max(best, float(finite.max()))
    return best if best > -math.inf else math.nan


class CellOutcomes(NamedTuple):
    """Per-cell verdicts of a grid, each of shape ``(rates, seeds)``."""

    solved: np.ndarray
    improved: np.ndarray
    epochs_to_target: np.ndarray


def cell_outcomes(rule: SuccessRule, loss, accuracy, initial_loss, diverged_epoch) -> CellOutcomes:
    """Judge every cell from its curves (``(..., epochs)``) and its loss before training."""
    loss = np.asarray(loss)
    final_loss = np.asarray(loss[..., -1], dtype=float)
    final_accuracy = np.nan_to_num(np.asarray(np.asarray(accuracy)[..., -1], dtype=float), nan=0.0)
    return CellOutcomes(
        solved=solved(rule, final_accuracy, final_loss, diverged_epoch),
        improved=improved(final_loss, initial_loss),
        epochs_to_target=epochs_to_target(loss, rule.target_loss),
    )


class RateRow(NamedTuple):
    """One learning rate of a grid, across its seeds."""

    rate: float
    cells: int
    solved: int
    improved: float
    diverged: float
    median_final_loss: float
    mean_final_loss: float
    std_final_loss: float
    reached: int
    median_epochs_to_target: float
    median_accuracy: float
    mean_accuracy: float
    best_accuracy: float
    best_accuracy_any_epoch: float
    median_test_accuracy: float

    @property
    def success_rate(self) -> float:
        return self.solved / self.cells if self.cells else math.nan

    @property
    def reached_fraction(self) -> float:
        return self.reached / self.cells if self.cells else math.nan


def rate_rows(grid: Mapping[str, np.ndarray]) -> list[RateRow]:
    """Per learning rate: success, improvement, divergence, final loss and epochs to target.

    ``grid`` holds the arrays of ``grid.npz``: ``learning_rates``, ``loss``, ``accuracy``,
    ``solved``, ``improved``, ``diverged_epoch``, ``epochs_to_target`` and, when there is a
    test split, ``test_accuracy``.
    """
    finals = np.asarray(np.asarray(grid["loss"])[..., -1], dtype=float)
    accuracy_curves = np.asarray(grid["accuracy"])
    accuracy = np.asarray(accuracy_curves[..., -1], dtype=float)
    test = grid.get("test_accuracy")
    test_accuracy = (
        np.asarray(np.asarray(test)[..., -1], dtype=float)
        if test is not None
        else np.full_like(accuracy, np.nan)
    )
    rows = []
    for r, rate in enumerate(np.asarray(grid["learning_rates"])):
        to_target = np.asarray(grid["epochs_to_target"][r])
        reached = to_target[to_target > 0]
        rows.append(
            RateRow(
                rate=float(rate),
                cells=int(finals.shape[1]),
                solved=int(np.asarray(grid["solved"][r]).sum()),
                improved=float(np.asarray(grid["improved"][r]).mean()),
                diverged=float((np.asarray(grid["diverged_epoch"][r]) > 0).mean()),
                median_final_loss=finite_median(finals[r]),
                mean_final_loss=finite_mean(finals[r]),
                std_final_loss=finite_std(finals[r]),
                reached=int(reached.size),
                median_epochs_to_target=float(np.median(reached)) if reached.size else math.nan,
                median_accuracy=finite_median(accuracy[r]),
                mean_accuracy=finite_mean(accuracy[r]),
                best_accuracy=finite_max(accuracy[r]),
                best_accuracy_any_epoch=_finite_max_of_curves(accuracy_curves[r]),
                median_test_accuracy=finite_median(test_accuracy[r]),
            )
        )
    return rows


def best_rate_index(rows: Sequence[RateRow]) -> int:
    """The row with the highest success rate; ties go to the lower median final loss (NaN
    counts as worst), then to the lower learning rate (the earlier row)."""

    def key(index: int):
        loss = rows[index].median_final_loss
        return (-rows[index].success_rate, loss if math.isfinite(loss) else math.inf, index)

    return min(range(len(rows)), key=key)


def zero_success_ends(rows: Sequence[RateRow]) -> tuple[int | None, int | None]:
    """``(low, high)``: the highest row below the best rate from which every lower rate solved
    nothing, and the lowest row above it from which every higher rate solved nothing.

    These are the "too small" and "too large" regimes of SEED-NOTES §3; either may be None.
    """
    success = [row.success_rate for row in rows]
    best = best_rate_index(rows)
    if not rows or success[best] == 0:
        return None, None
    low = max((i for i in range(best) if all(s == 0 for s in success[: i + 1])), default=None)
    high = min(
        (i for i in range(best + 1, len(rows)) if all(s == 0 for s in success[i:])), default=None
    )
    return low, high


class GridSummary(NamedTuple):
    """What a whole grid comes to: the console line and the grid run's MLflow scalars."""

    cells: int
    success_rate: float
    improved_fraction: float
    diverged_fraction: float
    median_final_loss: float
    mean_final_accuracy: float
    best_row: int
    best_learning_rate: float
    best_success_rate: float


def grid_summary(
    grid: Mapping[str, np.ndarray], rows: Sequence[RateRow] | None = None
) -> GridSummary:
    """Summarise a grid (the arrays of ``grid.npz``) across all its cells."""
    rows = rate_rows(grid) if rows is None else rows
    best = best_rate_index(rows)
    losses = np.asarray(grid["loss"])
    accuracy = np.nan_to_num(
        np.asarray(np.asarray(grid["accuracy"])[..., -1], dtype=float), nan=0.0
    )
    return GridSummary(
        cells=int(losses.shape[0] * losses.shape[1]),
        success_rate=float(np.asarray(grid["solved"]).mean()),
        improved_fraction=float(np.asarray(grid["improved"]).mean()),
        diverged_fraction=float((np.asarray(grid["diverged_epoch"]) > 0).mean()),
        median_final_loss=finite_median(np.asarray(losses[..., -1], dtype=float)),
        mean_final_accuracy=float(np.mean(accuracy)),
        best_row=best,
        best_learning_rate=rows[best].rate,
        best_success_rate=rows[best].success_rate,
    )


def nan_percentile(values, q: float) -> np.ndarray:
    """``np.nanpercentile(values, q, axis=0)`` with the same numbers, much faster.

    NumPy computes a column holding NaN one column at a time in Python. Here the columns are
    grouped by which rows are finite (a diverged seed is NaN from its divergence on, so there
    are few groups) and each group takes one vectorised ``np.percentile``.
    """
    values = np.asarray(values)
    finite = ~np.isnan(values)
    if finite.all():
        return np.percentile(values, q, axis=0)
    flat = values.reshape(values.shape[0], -1)
    patterns, inverse = np.unique(finite.reshape(len(values), -1).T, axis=0, return_inverse=True)
    result = None
    for index, rows in enumerate(patterns):
        columns = inverse.ravel() == index
        if not rows.any():
            continue
        part = np.percentile(flat[rows][:, columns], q, axis=0)
        if result is None:
            result = np.full(flat.shape[1], np.nan, dtype=part.dtype)
        result[columns] = part
    if result is None:
        result = np.full(flat.shape[1], np.nan)
    return result.reshape(values.shape[1:])


def seed_quantile_curves(curves) -> dict[str, np.ndarray]:
    """Across seeds (axis 0 of ``(seeds, epochs)``): median, mean, 25th and 75th percentile.

    NaN (diverged) values are skipped; an epoch where every seed diverged stays NaN.
    """
    curves = np.asarray(curves, dtype=float)
    if not np.isnan(curves).any():  # the usual case: the same numbers, vectorised
        q25, q75 = np.percentile(curves, [25, 75], axis=0)
        return {
            "median": np.median(curves, axis=0),
            "mean": curves.mean(axis=0),
            "q25": q25,
            "q75": q75,
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "median": np.nanmedian(curves, axis=0),
            "mean": np.nanmean(curves, axis=0),
            "q25": nan_percentile(curves, 25),
            "q75": nan_percentile(curves, 75),
        }


class RunSummary(NamedTuple):
    """What one trained network comes to (see :func:`run_summary`)."""

    epochs: int
    initial_loss: float
    final_loss: float
    final_accuracy: float
    solved: bool
    improved: bool
    diverged_epoch: int
    epochs_to_target: int
    epochs_loss_fell: int
    lowest_loss_epoch: int


def run_summary(
    rule: SuccessRule, loss, accuracy, initial_loss: float, diverged_epoch: int
) -> RunSummary:
    """Summarise one run from its per-epoch loss and accuracy."""
    loss = np.asarray(loss, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    previous = np.concatenate([[initial_loss], loss[:-1]])
    return RunSummary(
        epochs=int(loss.size),
        initial_loss=float(initial_loss),
        final_loss=float(loss[-1]),
        final_accuracy=float(accuracy[-1]),
        solved=bool(solved(rule, accuracy[-1], loss[-1], diverged_epoch)),
        improved=bool(improved(loss[-1], initial_loss)),
        diverged_epoch=int(diverged_epoch),
        epochs_to_target=int(epochs_to_target(loss, rule.target_loss)),
        epochs_loss_fell=int(np.sum(loss < previous)),
        lowest_loss_epoch=int(np.nanargmin(loss)) + 1 if np.isfinite(loss).any() else 0,
    )


# ---------------------------------------------------------------------------------------------
# Classes: the errors of a multi-class network, and its best cell on held-out data


def confusion_matrix(targets, predictions) -> np.ndarray:
    """``counts[i, j]``: the samples of class ``i`` the network put in class ``j``.

    Classes are the argmax of each one-hot (or probability) target row and of each prediction
    row (ties go to the first class), as the accuracy of a softmax output counts them; the
    diagonal holds the samples classified right.
    """
    targets, predictions = np.asarray(targets), np.asarray(predictions)
    classes = targets.shape[-1]
    truth = np.argmax(targets, axis=-1).ravel()
    guess = np.argmax(predictions, axis=-1).ravel()
    return np.bincount(truth * classes + guess, minlength=classes * classes).reshape(
        classes, classes
    )


def class_accuracy(matrix) -> np.ndarray:
    """Per class, the share of its samples classified right (its recall); NaN for a class
    with no samples."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def best_test_rate_index(rows: Sequence[RateRow]) -> int | None:
    """The row with the highest median final test accuracy (ties: the lower rate); None when
    no row has one."""
    scores = [row.median_test_accuracy for row in rows]
    finite = [i for i, score in enumerate(scores) if math.isfinite(score)]
    return max(finite, key=lambda i: (scores[i], -i)) if finite else None


def best_test_cell(
    grid: Mapping[str, np.ndarray], rows: Sequence[RateRow]
) -> tuple[int, int] | None:
    """``(rate index, seed index)``: at the rate of :func:`best_test_rate_index`, the seed
    with the highest final test accuracy (ties: the first seed); None without test data."""
    rate = best_test_rate_index(rows)
    if rate is None or "test_accuracy" not in grid:
        return None
    final = np.nan_to_num(np.asarray(grid["test_accuracy"], dtype=float)[rate, :, -1], nan=-1.0)
    return rate, int(np.argmax(final))
