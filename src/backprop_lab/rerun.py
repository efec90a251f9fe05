"""``bplab-rerun RUN_ID``: rebuild a run's config from MLflow, train again, compare bit for bit.

The resolved config is read back from the run's ``config.yaml`` artifact and the final weights
from ``weights.npz`` (``grid.npz`` for a grid), so nothing but the tracked run is needed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from backprop_lab.errors import BackpropLabError
from backprop_lab.interrupt import sigterm_unwinds

PROG = "bplab-rerun"


def load_run_config(tracking_uri: str, run_id: str, folder: Path, on_run=None):
    """The run and its resolved config, validated against the schema (downloaded to
    ``folder``). ``on_run(run)`` is called once the run is found, before the config is read
    (which imports JAX)."""
    from backprop_lab import tracking
    from backprop_lab.tracking.artifacts import (
        UnreadableArtifact,
        finished_training_run,
        read_config,
    )

    mlflow_client = tracking.client(tracking_uri)
    run, kind = finished_training_run(
        mlflow_client, run_id, tracking_uri, "has final weights to reproduce", "its grid parent"
    )
    if on_run is not None:
        on_run(run)
    try:
        path = mlflow_client.download_artifacts(run_id, "config.yaml", str(folder))
    except Exception:
        raise BackpropLabError(
            f"run {run_id} has no config.yaml artifact; it was not made by bplab-train"
        ) from None
    try:
        cfg = read_config(Path(path))
    except UnreadableArtifact as error:
        raise BackpropLabError(f"run {run_id}: {error}") from None
    return run, cfg


def logged_weights(
    tracking_uri: str, run_id: str, kind: str, folder: Path
) -> dict[str, np.ndarray]:
    from backprop_lab import tracking

    name = "grid.npz" if kind == "grid" else "weights.npz"
    try:
        path = tracking.client(tracking_uri).download_artifacts(run_id, name, str(folder))
    except Exception:
        raise BackpropLabError(f"run {run_id} has no {name} artifact to compare with") from None
    from backprop_lab.tracking.artifacts import UnreadableArtifact, read_npz

    try:
        arrays = read_npz(Path(path), name)
    except UnreadableArtifact as error:
        raise BackpropLabError(f"run {run_id}: {error}") from None
    return {key: values for key, values in arrays.items() if key.startswith("layer")}


def as_recorded(job, tags: dict):
    """The job with the run's own chunk length and, for a grid, its own shard count and
    layout: the same program as the run's, so the same bits. A run recorded before training
    was chunked has no chunk tag and was one program without snapshots; a grid recorded
    before shards were tagged was split across every device its machine had, and one recorded
    before layouts were tagged had its cells first."""
    from backprop_lab import tracking
    from backprop_lab.core.lanes import GRID_LAYOUTS

    job = job._replace(shards=recorded_shards(job, tags))
    if job.grid:
        layout = tags.get(tracking.TAG_PREFIX + "grid_layout", "cells")
        if layout not in GRID_LAYOUTS:
            raise BackpropLabError(
                f"the run's tag {tracking.TAG_PREFIX}grid_layout={layout!r} is not a layout "
                f"({' or '.join(GRID_LAYOUTS)})"
            )
        job = job._replace(spec=job.spec._replace(grid_layout=layout))
    chunk = _count_tag(tags, "chunk_epochs")
    if chunk is None:
        return job._replace(spec=job.spec._replace(chunk_epochs=0, snapshot_epochs=()))
    return job._replace(spec=job.spec._replace(chunk_epochs=chunk))


def recorded_shards(job, tags: dict) -> int:
    """The devices the run's grid was split across (1 for a single run)."""
    if not job.grid:
        return 1
    shards = _count_tag(tags, "grid_shards")
    if shards is None:
        shards = min(_count_tag(tags, "jax_device_count") or 1, job.cells)
    return max(1, shards)


def _count_tag(tags: dict, name: str) -> int | None:
    from backprop_lab import tracking

    value = tags.get(tracking.TAG_PREFIX + name)
    if value is None:
        return None
    if not value.isdigit():
        raise BackpropLabError(
            f"the run's tag {tracking.TAG_PREFIX}{name}={value!r} is not a count"
        )
    return int(value)


def devices_needed(run) -> int:
    """Devices the run's grid was split across (at most, for runs older than the shard tag)."""
    tags = run.data.tags
    return max(1, _count_tag(tags, "grid_shards") or _count_tag(tags, "jax_device_count") or 1)


class Recorded(NamedTuple):
    """What a run recorded that reproducing it needs: read from the store, before training."""

    run_id: str
    run: object
    cfg: object
    kind: str
    weights: dict[str, np.ndarray]


def read_recorded(run_id: str, tracking_uri: str | None = None, on_run=None) -> Recorded:
    """The run's resolved config and final weights, read back from the store (``on_run``: see
    :func:`load_run_config`)."""
    from backprop_lab import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_store_exists(uri)
    # The downloads are read into memory and their folder removed before training, also when
    # the command is ended by SIGTERM (each rerun used to leave one in /tmp).
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="bplab-rerun-") as folder:
        run, cfg = load_run_config(uri, run_id, Path(folder), on_run)
        kind = run.data.tags.get(tracking.TAG_PREFIX + "kind", "single")
        expected = logged_weights(uri, run_id, kind, Path(folder))
    return Recorded(run_id, run, cfg, kind, expected)


def rerun(run_id: str, tracking_uri: str | None = None) -> tuple[bool, float, str]:
    """Train the logged config again; return (bitwise identical, max |difference|, kind)."""
    return reproduce(read_recorded(run_id, tracking_uri))


def reproduce(recorded: Recorded) -> tuple[bool, float, str]:
    """Train a recorded run again; return (bitwise identical, max |difference|, kind)."""
    from omegaconf import OmegaConf

    from backprop_lab import tracking
    from backprop_lab.core.data import fingerprint
    from backprop_lab.core.model import params_to_arrays
    from backprop_lab.jobs import prepare, train_job

    run_id, run, cfg, kind, expected = recorded
    tags = run.data.tags
    logged_path = tags.get(tracking.TAG_PREFIX + "data_path")
    if cfg.data.path and logged_path and not Path(cfg.data.path).is_file():
        # A relative data.path means the folder the run started in: use its absolute form.
        cfg = OmegaConf.merge(cfg, {"data": {"path": logged_path}})
    job = as_recorded(prepare(cfg), tags)
    logged_data = tags.get(tracking.TAG_PREFIX + "data_sha256")
    if logged_data and fingerprint(job.dataset) != logged_data:
        raise BackpropLabError(
            f"the data set is not the one run {run_id} trained on (its SHA-256 differs); "
            "restore the data to reproduce the run"
        )
    trained = train_job(job, int(cfg.seed))
    actual = params_to_arrays(trained.result.params if kind == "grid" else trained.params)
    if sorted(actual) != sorted(expected):
        return False, float("inf"), kind
    identical = all(
        actual[key].dtype == expected[key].dtype
        and actual[key].shape == expected[key].shape
        and actual[key].tobytes() == expected[key].tobytes()
        for key in expected
    )
    with np.errstate(all="ignore"):
        difference = max(
            float(np.nanmax(np.abs(actual[key].astype(np.float64) - expected[key])))
            if actual[key].size
            else 0.0
            for key in expected
        )
    return identical, difference, kind
