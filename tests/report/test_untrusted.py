"""The store is untrusted data: crafted and malformed runs give notes, never leaks or tracebacks.

The runs here are logged with MLflow directly, as anyone who can write to a store could.
"""

from __future__ import annotations

import io
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import numpy as np
import pytest
from omegaconf import OmegaConf
from report_store import build_reports, compose_config

from backprop_lab import tracking
from backprop_lab.core.data import make_dataset, save_dataset

SECRET = "root:TOPSECRET-7f3a9c:0:0:the first line of a file no report may show"
IMG = "<img src=x onerror=alert(1)>"
RATES, SEEDS, EPOCHS = (0.5, 2.0), 2, 3


class _TouchWhenUnpickled:
    """An object whose unpickling creates a file: proof that something was unpickled."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _config(*overrides: str) -> bytes:
    return OmegaConf.to_yaml(
        compose_config(["experiment=xor_mlp", *overrides]), resolve=True
    ).encode()


def _dataset(x_scale: float = 1.0) -> bytes:
    xor = make_dataset("xor")
    with np.errstate(all="ignore"), tempfile.TemporaryDirectory() as folder:
        save_dataset(Path(folder) / "dataset.npz", xor._replace(x_train=xor.x_train * x_scale))
        return (Path(folder) / "dataset.npz").read_bytes()


def _grid_arrays() -> dict[str, np.ndarray]:
    """A valid grid.npz of a 2-2-1 network: every seed solves XOR at the second rate."""
    rng = np.random.default_rng(0)
    cells = (len(RATES), SEEDS)
    solved = np.array([[False, False], [True, True]])
    loss = np.where(solved[..., None], 0.001, 0.2) * np.ones((*cells, EPOCHS))
    return {
        "learning_rates": np.array(RATES),
        "seeds": np.arange(SEEDS),
        "loss": loss.astype(np.float32),
        "accuracy": np.where(solved[..., None], 1.0, 0.5) * np.ones_like(loss),
        "solved": solved,
        "improved": np.ones(cells, bool),
        "diverged_epoch": np.zeros(cells, np.int32),
        "epochs_to_target": np.where(solved, 2, 0),
        "initial_loss": np.full(cells, 0.3),
        "layer0_weights": rng.normal(size=(*cells, 2, 2)).astype(np.float32),
        "layer0_biases": rng.normal(size=(*cells, 2)).astype(np.float32),
        "layer1_weights": rng.normal(size=(*cells, 1, 2)).astype(np.float32),
        "layer1_biases": rng.normal(size=(*cells, 1)).astype(np.float32),
    }


def _weights() -> bytes:
    grid = _grid_arrays()
    return _npz(**{key: value[0, 0] for key, value in grid.items() if key.startswith("layer")})


HISTORY = b"epoch,loss,accuracy\n1,0.25,0.5\n2,0.2,0.75\n3,0.1,1.0\n"


def _log_run(client, experiment_id, name, kind, artifacts, *, parent=None) -> str:
    tags = {"backprop_lab.kind": kind, **({"mlflow.parentRunId": parent} if parent else {})}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    with tempfile.TemporaryDirectory() as folder:
        for filename, content in artifacts.items():
            (Path(folder) / filename).write_bytes(content)
            client.log_artifact(run_id, str(Path(folder) / filename))
    client.log_metric(run_id, "initial_loss", 0.3)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _multirun(client, uri: str, experiment: str, name: str, children: dict[str, tuple]) -> dict:
    """A parent run and its children; ``{child name: run id}``."""
    experiment_id = tracking.ensure_experiment(uri, experiment)
    parent = client.create_run(
        experiment_id, run_name=name, tags={"backprop_lab.kind": "multirun"}
    ).info.run_id
    run_ids = {
        child: _log_run(client, experiment_id, child, kind, artifacts, parent=parent)
        for child, (kind, artifacts) in children.items()
    }
    client.set_terminated(parent, "FINISHED")
    return run_ids


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    secret, marker = root / "secret.csv", root / "unpickled"
    secret.write_text(SECRET + "\n")
    client = tracking.client(uri)
    csv = _config(
        "data=csv", f"data.path={secret}", "data.feature_columns=[root]", "data.target_columns=[y]"
    )
    csv_runs = _multirun(
        client,
        uri,
        "csv_secret",
        "multirun data=csv",
        {
            # Made before dataset.npz existed: the CSV is not rebuilt from data.path.
            "old csv run": ("single", {"config.yaml": csv, "history.csv": HISTORY}),
            "new csv run": (
                "single",
                {
                    "config.yaml": csv,
                    "history.csv": HISTORY,
                    "dataset.npz": _dataset(),
                    "weights.npz": _weights(),
                },
            ),
            "linked config": ("single", {"config.yaml": csv, "history.csv": HISTORY}),
            "linked config, encoded folder": (
                "single",
                {"config.yaml": csv, "history.csv": HISTORY},
            ),
        },
    )
    # In a shared artifact folder anyone can swap an artifact for a link to any file.
    linked = client.get_run(csv_runs["linked config"]).info.artifact_uri
    (Path(urlparse(linked).path) / "config.yaml").unlink()
    (Path(urlparse(linked).path) / "config.yaml").symlink_to(secret)
    # The same link in a folder whose location is percent-encoded ("art dir" as "art%20dir").
    encoded = Path(
        urlparse(client.get_run(csv_runs["linked config, encoded folder"]).info.artifact_uri).path
    )
    spaced = encoded.parent / "art dir"
    encoded.rename(spaced)
    (spaced / "config.yaml").unlink()
    (spaced / "config.yaml").symlink_to(secret)
    assert "%20" in spaced.as_uri()
    connection = sqlite3.connect(uri[len("sqlite:///") :])
    with connection:
        connection.execute(
            "UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?",
            (spaced.as_uri(), csv_runs["linked config, encoded folder"]),
        )
    connection.close()
    good = {"config.yaml": _config(), "dataset.npz": _dataset()}
    grid = _grid_arrays()
    valid = _npz(**grid)
    objects = {**grid, "solved": np.array([_TouchWhenUnpickled(marker)] * 4, dtype=object)}
    _multirun(
        client,
        uri,
        "hostile",
        IMG,
        {
            "good grid": ("grid", {**good, "grid.npz": valid}),
            "truncated grid": ("grid", {**good, "grid.npz": valid[: len(valid) // 2]}),
            "garbage grid": ("grid", {**good, "grid.npz": b"PK\x03\x04 not a zip at all"}),
            "object grid": ("grid", {**good, "grid.npz": _npz(**objects)}),
            "grid without solved": (
                "grid",
                {**good, "grid.npz": _npz(**{k: v for k, v in grid.items() if k != "solved"})},
            ),
            "grid of the wrong shape": (
                "grid",
                {**good, "grid.npz": _npz(**{**grid, "loss": grid["loss"][..., 0]})},
            ),
            IMG: ("single", {**good, "history.csv": HISTORY, "weights.npz": _weights()}),
            "bad yaml": ("single", {"config.yaml": b"model: [unclosed", "history.csv": HISTORY}),
            "huge values": (
                "single",
                {
                    **good,
                    "dataset.npz": _dataset(x_scale=1e30),
                    "weights.npz": _weights(),
                    "history.csv": b"epoch,loss,accuracy\n1,1e308,0.5\n2,inf,0.5\n3,nan,0.5\n",
                },
            ),
            "infinite data": (
                "single",
                {**good, "dataset.npz": _dataset(x_scale=np.inf), "history.csv": HISTORY},
            ),
            "not a number": ("single", {**good, "history.csv": HISTORY + b"4,root:x,1\n"}),
        },
    )
    return SimpleNamespace(uri=uri, secret=secret, marker=marker)


@pytest.fixture(scope="module")
def hostile_reports(hostile, tmp_path_factory):
    import backprop_lab.core.data

    opened = []
    with pytest.MonkeyPatch.context() as patch:
        # A second guard besides the text check: the report never reads a CSV at all.
        patch.setattr(backprop_lab.core.data, "load_csv", lambda *args, **kw: opened.append(args))
        out = tmp_path_factory.mktemp("hostile_reports")
        code = build_reports(hostile.uri, out)
    return SimpleNamespace(out=out, code=code, opened=opened)


def _texts(out: Path, name: str) -> tuple[str, str]:
    folder = out / name / "report"
    return (folder / "report.md").read_text(), (folder / "report.html").read_text()


def test_the_report_builds_despite_every_bad_run(hostile_reports):
    assert hostile_reports.code == 0
    for name in ("csv_secret", "hostile"):
        assert (hostile_reports.out / name / "report" / "report.html").is_file()


def test_a_path_named_in_a_config_is_never_opened(hostile, hostile_reports):
    assert hostile_reports.opened == []
    secret = b"TOPSECRET-7f3a9c"
    for path in hostile_reports.out.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    markdown, _ = _texts(hostile_reports.out, "csv_secret")
    assert "it has no dataset.npz and its CSV data set is not read from data.path" in markdown
    assert markdown.count("its config.yaml is a symbolic link") == 2
    # The run that logged its data set is drawn from dataset.npz.
    figures = hostile_reports.out / "csv_secret" / "report" / "figures"
    assert (figures / "job02_boundary.png").is_file()


def test_malformed_grids_are_skipped_with_a_note(hostile, hostile_reports):
    markdown, _ = _texts(hostile_reports.out, "hostile")
    notes = {
        "truncated grid": "its grid.npz is not a valid .npz file (BadZipFile)",
        "garbage grid": "its grid.npz is not a valid .npz file (BadZipFile)",
        "object grid": "its grid.npz holds a non-numeric array",
        "grid without solved": "its grid.npz has no solved array",
        "grid of the wrong shape": "its grid.npz loss array does not have the grid's shape",
        "bad yaml": "its config.yaml is not valid YAML",
        "not a number": "its history.csv holds a cell that is not a number",
    }
    for run, note in notes.items():
        assert any(
            line.startswith(f"- Run {run} (") and note in line for line in markdown.splitlines()
        ), run
    # The good grid still has its section, figures and findings.
    assert "## good grid" in markdown and "job01_loss_by_learning_rate.png" in markdown
    for run in ("truncated grid", "object grid", "grid without solved"):
        assert f"## {run}" not in markdown


def test_nothing_is_unpickled(hostile, hostile_reports):
    assert not hostile.marker.exists()


def test_non_finite_and_huge_values_give_notes_not_tracebacks(hostile_reports):
    markdown, _ = _texts(hostile_reports.out, "hostile")
    assert any(
        line.startswith("- Run infinite data (")
        and "its dataset.npz holds values that are not finite" in line
        for line in markdown.splitlines()
    )
    assert "## huge values" in markdown and "## infinite data" in markdown


def test_html_in_run_names_is_escaped(hostile_reports):
    _, page = _texts(hostile_reports.out, "hostile")
    index = (hostile_reports.out / "index.html").read_text()
    for html_page in (page, index):
        assert IMG not in html_page and "<img src=x" not in html_page
        assert "&lt;img src=x onerror=alert(1)&gt;" in html_page
