"""Class labels: integer labels or names turned into one-hot targets, one column per class.

Used by :mod:`backprop_lab.core.data` for CSV class columns and bundled classification sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from backprop_lab.errors import BackpropLabError


def one_hot(labels, num_classes: int) -> np.ndarray:
    """One-hot rows ``(samples, num_classes)`` (float32) of integer class labels ``0 … K−1``.

    Raises:
      BackpropLabError: for a label that is not a whole number from 0 to ``num_classes − 1``.
    """
    labels = np.asarray(labels)
    if num_classes < 2:
        raise BackpropLabError(f"a classification set needs at least 2 classes, not {num_classes}")
    whole = np.isfinite(labels.astype(np.float64)) & (labels == np.round(labels))
    inside = whole & (labels >= 0) & (labels < num_classes)
    if not inside.all():
        position = int(np.argmin(inside))
        raise BackpropLabError(
            # .item(): a NumPy scalar's repr would print as np.float64(1.5).
            f"class label {labels.ravel()[position].item()} (sample {position + 1}) is out of range: "
            f"labels are whole numbers from 0 to {num_classes - 1} for {num_classes} classes"
        )
    return np.eye(num_classes, dtype=np.float32)[labels.astype(np.int64)]


def _whole_number(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def encode_labels(
    labels: Sequence[str], num_classes: int | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class indices and class names of text labels (a CSV's class column).

    Labels that are all whole numbers are the class indices themselves (``K`` = the largest
    plus one, or ``num_classes``); other labels are names, numbered in sorted order.

    Raises:
      BackpropLabError: for a negative number or one of ``num_classes`` or more, or more
        distinct names than ``num_classes``.
    """
    numbers = [_whole_number(label) for label in labels]
    if labels and all(number is not None for number in numbers):
        indices = np.asarray(numbers, dtype=np.int64)
        count = num_classes if num_classes is not None else max(int(indices.max()) + 1, 2)
        bad = np.flatnonzero((indices < 0) | (indices >= count))
        if bad.size:
            allowed = f"data.num_classes={num_classes}" if num_classes else "class labels"
            raise BackpropLabError(
                f"class label {labels[bad[0]]!r} (row {bad[0] + 1} of the data) is out of range: "
                f"{allowed} run from 0 to {count - 1}"
            )
        return indices, tuple(str(k) for k in range(count))
    names = tuple(sorted(set(labels)))
    if num_classes is not None and len(names) > num_classes:
        raise BackpropLabError(
            f"{len(names)} distinct class labels ({', '.join(names[:5])}"
            f"{', ...' if len(names) > 5 else ''}) but data.num_classes={num_classes}"
        )
    lookup = {name: index for index, name in enumerate(names)}
    return np.asarray([lookup[label] for label in labels], dtype=np.int64), names


def is_one_hot(targets) -> bool:
    """Whether every target row is one-hot (a single 1, the rest 0), with 2 or more columns."""
    targets = np.asarray(targets)
    return (
        targets.ndim == 2
        and targets.shape[1] >= 2
        and bool(np.isin(targets, (0.0, 1.0)).all())
        and bool((targets.sum(axis=1) == 1).all())
    )
