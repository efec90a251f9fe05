"""Classification sets that ship inside scikit-learn's wheel: nothing is downloaded.

* ``digits``: 1,797 handwritten digits as 8 × 8 images of 0–16 grey levels, so 64 features,
  and 10 classes (``load_digits``; the UCI "Optical Recognition of Handwritten Digits" test
  set).
* ``iris``: 150 flowers, 4 measurements in cm, 3 species (``load_iris``; Fisher, 1936).

The files are read straight from the installed scikit-learn package, the way its
``load_digits`` and ``load_iris`` read them, without importing scikit-learn: that import
(SciPy and all) costs about 3.5 s on two cores, more than training the digits study's grid.
The tests check the arrays against ``load_digits``/``load_iris`` themselves. The core
(:mod:`backprop_lab.core.data`) takes the arrays and does the rest (one-hot targets, the seeded
split, the scaling).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np

from backprop_lab.core.data import BUNDLED_SETS, Dataset, classification_dataset
from backprop_lab.errors import BackpropLabError


def _data_folder() -> Path:
    """scikit-learn's ``datasets/data`` folder, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise BackpropLabError(
            "data=digits and data=iris come with scikit-learn, which is not installed: "
            "pip install scikit-learn"
        )
    return Path(spec.origin).parent / "datasets" / "data"


def _arrays(name: str):
    """``(features, labels, class names)`` of a bundled set, from scikit-learn's wheel."""
    folder = _data_folder()
    if name == "digits":
        # One image a row: 64 grey levels (0-16), then the digit.
        table = np.loadtxt(folder / "digits.csv.gz", delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64), [str(k) for k in range(10)]
    # A first row "150,4,setosa,versicolor,virginica" (samples, features, class names), then
    # 4 measurements and the class index per flower.
    with (folder / "iris.csv").open() as handle:
        header = next(csv.reader(handle))
        table = np.loadtxt(handle, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64), header[2:]


def load_bundled(name: str, *, test_fraction: float, seed: int) -> Dataset:
    """The bundled set ``name`` (``digits`` or ``iris``) with a split drawn from ``seed``.

    Targets are one-hot, one column per class; the features are as scikit-learn gives them
    (scale them with :func:`backprop_lab.core.data.scale_features`).
    """
    if name not in BUNDLED_SETS:
        raise BackpropLabError(
            f"unknown bundled data set {name!r}; choose one of: {', '.join(BUNDLED_SETS)}"
        )
    features, labels, classes = _arrays(name)
    return classification_dataset(
        name, features, labels, classes=classes, test_fraction=test_fraction, seed=seed
    )
