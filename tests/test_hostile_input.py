"""Hostile and malformed input: every bad value refused in one line, nothing outside its folders
touched.

Each example runs the real command as a subprocess, as a user (or an attacker) would, and
checks one line on stderr, exit status 2 and no run in the store, or the documented safe
outcome. The property-based tests fuzz the validation layer in-process (fast) and a few
drawn examples through the command line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from faults import command, environment, runs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QUICK = ["training.epochs=3", "tracking.plots=false"]


def _train(folder: Path, *overrides: str, store: Path | None = None) -> subprocess.CompletedProcess:
    store = store or folder / "mlflow.db"
    return subprocess.run(
        [command("bplab-train"), *overrides, f"tracking.uri=sqlite:///{store}"],
        capture_output=True, text=True, cwd=folder, env=environment(), timeout=300,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess, *fragments: str, program: str = "bplab-train"):
    """One line, exit 2, no traceback, and the line says what was wrong."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{program}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _no_run(folder: Path, store: Path | None = None) -> None:
    store = store or folder / "mlflow.db"
    assert not store.exists() or runs(f"sqlite:///{store}") == []
    assert not list(folder.rglob("record.json"))
    assert not (folder / "outputs").exists()  # and no folder either


BAD_OVERRIDES = [
    (["seed=-1"], "seed=-1"),
    (["seed=18446744073709551616"], "seed=18446744073709551616"),
    (["data.seed=-1"], "data.seed=-1"),
    (["optimizer.learning_rate=1e308"], "float32 can hold"),
    (["optimizer.beta1=1", "optimizer=adam"], "optimizer.beta1=1.0"),
    (["optimizer.beta2=nan", "optimizer=adam"], "optimizer.beta2=nan"),
    (["optimizer.momentum=1", "optimizer=momentum"], "optimizer.momentum"),
    (["sweep.log_space=[0.1,1,2.5]"], "sweep.log_space[2]=2.5"),
    (["sweep.learning_rates=[0.1,1e39]"], "sweep.learning_rates[1]"),
    (["experiment=seed_example", "model.initial_weights=[[1,2],[3]]"], "model.initial_weights"),
    (["experiment=seed_example", "model.initial_weights=5"], "model.initial_weights"),
    (["experiment=seed_example", "model.initial_weights=abc"], "model.initial_weights"),
    (
        ["experiment=seed_example", "model.initial_weights=[[[nan,1],[1,1]],[[1,1],[1,1]]]"],
        "finite",
    ),  # fmt: skip
    (["model.hidden_sizes=[1000000000]"], "model.hidden_sizes[0]"),
    (["model.hidden_sizes=[1000000,1000000]"], "GiB to train"),
    (["training.epochs=10000000000"], "training.epochs"),
    (["tracking.experiment_name=" + "x" * 300], "tracking.experiment_name"),
    (["tracking.run_name=a\tb"], "tracking.run_name"),
    (["name=../../escape"], "name="),
    (["experiment=playground", "optimizer.learning_rate=0.003"], "would be ignored"),
    (["experiment=learning_rates", "seed=3"], "would be ignored"),
    # Multi-class: a softmax scored by a loss made for independent outputs (and the reverse),
    # and a warm-up that would end after training does (QUICK trains 3 epochs).
    (["data=iris", "model.output_activation=softmax", "loss=half_sse"], "loss='half_sse'"),
    (["data=iris", "loss=cce"], "model.output_activation='sigmoid'"),
    (["schedule=warmup_cosine", "schedule.warmup_epochs=3"], "shorter than training"),
    (["schedule=exponential", "schedule.decay_rate=1.5"], "schedule.decay_rate=1.5"),
    (
        ["data=digits", "model.output_activation=softmax", "loss=cce", "model.output_size=9"],
        "has 10 target(s)",
    ),
    (["model.initial_biases=[[1,2,3]]"], "used only with model.initial_weights"),
    (
        [
            "experiment=seed_example",
            "model.use_bias=false",
            "model.initial_weights=[[[1,1],[1,1]],[[1,1],[1,1]]]",
        ],
        "model.use_bias=false has no biases",
    ),  # fmt: skip
    (["data.test_fraction=0.9999"], "data=xor trains on all of its 4 rows"),
    (
        ["data=moons", "data.num_samples=10", "data.test_fraction=0.01"],
        "of 10 rows rounds to no test rows",
    ),
    (
        ["data=moons", "data.num_samples=10", "data.test_fraction=0.99"],
        "all 10 rows would be for testing",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "fragment"), BAD_OVERRIDES, ids=[" ".join(o)[:60] for o, _ in BAD_OVERRIDES]
)
def test_a_bad_value_is_refused_in_one_line_and_creates_no_run(tmp_path, overrides, fragment):
    done = _train(tmp_path, "experiment=xor_mlp", *QUICK, *overrides)
    _refused(done, fragment)
    _no_run(tmp_path)


def _csv(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _csv_run(folder: Path, path: Path, features="[x1,x2]", targets="[y]"):
    return _train(
        folder, "experiment=xor_mlp", *QUICK, "data=csv", f"data.path={path}",
        f"data.feature_columns={features}", f"data.target_columns={targets}",
    )  # fmt: skip


CSV_CASES = [
    ("latin1.csv", "x1,x2,y\n0,0,0\ncaf\xe9,1,1\n".encode("latin-1"), "not UTF-8"),
    ("huge.csv", b"x1,x2,y\n0,0,0\n" + b"1" * 200_000 + b",1,1\n", "longer than 131,072"),
    ("twice.csv", b"x1,x2,x1,y\n0,0,0,0\n", "more than one column called 'x1'"),
    ("nul.csv", b"x1,x2,y\n0,\x00,0\n", "row 2"),
    ("big.csv", b"x1,x2,y\n0,1e39,0\n", "not finite in float32"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_a_bad_csv_is_refused_in_one_line(tmp_path, name, content, fragment):
    done = _csv_run(tmp_path, _csv(tmp_path, name, content))
    _refused(done, fragment)
    _no_run(tmp_path)


def test_a_class_label_out_of_range_is_refused_with_its_row(tmp_path):
    path = _csv(tmp_path, "classes.csv", b"x1,x2,label\n0,0,0\n0,1,1\n1,0,2\n1,1,5\n")
    done = _train(
        tmp_path, "experiment=xor_mlp", *QUICK, "data=csv", f"data.path={path}",
        "data.feature_columns=[x1,x2]", "data.class_column=label", "data.num_classes=3",
        "model.output_activation=softmax", "loss=cce",
    )  # fmt: skip
    _refused(done, "class label '5'", "out of range", "data.num_classes=3")
    _no_run(tmp_path)


def test_a_target_that_is_also_a_feature_is_refused(tmp_path):
    path = _csv(tmp_path, "ok.csv", b"x1,x2,y\n0,0,0\n1,1,1\n")
    _refused(_csv_run(tmp_path, path, targets="[x2]"), "also a feature column")
    _no_run(tmp_path)


def test_a_folder_given_as_data_path_is_named_a_folder(tmp_path):
    (tmp_path / "data.csv").mkdir()
    _refused(_csv_run(tmp_path, tmp_path / "data.csv"), "is a folder, not a CSV file")


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_a_byte_order_mark_is_dropped_and_the_run_trains(tmp_path):
    path = _csv(tmp_path, "bom.csv", "\ufeffx1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n".encode())
    done = _csv_run(tmp_path, path)
    assert done.returncode == 0, done.stderr
    (run,) = runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FINISHED"


def test_a_database_file_that_is_not_sqlite_is_refused_before_training(tmp_path):
    fake = tmp_path / "store.db"
    fake.write_text("this is not a database\n")
    _refused(_train(tmp_path, "experiment=xor_mlp", *QUICK, store=fake), "not an SQLite database")
    assert fake.read_text() == "this is not a database\n"
    assert not (tmp_path / "outputs").exists()


def test_someone_elses_sqlite_database_is_refused_and_left_as_it_was(tmp_path):
    import sqlite3

    theirs = tmp_path / "theirs.db"
    connection = sqlite3.connect(theirs)
    connection.execute("CREATE TABLE foo (x)")
    connection.commit()
    connection.close()
    before = theirs.read_bytes()
    done = _train(tmp_path, "experiment=xor_mlp", *QUICK, store=theirs)
    _refused(done, "is an SQLite database but not an MLflow store")
    assert theirs.read_bytes() == before
    assert not (tmp_path / "outputs").exists()


STORE_URIS = [
    ("sqlite://", "in-memory database"),
    ("http://[::1", "not a valid address"),
    ("mysql://u:p@127.0.0.1:1/db", "is not installed"),
    ("sqlite:////dev/null", "/dev/null is not a regular file"),
]


@pytest.mark.parametrize(("uri", "fragment"), STORE_URIS, ids=[u for u, _ in STORE_URIS])
def test_an_unusable_store_uri_is_one_line_in_train_and_sync(tmp_path, uri, fragment):
    done = subprocess.run(
        [command("bplab-train"), "experiment=xor_mlp", *QUICK, f"tracking.uri='{uri}'"],
        capture_output=True, text=True, cwd=tmp_path, env=environment(), timeout=300,
    )  # fmt: skip
    _refused(done, fragment)
    assert not (tmp_path / "outputs").exists()
    done = subprocess.run(
        [command("bplab-sync"), "--check", "--tracking-uri", uri],
        capture_output=True, text=True, cwd=tmp_path, env=environment(), timeout=300,
    )  # fmt: skip
    _refused(done, fragment, program="bplab-sync")


def test_hydra_callbacks_cannot_run_arbitrary_callables(tmp_path):
    victim = tmp_path / "victim.txt"
    for overrides in (
        ["+hydra.callbacks.x._target_=builtins.open", f"+hydra.callbacks.x._args_=[{victim},w]"],
        ["hydra/launcher=joblib", "hydra.launcher._target_=builtins.print"],
        ["+hydra.job_logging.root.handlers=[x]"],
    ):
        done = _train(tmp_path, "experiment=xor_mlp", *QUICK, *overrides)
        assert done.returncode == 2, done.stderr
        assert len([line for line in done.stderr.splitlines() if line.strip()]) == 1
        assert not victim.exists()
    _no_run(tmp_path)


def test_a_preset_folder_cannot_smuggle_in_a_callback(tmp_path):
    """The check covers the composed config, so a --config-dir preset is caught too."""
    victim = tmp_path / "victim.txt"
    presets = tmp_path / "my_conf" / "experiment"
    presets.mkdir(parents=True)
    (presets / "evil.yaml").write_text(
        "# @package _global_\nname: evil\nhydra:\n  callbacks:\n    x:\n"
        f"      _target_: builtins.open\n      _args_: ['{victim}', w]\n"
    )
    done = subprocess.run(
        [command("bplab-train"), "--config-dir", str(tmp_path / "my_conf"), "experiment=evil",
         *QUICK, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True, text=True, cwd=tmp_path, env=environment(),
    )  # fmt: skip
    _refused(done, "hydra.callbacks.x is not allowed")
    assert not victim.exists()


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_an_experiment_called_dot_dot_keeps_its_artifacts_inside_mlartifacts(tmp_path):
    done = _train(tmp_path, "experiment=xor_mlp", *QUICK, "tracking.experiment_name=..")
    assert done.returncode == 0, done.stderr
    (run,) = runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    artifacts = Path(run.info.artifact_uri.removeprefix("file://")).resolve()
    assert artifacts.is_relative_to((tmp_path / "mlartifacts").resolve())
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == [
        "mlartifacts",
        "outputs",
    ]


def _finished_run(folder: Path, *overrides: str):
    """The top-level run of a quick training (a grid's children are left out)."""
    done = _train(folder, "experiment=xor_mlp", *QUICK, *overrides)
    assert done.returncode == 0, done.stderr
    found = runs(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = [run for run in found if "mlflow.parentRunId" not in run.data.tags]
    return run


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_rerun_of_a_failed_run_says_it_failed(tmp_path):
    from mlflow.tracking import MlflowClient

    run = _finished_run(tmp_path)
    MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").set_terminated(run.info.run_id, "FAILED")
    done = subprocess.run(
        [command("bplab-rerun"), run.info.run_id, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True, text=True, env=environment(),
    )  # fmt: skip
    _refused(done, "is FAILED", program="bplab-rerun")


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_rerun_and_view_leave_no_temporary_folder(tmp_path):
    run = _finished_run(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for argv in (
        [command("bplab-rerun"), run.info.run_id, "--tracking-uri", store],
        [command("bplab-view"), run.info.run_id, "--tracking-uri", store,
         "--out", str(tmp_path / "view.html")],
    ):  # fmt: skip
        done = subprocess.run(
            argv, capture_output=True, text=True, env=environment(TMPDIR=str(temporary))
        )
        assert done.returncode == 0, done.stderr
    assert list(temporary.iterdir()) == []


def test_sigterm_still_removes_a_commands_temporary_folder(tmp_path):
    import signal
    import sys

    script = (
        "import tempfile, time\n"
        "from backprop_lab.interrupt import sigterm_unwinds\n"
        "with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix='bplab-view-') as folder:\n"
        "    print(folder, flush=True)\n"
        "    time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
        env=environment(TMPDIR=str(tmp_path)),
    )  # fmt: skip
    folder = Path(process.stdout.readline().strip())
    assert folder.is_dir()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 143
    assert not folder.exists()


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_rerun_refuses_an_object_array_in_grid_npz_without_unpickling(tmp_path):
    run = _finished_run(tmp_path, "sweep.learning_rates=[0.5,1]", "sweep.seeds=2")
    grid = Path(run.info.artifact_uri.removeprefix("file://")) / "grid.npz"
    with np.load(grid) as arrays:
        tampered = {key: arrays[key] for key in arrays.files}
    tampered["layer0_weights"] = np.array([{"not": "numbers"}], dtype=object)
    np.savez(grid, **tampered)
    done = subprocess.run(
        [command("bplab-rerun"), run.info.run_id, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True, text=True, env=environment(),
    )  # fmt: skip
    _refused(done, "non-numeric", program="bplab-rerun")


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_report_to_a_folder_that_cannot_be_written_is_one_line(tmp_path):
    _finished_run(tmp_path)
    (tmp_path / "a_file").write_text("")
    for out in (tmp_path / "a_file", Path("/proc/no/such/folder")):
        done = subprocess.run(
            [command("bplab-report"), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
             "--out", str(out)],
            capture_output=True, text=True, env=environment(),
        )  # fmt: skip
        _refused(done, "--out", program="bplab-report")


@pytest.mark.slow  # real processes end to end: `make test-slow`
def test_a_crafted_run_cannot_make_the_report_read_a_local_file(tmp_path):
    """Anyone who can log to a shared server can name any path in a run's config.yaml."""
    from mlflow.tracking import MlflowClient

    secret = tmp_path / "secret.txt"
    secret.write_text("x1,x2,y\nTOP-SECRET-VALUE,1,1\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = _finished_run(tmp_path)
    client = MlflowClient(uri)
    crafted = client.create_run(run.info.experiment_id, run_name="crafted")
    config = tmp_path / "config.yaml"
    config.write_text(
        "name: xor_mlp\ndata:\n  name: csv\n"
        f"  path: {secret}\n  feature_columns: [x1, x2]\n  target_columns: [y]\n"
    )
    client.log_artifact(crafted.info.run_id, str(config))
    client.set_terminated(crafted.info.run_id)
    out = tmp_path / "report"
    done = subprocess.run(
        [command("bplab-report"), "--tracking-uri", uri, "--out", str(out)],
        capture_output=True, text=True, env=environment(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "TOP-SECRET" not in done.stdout + done.stderr
    for path in out.rglob("*"):
        if path.is_file():
            assert b"TOP-SECRET" not in path.read_bytes(), path


# ---------------------------------------------------------------------------------------------
# Property-based: the validation layer never lets a bad value through as a traceback


NUMERIC_KEYS = [
    "seed", "data.seed", "data.num_samples", "data.noise", "data.test_fraction",
    "optimizer.learning_rate", "optimizer.momentum", "optimizer.beta1", "optimizer.beta2",
    "optimizer.eps", "training.epochs", "training.batch_size", "training.unroll",
    "training.success_accuracy", "training.target_loss", "model.theta", "model.init_scale",
    "tracking.max_curve_points", "tracking.snapshots", "sweep.seeds", "data.num_classes",
    "schedule.decay_rate", "schedule.transition_epochs", "schedule.warmup_epochs",
    "schedule.initial_fraction", "schedule.final_fraction",
]  # fmt: skip

VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0.0", "0x10", "1_000", "true", "[]", "''"]),
)


def _override(key: str, value) -> str:
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


@pytest.mark.slow  # 300 composed configs: `make test-slow`
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(NUMERIC_KEYS), value=VALUES)
def test_fuzzed_numeric_overrides_are_accepted_or_refused_in_one_line(compose, key, value):
    from hydra.errors import ConfigCompositionException

    from backprop_lab.config import validate
    from backprop_lab.errors import BackpropLabError

    try:
        cfg = compose(["experiment=xor_mlp", _override(key, value)])
    except ConfigCompositionException:
        return  # a wrong type: Hydra refuses it at composition, and the CLI says so in one line
    try:
        validate(cfg)
    except BackpropLabError as error:
        assert "\n" not in str(error) and key.split(".")[-1] in str(error)


CSV_TEXT = st.lists(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                       st.text(max_size=12), st.integers().map(str)), min_size=0, max_size=4),
    min_size=0, max_size=6,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(header=st.lists(st.sampled_from(["x1", "x2", "y", "z", ""]), max_size=5), rows=CSV_TEXT,
       raw=st.binary(max_size=64))  # fmt: skip
def test_fuzzed_csv_files_load_or_fail_in_one_line(tmp_path_factory, header, rows, raw):
    from backprop_lab.core.data import load_csv
    from backprop_lab.errors import BackpropLabError

    folder = tmp_path_factory.mktemp("csv")
    text = "\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n"
    for content in (text.encode("utf-8", "surrogatepass"), raw):
        path = folder / "data.csv"
        path.write_bytes(content)
        try:
            dataset = load_csv(path, ["x1", "x2"], ["y"])
        except BackpropLabError as error:
            assert "\n" not in str(error)
        else:
            assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.y_train).all()


@pytest.mark.slow  # a bplab-train process per example: `make test-slow`
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=st.sampled_from(NUMERIC_KEYS), value=VALUES)
def test_fuzzed_command_lines_train_or_exit_2_in_one_line(tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("cli")
    done = _train(folder, "experiment=xor_mlp", *QUICK, _override(key, value))
    assert "Traceback" not in done.stderr
    if done.returncode == 0:
        assert {run.info.status for run in runs(f"sqlite:///{folder / 'mlflow.db'}")} == {
            "FINISHED"
        }
    else:
        _refused(done)
        _no_run(folder)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_fuzzed_keys_cover_the_numeric_schema():
    """Every numeric key of the schema is fuzzed: a new one must be added to the list."""
    from backprop_lab.config.validate import RULES, Integer, Real

    numeric = {key for key, rule in RULES.items() if isinstance(rule, Integer | Real)}
    missing = numeric - set(NUMERIC_KEYS) - {
        "model.input_size", "model.output_size", "data.first_samples", "tracking.max_logged_epochs",
        "tracking.max_snapshot_bytes", "report.order",
    }  # fmt: skip
    assert not missing, json.dumps(sorted(missing))


def test_a_crafted_record_cannot_make_sync_create_a_store_elsewhere(tmp_path):
    from backprop_lab.tracking import RunRecord

    elsewhere = tmp_path / "elsewhere" / "planted.db"
    elsewhere.parent.mkdir()
    record = RunRecord(
        folder=str(tmp_path / "outputs" / "x" / "mlflow_record"),
        experiment_name="x",
        run_name="planted",
        tracking_uri=f"sqlite:///{elsewhere}",
        status="FINISHED",
    )
    Path(record.folder).mkdir(parents=True)
    record.save()
    done = subprocess.run(
        [command("bplab-sync"), str(tmp_path / "outputs")], capture_output=True, text=True
    )
    assert done.returncode != 0
    assert (
        "does not exist; give the store to publish it to with --tracking-uri"
        in done.stdout + done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not elsewhere.exists() and not Path(f"{elsewhere}.lock").exists()
