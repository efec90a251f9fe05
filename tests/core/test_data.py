"""Data sets: truth tables, the article's homework set, playground sets and CSV files."""

import operator

import numpy as np
import pytest

from backprop_lab.core.data import (
    DATASET_NAMES,
    PLAYGROUND_SETS,
    Dataset,
    check_fits,
    homework,
    load_csv,
    logic_gate,
    make_dataset,
    playground,
)
from backprop_lab.errors import BackpropLabError

GATES = {
    "and": operator.and_,
    "or": operator.or_,
    "nand": lambda a, b: 1 - (a & b),
    "xor": operator.xor,
}


@pytest.mark.parametrize("name", sorted(GATES))
def test_logic_gate_truth_table(name):
    dataset = logic_gate(name)
    assert dataset.x_train.shape == (4, 2) and dataset.y_train.shape == (4, 1)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.float32
    assert {tuple(row) for row in dataset.x_train.astype(int)} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    for (a, b), (y,) in zip(dataset.x_train.astype(int), dataset.y_train, strict=True):
        assert y == GATES[name](a, b)
    assert not dataset.has_test
    assert (dataset.num_features, dataset.num_targets) == (2, 1)


def test_logic_gate_returns_copies():
    first = logic_gate("and")
    first.x_train[0, 0] = 9.0
    assert logic_gate("and").x_train[0, 0] == 0.0


def test_homework_set_is_the_articles_table():
    # SEED-NOTES §4.
    dataset = homework()
    np.testing.assert_allclose(dataset.x_train, [[0.5, -0.5], [0.3, 0.4], [0.7, 0.9]], rtol=1e-7)
    np.testing.assert_allclose(dataset.y_train, [[0.9, 0.1], [0.9, 0.9], [0.1, 0.1]], rtol=1e-7)
    assert make_dataset("homework").name == "homework"


@pytest.mark.parametrize("name", PLAYGROUND_SETS)
def test_playground_shapes_labels_and_split(name):
    dataset = playground(name, num_samples=200, noise=0.1, test_fraction=0.5, seed=0)
    assert dataset.x_train.shape == (100, 2) and dataset.y_train.shape == (100, 1)
    assert dataset.x_test.shape == (100, 2) and dataset.y_test.shape == (100, 1)
    assert dataset.x_train.dtype == np.float32
    labels = np.concatenate([dataset.y_train, dataset.y_test]).ravel()
    assert set(np.unique(labels)) == {0.0, 1.0}
    assert labels.sum() == 100  # both classes, half each
    assert np.all(np.isfinite(dataset.x_train)) and np.abs(dataset.x_train).max() < 3.0


@pytest.mark.parametrize("name", PLAYGROUND_SETS)
def test_playground_is_a_function_of_its_seed(name):
    first = playground(name, seed=3)
    again = playground(name, seed=3)
    other = playground(name, seed=4)
    for a, b in zip(first[1:], again[1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.x_train, other.x_train)


@pytest.mark.parametrize(
    "num_samples, test_fraction, train_size, test_size",
    [(200, 0.5, 100, 100), (200, 0.25, 150, 50), (101, 0.2, 81, 20), (50, 0.0, 50, 0)],
)
def test_playground_split_sizes(num_samples, test_fraction, train_size, test_size):
    dataset = playground("moons", num_samples=num_samples, test_fraction=test_fraction)
    assert len(dataset.x_train) == len(dataset.y_train) == train_size
    if test_size:
        assert len(dataset.x_test) == len(dataset.y_test) == test_size
        # The split partitions the points: no point is in both halves.
        together = np.concatenate([dataset.x_train, dataset.x_test])
        assert len(np.unique(together, axis=0)) == num_samples
    else:
        assert dataset.x_test is None and not dataset.has_test


def test_noiseless_circle_is_a_disc_inside_a_ring():
    dataset = playground("circle", num_samples=400, noise=0.0, test_fraction=0.0)
    radius = np.linalg.norm(dataset.x_train, axis=1)
    inner = dataset.y_train.ravel() == 1.0
    assert radius[inner].max() <= 0.5 + 1e-6
    assert radius[~inner].min() >= 0.7 - 1e-6


def test_noiseless_gaussians_are_centred_on_opposite_corners():
    dataset = playground("gaussians", num_samples=2000, noise=0.0, test_fraction=0.0)
    positive = dataset.y_train.ravel() == 1.0
    np.testing.assert_allclose(dataset.x_train[positive].mean(axis=0), [0.5, 0.5], atol=0.03)
    np.testing.assert_allclose(dataset.x_train[~positive].mean(axis=0), [-0.5, -0.5], atol=0.03)


def test_make_dataset_passes_options():
    dataset = make_dataset("spiral", num_samples=60, noise=0.0, test_fraction=0.5, seed=1)
    assert len(dataset.x_train) == 30 and len(dataset.x_test) == 30
    np.testing.assert_array_equal(
        dataset.x_train, playground("spiral", num_samples=60, noise=0.0, seed=1).x_train
    )
    assert make_dataset("xor").name == "xor"
    assert set(DATASET_NAMES) >= {"and", "or", "nand", "xor", "homework", "csv", *PLAYGROUND_SETS}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_samples": 1}, r"num_samples=1 must be at least 2"),
        ({"noise": -0.1}, r"noise=-0.1 must be >= 0"),
        ({"test_fraction": 1.0}, r"test_fraction=1.0 must be in \[0, 1\)"),
        ({"num_samples": 2, "test_fraction": 0.9}, r"leaves no training rows: all 2 rows"),
    ],
)
def test_playground_rejects_bad_options(options, message):
    with pytest.raises(BackpropLabError, match=message):
        playground("circle", **options)


def test_unknown_data_sets():
    with pytest.raises(BackpropLabError, match=r"unknown data set 'mnist'; choose one of: and, or"):
        make_dataset("mnist")
    with pytest.raises(BackpropLabError, match=r"unknown playground set 'torus'"):
        playground("torus")


# ---------------------------------------------------------------- fitting the network


def test_check_fits_accepts_a_matching_network():
    check_fits(logic_gate("xor"), 2, 1)
    check_fits(homework(), 2, 2)


def test_check_fits_names_the_input_mismatch_and_the_fix():
    with pytest.raises(
        BackpropLabError,
        match=r"data set 'xor' has 2 input feature\(s\) but the network's input layer has 3; "
        r"set model.input_size=2",
    ):
        check_fits(logic_gate("xor"), 3, 1)


def test_check_fits_names_the_output_mismatch_and_the_fix():
    with pytest.raises(
        BackpropLabError,
        match=r"data set 'homework' has 2 target\(s\) but the network's output layer has 1; "
        r"set model.output_size=2",
    ):
        check_fits(homework(), 2, 1)


# ---------------------------------------------------------------- CSV files


def _write(tmp_path, text, name="points.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_reads_the_named_columns(tmp_path):
    path = _write(tmp_path, "a, b ,label,unused\n1,2,0,x\n3.5,-4,1,y\n\n5,6e-1,1,z\n")
    dataset = load_csv(path, ["b", "a"], ["label"])
    assert isinstance(dataset, Dataset) and dataset.name == "points"
    np.testing.assert_allclose(dataset.x_train, [[2, 1], [-4, 3.5], [0.6, 5]], rtol=1e-7)
    np.testing.assert_array_equal(dataset.y_train, [[0], [1], [1]])
    assert dataset.x_train.dtype == np.float32 and not dataset.has_test


def test_csv_split_is_seeded(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(20))
    path = _write(tmp_path, f"x,y\n{rows}\n")
    first = load_csv(path, ["x"], ["y"], test_fraction=0.25, seed=5)
    again = make_dataset(
        "csv",
        path=str(path),
        feature_columns=["x"],
        target_columns=["y"],
        test_fraction=0.25,
        seed=5,
    )
    assert len(first.x_train) == 15 and len(first.x_test) == 5
    np.testing.assert_array_equal(first.x_test, again.x_test)
    # Every row keeps its own target.
    np.testing.assert_array_equal(first.x_train.ravel() % 2, first.y_train.ravel())
    assert sorted(np.concatenate([first.x_train, first.x_test]).ravel()) == list(range(20))


def test_csv_non_numeric_cell_names_row_and_column(tmp_path):
    path = _write(tmp_path, "x1,x2,y\n0.1,0.2,1\n0.3,abc,0\n")
    with pytest.raises(
        BackpropLabError, match=r"row 3, column 'x2': 'abc' is not a number"
    ) as error:
        load_csv(path, ["x1", "x2"], ["y"])
    assert str(path) in str(error.value)


def test_csv_empty_cell_is_not_a_number(tmp_path):
    path = _write(tmp_path, "x,y\n1,\n")
    with pytest.raises(BackpropLabError, match=r"row 2, column 'y': '' is not a number"):
        load_csv(path, ["x"], ["y"])


def test_csv_infinite_cell_is_rejected(tmp_path):
    path = _write(tmp_path, "x,y\ninf,1\n")
    with pytest.raises(BackpropLabError, match=r"row 2, column 'x': 'inf' is not finite"):
        load_csv(path, ["x"], ["y"])


def test_csv_missing_column_lists_the_columns(tmp_path):
    path = _write(tmp_path, "x1,x2,y\n1,2,3\n")
    with pytest.raises(BackpropLabError, match=r"has no column 'x3'; its columns are: x1, x2, y"):
        load_csv(path, ["x1", "x3"], ["y"])


def test_csv_missing_file_and_empty_files(tmp_path):
    with pytest.raises(BackpropLabError, match=r"does not exist"):
        load_csv(tmp_path / "nowhere.csv", ["x"], ["y"])
    with pytest.raises(BackpropLabError, match=r"is empty"):
        load_csv(_write(tmp_path, ""), ["x"], ["y"])
    with pytest.raises(BackpropLabError, match=r"has a header but no data rows"):
        load_csv(_write(tmp_path, "x,y\n"), ["x"], ["y"])
    with pytest.raises(
        BackpropLabError,
        match=r"needs data.feature_columns and either data.target_columns or data.class_column",
    ):
        load_csv(_write(tmp_path, "x,y\n1,2\n"), [], ["y"])


def test_csv_missing_column_lists_only_the_start_of_a_huge_header(tmp_path):
    names = [f"column_{i}" for i in range(5000)]
    path = _write(tmp_path, ",".join(names) + "\n" + ",".join("1" * 5000) + "\n")
    with pytest.raises(BackpropLabError) as caught:
        load_csv(path, ["nope"], ["column_1"])
    message = str(caught.value)
    assert message.endswith("column_9, \u2026 (5,000 columns)"), message
    assert "column_10" not in message
    # One enormous name (or a file like /proc/self/environ) is cut at ~200 characters.
    path = _write(tmp_path, "secret=" + "x" * 10_000 + "\x00more\n1\n")
    with pytest.raises(BackpropLabError) as caught:
        load_csv(path, ["nope"], ["y"])
    assert len(str(caught.value)) < 400 and "\x00" not in str(caught.value)


def test_a_csv_with_very_many_columns_loads_in_linear_time(tmp_path):
    import time

    count = 50_000  # the quadratic header check took about a minute here; now milliseconds
    path = _write(tmp_path, ",".join(f"c{i}" for i in range(count)) + "\n" + "1," * count + "\n")
    started = time.perf_counter()
    dataset = load_csv(path, ["c0", "c1"], [f"c{count - 1}"])
    assert dataset.x_train.shape == (1, 2)
    assert time.perf_counter() - started < 5


def test_a_device_or_a_pipe_as_a_csv_file_is_named_what_it_is(tmp_path):
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for path in ("/dev/zero", "/dev/urandom", fifo):
        with pytest.raises(BackpropLabError, match="is not a regular file"):
            load_csv(path, ["x"], ["y"])


def test_a_test_fraction_that_splits_off_nothing_or_everything_is_refused_with_the_counts():
    with pytest.raises(BackpropLabError, match="of 10 rows rounds to no test rows"):
        playground("moons", num_samples=10, test_fraction=0.01)
    with pytest.raises(BackpropLabError, match="leaves no training rows: all 10 rows"):
        playground("moons", num_samples=10, test_fraction=0.99)
