"""Classification data: labels to one-hot targets, the seeded split, feature scaling, CSV class
columns, and the bundled digits and iris sets (read from scikit-learn's wheel, no download)."""

from __future__ import annotations

import numpy as np
import pytest

from backprop_lab.core.data import (
    check_class_targets,
    classification_dataset,
    load_csv,
    scale_features,
)
from backprop_lab.core.labels import encode_labels, is_one_hot, one_hot
from backprop_lab.errors import BackpropLabError


def test_one_hot_puts_a_single_one_in_each_labels_column():
    targets = one_hot([2, 0, 1, 2], 3)
    np.testing.assert_array_equal(targets, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert targets.dtype == np.float32 and is_one_hot(targets)
    assert not is_one_hot([[0.5, 0.5]]) and not is_one_hot([[1.0]])


@pytest.mark.parametrize(("labels", "bad"), [([0, 3], "3"), ([0, -1], "-1"), ([0, 1.5], "1.5")])
def test_a_label_that_is_no_class_is_refused_in_one_line(labels, bad):
    with pytest.raises(BackpropLabError, match=rf"class label {bad}.*out of range") as error:
        one_hot(np.asarray(labels), 3)
    assert "\n" not in str(error.value)


def test_whole_number_labels_are_their_own_class_indices():
    indices, classes = encode_labels(["2", "0", "2.0", "1"])
    np.testing.assert_array_equal(indices, [2, 0, 2, 1])
    assert classes == ("0", "1", "2")
    # num_classes may name classes absent from the data.
    assert encode_labels(["0", "1"], 4)[1] == ("0", "1", "2", "3")
    with pytest.raises(BackpropLabError, match=r"class label '4' \(row 2 of the data\)"):
        encode_labels(["0", "4"], 3)


def test_names_are_numbered_in_sorted_order():
    indices, classes = encode_labels(["virginica", "setosa", "versicolor", "setosa"])
    assert classes == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(indices, [2, 0, 1, 0])
    with pytest.raises(BackpropLabError, match=r"3 distinct class labels .* data.num_classes=2"):
        encode_labels(["a", "b", "c"], 2)


def test_the_split_is_seeded_and_keeps_every_sample_once():
    features = np.arange(40, dtype=float).reshape(20, 2)
    labels = np.arange(20) % 4
    first = classification_dataset("toy", features, labels, test_fraction=0.25, seed=3)
    again = classification_dataset("toy", features, labels, test_fraction=0.25, seed=3)
    other = classification_dataset("toy", features, labels, test_fraction=0.25, seed=4)
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert not np.array_equal(first.x_test, other.x_test)
    assert (len(first.x_train), len(first.x_test)) == (15, 5)
    rows = np.concatenate([first.x_train, first.x_test])
    assert sorted(rows[:, 0].tolist()) == features[:, 0].tolist()
    # Each row keeps its own label: feature 0 of sample i is 2i and its label i mod 4.
    for x, y in zip(rows, np.concatenate([first.y_train, first.y_test]), strict=True):
        assert np.argmax(y) == (int(x[0]) // 2) % 4
    assert first.classes == ("0", "1", "2", "3")


def test_standardizing_uses_the_training_split_alone():
    rng = np.random.default_rng(0)
    features = rng.normal(loc=5.0, scale=3.0, size=(50, 3))
    features[:, 2] = 7.0  # constant: centred, not divided by a zero spread
    dataset = classification_dataset("toy", features, np.arange(50) % 2, test_fraction=0.2)
    scaled = scale_features(dataset, "standardize")
    train = dataset.x_train.astype(np.float64)
    mean, spread = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(scaled.x_train[:, :2].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(scaled.x_train[:, :2].std(axis=0), 1, atol=1e-6)
    np.testing.assert_allclose(
        scaled.x_test[:, :2], (dataset.x_test[:, :2] - mean[:2]) / spread[:2], rtol=1e-5
    )
    np.testing.assert_array_equal(scaled.x_train[:, 2], 0)
    assert scale_features(dataset, "none") is dataset
    with pytest.raises(BackpropLabError, match="unknown scaling 'minmax'"):
        scale_features(dataset, "minmax")


def test_a_csv_class_column_becomes_one_hot_targets(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n7,8,versicolor\n")
    dataset = load_csv(path, ["a", "b"], class_column="species")
    assert dataset.classes == ("setosa", "versicolor", "virginica")
    np.testing.assert_array_equal(dataset.x_train, [[1, 2], [3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(np.argmax(dataset.y_train, axis=1), [0, 2, 0, 1])
    check_class_targets(dataset)
    with pytest.raises(BackpropLabError, match=r"give either|either data.target_columns"):
        load_csv(path, ["a"], ["b"], class_column="species")


def test_cce_refuses_targets_that_are_not_class_distributions():
    dataset = classification_dataset("toy", np.zeros((4, 1)), [0, 1, 0, 1])
    check_class_targets(dataset)
    broken = dataset._replace(y_train=dataset.y_train * 2)
    with pytest.raises(
        BackpropLabError, match=r"row 1 of the training targets .* data.class_column=NAME"
    ):
        check_class_targets(broken)


@pytest.mark.parametrize(
    ("name", "samples", "features", "classes"), [("digits", 1797, 64, 10), ("iris", 150, 4, 3)]
)
def test_the_bundled_sets_load_offline_with_a_fixed_split(name, samples, features, classes):
    from sklearn import datasets

    from backprop_lab.bundled import _arrays, load_bundled

    dataset = load_bundled(name, test_fraction=0.2, seed=0)
    num_test = round(0.2 * samples)
    assert dataset.x_train.shape == (samples - num_test, features)
    assert dataset.x_test.shape == (num_test, features)
    assert dataset.y_train.shape[1] == classes and is_one_hot(dataset.y_train)
    assert len(dataset.classes) == classes
    np.testing.assert_array_equal(
        dataset.x_test, load_bundled(name, test_fraction=0.2, seed=0).x_test
    )
    # Read without importing scikit-learn, yet the very arrays its loader gives, in its order
    # (the split permutes that order, so the order matters).
    bunch = getattr(datasets, f"load_{name}")()
    features_, labels_, names = _arrays(name)
    np.testing.assert_array_equal(features_, bunch.data)
    np.testing.assert_array_equal(labels_, bunch.target)
    assert names == [str(k) for k in bunch.target_names]
    # The same images and labels as scikit-learn's, only reordered.
    order = np.lexsort(bunch.data.T[::-1])
    ours = np.concatenate([dataset.x_train, dataset.x_test])
    labels = np.argmax(np.concatenate([dataset.y_train, dataset.y_test]), axis=1)
    mine = np.lexsort(ours.T[::-1])
    np.testing.assert_array_equal(ours[mine], bunch.data[order].astype(np.float32))
    np.testing.assert_array_equal(np.bincount(labels), np.bincount(bunch.target))


def test_loading_a_bundled_set_does_not_import_scikit_learn():
    # Importing it (SciPy and all) would cost seconds per run; the files are read directly.
    import subprocess
    import sys

    probe = (
        "import sys; from backprop_lab.bundled import load_bundled; "
        "load_bundled('digits', test_fraction=0.2, seed=0); print('sklearn' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
