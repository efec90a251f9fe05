"""Findings: sentences computed from the runs. Every statistic comes from ``core.analysis``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backprop_lab.core import analysis
from backprop_lab.report.formats import fmt_int, fmt_number, fmt_percent, fmt_rate, fmt_value
from backprop_lab.report.jobs import Job, has_test
from backprop_lab.report.labels import varied_keys


def _prefix(job: Job, several: bool) -> str:
    return f"{job.label}: " if several else ""


def success_phrase(cfg, num_rows: int | None) -> tuple[str, str]:
    """(what a solved cell did, the verb for it) in the config's own terms."""
    if cfg is None:
        return "solved", "solved"
    training = cfg.training
    if training.success_requires_target_loss:
        rows = (
            "all rows right"
            if training.success_accuracy >= 1.0
            else f"accuracy ≥ {fmt_percent(training.success_accuracy)}"
        )
        return f"converged (loss ≤ {fmt_value(training.target_loss)}, {rows})", "converged"
    if training.success_accuracy >= 1.0 and num_rows:
        return f"classify all {num_rows} training rows", "solved"
    return f"reach {fmt_percent(training.success_accuracy)} training accuracy", "solved"


def _loss_sentence(job: Job) -> str:
    """How the loss moved from before training to the last epoch."""
    summary = job.run_summary
    epochs, fell = summary.epochs, summary.epochs_loss_fell
    losses = job.history["loss"]
    span = f"{fmt_number(summary.initial_loss)} → {fmt_number(summary.final_loss)}"
    if epochs == 1:
        return f"loss {'fell' if fell else 'did not fall'} in its one epoch: {span}"
    if fell == epochs:
        return f"loss fell in every one of {epochs} epochs: {span}"
    lowest = max(summary.lowest_loss_epoch, 1)
    return f"loss fell in {fell} of {epochs} epochs: {span} (lowest {fmt_number(losses[lowest - 1])} at epoch {lowest})"


def _outcome_sentence(job: Job) -> str:
    """Final accuracy, divergence and when the loss reached the target."""
    history = job.history
    text = f"final training accuracy {fmt_percent(history['accuracy'][-1])}"
    if has_test(history):
        text += f", test accuracy {fmt_percent(history['test_accuracy'][-1])}"
    if job.metric("diverged") == 1.0:
        text += f"; diverged at epoch {fmt_int(job.metric('diverged_epoch'))}"
    if job.cfg is not None:
        to_target, epochs = job.epochs_to_target, job.run_summary.epochs
        target = fmt_value(job.cfg.training.target_loss)
        budget = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        text += (
            f"; loss reached ≤ {target} at epoch {int(to_target)}"
            if to_target > 0
            else f"; loss never reached ≤ {target} in {budget}"
        )
    return text


def single_findings(job: Job, several: bool) -> list[str]:
    prefix = _prefix(job, several)
    found = [prefix + _loss_sentence(job)] if np.isfinite(job.metric("initial_loss")) else []
    return [*found, prefix + _outcome_sentence(job)]


def grid_summary_finding(job: Job, several: bool) -> str:
    """Cells solved, improved and diverged; the best rate; test accuracy there."""
    grid, rows, row = job.grid, job.rate_rows, job.best_row
    summary = job.grid_summary
    num_rows = len(job.dataset.x_train) if job.dataset is not None else None
    phrase, _ = success_phrase(job.cfg, num_rows)
    solved, cells = job.solved_cells, summary.cells
    text = (
        f"{_prefix(job, several)}{solved} of {cells} cells {phrase} ({fmt_percent(solved / cells)}"
    )
    if solved == 0:
        any_epoch = max(row.best_accuracy_any_epoch for row in rows)
        final = max(row.best_accuracy for row in rows)
        text += f"; best accuracy {fmt_percent(any_epoch)}" + (
            f" at any epoch, {fmt_percent(final)} at the end" if final != any_epoch else ""
        )
    text += f"); {fmt_percent(summary.improved_fraction)} improved on their initial loss"
    if summary.diverged_fraction > 0:
        text += f", {fmt_percent(summary.diverged_fraction)} diverged"
    if len(rows) > 1 and solved:
        text += f"; best learning rate {fmt_rate(row.rate)}: {row.solved} of {row.cells} seeds"
    if has_test(grid):
        text += f"; median test accuracy {fmt_percent(row.median_test_accuracy)} at learning rate {fmt_rate(row.rate)}"
    return text


def regime_finding(job: Job, several: bool) -> str | None:
    """ "rates ≤ X and ≥ Y never converged ...": the zero-success ends around the best rate."""
    rows = job.rate_rows
    if len(rows) < 3:
        return None
    low, high = analysis.zero_success_ends(rows)
    parts = [f"≤ {fmt_rate(rows[low].rate)}"] if low is not None else []
    parts += [f"≥ {fmt_rate(rows[high].rate)}"] if high is not None else []
    if not parts:
        return None
    _, verb = success_phrase(job.cfg, None)
    epochs = job.grid["loss"].shape[-1]
    best = job.best_row
    return (
        f"{_prefix(job, several)}rates {' and '.join(parts)} never {verb} within {epochs} epochs; "
        f"best rate {fmt_rate(best.rate)} {verb} in {fmt_percent(best.success_rate)} of seeds"
    )


def grid_findings(job: Job, several: bool) -> list[str]:
    regimes = regime_finding(job, several)
    return [grid_summary_finding(job, several), *([regimes] if regimes else [])]


def _job_names(scored: Sequence[tuple[float, Job]]) -> str:
    # The rate is worth naming only where it made a difference.
    return "; ".join(
        f"{job.label} (learning rate {fmt_rate(job.best_row.rate)})"
        if score > 0 and len(job.grid["learning_rates"]) > 1
        else job.label
        for score, job in scored
    )


def _means_by_key(scored: Sequence[tuple[float, Job]], keys: Sequence[str]) -> list[str]:
    """With two or more things varied together, the mean success for each value of each one."""
    found = []
    for key in keys:
        groups: dict[str, list[float]] = {}
        for score, job in scored:
            if key in job.varied:
                groups.setdefault(job.varied[key], []).append(score)
        others = ", ".join(other for other in keys if other != key)
        means = ", ".join(
            f"{value} {fmt_percent(float(np.mean(scores)))}" for value, scores in groups.items()
        )
        found.append(f"by {key} (mean over {others}, at each best learning rate): {means}")
    return found


def comparison_findings(jobs: Sequence[Job], job_noun: str) -> list[str]:
    """Best and worst jobs of a multirun of grids, by success at each job's best rate."""
    grids = [job for job in jobs if job.kind == "grid" and job.grid is not None]
    if len(grids) < 2:
        return []
    scored = [(job.best_row.success_rate, job) for job in grids]
    top = max(score for score, _ in scored)
    bottom = min(score for score, _ in scored)
    if top == bottom:
        return [f"every {job_noun} solved {fmt_percent(top)} of seeds at its best learning rate"]
    best = [item for item in scored if item[0] == top]
    worst = [item for item in scored if item[0] == bottom]
    found = [
        f"best {job_noun}{'s' if len(best) > 1 else ''} ({fmt_percent(top)} of seeds at the best learning rate): {_job_names(best)}",
        f"worst {job_noun}{'s' if len(worst) > 1 else ''} ({fmt_percent(bottom)}): {_job_names(worst)}",
    ]
    keys = varied_keys(grids)
    return found + (_means_by_key(scored, keys) if len(keys) > 1 else [])


def test_accuracy_finding(job: Job, several: bool) -> str | None:
    """Where held-out accuracy peaks across the rates, and what it is at the two ends."""
    grid, rows = job.grid, job.rate_rows
    best = analysis.best_test_rate_index(rows)
    if best is None or not has_test(grid):
        return None
    cell = analysis.best_test_cell(grid, rows)
    top = float(np.nan_to_num(grid["test_accuracy"][cell[0], cell[1], -1], nan=0.0))
    text = (
        f"{_prefix(job, several)}median test accuracy peaks at "
        f"{fmt_percent(rows[best].median_test_accuracy, 1)} at learning rate "
        f"{fmt_rate(rows[best].rate)} (best seed there {fmt_percent(top, 1)})"
    )
    if len(rows) > 2:
        text += (
            f"; {fmt_percent(rows[0].median_test_accuracy, 1)} at the smallest rate "
            f"{fmt_rate(rows[0].rate)} and {fmt_percent(rows[-1].median_test_accuracy, 1)} at the "
            f"largest {fmt_rate(rows[-1].rate)}"
        )
    return text


def test_comparison_findings(jobs: Sequence[Job], job_noun: str) -> list[str]:
    """Jobs with a test split side by side: each one's peak median test accuracy, and at how
    many shared rates one beats the other (two jobs)."""
    grids = [
        job for job in jobs if job.kind == "grid" and job.grid is not None and has_test(job.grid)
    ]
    if len(grids) < 2:
        return []
    peaks = []
    for job in grids:
        best = analysis.best_test_rate_index(job.rate_rows)
        if best is None:
            return []
        row = job.rate_rows[best]
        peaks.append(
            f"{job.label} {fmt_percent(row.median_test_accuracy, 1)} (learning rate {fmt_rate(row.rate)})"
        )
    found = [f"peak median test accuracy by {job_noun}: " + "; ".join(peaks)]
    first, second = grids[0], grids[1]
    rates = np.asarray(first.grid["learning_rates"])
    if len(grids) == 2 and np.array_equal(rates, np.asarray(second.grid["learning_rates"])):
        a = np.array([row.median_test_accuracy for row in first.rate_rows])
        b = np.array([row.median_test_accuracy for row in second.rate_rows])
        ahead, behind = int(np.sum(b > a)), int(np.sum(b < a))
        found.append(
            f"{second.label} has the higher median test accuracy at {ahead} of {len(rates)} "
            f"learning rates, {first.label} at {behind}"
            + (
                f", and they tie at {len(rates) - ahead - behind}"
                if len(rates) - ahead - behind
                else ""
            )
        )
    return found
