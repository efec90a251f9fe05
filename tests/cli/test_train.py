"""The console scripts as a user runs them: ``bplab-train`` (with ``-m``), ``bplab-rerun``.

Each test runs the installed script in a subprocess with its working directory in a temporary
folder (Hydra writes ``outputs/`` and ``multirun/`` there) and an explicit SQLite store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from backprop_lab.tracking import RECORD_FILE

BIN = Path(sys.executable).parent
QUICK = ["experiment=xor_mlp", "training.epochs=5", "tracking.plots=false"]


def _run(command: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Only tracking.uri chooses the store; HYDRA_FULL_ERROR would add a traceback on purpose.
    for name in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR"):
        env.pop(name, None)
    return subprocess.run(
        [str(BIN / command), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _runs(uri: str) -> list:
    if not Path(uri[len("sqlite:///") :]).exists():
        return []
    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(ids, run_view_type=ViewType.ALL) if ids else []


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# Multirun


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    root = tmp_path_factory.mktemp("multirun")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    done = _run(
        "bplab-train",
        [
            "-m",
            "experiment=xor_mlp",
            "training.epochs=50",
            "optimizer.learning_rate=0.1,0.5,1.2",
            f"tracking.uri={uri}",
            "tracking.plots=false",
        ],
        root,
    )
    return SimpleNamespace(done=done, uri=uri, root=root)


def test_a_multirun_is_one_parent_with_a_finished_child_per_job(multirun):
    assert multirun.done.returncode == 0, multirun.done.stderr
    assert "Traceback" not in multirun.done.stderr
    runs = _runs(multirun.uri)
    parents = [run for run in runs if run.data.tags.get("backprop_lab.kind") == "multirun"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in parent.data.tags
    children = [run for run in runs if run is not parent]
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id
        assert len(MlflowClient(multirun.uri).get_metric_history(child.info.run_id, "loss")) == 50
    rates = sorted(float(child.data.params["optimizer.learning_rate"]) for child in children)
    assert rates == [0.1, 0.5, 1.2]
    assert MlflowClient(multirun.uri).get_experiment(parent.info.experiment_id).name == "xor_mlp"
    # Hydra's outputs stay under the working directory.
    assert (multirun.root / "multirun" / "xor_mlp").is_dir()


def test_bplab_rerun_reproduces_a_multirun_child_in_a_new_process(multirun):
    child = next(run for run in _runs(multirun.uri) if "mlflow.parentRunId" in run.data.tags)
    done = _run("bplab-rerun", [child.info.run_id, "--tracking-uri", multirun.uri], multirun.root)
    assert done.returncode == 0, done.stderr
    assert "bitwise identical" in done.stdout


def test_bplab_rerun_of_a_garbage_id_exits_2_with_one_line(tmp_path):
    from backprop_lab import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.ensure_experiment(uri, "xor_mlp")  # an existing store: no table-creation logs
    done = _run("bplab-rerun", ["garbage-id", "--tracking-uri", uri], tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bplab-rerun: error:")
    assert "garbage-id" in lines[0]


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory) -> Path:
    table = tmp_path_factory.mktemp("csv") / "table.csv"
    table.write_text("a,b,y\n0,0,0\n1,x1,1\n")
    return table


def _slow(value: str, fragment: str):
    return pytest.param(value, fragment, id=value, marks=pytest.mark.slow)


# Every BackpropLabError takes the same path through the CLI; test_pipeline.py checks each
# message in-process, so only a few run as subprocesses by default.
VALIDATION_ERRORS = [
    pytest.param("optimizer.learning_rate=nan", "optimizer.learning_rate", id="nan-lr"),
    pytest.param("model.input_size=3", "model.input_size", id="width-mismatch"),
    pytest.param("tracking.uri=http://127.0.0.1:9", "http://127.0.0.1:9", id="unreachable-server"),
    _slow("optimizer.learning_rate=-0.5", "optimizer.learning_rate"),
    _slow("training.epochs=0", "training.epochs"),
    _slow("model.hidden_activation=relux", "model.hidden_activation"),
    _slow("data.name=nope", "data.name"),
    _slow("model.hidden_sizes=[0]", "model.hidden_sizes"),
    _slow("data=csv", "'x1' is not a number"),
]


def _train_expecting_error(folder: Path, overrides: list[str]):
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    if not any(item.startswith("tracking.uri=") for item in overrides):
        overrides = [*overrides, f"tracking.uri={uri}"]
    done = _run("bplab-train", [*QUICK, *overrides], folder)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert _runs(uri) == []
    assert sorted(folder.rglob(RECORD_FILE)) == []
    return done


@pytest.mark.parametrize(("override", "fragment"), VALIDATION_ERRORS)
def test_a_bad_value_exits_2_with_one_line_and_no_run(tmp_path, bad_csv, override, fragment):
    overrides = [override]
    if override == "data=csv":
        overrides += [
            f"data.path={bad_csv}",
            "data.feature_columns=[a,b]",
            "data.target_columns=[y]",
        ]
    done = _train_expecting_error(tmp_path, overrides)
    assert done.returncode == 2
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bplab-train: error:")
    assert fragment in lines[0]


COMPOSITION_ERRORS = {
    "model.nonexistent=3": "model.nonexistent",
    "optimizer.learning_rate=abc": "optimizer.learning_rate",
}


@pytest.fixture(scope="module")
def composition_errors(tmp_path_factory) -> dict:
    """Each composition error's subprocess, run once for the two tests below."""
    results = {}
    for override in COMPOSITION_ERRORS:
        results[override] = _train_expecting_error(tmp_path_factory.mktemp("compose"), [override])
    return results


@pytest.mark.parametrize("override", COMPOSITION_ERRORS)
def test_an_unknown_key_or_wrong_type_fails_without_a_run(composition_errors, override):
    assert COMPOSITION_ERRORS[override] in composition_errors[override].stderr


@pytest.mark.parametrize("override", COMPOSITION_ERRORS)
def test_an_unknown_key_or_wrong_type_is_one_line_exit_2(composition_errors, override):
    done = composition_errors[override]
    lines = _error_lines(done.stderr)
    assert done.returncode == 2
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bplab-train: error:") and COMPOSITION_ERRORS[override] in lines[0]


@pytest.mark.slow
def test_an_appended_unknown_key_is_rejected(tmp_path):
    done = _train_expecting_error(tmp_path, ["+foo=1"])
    assert "foo" in done.stderr


def test_a_multirun_against_an_unreachable_server_fails_before_any_job(tmp_path):
    uri = "http://127.0.0.1:9"
    done = _run(
        "bplab-train",
        ["-m", *QUICK, "optimizer.learning_rate=0.1,0.5", f"tracking.uri={uri}"],
        tmp_path,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = _error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bplab-train: error:") and uri in lines[0]
    assert "Launching" not in done.stdout


@pytest.mark.parametrize(
    ("seeds", "extra", "skipped"),
    [
        ("range(2)", [], True),
        ("range(3)", [], False),
        # Another primary config is Hydra's to compose and check (the check composes train).
        ("range(2)", ["--config-name", "train"], False),
    ],
)
def test_hydra_composes_each_checked_job_once_more_only_to_run_it(
    monkeypatch, tmp_path, seeds, extra, skipped
):
    """check_before_launch composes and validates every job of a multirun (up to 256, here
    2), so Hydra's basic sweeper does not compose them all again; beyond that, it does."""
    from backprop_lab.cli import train
    from backprop_lab.config import register_configs

    register_configs()
    monkeypatch.setattr(train, "_MAX_JOBS_CHECKED", 2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train.check_before_launch(["-m", *extra, *QUICK, f"seed={seeds}", f"tracking.uri={uri}"])
    # The class Hydra launches with: its plugin scan loads the module again.
    sweeper = sys.modules["hydra._internal.core_plugins.basic_sweeper"].BasicSweeper
    try:
        assert ("validate_batch_is_legal" in vars(sweeper)) is skipped
    finally:
        vars(sweeper).get("validate_batch_is_legal") and delattr(sweeper, "validate_batch_is_legal")
