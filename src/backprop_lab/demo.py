"""``make demo``: run every study on the embedded store, then build the research report.

Each study is the command its experiment README gives, run as a user would type it. The
report is then regenerated from the MLflow store alone into ``experiments/<study>/report/``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    from backprop_lab.paths import project_root
    from backprop_lab.tracking import find_experiment_id, resolve_tracking_uri, ui_command

    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only these studies")
    parser.add_argument("--out", default=None, help="report folder (default: experiments/)")
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
    console.print(f"[bold]backprop-lab demo[/]: {len(studies)} studies on {uri}")
    for index, (name, multirun) in enumerate(studies, start=1):
        command = _command(name, multirun)
        console.print(
            f"[bold cyan][{index}/{len(studies)}][/] {' '.join(['bplab-train', *command[1:]])}"
        )
        study_started = time.perf_counter()
        done = subprocess.run(command, cwd=root)
        if done.returncode != 0:
            console.print(
                f"[red]make demo: study {name} failed (exit {done.returncode}); runs recorded so far are kept in {uri}[/]"
            )
            return 1
        console.print(f"    done in {time.perf_counter() - study_started:.1f} s")
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
    sys.exit(main())
