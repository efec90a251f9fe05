"""Data sets: logic gates, the article's homework set, TensorFlow-Playground-style 2-D sets, CSV,
and classification sets from their features and class labels.

Every data set is generated or read locally (nothing is downloaded) and returned as a
:class:`Dataset` of float32 NumPy arrays, inputs ``(samples, features)`` and targets
``(samples, outputs)``. Generated sets are a pure function of their arguments and seed.

A classification set's targets are one-hot rows, one column per class: the engine trains on
float targets whatever the loss, and a softmax output has one unit per class.
:func:`classification_dataset` encodes class labels (``0 … K−1``, or names, which are
numbered in sorted order) and keeps the class names in :attr:`Dataset.classes`. The sets
bundled with scikit-learn (digits, iris) are read by :mod:`backprop_lab.bundled`, outside the
core, which hands their arrays to it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from backprop_lab.core.labels import encode_labels, one_hot
from backprop_lab.errors import BackpropLabError


class Dataset(NamedTuple):
    """Training inputs and targets, with an optional held-out test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    # A classification set's class names, one per target column (empty otherwise).
    classes: tuple[str, ...] = ()

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_targets(self) -> int:
        return int(self.y_train.shape[1])

    @property
    def has_test(self) -> bool:
        return self.x_test is not None and len(self.x_test) > 0


GATE_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
GATE_TRUTH_TABLES = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
    "xor": [0, 1, 1, 0],
}

# SEED-NOTES §4: the article's three-sample training set, 2 inputs and 2 targets.
HOMEWORK_INPUTS = np.array([[0.5, -0.5], [0.3, 0.4], [0.7, 0.9]], dtype=np.float32)
HOMEWORK_TARGETS = np.array([[0.9, 0.1], [0.9, 0.9], [0.1, 0.1]], dtype=np.float32)

PLAYGROUND_SETS = ("circle", "gaussians", "spiral", "moons")
# Read from scikit-learn's wheel by backprop_lab.bundled (the core imports no scikit-learn).
BUNDLED_SETS = ("digits", "iris")
DATASET_NAMES: tuple[str, ...] = (
    *GATE_TRUTH_TABLES,
    "homework",
    *PLAYGROUND_SETS,
    *BUNDLED_SETS,
    "csv",
)
SCALINGS: tuple[str, ...] = ("none", "standardize")


def logic_gate(name: str) -> Dataset:
    """The four rows of a two-input truth table (``and``, ``or``, ``nand``, ``xor``)."""
    targets = np.array(GATE_TRUTH_TABLES[name], dtype=np.float32)[:, None]
    return Dataset(name, GATE_INPUTS.copy(), targets)


def homework() -> Dataset:
    """The article's 3-sample set (SEED-NOTES §4)."""
    return Dataset("homework", HOMEWORK_INPUTS.copy(), HOMEWORK_TARGETS.copy())


def _circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    # As in TensorFlow Playground: an inner disc (label 1) inside a ring (label 0).
    radius = 5.0
    half = n // 2
    inner_r = rng.uniform(0, radius * 0.5, half)
    outer_r = rng.uniform(radius * 0.7, radius, n - half)
    r = np.concatenate([inner_r, outer_r])
    angle = rng.uniform(0, 2 * math.pi, n)
    points = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    points += rng.uniform(-radius, radius, (n, 2)) * noise
    labels = np.concatenate([np.ones(half), np.zeros(n - half)])
    return points / radius, labels


def _gaussians(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    half = n // 2
    spread = 0.5 + 2.0 * noise
    positive = rng.normal(loc=(2.0, 2.0), scale=spread, size=(half, 2))
    negative = rng.normal(loc=(-2.0, -2.0), scale=spread, size=(n - half, 2))
    labels = np.concatenate([np.ones(half), np.zeros(n - half)])
    return np.concatenate([positive, negative]) / 4.0, labels


def _spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    # Two interleaved arms, as in TensorFlow Playground's spiral set.
    half = n // 2
    points, labels = [], []
    for label, (count, delta) in enumerate([(n - half, math.pi), (half, 0.0)]):
        i = np.arange(count)
        r = i / max(count, 1) * 5.0
        t = 1.75 * i / max(count, 1) * 2 * math.pi + delta
        xy = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
        xy += rng.uniform(-1, 1, (count, 2)) * noise * 5.0 * 0.2
        points.append(xy)
        labels.append(np.full(count, float(label)))
    return np.concatenate(points) / 5.0, np.concatenate(labels)


def _moons(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    half = n // 2
    outer = np.linspace(0, math.pi, n - half)
    inner = np.linspace(0, math.pi, half)
    upper = np.stack([np.cos(outer), np.sin(outer)], axis=1)
    lower = np.stack([1 - np.cos(inner), 1 - np.sin(inner) - 0.5], axis=1)
    points = np.concatenate([upper, lower]) + rng.normal(scale=noise, size=(n, 2))
    labels = np.concatenate([np.zeros(n - half), np.ones(half)])
    return points - np.array([0.5, 0.25]), labels


_PLAYGROUND_GENERATORS = {
    "circle": _circle,
    "gaussians": _gaussians,
    "spiral": _spiral,
    "moons": _moons,
}


def _split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    test_fraction: float,
    rng: np.random.Generator,
    classes: tuple[str, ...] = (),
) -> Dataset:
    if not 0.0 <= test_fraction < 1.0:
        raise BackpropLabError(f"test_fraction={test_fraction} must be in [0, 1)")
    order = rng.permutation(len(x))
    x, y = x[order].astype(np.float32), y[order].astype(np.float32)
    num_test = int(round(test_fraction * len(x)))
    if num_test == 0 and test_fraction > 0:
        # Asking for a test split and silently getting none would be an unseen no-op.
        raise BackpropLabError(
            f"data.test_fraction={test_fraction} of {len(x)} rows rounds to no test rows; give "
            f"at least {1 / len(x):.3g} (one row), or 0 for no test split"
        )
    if num_test == 0:
        return Dataset(name, x, y, classes=classes)
    if num_test >= len(x):
        raise BackpropLabError(
            f"data.test_fraction={test_fraction} leaves no training rows: all {len(x)} rows "
            f"would be for testing; give at most {(len(x) - 1) / len(x):.3g}"
        )
    return Dataset(name, x[num_test:], y[num_test:], x[:num_test], y[:num_test], classes)


def playground(
    name: str,
    *,
    num_samples: int = 200,
    noise: float = 0.1,
    test_fraction: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """A 2-D classification set in the style of TensorFlow Playground.

    Args:
      name: ``circle``, ``gaussians``, ``spiral`` or ``moons``.
      num_samples: points in all (train + test).
      noise: how far points stray from the clean shape (0 = none).
      test_fraction: share of points held out as the test split.
      seed: the same seed gives the same points and split.
    """
    if name not in _PLAYGROUND_GENERATORS:
        raise BackpropLabError(
            f"unknown playground set {name!r}; choose one of: {', '.join(PLAYGROUND_SETS)}"
        )
    if num_samples < 2:
        raise BackpropLabError(f"num_samples={num_samples} must be at least 2")
    if noise < 0:
        raise BackpropLabError(f"noise={noise} must be >= 0")
    rng = np.random.default_rng(seed)
    x, labels = _PLAYGROUND_GENERATORS[name](rng, num_samples, noise)
    return _split(name, x, labels[:, None], test_fraction, rng)


# ---------------------------------------------------------------------------------------------
# Classes


def classification_dataset(
    name: str,
    features,
    labels,
    *,
    classes: Sequence[str] = (),
    test_fraction: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """A data set of ``features`` and integer class ``labels``, targets one-hot.

    ``classes`` names the classes (one per target column; by default ``0 … K−1`` with ``K``
    the largest label plus one). The split is drawn from ``seed``, as for generated sets.
    """
    labels = np.asarray(labels)
    count = len(classes) if classes else int(np.max(labels, initial=0)) + 1
    targets = one_hot(labels, count)
    names = tuple(str(c) for c in classes) or tuple(str(k) for k in range(count))
    rng = np.random.default_rng(seed)
    features = np.asarray(features, dtype=np.float64)
    return _split(name, features, targets, test_fraction, rng, names)


def standardize(dataset: Dataset) -> Dataset:
    """Features scaled to mean 0 and standard deviation 1 with the training split's statistics
    (the test split is scaled with the same numbers, so nothing of it leaks into training). A
    feature that is constant in training (a digit's blank corner pixel) is only centred."""
    x_train = np.asarray(dataset.x_train, dtype=np.float64)
    mean = x_train.mean(axis=0)
    spread = x_train.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)

    def scale(x):
        if x is None:
            return None
        return ((np.asarray(x, np.float64) - mean) / spread).astype(np.float32)

    return dataset._replace(x_train=scale(dataset.x_train), x_test=scale(dataset.x_test))


def scale_features(dataset: Dataset, scaling: str) -> Dataset:
    """``none`` leaves the features as they are; ``standardize`` (see :func:`standardize`)."""
    if scaling not in SCALINGS:
        raise BackpropLabError(f"unknown scaling {scaling!r}; choose one of: {', '.join(SCALINGS)}")
    return standardize(dataset) if scaling == "standardize" else dataset


def check_class_targets(dataset: Dataset) -> None:
    """Raise unless every target row is a probability distribution over the classes (what
    categorical cross-entropy scores): non-negative, summing to 1."""
    for split, targets in (("training", dataset.y_train), ("test", dataset.y_test)):
        if targets is None or not len(targets):
            continue
        targets = np.asarray(targets, dtype=np.float64)
        sums = targets.sum(axis=1)
        bad = np.flatnonzero((targets < 0).any(axis=1) | (np.abs(sums - 1) > 1e-4))
        if bad.size:
            raise BackpropLabError(
                f"loss=cce needs one column per class with each target row summing to 1 "
                f"(one-hot), but row {bad[0] + 1} of the {split} targets of {dataset.name!r} "
                f"is {np.round(targets[bad[0]], 4).tolist()[:10]}; give the class labels as one "
                "column with data.class_column=NAME instead"
            )


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _csv_file(path: Path) -> Path:
    if path.is_dir():
        raise BackpropLabError(f"data.path={str(path)!r} is a folder, not a CSV file")
    if not path.exists():
        raise BackpropLabError(f"CSV file {str(path)!r} does not exist")
    if not path.is_file():
        # /dev/zero, /dev/urandom or a FIFO: reading it would never end.
        raise BackpropLabError(
            f"data.path={str(path)!r} is not a regular file (a device or a pipe); give a CSV file"
        )
    return path


# The column list shown when a wanted column is missing: a header can be huge (or a file that
# is not a CSV at all, like /proc/self/environ), so show its start only.
_SHOWN_COLUMNS = 10
_SHOWN_CHARS = 200


def _some_columns(names: list[str]) -> str:
    """The first few column names, at most ~200 characters, and how many there are in all."""
    shown = ", ".join(
        name if name.isprintable() else ascii(name) for name in names[:_SHOWN_COLUMNS]
    )
    if len(names) <= _SHOWN_COLUMNS and len(shown) <= _SHOWN_CHARS:
        return shown
    cut = shown[:_SHOWN_CHARS] + "\u2026" if len(shown) > _SHOWN_CHARS else shown + ", \u2026"
    return f"{cut} ({len(names):,} column{'s' if len(names) != 1 else ''})"


def _csv_rows(path: Path):
    """``(row number, cells)`` of a UTF-8 CSV (a byte-order mark is dropped), header first.

    Bad bytes, NUL characters and cells over the csv module's limit become one-line errors.
    """
    number = 0
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for number, row in enumerate(csv.reader(handle), start=1):
                yield number, row
    except UnicodeDecodeError as error:
        raise BackpropLabError(
            f"CSV file {str(path)!r} is not UTF-8 text (byte 0x{error.object[error.start]:02x} "
            f"at offset {error.start}); save it as UTF-8"
        ) from None
    except csv.Error as error:
        limit = csv.field_size_limit()
        detail = (
            f"a cell is longer than {limit:,} characters"
            if "field larger than field limit" in str(error)
            else str(error)
        )
        raise BackpropLabError(f"CSV file {str(path)!r}, row {number + 1}: {detail}") from None


def _csv_header(path: Path, header: list[str], wanted: list[str]) -> list[int]:
    """The positions of the wanted columns in the header (names must be unique and present)."""
    names = [name.strip() for name in header]
    # One pass over the header: a file with 200,000 columns must not take minutes.
    positions: dict[str, int] = {}
    repeated = set()
    for position, name in enumerate(names):
        if name in positions:
            repeated.add(name)
        positions.setdefault(name, position)
    if repeated:
        raise BackpropLabError(
            f"CSV file {str(path)!r} has more than one column called {min(repeated)!r}; rename them"
        )
    missing = [name for name in wanted if name not in positions]
    if missing:
        raise BackpropLabError(
            f"CSV file {str(path)!r} has no column {missing[0]!r}; its columns are: "
            f"{_some_columns(names)}"
        )
    return [positions[name] for name in wanted]


def _csv_number(path: Path, row_number: int, name: str, cell: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BackpropLabError(
            f"CSV file {str(path)!r}, row {row_number}, column {name!r}: {cell[:40]!r} is not a number"
        ) from None
    # The data set is float32: a number it cannot hold is as bad as inf.
    if not (math.isfinite(value) and abs(value) <= _FLOAT32_MAX):
        raise BackpropLabError(
            f"CSV file {str(path)!r}, row {row_number}, column {name!r}: {cell[:40]!r} is not "
            "finite in float32 (the data set's precision)"
        )
    return value


def _csv_table(path: Path, numeric: list[str], class_column: str | None):
    """The numeric columns as a float64 table, and the class column's labels (stripped text)."""
    wanted = numeric + ([class_column] if class_column else [])
    rows_in_file = _csv_rows(path)
    try:
        _, header = next(rows_in_file)
    except StopIteration:
        raise BackpropLabError(f"CSV file {str(path)!r} is empty") from None
    indices = _csv_header(path, header, wanted)
    rows, labels = [], []
    for row_number, row in rows_in_file:
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [row[index].strip() if index < len(row) else "" for index in indices]
        rows.append(
            [
                _csv_number(path, row_number, name, cell)
                for name, cell in zip(numeric, cells, strict=False)
            ]
        )
        if class_column:
            if not cells[-1]:
                raise BackpropLabError(
                    f"CSV file {str(path)!r}, row {row_number}, column {class_column!r}: "
                    "the class label is empty"
                )
            labels.append(cells[-1][:200])
    if not rows:
        raise BackpropLabError(f"CSV file {str(path)!r} has a header but no data rows")
    return np.asarray(rows, dtype=np.float64), labels


def load_csv(
    path: str | Path,
    feature_columns: Sequence[str],
    target_columns: Sequence[str] = (),
    *,
    class_column: str | None = None,
    num_classes: int | None = None,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """Read a CSV with a header row; the user names the feature and target columns.

    The targets are either numeric ``target_columns`` or one ``class_column`` of class labels,
    one-hot encoded (see :func:`encode_labels`: whole numbers ``0 … K−1`` or names).

    Raises:
      BackpropLabError: for a missing file or column, a folder, text that is not UTF-8, a
        repeated column name, an overlong cell, a cell that is not a finite number (naming
        its row number in the file, counting the header as row 1, and its column), an empty
        or out-of-range class label.
    """
    path = _csv_file(Path(path))
    if not feature_columns or bool(target_columns) == bool(class_column):
        raise BackpropLabError(
            "a CSV data set needs data.feature_columns and either data.target_columns or "
            "data.class_column (one column of class labels)"
        )
    table, labels = _csv_table(path, list(feature_columns) + list(target_columns), class_column)
    num_features = len(feature_columns)
    features, targets, classes = table[:, :num_features], table[:, num_features:], ()
    if class_column:
        try:
            indices, classes = encode_labels(labels, num_classes)
            targets = one_hot(indices, len(classes))
        except BackpropLabError as error:
            raise BackpropLabError(
                f"CSV file {str(path)!r}, column {class_column!r}: {error}"
            ) from None
    rng = np.random.default_rng(seed)
    if test_fraction == 0.0:
        return Dataset(
            path.stem, features.astype(np.float32), targets.astype(np.float32), classes=classes
        )
    return _split(path.stem, features, targets, test_fraction, rng, classes)


def make_dataset(name: str, **options) -> Dataset:
    """Build the data set called ``name`` (see :data:`DATASET_NAMES`) with its options."""
    if name in GATE_TRUTH_TABLES:
        return logic_gate(name)
    if name == "homework":
        return homework()
    if name in _PLAYGROUND_GENERATORS:
        return playground(
            name,
            num_samples=int(options.get("num_samples", 200)),
            noise=float(options.get("noise", 0.1)),
            test_fraction=float(options.get("test_fraction", 0.5)),
            seed=int(options.get("seed", 0)),
        )
    if name == "csv":
        if not options.get("path"):
            raise BackpropLabError("data=csv needs a file: set data.path=FILE.csv")
        num_classes = options.get("num_classes")
        return load_csv(
            options.get("path") or "",
            list(options.get("feature_columns") or []),
            list(options.get("target_columns") or []),
            class_column=options.get("class_column") or None,
            num_classes=None if num_classes is None else int(num_classes),
            test_fraction=float(options.get("test_fraction", 0.0)),
            seed=int(options.get("seed", 0)),
        )
    if name in BUNDLED_SETS:
        raise BackpropLabError(
            f"data set {name!r} ships with scikit-learn: build it with "
            "backprop_lab.bundled.load_bundled (the core does not import scikit-learn)"
        )
    raise BackpropLabError(f"unknown data set {name!r}; choose one of: {', '.join(DATASET_NAMES)}")


# The data set a run trained on, saved beside its other artifacts so readers (the report, the
# explorer) never rebuild it from a path named in the run's config.
DATASET_ARTIFACT = "dataset.npz"
_SPLITS = ("x_train", "y_train", "x_test", "y_test")


# Class names read back from a record are cut to these sizes (they are shown in reports).
MAX_CLASSES, MAX_CLASS_NAME = 10_000, 200


def _names_to_codes(names: Sequence[str]) -> np.ndarray:
    """Names as one zero-padded row of Unicode code points each (uint32): numbers only, so an
    artifact that holds them is read like any other array of numbers."""
    width = max((len(name) for name in names), default=1) or 1
    codes = np.zeros((len(names), width), dtype=np.uint32)
    for row, name in enumerate(names):
        codes[row, : len(name)] = [ord(char) for char in name]
    return codes


def _codes_to_names(codes: np.ndarray) -> tuple[str, ...]:
    """Inverse of :func:`_names_to_codes`; code points that are not characters are dropped."""

    def character(code: int) -> str:
        valid = 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
        return chr(code) if valid else ""

    return tuple("".join(character(int(code)) for code in row[:MAX_CLASS_NAME]) for row in codes)


def save_dataset(path: str | Path, dataset: Dataset) -> None:
    """Write the data set's arrays (float32) to an ``.npz`` file, and its class names (as
    code points, see :func:`_names_to_codes`) when it has any."""
    arrays = {
        split: np.asarray(getattr(dataset, split), dtype=np.float32)
        for split in _SPLITS
        if getattr(dataset, split) is not None
    }
    if dataset.classes:
        arrays["class_names"] = _names_to_codes(dataset.classes)
    np.savez_compressed(path, **arrays)


def load_dataset(path: str | Path, name: str) -> Dataset:
    """Read a data set written by :func:`save_dataset` (no pickles, float arrays only)."""
    with np.load(path, allow_pickle=False) as arrays:
        found = {}
        for split in _SPLITS:
            if split in arrays.files:
                array = arrays[split]
                if array.dtype.kind != "f" or array.ndim != 2:
                    raise BackpropLabError(f"{Path(path).name}: {split} is not a 2-D float array")
                found[split] = array
        classes = ()
        if "class_names" in arrays.files:
            codes = arrays["class_names"]
            if codes.dtype.kind not in "iu" or codes.ndim != 2 or len(codes) > MAX_CLASSES:
                raise BackpropLabError(f"{Path(path).name}: class_names is not a table of names")
            classes = _codes_to_names(codes)
    if "x_train" not in found or "y_train" not in found:
        raise BackpropLabError(f"{Path(path).name} has no x_train/y_train arrays")
    if classes and len(classes) != found["y_train"].shape[1]:
        classes = ()  # names that do not match the targets are not shown
    return Dataset(name, **found, classes=classes)


def fingerprint(dataset: Dataset) -> str:
    """SHA-256 of the data set's arrays: the same numbers in the same order give the same hash."""
    import hashlib

    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        if array is not None:
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
    return digest.hexdigest()


def check_fits(dataset: Dataset, num_inputs: int, num_outputs: int) -> None:
    """Raise if the data set's width does not match the network's input and output layers."""
    if dataset.num_features != num_inputs:
        raise BackpropLabError(
            f"data set {dataset.name!r} has {dataset.num_features} input feature(s) but the network's "
            f"input layer has {num_inputs}; set model.input_size={dataset.num_features} (or leave it unset)"
        )
    if dataset.num_targets != num_outputs:
        raise BackpropLabError(
            f"data set {dataset.name!r} has {dataset.num_targets} target(s) but the network's output "
            f"layer has {num_outputs}; set model.output_size={dataset.num_targets} (or leave it unset)"
        )
