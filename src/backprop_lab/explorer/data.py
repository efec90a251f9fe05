"""What the explorer shows of one job, and how it is packed into the page within a size budget.

A job is a grid of learning rates × seeds (a single run is a 1 × 1 grid). Each cell brings its
curves, its verdicts and its parameters at the snapshot epochs. Numbers travel as base64 of
little-endian float arrays, compressed (``zlib``, which the browser's ``DecompressionStream``
undoes) after a byte shuffle: the bytes of each significance are stored together, so the
slowly varying exponents compress well. Snapshot parameters are stored with the snapshot axis
last and each number's bits as the difference from the previous snapshot's (curves likewise
along their epochs), which makes a trained network's trajectory about a fifth smaller again.

A page stays under a byte budget: above it, the page keeps fewer snapshots (always the first
and the last), then the parameters of fewer cells, and says so in its notes.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backprop_lab.core.data import Dataset
from backprop_lab.core.model import Architecture, num_layers_in

# A page larger than this keeps fewer snapshots: the committed studies' explorers stay under
# 3 MB, and a browser opens a page of this size at once.
DEFAULT_MAX_BYTES = 3_000_000
# Epochs at which each curve is sampled, besides the snapshot epochs (which are dense early).
CURVE_POINTS = 60
# At most this many points of each split are drawn on the plane.
MAX_PLANE_POINTS = 2000
# Thinning keeps at least this many snapshots before it drops cells.
MIN_SNAPSHOTS = 8
# A multi-class job brings at most this many samples for its confusion matrix.
MAX_CLASS_SAMPLES = 500
CURVE_NAMES = ("loss", "accuracy", "test_loss", "test_accuracy")


@dataclass
class ExplorerJob:
    """One grid (or single run, a 1 × 1 grid) as the explorer shows it.

    Per-cell arrays have leading axes ``(rates, seeds)``; ``curves`` hold every epoch
    ``(rates, seeds, epochs)`` (value after epoch 1 first), NaN where a cell diverged;
    ``snapshots`` is the :func:`~backprop_lab.core.model.params_to_arrays` layout with axes
    ``(rates, seeds, snapshots, ...)``, one snapshot per entry of ``snapshot_epochs``.
    """

    name: str
    label: str
    run_id: str
    architecture: Architecture
    learning_rates: np.ndarray
    seeds: np.ndarray
    curves: dict[str, np.ndarray]
    initial_loss: np.ndarray
    solved: np.ndarray
    diverged_epoch: np.ndarray
    snapshot_epochs: np.ndarray
    snapshots: dict[str, np.ndarray]
    dataset: Dataset | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cells(self) -> int:
        return int(self.learning_rates.size * self.seeds.size)

    @property
    def epochs(self) -> int:
        return int(self.curves["loss"].shape[-1])

    @property
    def param_matrix_bytes(self) -> int:
        """Bytes of every cell's parameters at every snapshot, uncompressed."""
        return sum(np.asarray(v).nbytes for v in self.snapshots.values())

    def param_matrix(self) -> np.ndarray:
        """Every cell's parameters at every snapshot: ``(cells, parameters, snapshots)``, in
        the order layer 0 weights (one row per unit), layer 0 biases, layer 1 weights, ..."""
        cells, count = self.cells, len(self.snapshot_epochs)
        parts = []
        for index in range(num_layers_in(self.snapshots)):
            for kind in ("weights", "biases"):
                values = self.snapshots.get(f"layer{index}_{kind}")
                if values is not None:
                    parts.append(np.asarray(values).reshape(cells, count, -1))
        return np.concatenate(parts, axis=2).transpose(0, 2, 1)


# ---------------------------------------------------------------------------------------------
# Arrays


def encode_array(values, *, delta: bool = False) -> dict[str, Any]:
    """A float array as ``{dtype, shape, delta, zlib}``: base64 of the zlib-compressed,
    byte-shuffled little-endian numbers. ``delta`` stores the bits of each number along the
    last axis as the (wrapping) difference from the one before (float32 only)."""
    array = np.asarray(values)
    dtype = "<f8" if array.dtype == np.float64 else "<f4"
    array = np.ascontiguousarray(array, dtype=dtype)
    itemsize = array.dtype.itemsize
    delta = bool(delta and itemsize == 4 and array.ndim and array.shape[-1] > 1)
    if delta:
        bits = array.view("<u4")
        diffs = bits.copy()
        diffs[..., 1:] = bits[..., 1:] - bits[..., :-1]  # uint32: wraps modulo 2**32
        array = diffs
    planes = array.reshape(-1).view(np.uint8).reshape(-1, itemsize).T.tobytes()
    return {
        "dtype": "f8" if itemsize == 8 else "f4",
        "shape": [int(n) for n in array.shape],
        "delta": delta,
        "zlib": base64.b64encode(zlib.compress(planes, 6)).decode("ascii"),
    }


def decode_array(spec: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array` (what the page's ``decodeArray`` does, for tests)."""
    itemsize = 8 if spec["dtype"] == "f8" else 4
    planes = np.frombuffer(zlib.decompress(base64.b64decode(spec["zlib"])), dtype=np.uint8)
    raw = planes.reshape(itemsize, -1).T.copy().reshape(-1)
    shape = tuple(spec["shape"])
    if spec["delta"]:
        bits = raw.view("<u4").reshape(shape)
        return np.cumsum(bits, axis=-1, dtype=np.uint32).view("<f4")
    return raw.view("<f8" if itemsize == 8 else "<f4").reshape(shape)


def finite_list(values) -> list:
    """Numbers for JSON: non-finite ones become null (JSON has no NaN)."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.ravel(values)]


# ---------------------------------------------------------------------------------------------
# Choosing what a page holds


def curve_epochs(epochs: int, snapshot_epochs, points: int = CURVE_POINTS) -> np.ndarray:
    """Epochs where curves are sampled: 0, the snapshot epochs and ``points`` evenly spaced
    epochs, so the marker at a snapshot sits exactly on the curve."""
    evenly = np.round(np.linspace(1, max(epochs, 1), min(points, max(epochs, 1))))
    chosen = np.concatenate([[0], np.asarray(snapshot_epochs, dtype=float), evenly])
    return np.unique(chosen[(chosen >= 0) & (chosen <= epochs)].astype(int))


def kept_snapshots(count: int, stride: int) -> np.ndarray:
    """Every ``stride``-th snapshot index, the last always included."""
    return np.unique(np.concatenate([np.arange(0, count, stride), [count - 1]])) if count else []


class Thinning:
    """How much a page leaves out: every ``snapshot_stride``-th snapshot, the parameters of
    every ``cell_stride``-th cell (0: none)."""

    def __init__(self, snapshot_stride: int = 1, cell_stride: int = 1):
        self.snapshot_stride = snapshot_stride
        self.cell_stride = cell_stride

    def kept_fraction(self, job: ExplorerJob) -> float:
        count = len(job.snapshot_epochs)
        if not count or not self.cell_stride:
            return 0.0
        snapshots = len(kept_snapshots(count, self.snapshot_stride)) / count
        return snapshots * len(range(0, job.cells, self.cell_stride)) / job.cells


def thinning_levels(jobs: list[ExplorerJob]):
    """From keeping everything to keeping no parameters, in steps of about a half."""
    most = max((len(job.snapshot_epochs) for job in jobs), default=0)
    cells = max((job.cells for job in jobs), default=1)
    stride = 1
    yield Thinning(1, 1)
    while most and -(-most // (stride * 2)) >= MIN_SNAPSHOTS:
        stride *= 2
        yield Thinning(stride, 1)
    cell_stride = 2
    while cell_stride < cells * 2:
        yield Thinning(stride, cell_stride)
        cell_stride *= 2
    yield Thinning(stride, 0)


def _plane_points(x: np.ndarray | None, y: np.ndarray | None):
    if x is None or y is None or not len(x):
        return None
    step = max(1, -(-len(x) // MAX_PLANE_POINTS))
    return {"x": encode_array(x[::step]), "y": encode_array(y[::step])}


def _data(job: ExplorerJob) -> dict | None:
    """The points drawn on the plane (2-D inputs only)."""
    dataset = job.dataset
    if dataset is None or job.architecture.num_inputs != 2:
        return None
    return {
        "train": _plane_points(dataset.x_train, dataset.y_train),
        "test": _plane_points(dataset.x_test, dataset.y_test),
    }


def _classes(job: ExplorerJob) -> dict | None:
    """A softmax network's evaluation samples (the test split, else the training split) with
    their classes, from which the page computes the confusion matrix and each class's
    accuracy at every snapshot."""
    dataset = job.dataset
    if dataset is None or job.architecture.output_activation != "softmax":
        return None
    split = "test" if dataset.has_test else "training"
    x, y = (
        (dataset.x_test, dataset.y_test) if dataset.has_test else (dataset.x_train, dataset.y_train)
    )
    step = max(1, -(-len(x) // MAX_CLASS_SAMPLES))
    x, y = np.asarray(x)[::step], np.asarray(y)[::step]
    names = dataset.classes or tuple(str(k) for k in range(y.shape[1]))
    return {
        "names": [str(name) for name in names],
        "split": split,
        "x": encode_array(np.asarray(x, dtype=np.float32)),
        "labels": [int(label) for label in np.argmax(y, axis=1)],
    }


def _curves(job: ExplorerJob, epochs: np.ndarray) -> dict[str, dict]:
    cells = job.cells
    curves = {}
    for name in CURVE_NAMES:
        values = job.curves.get(name)
        if values is None or not np.isfinite(values).any():
            continue
        values = np.asarray(values, dtype=np.float64).reshape(cells, -1)
        at_zero = (
            np.asarray(job.initial_loss, dtype=np.float64).reshape(cells)
            if name == "loss"
            else np.full(cells, np.nan)
        )
        sampled = np.where(epochs[None, :] == 0, at_zero[:, None], values[:, epochs - 1])
        curves[name] = encode_array(sampled.astype(np.float32), delta=True)
    return curves


def _final(job: ExplorerJob, name: str) -> list:
    values = job.curves.get(name)
    if values is None:
        return [None] * job.cells
    return finite_list(np.asarray(values).reshape(job.cells, -1)[:, -1])


def job_payload(job: ExplorerJob, thinning: Thinning) -> dict[str, Any]:
    """The JSON-ready description of one job, its arrays encoded."""
    architecture = job.architecture
    count = len(job.snapshot_epochs)
    notes = list(job.notes)
    params, param_cells, kept = None, [], np.array([], dtype=int)
    if count and thinning.cell_stride:
        kept = kept_snapshots(count, thinning.snapshot_stride)
        param_cells = list(range(0, job.cells, thinning.cell_stride))
        matrix = job.param_matrix()[param_cells][:, :, kept]
        params = encode_array(matrix, delta=True)
        if len(kept) < count:
            notes.append(
                f"This page keeps {len(kept)} of the run's {count} snapshots (one in "
                f"{thinning.snapshot_stride}, and the last) to stay small."
            )
        if len(param_cells) < job.cells:
            notes.append(
                f"This page keeps the parameters of {len(param_cells)} of {job.cells} cells "
                f"(one in {thinning.cell_stride}) to stay small; the others show curves only."
            )
    elif count:
        notes.append("This page keeps no parameters (they would not fit); it shows curves only.")
    sampled = curve_epochs(job.epochs, job.snapshot_epochs)
    return {
        "name": job.name,
        "label": job.label,
        "run_id": job.run_id,
        "layers": [int(size) for size in architecture.layer_sizes],
        "hidden_activation": architecture.hidden_activation,
        "output_activation": architecture.output_activation,
        "theta": float(architecture.theta),
        "use_bias": bool(architecture.use_bias),
        "learning_rates": finite_list(job.learning_rates),
        "seeds": [int(seed) for seed in np.ravel(job.seeds)],
        "epochs": job.epochs,
        "snapshot_epochs": [int(job.snapshot_epochs[i]) for i in kept],
        "param_cells": param_cells,
        "params": params,
        "curve_epochs": [int(e) for e in sampled],
        "curves": _curves(job, sampled),
        "final_loss": _final(job, "loss"),
        "final_accuracy": _final(job, "accuracy"),
        "solved": [int(bool(v)) for v in np.ravel(job.solved)],
        "diverged_epoch": [int(v) for v in np.ravel(job.diverged_epoch)],
        "data": _data(job),
        "classes": _classes(job),
        "notes": notes,
    }
