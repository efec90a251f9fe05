"""Helpers of the report tests: the store they share, and building reports from a store.

The store is filled once per session by :func:`backprop_lab.pipeline.execute` on tiny configs.

The runs: the worked example, two single XOR runs (the older one must be ignored), a small
grid, and a hand-made multirun of two grids. Expected numbers come from the article
(SEED-NOTES §5) or are recomputed in the tests from the runs' own artifacts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from backprop_lab import pipeline, tracking
from backprop_lab.cli.report import run as report_run
from backprop_lab.tracking import TAG_PREFIX

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
EVIL_NAME = "<script>alert(1)</script>"
GRID = ["sweep.learning_rates=[0.5,2.0]", "sweep.seeds=2", "training.epochs=30"]
EXPERIMENTS = ("seed_example", "xor_mlp", "grid_study", "arch_study")


def compose_config(overrides: list[str]):
    """The ``compose`` fixture's logic, usable outside a test (session fixtures)."""
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=list(overrides))


def _train(
    root: Path,
    uri: str,
    overrides: list[str],
    *,
    extra: list[str] = (),
    run_name: str | None = None,
    parent: str | None = None,
):
    cfg = compose_config([*overrides, *extra])
    if run_name is not None:
        # Set after composing: Hydra's override grammar has no use for angle brackets.
        cfg.tracking.run_name = run_name
    (root / "outputs").mkdir(exist_ok=True)
    folder = tempfile.mkdtemp(dir=root / "outputs")
    return pipeline.execute(
        cfg, output_dir=folder, overrides=overrides, parent_run_id=parent, tracking_uri=uri
    )


def _multirun_parent(uri: str, root: Path, experiment: str) -> str:
    """A multirun's parent run, as the Hydra callback records it."""
    tracking.ensure_experiment(uri, experiment)
    parent = tracking.RunRecord(
        folder=str(root / "parent"),
        experiment_name=experiment,
        run_name="multirun experiment=xor_mlp",
        tracking_uri=uri,
        tags={TAG_PREFIX + "kind": "multirun", TAG_PREFIX + "overrides": "experiment=xor_mlp"},
    )
    tracking.create_run(parent)
    return parent.run_id


def make_store(root: Path) -> SimpleNamespace:
    """Train the shared runs into a fresh store under ``root``."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # The variable is set only while the runs are made: later tests name the store explicitly.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        _train(root, uri, ["experiment=seed_example"])
        older = _train(root, uri, ["experiment=xor_mlp", "training.epochs=30"])
        latest = _train(root, uri, ["experiment=xor_mlp", "training.epochs=30"], run_name=EVIL_NAME)
        grid = _train(
            root, uri, ["experiment=xor_mlp", *GRID], extra=["tracking.experiment_name=grid_study"]
        )
        parent = _multirun_parent(uri, root, "arch_study")
        children = [
            _train(
                root,
                uri,
                [f"model.hidden_sizes={sizes}", "experiment=xor_mlp", *GRID],
                extra=["tracking.experiment_name=arch_study"],
                parent=parent,
            )
            for sizes in ("[2]", "[3]")
        ]
        tracking.client(uri).set_terminated(parent, status="FINISHED")
    return SimpleNamespace(
        root=root, uri=uri, older=older, latest=latest, grid=grid, parent=parent, children=children
    )


def build_reports(uri: str, out: Path, *experiments: str) -> int:
    """``bplab-report --out OUT --tracking-uri URI [--experiment NAME]...``; its exit code."""
    argv = ["--out", str(out), "--tracking-uri", uri]
    for name in experiments:
        argv += ["--experiment", name]
    return report_run(argv)


def report_texts(built: Path, name: str) -> tuple[str, str]:
    """``(report.md, report.html)`` of one experiment."""
    folder = built / name / "report"
    return (folder / "report.md").read_text(), (folder / "report.html").read_text()
