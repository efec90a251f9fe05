"""What every run records for its trajectory: ``trajectory.npz``, ``explorer.html`` and, for a
single 2-D run, decision-boundary images that MLflow's image view steps through."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from backprop_lab import pipeline
from backprop_lab.core.model import Architecture, count_parameters
from backprop_lab.core.trajectory import snapshot_epochs
from backprop_lab.explorer.data import decode_array
from backprop_lab.explorer.images import IMAGE_KEY, LOGGED_IMAGES_TAG

GRID = [
    "experiment=xor_mlp",
    "training.epochs=120",
    "sweep.learning_rates=[0.5,2,8]",
    "sweep.seeds=4",
]


def _execute(compose, root: Path, overrides: list[str], run_name: str | None = None):
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = compose([*overrides, f"tracking.uri={uri}"])
    if run_name:
        cfg.tracking.run_name = run_name
    summary = pipeline.execute(
        cfg, output_dir=root / f"job{len(list(root.glob('job*')))}", overrides=overrides
    )
    client = MlflowClient(uri)
    folder = Path(
        client.download_artifacts(summary.run_id, "", str(root / f"down-{summary.run_id}"))
    )
    return SimpleNamespace(
        summary=summary, client=client, run=client.get_run(summary.run_id), folder=folder
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()
    conf = Path(__file__).resolve().parents[2] / "conf"

    def composed(overrides):
        with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
            return compose("train", overrides=overrides)

    root = tmp_path_factory.mktemp("records")
    return SimpleNamespace(
        grid=_execute(composed, root, [*GRID, "tracking.plots=false"]),
        single=_execute(composed, root, ["experiment=xor_mlp", "training.epochs=300"]),
        moons=_execute(
            composed,
            root,
            ["experiment=xor_mlp", "data=moons", "training.epochs=40", "tracking.plots=false"],
        ),
    )


def test_a_grid_keeps_every_cells_parameters_at_its_snapshot_epochs(runs):
    with np.load(runs.grid.folder / "trajectory.npz") as arrays:
        trajectory = {key: arrays[key] for key in arrays.files}
    epochs = snapshot_epochs(120, 60)
    assert trajectory["epochs"].tolist() == list(epochs)
    assert trajectory["layer0_weights"].shape == (3, 4, 60, 2, 2)
    assert trajectory["layer0_biases"].shape == (3, 4, 60, 2)
    assert trajectory["layer1_weights"].shape == (3, 4, 60, 1, 2)
    with np.load(runs.grid.folder / "grid.npz") as grid:
        # The last snapshot is the final parameters of every cell.
        for key in ("layer0_weights", "layer1_biases"):
            assert trajectory[key][:, :, -1].tobytes() == grid[key].tobytes()


def test_a_single_run_keeps_its_snapshots_without_grid_axes(runs):
    with np.load(runs.single.folder / "trajectory.npz") as arrays:
        assert arrays["layer0_weights"].shape == (60, 2, 2)
        assert arrays["epochs"][0] == 0 and arrays["epochs"][-1] == 300
        with np.load(runs.single.folder / "weights.npz") as final:
            assert arrays["layer1_weights"][-1].tobytes() == final["layer1_weights"].tobytes()


def test_every_run_logs_its_explorer(runs):
    for run in (runs.grid, runs.single, runs.moons):
        page = (run.folder / "explorer.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and len(page) < 3_000_000
    page = (runs.grid.folder / "explorer.html").read_text()
    payload = page.split('id="bplab-data">', 1)[1].split("</script>", 1)[0]
    job = json.loads(payload)["jobs"][0]
    assert job["learning_rates"] == [0.5, 2.0, 8.0] and job["seeds"] == [0, 1, 2, 3]
    params = decode_array(job["params"])
    with np.load(runs.grid.folder / "trajectory.npz") as arrays:
        # Cell (rate 2, seed 1) = cell 9 at snapshot 17, parameters in the model's order.
        assert params.shape == (12, count_parameters(Architecture((2, 2, 1))), 60)
        assert params[9, :4, 17].tobytes() == arrays["layer0_weights"][2, 1, 17].tobytes()
    moons = (runs.moons.folder / "explorer.html").read_text()
    assert '"test_loss"' in moons  # a data set with a test split shows its test curves


def test_a_single_2d_run_logs_decision_boundary_images_by_epoch(runs):
    names = [
        item.path
        for item in runs.single.client.list_artifacts(runs.single.summary.run_id, "images")
    ]
    pattern = re.compile(
        rf"images/{IMAGE_KEY}\+step\+(\d+)\+timestamp\+\d+\+[0-9a-f-]+(\+compressed)?\.(png|webp)$"
    )
    steps = sorted({int(pattern.match(name).group(1)) for name in names})
    assert steps[0] == 0 and steps[-1] == 300 and 4 <= len(steps) <= 6
    assert len(names) == 2 * len(steps)  # each image and its thumbnail, as MLflow's log_image
    assert runs.single.run.data.tags[LOGGED_IMAGES_TAG] == "True"
    from PIL import Image

    image = Image.open(runs.single.folder / next(n for n in names if n.endswith(".png")))
    assert image.size == (120, 120) and image.mode == "RGB"


def test_no_images_without_figures(runs):
    assert runs.moons.client.list_artifacts(runs.moons.summary.run_id, "images") == []
    assert LOGGED_IMAGES_TAG not in runs.moons.run.data.tags


def test_a_run_over_the_size_limit_keeps_fewer_snapshots_says_so_and_finishes(compose, tmp_path):
    # 12 cells x 9 numbers x 4 bytes = 432 bytes a snapshot: 5,000 bytes hold 11.
    run = _execute(
        compose, tmp_path, [*GRID, "tracking.plots=false", "tracking.max_snapshot_bytes=5000"]
    )
    assert run.run.info.status == "FINISHED"
    note = run.run.data.tags["backprop_lab.snapshots_note"]
    assert note.startswith("keeps 11 of 60 trajectory snapshots") and "432 bytes each" in note
    with np.load(run.folder / "trajectory.npz") as arrays:
        assert (
            arrays["epochs"][0] == 0 and arrays["epochs"][-1] == 120 and len(arrays["epochs"]) == 11
        )
    assert "keeps 11 of 60 trajectory snapshots" in (run.folder / "explorer.html").read_text()


def test_no_snapshots_no_trajectory_no_explorer(compose, tmp_path):
    run = _execute(
        compose, tmp_path, ["experiment=xor_mlp", "training.epochs=30", "tracking.snapshots=0"]
    )
    names = {item.path for item in run.client.list_artifacts(run.summary.run_id)}
    assert "trajectory.npz" not in names and "explorer.html" not in names and "images" not in names
    assert "history.csv" in names
