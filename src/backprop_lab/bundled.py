"""Classification sets that ship inside scikit-learn's wheel: nothing is downloaded.

* ``digits``: 1,797 handwritten digits as 8 × 8 images of 0–16 grey levels, so 64 features,
  and 10 classes (``load_digits``; the UCI "Optical Recognition of Handwritten Digits" test
  set).
* ``iris``: 150 flowers, 4 measurements in cm, 3 species (``load_iris``; Fisher, 1936).

scikit-learn is imported here, in the shell, and only when such a set is asked for: the core
(:mod:`backprop_lab.core.data`) takes the arrays and does the rest (one-hot targets, the
seeded split, the scaling).
"""

from __future__ import annotations

from backprop_lab.core.data import BUNDLED_SETS, Dataset, classification_dataset
from backprop_lab.errors import BackpropLabError


def _arrays(name: str):
    """``(features, labels, class names)`` of a bundled set, from scikit-learn's wheel."""
    from sklearn import datasets

    if name == "digits":
        bunch = datasets.load_digits()
        return bunch.data, bunch.target, [str(k) for k in bunch.target_names]
    bunch = datasets.load_iris()
    return bunch.data, bunch.target, [str(k) for k in bunch.target_names]


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
