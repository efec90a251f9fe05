"""Which epochs a run keeps its parameters at: its trajectory.

A run keeps the parameters of every cell at a set of snapshot epochs, dense early (where
learning moves fastest) and sparser later, always with epoch 0 (before training) and the last
epoch. The training program writes them into a buffer as it goes (``TrainSpec.snapshot_epochs``),
so a snapshot is exactly the state of the run at that epoch.

The cost is ``snapshots × parameters × cells × bytes per number``. Above a size limit a run
keeps fewer snapshots and says so in its note; it never fails for this reason.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backprop_lab.core.model import Architecture, count_parameters

# The artifact that holds a run's trajectory: ``epochs`` (the snapshot epochs reached) and the
# parameters at each, in the layout of ``model.params_to_arrays`` with a snapshot axis after a
# grid's ``(rates, seeds)`` axes.
TRAJECTORY_ARTIFACT = "trajectory.npz"


class SnapshotPlan(NamedTuple):
    epochs: tuple[int, ...]
    # Why fewer snapshots are kept than were asked for ("" when all are kept).
    note: str = ""


def snapshot_epochs(total_epochs: int, count: int) -> tuple[int, ...]:
    """About ``count`` epochs from 0 to ``total_epochs``, geometrically spaced.

    Every epoch is kept when there are no more than ``count``; otherwise the first epochs
    are consecutive and the spacing then grows by a constant factor, so a log-scaled time
    axis is evenly covered. 0 and ``total_epochs`` are always included.
    """
    if count <= 0:
        return ()
    if total_epochs + 1 <= count:
        return tuple(range(total_epochs + 1))
    if count <= 2:
        return (0, total_epochs)
    points = count - 1  # besides epoch 0
    chosen = np.array([total_epochs])
    for samples in range(points, 50 * points):
        chosen = np.unique(np.round(np.geomspace(1, total_epochs, samples)).astype(int))
        if len(chosen) >= points:
            break
    return (0, *(int(epoch) for epoch in chosen))


def snapshot_bytes(architecture: Architecture, cells: int, count: int, itemsize: int = 4) -> int:
    """Bytes that ``count`` snapshots of ``cells`` networks take."""
    return count * count_parameters(architecture) * cells * itemsize


def snapshot_plan(
    total_epochs: int,
    requested: int,
    architecture: Architecture,
    cells: int,
    max_bytes: int,
    itemsize: int = 4,
) -> SnapshotPlan:
    """The snapshot epochs to keep: ``requested`` of them, or fewer to stay under ``max_bytes``."""
    wanted = snapshot_epochs(total_epochs, requested)
    if not wanted or snapshot_bytes(architecture, cells, len(wanted), itemsize) <= max_bytes:
        return SnapshotPlan(wanted)
    each = snapshot_bytes(architecture, cells, 1, itemsize)
    fits = max_bytes // each
    limit = f"{each:,} bytes each, limit {max_bytes:,} bytes (tracking.max_snapshot_bytes)"
    if fits < 2:
        return SnapshotPlan((), f"keeps no trajectory snapshots: {limit}")
    kept = snapshot_epochs(total_epochs, int(fits))
    while len(kept) > fits:  # rounding can add one
        kept = kept[:-2] + kept[-1:]
    return SnapshotPlan(kept, f"keeps {len(kept)} of {len(wanted)} trajectory snapshots: {limit}")
