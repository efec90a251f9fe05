"""``bplab-report``: a research report per experiment, rebuilt from the MLflow store alone."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backprop_lab.cli.common import OneLineParser, add_store_option, quiet_libraries
from backprop_lab.errors import BackpropLabError

PROG = "bplab-report"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG, description="Build a research report per experiment from the MLflow store alone."
    )
    parser.add_argument(
        "--experiment",
        action="append",
        default=None,
        metavar="NAME",
        help="an experiment to report on (repeatable; default: every experiment of the store that has runs)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: <project root>/experiments)",
    )
    add_store_option(parser)
    parser.add_argument(
        "--jobs",
        type=_positive_count,
        default=None,
        metavar="N",
        help="build up to N experiments' reports side by side (default: one per CPU core)",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="report on this run's sweep instead of the latest one (needs exactly one --experiment)",
    )
    return parser


def _positive_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 64")
    return int(text)


def _request(argv: list[str] | None):
    """``(args, uri, client, experiments, wanted)``, or a :class:`BackpropLabError` for bad input."""
    from backprop_lab import tracking
    from backprop_lab.report.store import open_store

    args = build_parser().parse_args(argv)
    if args.jobs is None:
        from backprop_lab.devices import available_cores

        args.jobs = available_cores()
    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    mlflow_client, experiments = open_store(uri)
    # The order asked for (the demo's is the article's), else by name.
    wanted = list(dict.fromkeys(args.experiment)) if args.experiment else sorted(experiments)
    unknown = [name for name in wanted if name not in experiments]
    if args.run and len(args.experiment or []) != 1:
        raise BackpropLabError("--run RUN_ID needs exactly one --experiment NAME")
    if unknown:
        raise BackpropLabError(
            f"no experiment with runs called {', '.join(repr(n) for n in unknown)} in {uri}; "
            f"available: {', '.join(sorted(experiments))}"
        )
    return args, uri, mlflow_client, experiments, wanted


def _build_reports(
    mlflow_client, experiments, wanted, run_id, out: Path, uri: str, jobs: int = 1
) -> dict:
    """Build each wanted experiment's report under a progress bar; ``{name: report}``.

    With ``jobs`` > 1 the experiments are built side by side in that many worker processes
    (drawing the figures is most of a report's time, and one process draws on one core).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(highlight=False, soft_wrap=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    built = {}
    with bar:
        task = bar.add_task("reports", total=len(wanted))
        if jobs > 1 and len(wanted) > 1:
            reports = _built_in_workers(wanted, run_id, out, uri, min(jobs, len(wanted)))
        else:
            progress = lambda text: bar.update(task, description=text)  # noqa: E731
            reports = (
                (name, _build_one(mlflow_client, experiments[name], run_id, out, uri, progress))
                for name in wanted
            )
        for name, report in reports:
            bar.advance(task)
            if report is None:
                continue
            built[name] = report
            jobs_text = f"{report.jobs} job{'s' if report.jobs != 1 else ''}"
            explorer = (
                f"; explorer.html {report.explorer_bytes / 1e6:.2f} MB"
                if report.explorer_bytes
                else ""
            )
            console.print(
                f"{name}: {report.folder / 'report.html'} ({jobs_text}; "
                f"{len(report.findings)} findings{explorer})"
            )
    return built


def _build_one(mlflow_client, experiment, run_id, out: Path, uri: str, progress=None):
    """One experiment's report, or None when it has no sweep to report on."""
    from backprop_lab.report.build import build_experiment_report
    from backprop_lab.report.store import select_runs

    selection = select_runs(mlflow_client, experiment, run_id)
    if selection is None:
        return None
    return build_experiment_report(mlflow_client, selection, out, uri, progress=progress)


def _build_in_worker(name: str, run_id, out: Path, uri: str):
    """A worker process's job: open the store itself and build one experiment's report."""
    from backprop_lab.report.store import open_store

    quiet_libraries()
    mlflow_client, experiments = open_store(uri)
    return _build_one(mlflow_client, experiments[name], run_id, out, uri)


def _built_in_workers(wanted, run_id, out: Path, uri: str, workers: int):
    """``(name, report)`` in the order wanted, built by ``workers`` fresh processes (spawned:
    a fork of a process that has started JAX's threads may hang)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [(name, pool.submit(_build_in_worker, name, run_id, out, uri)) for name in wanted]
        for name, future in futures:
            yield name, future.result()


def _writable_folder(out: Path) -> Path:
    """``--out``, created if missing; one line when it cannot be written."""
    import os

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackpropLabError(f"--out {out}: cannot create it ({error.strerror})") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise BackpropLabError(f"--out {out}: not a folder that can be written")
    return out


def run(argv: list[str] | None = None) -> int:
    """Run ``bplab-report``; return the exit code (2 for bad input)."""
    from rich.console import Console

    from backprop_lab.paths import project_root
    from backprop_lab.report.index import index_entries, write_index

    quiet_libraries()
    try:
        args, uri, mlflow_client, experiments, wanted = _request(argv)
        out = _writable_folder(Path(args.out) if args.out else project_root() / "experiments")
        built = _build_reports(
            mlflow_client, experiments, wanted, args.run, out, uri, jobs=args.jobs
        )
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)
    markdown, page = write_index(out, index_entries(mlflow_client, experiments, out, built))
    Console(highlight=False, soft_wrap=True).print(
        f"[bold green]Report[/]: {page} (Markdown: {markdown})"
    )
    return 0


def main() -> None:
    sys.exit(run())
