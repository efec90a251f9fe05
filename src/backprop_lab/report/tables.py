"""Tables of the report: runs used, a grid per learning rate, single runs, jobs compared."""

from __future__ import annotations

from collections.abc import Sequence

from backprop_lab.report.blocks import Code, Table
from backprop_lab.report.formats import (
    fmt_int,
    fmt_number,
    fmt_percent,
    fmt_rate,
    fmt_time,
    fmt_value,
)
from backprop_lab.report.jobs import Job, has_test
from backprop_lab.report.store import Selection, run_kind

_GRID_HEADERS = [
    "learning rate",
    "cells",
    "solved",
    "improved",
    "diverged",
    "median final loss",
    "median epochs to target (cells)",
    "median accuracy",
]
_SINGLE_COLUMNS = [
    "epochs",
    "initial loss",
    "final loss",
    "final accuracy",
    "final test accuracy",
    "epochs to target",
    "solved",
    "diverged",
]


def _solved(solved: int, cells: int) -> str:
    return f"{solved} ({fmt_percent(solved / cells)})"


def grid_table(job: Job) -> Table:
    """One row per learning rate of a grid, the best one marked."""
    with_test = has_test(job.grid)
    headers = _GRID_HEADERS + (["median test accuracy"] if with_test else [])
    best = job.grid_summary.best_row
    table_rows = []
    for index, row in enumerate(job.rate_rows):
        cells = [
            fmt_rate(row.rate) + (" (best)" if index == best else ""),
            str(row.cells),
            _solved(row.solved, row.cells),
            fmt_percent(row.improved),
            fmt_percent(row.diverged),
            fmt_number(row.median_final_loss),
            f"{fmt_number(row.median_epochs_to_target, 0)} ({row.reached})"
            if row.reached
            else "— (0)",
            fmt_percent(row.median_accuracy),
        ]
        if with_test:
            cells.append(fmt_percent(row.median_test_accuracy))
        table_rows.append(cells)
    target = fmt_value(job.cfg.training.target_loss) if job.cfg is not None else "the target"
    caption = f"{job.label}: per learning rate (epochs to target: first epoch with loss ≤ {target}, among the cells that got there)"
    return Table(headers, table_rows, caption, numeric=tuple(range(1, len(headers))))


def _single_values(job: Job) -> dict[str, str]:
    history = job.history
    to_target = job.epochs_to_target
    values = {
        "epochs": str(len(history["loss"])),
        "initial loss": fmt_number(job.metric("initial_loss")),
        "final loss": fmt_number(history["loss"][-1]),
        "final accuracy": fmt_percent(history["accuracy"][-1]),
        "epochs to target": "—"
        if job.cfg is None
        else (fmt_number(to_target, 0) if to_target > 0 else "never"),
        "solved": {1.0: "yes", 0.0: "no"}.get(job.metric("solved"), "—"),
        "diverged": f"at epoch {fmt_int(job.metric('diverged_epoch'))}"
        if job.metric("diverged") == 1.0
        else "no",
    }
    if has_test(history):
        values["final test accuracy"] = fmt_percent(history["test_accuracy"][-1])
    return values


def single_table(jobs: Sequence[Job]) -> Table:
    """One row per single run; a column only where some run has a value for it."""
    values = [_single_values(job) for job in jobs]
    columns = [column for column in _SINGLE_COLUMNS if any(column in row for row in values)]
    rows = [
        [job.label, *[row.get(column, "—") for column in columns]]
        for job, row in zip(jobs, values, strict=True)
    ]
    return Table(
        ["run", *columns],
        rows,
        "Single runs" if len(jobs) > 1 else "",
        numeric=tuple(range(1, len(columns) + 1)),
    )


def runs_table(selection: Selection, jobs: Sequence[Job]) -> Table:
    """Every run used except the grid_row children, with its label when jobs have one."""
    labels = {job.run.info.run_id: job.label for job in jobs}
    with_labels = any(job.label != job.name for job in jobs)
    rows = []
    for run in selection.runs:
        kind = run_kind(run)
        if kind == "grid_row":
            continue
        label = [labels.get(run.info.run_id, "—")] if with_labels else []
        rows.append(
            [
                run.info.run_name or "",
                *label,
                kind,
                run.info.status,
                fmt_time(run.info.start_time),
                Code(run.info.run_id),
            ]
        )
    headers = ["run", *(["label"] if with_labels else []), "kind", "status", "started", "run id"]
    return Table(headers, rows, "Runs used")


def comparison_table(grids: Sequence[Job], job_noun: str) -> Table:
    """Each job of a multirun of grids at its best learning rate."""
    rows = []
    for job in grids:
        row = job.best_row
        summary = job.grid_summary
        rows.append(
            [
                job.label,
                str(summary.cells),
                _solved(job.solved_cells, summary.cells),
                fmt_rate(row.rate),
                f"{row.solved} of {row.cells} ({fmt_percent(row.success_rate)})",
                fmt_percent(summary.improved_fraction),
                fmt_percent(summary.diverged_fraction),
                fmt_number(row.median_final_loss),
            ]
        )
    headers = [
        job_noun,
        "cells",
        "solved (all rates)",
        "best learning rate",
        "solved at best rate",
        "improved",
        "diverged",
        "median final loss at best rate",
    ]
    return Table(
        headers, rows, f"Each {job_noun} at its best learning rate", numeric=tuple(range(1, 8))
    )
