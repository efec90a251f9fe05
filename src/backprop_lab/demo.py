"""``make demo``: run every study on the embedded store, then build the research report.

Each study is the command its experiment README gives, run as a user would type it. The
report is then regenerated from the MLflow store alone into ``experiments/<study>/report/``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from rich.console import Console

# (preset, multirun?) in the order a reader meets them in the article.
STUDIES: tuple[tuple[str, bool], ...] = (
    ("seed_example", False),
    ("seed_homework", False),
    ("xor_mlp", False),
    ("perceptron_gates", True),
    ("xor_architectures", True),
    ("threshold_vs_sigmoid", True),
    ("learning_rates", True),
    ("playground", True),
    # Real data last: the regimes again, on 10 classes of 8x8 digits, constant vs cosine.
    ("digits", True),
)


def _command(name: str, multirun: bool) -> list[str]:
    train = str(Path(sys.executable).parent / "bplab-train")
    return [train, *(["-m"] if multirun else []), f"experiment={name}"]


class _Study(NamedTuple):
    index: int
    name: str
    multirun: bool
    process: subprocess.Popen
    log: Path
    started: float


INTERRUPTED = "(interrupted)"


def _run_studies(console, studies, root: Path, jobs: int) -> tuple[str, int] | None:
    """Run the studies, up to ``jobs`` at a time, each as its own ``bplab-train`` process.

    Each study's output goes to a log file and is printed whole, in the studies' order, once it
    is done, so that studies running side by side never interleave their lines. Returns the
    first failed study's ``(name, exit status)``, or None. The processes share the store:
    starting together on it is safe (see "Nothing lost" in the README).
    """
    logs = Path(tempfile.mkdtemp(prefix="bplab-demo-"))
    pending = list(enumerate(studies, start=1))
    running: list[_Study] = []
    finished: dict[int, tuple[_Study, int]] = {}
    shown = 0
    status = console.status("starting")
    status.start()
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                index, (name, multirun) = pending.pop(0)
                log = logs / f"{index:02d}_{name}.log"
                with log.open("wb") as sink:
                    process = subprocess.Popen(
                        _command(name, multirun), cwd=root, stdout=sink, stderr=subprocess.STDOUT
                    )
                running.append(_Study(index, name, multirun, process, log, time.perf_counter()))
            time.sleep(0.05)
            now = time.perf_counter()
            status.update(
                "running "
                + ", ".join(f"{study.name} ({now - study.started:.0f} s)" for study in running)
            )
            for study in [study for study in running if study.process.poll() is not None]:
                running.remove(study)
                finished[study.index] = (study, time.perf_counter() - study.started)
            # Print every study done, in order, up to the first still running.
            while shown + 1 in finished:
                shown += 1
                study, seconds = finished[shown]
                command = " ".join(["bplab-train", *_command(study.name, study.multirun)[1:]])
                console.print(f"[bold cyan][{shown}/{len(studies)}][/] {command}")
                console.out(study.log.read_text(errors="replace").rstrip("\n"), highlight=False)
                if study.process.returncode != 0:
                    return study.name, study.process.returncode
                console.print(f"    done in {seconds:.1f} s")
        return None
    except KeyboardInterrupt:
        # The studies got the same Ctrl-C: each ends its runs KILLED. Wait for that; a second
        # Ctrl-C stops waiting (and the studies, which got it too, exit at once).
        with contextlib.suppress(KeyboardInterrupt):
            for study in running:
                study.process.wait()
        return INTERRUPTED, 130
    finally:
        status.stop()
        for study in running:
            if study.process.poll() is None:
                study.process.terminate()
                with contextlib.suppress(KeyboardInterrupt, subprocess.TimeoutExpired):
                    study.process.wait(timeout=10)
        shutil.rmtree(logs, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from backprop_lab.devices import available_cores
    from backprop_lab.paths import project_root
    from backprop_lab.tracking import find_experiment_id, resolve_tracking_uri, ui_command

    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these studies")
    parser.add_argument("--out", default=None, help="report folder (default: experiments/)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="studies run side by side (default: one per CPU core)",
    )
    args = parser.parse_args(argv)
    console = Console(highlight=False, soft_wrap=True)
    root = project_root()
    uri = resolve_tracking_uri(None)
    started = time.perf_counter()
    studies = [study for study in STUDIES if not args.only or study[0] in args.only]
    unknown = set(args.only or []) - {name for name, _ in STUDIES}
    if unknown:
        console.print(
            f"make demo: error: unknown studies {sorted(unknown)}; choose from {[name for name, _ in STUDIES]}"
        )
        return 2
    jobs = args.jobs or available_cores()
    console.print(
        f"[bold]backprop-lab demo[/]: {len(studies)} studies on {uri}, {min(jobs, len(studies))} at a time"
    )
    failed = _run_studies(console, studies, root, jobs)
    if failed == (INTERRUPTED, 130):
        console.print(
            f"[red]make demo: interrupted; runs recorded so far are kept in {uri} (KILLED; "
            "`bplab-sync outputs/ multirun/` closes any a second Ctrl-C left open)[/]"
        )
        return 130
    if failed is not None:
        name, status = failed
        console.print(
            f"[red]make demo: study {name} failed (exit {status}); runs recorded so far are kept in {uri}[/]"
        )
        return 130 if status in (130, -2) else 1
    out = Path(args.out) if args.out else root / "experiments"
    report = [str(Path(sys.executable).parent / "bplab-report"), "--out", str(out)]
    for name, _ in studies:
        report += ["--experiment", name]
    console.print("[bold cyan]report[/]: " + " ".join(["bplab-report", *report[1:]]))
    if subprocess.run(report, cwd=root).returncode != 0:
        console.print("[red]make demo: the report could not be built[/]")
        return 1
    elapsed = time.perf_counter() - started
    console.print()
    console.print(f"[bold green]Demo finished in {elapsed / 60:.1f} min ({elapsed:.0f} s).[/]")
    console.print(f"Report: {out / 'index.html'} (and experiments/<study>/report/report.md)")
    # The link opens the learning-rate grids' runs (or the last study's, with --only).
    names = [name for name, _ in studies]
    shown = find_experiment_id(uri, "learning_rates" if "learning_rates" in names else names[-1])
    console.print(f"MLflow UI on the same store: {ui_command(uri, shown)}")
    if shutil.which("mlflow") is None:
        console.print(
            f"  (mlflow is in {Path(sys.executable).parent}; activate the venv: source .venv/bin/activate)"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # during the report: its processes got the Ctrl-C too
        print("make demo: interrupted", file=sys.stderr)
        sys.exit(130)
