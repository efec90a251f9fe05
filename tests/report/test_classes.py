"""Multi-class runs in the report: the confusion matrix of the best cell and of a single run,
per-class accuracy, and test accuracy against the rate.

The expected matrices are recomputed here from scratch: iris loaded again from scikit-learn,
the recorded final weights run through the NumPy reference network, classes counted by hand.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import reference_numpy as ref
from mlflow.tracking import MlflowClient
from report_store import _train, build_reports

IRIS = [
    "experiment=xor_mlp", "data=iris", "data.scale=standardize", "model.hidden_sizes=[4]",
    "model.output_activation=softmax", "loss=cce", "training.batching=full",
    "training.epochs=40", "tracking.plots=false",
]  # fmt: skip
RATES, SEEDS = [0.01, 1.0], 3


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    root = tmp_path_factory.mktemp("iris_report")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        grid = _train(
            root, uri, [*IRIS, "sweep.learning_rates=[0.01,1.0]", f"sweep.seeds={SEEDS}"],
            extra=["tracking.experiment_name=iris_grid"],
        )  # fmt: skip
        single = _train(
            root, uri, [*IRIS, "optimizer.learning_rate=0.5"],
            extra=["tracking.experiment_name=iris_single"],
        )  # fmt: skip
    out = root / "reports"
    assert build_reports(uri, out, "iris_grid", "iris_single") == 0
    return SimpleNamespace(root=root, uri=uri, grid=grid, single=single, out=out)


def _iris_test_split():
    from backprop_lab.bundled import load_bundled
    from backprop_lab.core.data import scale_features

    dataset = scale_features(load_bundled("iris", test_fraction=0.2, seed=0), "standardize")
    return dataset.x_test.astype(np.float64), np.argmax(dataset.y_test, axis=1)


def _counts(weights, biases, x, labels) -> np.ndarray:
    _, outputs = ref.forward(weights, biases, x, ["sigmoid", "softmax"])
    guess = np.argmax(outputs[-1], axis=1)
    matrix = np.zeros((3, 3), dtype=int)
    for true, predicted in zip(labels, guess, strict=True):
        matrix[true, predicted] += 1
    return matrix


def _table(markdown: str) -> np.ndarray:
    """The counts of the report's confusion table (rows after the header of 'true class')."""
    lines = markdown[markdown.index("| true class |") :].splitlines()[2:5]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return np.array([[int(count) for count in row[1:4]] for row in rows])


def _markdown(out: Path, experiment: str) -> str:
    return (out / experiment / "report" / "report.md").read_text()


def test_a_grids_confusion_matrix_is_its_best_cells_on_the_test_split(iris):
    client = MlflowClient(iris.uri)
    path = client.download_artifacts(iris.grid.run_id, "grid.npz", str(iris.root / "npz"))
    with np.load(path) as grid:
        final = grid["test_accuracy"][..., -1]
        rate = int(np.argmax(np.median(final, axis=1)))  # the best median test accuracy
        seed = int(np.argmax(final[rate]))
        weights = [grid[f"layer{i}_weights"][rate, seed].astype(np.float64) for i in (0, 1)]
        biases = [grid[f"layer{i}_biases"][rate, seed].astype(np.float64) for i in (0, 1)]
        cell_accuracy = final[rate, seed]
    x, labels = _iris_test_split()
    expected = _counts(weights, biases, x, labels)
    markdown = _markdown(iris.out, "iris_grid")
    np.testing.assert_array_equal(_table(markdown), expected)
    assert np.trace(expected) / len(labels) == pytest.approx(cell_accuracy, abs=1e-6)
    assert f"learning rate {RATES[rate]:g} and seed {seed}" in markdown
    assert f"on the test split ({len(labels)} samples" in markdown
    # Each class's accuracy is its diagonal count over its row.
    rows = markdown[markdown.index("| true class |") :].splitlines()[2:5]
    for k, (row, counts) in enumerate(zip(rows, expected, strict=True)):
        assert row.rstrip(" |").endswith(f"{100 * counts[k] / counts.sum():.1f}%")
    assert "test_accuracy_by_learning_rate.png" in markdown
    assert re.search(r"Hardest class: \w+ \(\d+\.\d% right", markdown)


def test_a_single_runs_confusion_matrix_is_its_final_weights(iris):
    client = MlflowClient(iris.uri)
    path = client.download_artifacts(iris.single.run_id, "weights.npz", str(iris.root / "w"))
    with np.load(path) as arrays:
        weights = [arrays[f"layer{i}_weights"].astype(np.float64) for i in (0, 1)]
        biases = [arrays[f"layer{i}_biases"].astype(np.float64) for i in (0, 1)]
    x, labels = _iris_test_split()
    markdown = _markdown(iris.out, "iris_single")
    np.testing.assert_array_equal(_table(markdown), _counts(weights, biases, x, labels))
    assert "confusion matrix of the final weights on the test split" in markdown
    assert "setosa" in markdown  # the class names iris ships with
