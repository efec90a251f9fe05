"""Multi-class jobs in the report: test accuracy against the rate, and where a network errs.

A job is multi-class when its network ends in a softmax (one output per class, accuracy by
argmax). Its confusion matrix and per-class accuracy are computed here from the run's own
records: the final weights (``grid.npz`` or ``weights.npz``) applied to its recorded data set
(``dataset.npz``), on the test split when there is one. For a grid the matrix is the best
cell's: the seed with the highest final test accuracy at the rate with the highest median.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from backprop_lab.core import analysis
from backprop_lab.report.blocks import Block, Figure, Figures, Paragraph, Table
from backprop_lab.report.figures import draw
from backprop_lab.report.formats import fmt_percent, fmt_rate
from backprop_lab.report.jobs import Job, finite_params, has_test


class Confusion(NamedTuple):
    """A network's confusion matrix on one split, and which network and split it is."""

    matrix: np.ndarray
    classes: tuple[str, ...]
    split: str
    network: str


def is_multiclass(job: Job) -> bool:
    """A softmax output over classes, with the data set it was trained on."""
    architecture = job.architecture
    return (
        architecture is not None
        and architecture.output_activation == "softmax"
        and job.dataset is not None
        and job.dataset.num_targets >= 2
    )


def class_names(job: Job) -> tuple[str, ...]:
    """The data set's class names, or ``0 … K−1``."""
    return job.dataset.classes or tuple(str(k) for k in range(job.dataset.num_targets))


def _predict(job: Job, arrays: dict[str, np.ndarray], index: tuple, x: np.ndarray):
    from backprop_lab.core.model import forward, layer_activations, params_from_arrays

    params = params_from_arrays(arrays, index)
    return np.asarray(
        forward(params, np.asarray(x, np.float32), layer_activations(job.architecture))
    )


def _split(job: Job) -> tuple[np.ndarray, np.ndarray, str]:
    dataset = job.dataset
    if dataset.has_test:
        return dataset.x_test, dataset.y_test, "test"
    return dataset.x_train, dataset.y_train, "training"


def confusion(job: Job) -> Confusion | None:
    """The confusion matrix of the job's best cell (a grid) or its final weights (a single
    run); None when the job is not multi-class or its weights are missing or diverged."""
    if not is_multiclass(job):
        return None
    x, y, split = _split(job)
    if job.kind == "grid":
        grid = job.grid
        cell = analysis.best_test_cell(grid, job.rate_rows) if grid is not None else None
        if cell is None and grid is not None:
            best = job.grid_summary.best_row
            cell = (best, int(np.argmax(np.nan_to_num(grid["accuracy"][best, :, -1], nan=-1))))
        if cell is None or "layer0_weights" not in grid or not finite_params(grid, cell):
            return None
        rate, seed = float(grid["learning_rates"][cell[0]]), int(grid["seeds"][cell[1]])
        network = f"the best cell, learning rate {fmt_rate(rate)} and seed {seed}"
        predictions = _predict(job, grid, cell, x)
    else:
        if job.weights is None or not finite_params(job.weights):
            return None
        network, predictions = "the final weights", _predict(job, job.weights, (), x)
    return Confusion(analysis.confusion_matrix(y, predictions), class_names(job), split, network)


def confusion_blocks(job: Job, index: int, figure_dir: Path) -> list[Block]:
    """The confusion matrix as a table (with each class's accuracy) and as a figure."""
    found = confusion(job)
    if found is None:
        return []
    matrix, classes = found.matrix, found.classes
    per_class = analysis.class_accuracy(matrix)
    total = matrix.sum()
    overall = np.trace(matrix) / total if total else float("nan")
    rows = [
        [name, *(str(int(count)) for count in matrix[i]), fmt_percent(per_class[i], 1)]
        for i, name in enumerate(classes)
    ]
    caption = (
        f"{job.label}: confusion matrix of {found.network} on the {found.split} split "
        f"({int(total)} samples, accuracy {fmt_percent(overall, 1)}); rows are the true classes, columns the predicted ones"
    )
    table = Table(
        ["true class", *classes, "class accuracy"],
        rows,
        caption,
        numeric=tuple(range(1, len(classes) + 2)),
    )
    worst = int(np.nanargmin(per_class)) if np.isfinite(per_class).any() else None
    blocks: list[Block] = [table]
    if worst is not None:
        off = matrix[worst].copy()
        off[worst] = 0
        confused = f", most often taken for {classes[int(np.argmax(off))]}" if off.sum() else ""
        blocks.append(
            Paragraph(
                f"Hardest class: {classes[worst]} ({fmt_percent(per_class[worst], 1)} right{confused}); "
                f"easiest: {classes[int(np.nanargmax(per_class))]} "
                f"({fmt_percent(np.nanmax(per_class), 1)})."
            )
        )
    figure = draw(
        job.problems,
        figure_dir,
        f"job{index:02d}_confusion_matrix.png",
        caption + ".",
        lambda path: _confusion_figure(matrix, classes, path, job.label),
    )
    return blocks + ([Figures([figure])] if figure else [])


def _confusion_figure(matrix, classes, path: Path, title: str) -> None:
    from backprop_lab import plots

    plots.confusion_matrix(matrix, classes, path, title=title)


def test_accuracy_figure(
    problems: list[str], grids: Sequence[Job], figure_dir: Path, name: str, job_noun: str
) -> Figure | None:
    """Final test accuracy against the learning rate, one line per grid that has a test split."""
    from backprop_lab import plots

    with_test = [job for job in grids if job.grid is not None and has_test(job.grid)]
    if not with_test or all(len(job.grid["learning_rates"]) < 2 for job in with_test):
        return None
    series = [
        (
            job.short_label or job.label,
            job.grid["learning_rates"],
            job.grid["test_accuracy"][..., -1],
        )
        for job in with_test
    ]
    seeds = with_test[0].grid["seeds"].size
    per = f", one line per {job_noun}" if len(with_test) > 1 else ""
    return draw(
        problems,
        figure_dir,
        "test_accuracy_by_learning_rate.png",
        f"Final test accuracy against the learning rate: the median across {seeds} seeds with "
        f"the 25–75% band{per}.",
        lambda path: plots.accuracy_by_rate(series, path, title=f"{name}: test accuracy"),
    )
