"""The report's figures, drawn with :mod:`backprop_lab.plots` from a job's checked records.

A figure that cannot be drawn (values no axis can show, say) is left out with a note: one
bad run never stops the report.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from backprop_lab.report.blocks import Figure
from backprop_lab.report.formats import fmt_percent, fmt_rate
from backprop_lab.report.jobs import Job, finite_params


def draw(problems: list[str], figure_dir: Path, filename: str, caption: str, plot: Callable):
    """``plot(path)`` into ``figure_dir / filename``; the :class:`Figure`, or None with a note
    in ``problems`` when it fails."""
    import matplotlib.pyplot as plt

    path = figure_dir / filename
    try:
        with warnings.catch_warnings():
            # An all-zero hidden unit has no line, so a figure may have no legend entries.
            warnings.simplefilter("ignore")
            plot(path)
    except Exception as error:
        plt.close("all")
        path.unlink(missing_ok=True)
        problems.append(f"its figure {filename} could not be drawn ({type(error).__name__})")
        return None
    return Figure(filename, caption)


def _figure_name(index: int, what: str) -> str:
    return f"job{index:02d}_{what}.png"


def _draws_boundary(job: Job) -> bool:
    architecture = job.architecture
    return (
        architecture is not None
        and job.dataset is not None
        and architecture.num_inputs == 2
        and architecture.num_outputs == 1
    )


def _lines_note(job: Job) -> str:
    sizes = job.architecture.layer_sizes
    return "; dashed lines are the hidden units' lines" if len(sizes) > 2 and sizes[1] <= 16 else ""


def representative_cells(job: Job) -> list[tuple[str, int, int]]:
    """``(what, rate index, seed index)``: the first solved seed at the best rate, and a failed cell.

    The failed cell is the first one (best rate first, then the other rates in order) that did
    not solve the task and did not diverge.
    """
    grid = job.grid
    best = job.grid_summary.best_row
    solved = grid["solved"]

    def usable(r: int, s: int) -> bool:
        return grid["diverged_epoch"][r, s] == 0 and finite_params(grid, (r, s))

    cells = []
    for s in range(solved.shape[1]):
        if solved[best, s] and usable(best, s):
            cells.append(("solved", best, s))
            break
    for r in [best, *[r for r in range(solved.shape[0]) if r != best]]:
        failed = [s for s in range(solved.shape[1]) if not solved[r, s] and usable(r, s)]
        if failed:
            cells.append(("failed", r, failed[0]))
            break
    return cells


def _boundary(job: Job, params, path: Path, title: str) -> None:
    from backprop_lab import plots

    x, y = job.dataset.x_train, job.dataset.y_train
    plots.network_decision_boundary(job.architecture, params, x, y, path, title=title)


def _grid_boundaries(job: Job, index: int, figure_dir: Path) -> list[Figure | None]:
    from backprop_lab.core.model import params_from_arrays

    grid, rates = job.grid, job.grid["learning_rates"]
    figures = []
    for what, r, s in representative_cells(job):
        params = params_from_arrays(grid, (r, s))
        accuracy = float(grid["accuracy"][r, s, -1])
        detail = f"η={fmt_rate(rates[r])}, seed {int(grid['seeds'][s])}, accuracy {fmt_percent(accuracy)}"
        title = f"{job.label}\n{what}: {detail}"
        figures.append(
            draw(
                job.problems,
                figure_dir,
                _figure_name(index, f"boundary_{what}"),
                f"{job.label}: decision boundary of a {what} cell ({detail}){_lines_note(job)}.",
                lambda path, params=params, title=title: _boundary(job, params, path, title),
            )
        )
    return figures


def _grid_figures(job: Job, index: int, figure_dir: Path) -> list[Figure | None]:
    from backprop_lab import plots
    from backprop_lab.core.model import num_layers_in

    grid, rates = job.grid, job.grid["learning_rates"]
    seeds = grid["loss"].shape[1]
    figures = [
        draw(
            job.problems,
            figure_dir,
            _figure_name(index, "loss_by_learning_rate"),
            f"{job.label}: median training loss per learning rate with the 25–75% band across {seeds} seeds (log scale).",
            lambda path: plots.grid_loss_curves(rates, grid["loss"], path, title=job.label),
        )
    ]
    if len(rates) > 1:
        success = np.array([row.success_rate for row in job.rate_rows])
        figures.append(
            draw(
                job.problems,
                figure_dir,
                _figure_name(index, "success_by_learning_rate"),
                f"{job.label}: share of seeds solved at each learning rate.",
                lambda path: plots.success_by(
                    [fmt_rate(rate) for rate in rates],
                    success,
                    path,
                    xlabel="learning rate",
                    log_x_values=rates,
                    title=job.label,
                ),
            )
        )
    if _draws_boundary(job) and num_layers_in(grid):
        figures += _grid_boundaries(job, index, figure_dir)
    return figures


def _single_figures(job: Job, index: int, figure_dir: Path) -> list[Figure | None]:
    from backprop_lab import plots
    from backprop_lab.core.model import params_from_arrays

    figures = []
    # A curve of one epoch is a single point: the table says all there is.
    if len(job.history["loss"]) > 1:
        figures.append(
            draw(
                job.problems,
                figure_dir,
                _figure_name(index, "loss_curve"),
                f"{job.label}: loss (log scale) and accuracy per epoch.",
                lambda path: plots.loss_curve(job.history, path, title=job.label),
            )
        )
    weights = job.weights
    if (
        _draws_boundary(job)
        and weights is not None
        and job.metric("diverged") != 1.0
        and finite_params(weights)
    ):
        figures.append(
            draw(
                job.problems,
                figure_dir,
                _figure_name(index, "boundary"),
                f"{job.label}: decision boundary after training{_lines_note(job)}.",
                lambda path: _boundary(job, params_from_arrays(weights), path, job.label),
            )
        )
    return figures


def job_figures(job: Job, index: int, figure_dir: Path) -> list[Figure]:
    """Draw a job's figures into ``figure_dir``; return those drawn, with captions."""
    drawn = (
        _grid_figures(job, index, figure_dir)
        if job.kind == "grid"
        else _single_figures(job, index, figure_dir)
    )
    return [figure for figure in drawn if figure is not None]


def success_by_job(
    problems: list[str], grids: Sequence[Job], figure_dir: Path, *, axis: str, title: str, noun: str
) -> Figure | None:
    """Share of seeds solved by each job of a multirun at its best learning rate."""
    from backprop_lab import plots

    labels = [job.short_label for job in grids]
    success = np.array([job.best_row.success_rate for job in grids])
    return draw(
        problems,
        figure_dir,
        "success_by_job.png",
        f"Share of seeds solved by each {noun} at its best learning rate.",
        lambda path: plots.success_by(labels, success, path, xlabel=axis, title=title),
    )
