"""One experiment's report: its sections as blocks, written as Markdown and HTML."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from backprop_lab.report import figures as report_figures
from backprop_lab.report.blocks import (
    Block,
    Bullets,
    Code,
    CodeBlock,
    Figures,
    Heading,
    Link,
    Paragraph,
    render_html,
    render_markdown,
)
from backprop_lab.report.classes import confusion_blocks, is_multiclass, test_accuracy_figure
from backprop_lab.report.findings import (
    comparison_findings,
    grid_summary_finding,
    regime_finding,
    single_findings,
    test_accuracy_finding,
    test_comparison_findings,
)
from backprop_lab.report.formats import fmt_time
from backprop_lab.report.jobs import Job, load_job, report_settings
from backprop_lab.report.labels import label_jobs, varied_keys
from backprop_lab.report.store import (
    Selection,
    description,
    display_uri,
    run_kind,
    run_name,
)
from backprop_lab.report.tables import comparison_table, grid_table, runs_table, single_table
from backprop_lab.report.worked_example import has_worked_example, worked_example


@dataclass
class ExperimentReport:
    name: str
    description: str
    folder: Path
    top_run_name: str
    started: str
    jobs: int
    findings: list[str]
    # The finding the index shows, as the study's ``report.headline`` picks it.
    headline: str = ""
    # The experiment's place in the index (``report.order``).
    order: int = 100
    # Size of ``explorer.html`` beside the report (0: the runs have no trajectory, no explorer).
    explorer_bytes: int = 0


class Findings(NamedTuple):
    """The findings in the order shown, and the kinds a headline may be picked from."""

    shown: list[str]
    comparison: list[str]
    regimes: list[str]
    worked_blocks: list[Block]


def slug(name: str) -> str:
    """The experiment's folder name: its name with anything but ``[A-Za-z0-9-_.]`` replaced."""
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return "_" + slug if not slug or slug.startswith(".") else slug


# ---------------------------------------------------------------------------------------------
# Sections


def _title(selection: Selection, jobs: list[Job], uri: str) -> list[Block]:
    blocks: list[Block] = [Heading(1, selection.experiment_name)]
    note = description([selection.top, *(job.run for job in jobs)])
    if note:
        blocks.append(Paragraph(note))
    top, below = selection.top, len(selection.descendants)
    blocks.append(
        Paragraph(
            (
                "Built from the MLflow store ",
                Code(display_uri(uri)),
                " alone: the latest top-level run ",
                Code(run_name(top)),
                f" ({run_kind(top)}, {top.info.status}, started {fmt_time(top.info.start_time)})",
                f" and the {below} run{'s' if below != 1 else ''} below it." if below else ".",
            )
        )
    )
    return blocks


def _notes(selection: Selection, jobs: list[Job], problems: list[str]) -> Bullets:
    """What the reader should know about the runs: left out, unused, unreadable."""
    notes = []
    grid_row_count = sum(run_kind(run) == "grid_row" for run in selection.runs)
    if grid_row_count:
        notes.append(
            f"{grid_row_count} grid_row child runs (one per learning rate of each grid, with downsampled curves) are not listed; the report reads the full curves from grid.npz."
        )
    older = selection.ignored_top_level
    notes.append(
        f"{older} other top-level run{'s' if older != 1 else ''} of this experiment {'were' if older != 1 else 'was'} not used "
        "(bplab-report --experiment NAME --run RUN_ID reports on another)."
        if older
        else "This experiment has no other top-level runs."
    )
    for job in jobs:
        for problem in job.problems:
            notes.append(
                f"Run {job.name} ({job.run.info.run_id}): {problem}; it is left out where that is needed."
            )
    notes += [f"{problem[0].upper()}{problem[1:]}." for problem in problems]
    return Bullets(notes)


def _commands(selection: Selection, jobs: list[Job]) -> list[str]:
    commands = []
    top = selection.top
    if run_kind(top) == "multirun":
        overrides = top.data.tags.get("backprop_lab.overrides", "")
        commands.append(f"bplab-train -m {overrides}".rstrip() + "   # the multirun; its jobs:")
    for job in jobs:
        command = job.run.data.tags.get("backprop_lab.command")
        if command and command not in commands:
            commands.append(command)
    return commands


def _provenance(selection: Selection, jobs: list[Job]) -> list[Block]:
    """The commits the runs were made from, the commands, and the first resolved config."""
    blocks: list[Block] = []
    commits = sorted(
        {
            (
                run.data.tags.get("backprop_lab.git_commit", "unknown"),
                run.data.tags.get("backprop_lab.git_dirty", "unknown"),
            )
            for run in selection.runs
            if run_kind(run) != "grid_row" and "backprop_lab.git_commit" in run.data.tags
        }
    )
    if commits:
        spans = [
            item
            for index, (commit, dirty) in enumerate(commits)
            for item in ((", " if index else ""), Code(commit), f" (dirty: {dirty})")
        ]
        blocks.append(Paragraph(("Commit" + ("s" if len(commits) > 1 else "") + ": ", *spans)))
    commands = _commands(selection, jobs)
    if commands:
        summary = "Command" + ("s" if len(commands) > 1 else "")
        blocks.append(CodeBlock(summary, "\n".join(commands) + "\n", "sh"))
    first = next((job for job in jobs if job.config_text), None)
    if first is not None:
        blocks.append(
            CodeBlock(
                f"Resolved config (config.yaml of {first.name}, {first.run.info.run_id})",
                first.config_text,
                "yaml",
                collapsed=True,
            )
        )
    return blocks


def _collect_findings(jobs: list[Job], job_noun: str) -> Findings:
    several = len(jobs) > 1
    shown, regimes = [], []
    for job in jobs:
        if job.kind == "grid" and job.grid is not None:
            shown.append(grid_summary_finding(job, several))
            regime = regime_finding(job, several)
            regimes += [regime] if regime else []
            shown += [regime] if regime else []
            held_out = test_accuracy_finding(job, several) if is_multiclass(job) else None
            shown += [held_out] if held_out else []
        elif job.history is not None:
            shown += single_findings(job, several)
    comparison = comparison_findings(jobs, job_noun)
    comparison += test_comparison_findings(list(filter(is_multiclass, jobs)), job_noun)
    shown += comparison
    worked: list[Block] = []
    for job in filter(has_worked_example, jobs):
        example_blocks, example_findings = worked_example(job)
        worked += example_blocks
        # One run: its worked example leads; in a multirun each job's is labelled.
        shown = (
            [*example_findings, *shown]
            if not several
            else shown + [f"{job.label}: {found}" for found in example_findings]
        )
    return Findings(shown, comparison, regimes, worked)


def _comparison(
    name: str, grids: list[Job], job_noun: str, figure_dir: Path, problems: list[str]
) -> list[Block]:
    """Success by job: a table and a bar chart of each grid at its best learning rate."""
    keys = varied_keys(grids)
    named = keys and all(job.short_label != job.name for job in grids)
    figure = report_figures.success_by_job(
        problems,
        grids,
        figure_dir,
        axis=", ".join(keys) if named else job_noun,
        title=f"{name}: success at the best learning rate",
        noun=job_noun,
    )
    blocks: list[Block] = [
        Heading(2, f"Success by {job_noun}", "by-job"),
        comparison_table(grids, job_noun),
    ]
    return blocks + ([Figures([figure])] if figure else [])


def _job_sections(jobs: list[Job], figure_dir: Path) -> list[Block]:
    """One section per usable job: its run, its table and its figures."""
    several = len(jobs) > 1
    singles = sum(job.kind != "grid" and job.usable for job in jobs)
    blocks: list[Block] = []
    for index, job in enumerate(jobs, start=1):
        if not job.usable:
            continue
        grid = job.kind == "grid"
        title = job.label if several else ("Grid of learning rates × seeds" if grid else "Training")
        blocks.append(Heading(2, title, f"job-{index:02d}"))
        blocks.append(
            Paragraph(
                (
                    "Run ",
                    Code(job.name),
                    ", id ",
                    Code(job.run.info.run_id),
                    f", {job.run.info.status}.",
                )
            )
        )
        if grid:
            blocks.append(grid_table(job))
        elif singles == 1:
            blocks.append(single_table([job]))
        figures = report_figures.job_figures(job, index, figure_dir)
        if figures:
            blocks.append(Figures(figures))
        blocks += confusion_blocks(job, index, figure_dir)
    return blocks


def _test_accuracy(name: str, grids: list[Job], job_noun: str, figure_dir: Path, problems):
    """Multi-class grids: final test accuracy against the learning rate, every job on one
    figure."""
    figure = test_accuracy_figure(
        problems, [job for job in grids if is_multiclass(job)], figure_dir, name, job_noun
    )
    if figure is None:
        return []
    return [
        Heading(2, "Test accuracy against the learning rate", "test-accuracy"),
        Figures([figure]),
    ]


def pick_headline(findings: Findings, choice: str) -> str:
    """The finding the index shows, as the study's preset asks (``report.headline``)."""
    candidates = {
        "first": [],
        "comparison": findings.comparison,
        "regimes": findings.regimes or findings.comparison,
    }.get(choice, findings.comparison)
    return (candidates or findings.shown or [""])[0]


def build_blocks(
    selection: Selection, jobs: list[Job], figure_dir: Path, uri: str
) -> tuple[list[Block], list[str], str]:
    """The report of one experiment as blocks (figures are drawn into ``figure_dir``).

    Also returns the findings, and the one the index shows. The sections are computed before
    the "Runs" notes so that a figure or worked example that failed can be noted there.
    """
    settings = report_settings(jobs)
    findings = _collect_findings(jobs, settings.job_noun)
    problems: list[str] = []
    grids = [job for job in jobs if job.kind == "grid" and job.grid is not None]
    singles = [job for job in jobs if job.kind != "grid" and job.history is not None]
    comparison = (
        _comparison(selection.experiment_name, grids, settings.job_noun, figure_dir, problems)
        if len(grids) > 1
        else []
    )
    if len(singles) > 1:
        comparison += [Heading(2, "Single runs", "single-runs"), single_table(singles)]
    comparison += _test_accuracy(
        selection.experiment_name, grids, settings.job_noun, figure_dir, problems
    )
    sections = _job_sections(jobs, figure_dir)
    blocks = [
        *_title(selection, jobs, uri),
        Heading(2, "Runs", "runs"),
        runs_table(selection, jobs),
        _notes(selection, jobs, problems),
        *_provenance(selection, jobs),
        Heading(2, "Findings", "findings"),
        Bullets(findings.shown or ["no finished job with readable artifacts"]),
        *findings.worked_blocks,
        *comparison,
        *sections,
    ]
    return blocks, findings.shown, pick_headline(findings, settings.headline)


def write_experiment_explorer(selection: Selection, jobs: list[Job], folder: Path) -> int:
    """``explorer.html`` of every job with a trajectory; its size (0: none has one)."""
    from backprop_lab.explorer import EXPLORER_ARTIFACT, render_explorer, write_explorer
    from backprop_lab.explorer.sources import explorer_jobs

    found = explorer_jobs(jobs)
    if not found:
        return 0
    top = selection.top
    subtitle = (
        f"The latest top-level run {run_name(top)} ({run_kind(top)}, {top.info.status}): "
        f"{len(found)} job{'s' if len(found) != 1 else ''} with snapshots."
    )
    page = render_explorer(selection.experiment_name, found, subtitle=subtitle)
    return write_explorer(folder / EXPLORER_ARTIFACT, page)


def explorer_link(jobs: int) -> Paragraph:
    return Paragraph(
        (
            "Explorer: ",
            Link("explorer.html", "explorer.html", "explorer.html"),
            f" shows every cell of {'every job' if jobs > 1 else 'the run'} learning, epoch by "
            "epoch: the output over the input plane (two inputs) or the per-class accuracy "
            "and confusion matrix (several classes), the network and the curves, recomputed in "
            "the browser from the snapshots of the runs. One self-contained file; it opens "
            "offline.",
        )
    )


# ---------------------------------------------------------------------------------------------
# Writing


@contextmanager
def _replacing(final: Path) -> Iterator[Path]:
    """A fresh folder that replaces ``final`` when the block succeeds; on failure the old
    ``final`` stays and the new one is removed."""
    building = Path(tempfile.mkdtemp(prefix=".report-", dir=final.parent))
    building.chmod(0o755)
    try:
        yield building
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".report-old-", dir=final.parent))
            final.rename(old / "report")
            building.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            building.rename(final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def load_jobs(
    mlflow_client, selection: Selection, progress: Callable[[str], None] | None = None
) -> list[Job]:
    """Every job of the selection with its artifacts, labelled by what varied between them."""
    jobs = []
    with tempfile.TemporaryDirectory(prefix="bplab-report-") as downloads:
        for run in selection.job_runs:
            if progress is not None:
                progress(f"{selection.experiment_name}: reading {run_name(run)}")
            jobs.append(load_job(mlflow_client, run, Path(downloads)))
    label_jobs(jobs)
    return jobs


def build_experiment_report(
    mlflow_client, selection: Selection, out: Path, uri: str, progress=None
) -> ExperimentReport:
    """Write ``<out>/<experiment>/report/``; the old report is replaced only when the new one is done."""
    name = selection.experiment_name
    folder = out / slug(name)
    folder.mkdir(parents=True, exist_ok=True)
    with _replacing(folder / "report") as building:
        jobs = load_jobs(mlflow_client, selection, progress)
        if progress is not None:
            progress(f"{name}: drawing figures")
        figure_dir = building / "figures"
        figure_dir.mkdir()
        blocks, findings, headline = build_blocks(selection, jobs, figure_dir, uri)
        if progress is not None:
            progress(f"{name}: writing the explorer")
        explorer_bytes = write_experiment_explorer(selection, jobs, building)
        if explorer_bytes:
            # Under the title, before the first section.
            first = next(
                i
                for i, block in enumerate(blocks)
                if isinstance(block, Heading) and block.level == 2
            )
            blocks.insert(first, explorer_link(len(jobs)))
        (building / "report.md").write_text(render_markdown(blocks))
        (building / "report.html").write_text(
            render_html(f"{name} — backprop-lab report", blocks, figure_dir)
        )
    return ExperimentReport(
        name,
        description([selection.top, *(job.run for job in jobs)]),
        folder / "report",
        run_name(selection.top),
        fmt_time(selection.top.info.start_time),
        len(jobs),
        findings,
        headline,
        int(report_settings(jobs).order),
        explorer_bytes,
    )
