"""The index of reports: one row per experiment, in the order the studies' presets give."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from backprop_lab.report.blocks import (
    Block,
    Heading,
    Link,
    Paragraph,
    Table,
    render_html,
    render_markdown,
)
from backprop_lab.report.build import ExperimentReport, slug
from backprop_lab.report.formats import fmt_time
from backprop_lab.report.jobs import load_config
from backprop_lab.report.store import description, run_name, select_runs


def index_order(reports: dict[str, ExperimentReport]) -> list[str]:
    """Names by ``report.order`` (the order a reader meets the studies in), ties by name."""
    return sorted(reports, key=lambda name: (reports[name].order, name))


def write_index(out: Path, reports: dict[str, ExperimentReport]) -> tuple[Path, Path]:
    rows = []
    for name in index_order(reports):
        report = reports[name]
        folder = slug(name)
        link = Link(name, f"{folder}/report/report.md", f"{folder}/report/report.html")
        if report.explorer_bytes:
            explorer = f"{folder}/report/explorer.html"
            link = (link, " (", Link("explorer", explorer, explorer), ")")
        rows.append(
            [
                link,
                report.description,
                report.top_run_name,
                report.started,
                str(report.jobs),
                report.headline or "—",
            ]
        )
    blocks: list[Block] = [
        Heading(1, "backprop-lab reports"),
        Paragraph(
            "One report per experiment, rebuilt from the MLflow store by bplab-report from the latest top-level run of each experiment."
        ),
        Table(
            ["experiment", "description", "latest run", "started", "jobs", "first finding"],
            rows,
            numeric=(4,),
        ),
    ]
    markdown, page = out / "index.md", out / "index.html"
    markdown.write_text(render_markdown(blocks))
    page.write_text(render_html("backprop-lab reports", blocks))
    return markdown, page


def _order(mlflow_client, runs: list) -> int:
    """``report.order`` from the first job whose config can be read; 100 when none can."""
    from backprop_lab.config import ReportConfig

    with tempfile.TemporaryDirectory(prefix="bplab-report-") as downloads:
        for run in runs:
            cfg = load_config(mlflow_client, run, Path(downloads))
            if cfg is not None:
                return int(cfg.report.order)
    return ReportConfig().order


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def index_entries(
    mlflow_client, experiments: dict[str, Any], out: Path, built: dict[str, ExperimentReport]
) -> dict[str, ExperimentReport]:
    """The reports just built, plus reports of the store's other experiments already in ``out``."""
    entries = dict(built)
    for name, experiment in experiments.items():
        folder = out / slug(name) / "report"
        if name in entries or not (folder / "report.html").is_file():
            continue
        selection = select_runs(mlflow_client, experiment)
        if selection is None:
            continue
        runs = selection.job_runs
        entries[name] = ExperimentReport(
            name,
            description([selection.top, *runs]),
            folder,
            run_name(selection.top),
            fmt_time(selection.top.info.start_time),
            len(runs),
            [],
            order=_order(mlflow_client, runs),
            explorer_bytes=_size(folder / "explorer.html"),
        )
    return entries
