"""Selecting the runs a report uses from the MLflow store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backprop_lab.errors import BackpropLabError

KIND_TAG = "backprop_lab.kind"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"
# Kinds of run that trained something (a multirun parent and grid_row children did not).
JOB_KINDS = ("single", "grid")


def run_kind(run) -> str:
    return run.data.tags.get(KIND_TAG, "single")


def run_name(run) -> str:
    return run.info.run_name or run.info.run_id


def _run_order(run) -> tuple:
    return (run.info.start_time or 0, run.info.run_id)


@dataclass
class Selection:
    """The runs a report uses: the latest top-level run and everything below it."""

    experiment_name: str
    top: Any
    descendants: list
    ignored_top_level: int

    @property
    def runs(self) -> list:
        return [self.top, *self.descendants]

    @property
    def job_runs(self) -> list:
        """The runs that trained something, in the order of :attr:`runs`."""
        return [run for run in self.runs if run_kind(run) in JOB_KINDS]


def description(runs: Iterable) -> str:
    """The first MLflow note (the preset's description) among ``runs``."""
    return next((run.data.tags[NOTE_TAG] for run in runs if run.data.tags.get(NOTE_TAG)), "")


def _all_runs(mlflow_client, experiment_id: str) -> list:
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment_id], max_results=5000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _descendants(runs: list, top) -> list:
    """Every run below ``top``, breadth first, each level in start order."""
    known = {run.info.run_id for run in runs}
    children: dict[str, list] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent in known:
            children.setdefault(parent, []).append(run)
    descendants, queue = [], [top.info.run_id]
    while queue:
        below = sorted(children.get(queue.pop(0), []), key=_run_order)
        descendants += below
        queue += [run.info.run_id for run in below]
    return descendants


def select_runs(mlflow_client, experiment, run_id: str | None = None) -> Selection | None:
    """The most recent top-level run of ``experiment`` (or the one holding ``run_id``) and all
    its descendants (None: no runs)."""
    runs = _all_runs(mlflow_client, experiment.experiment_id)
    known = {run.info.run_id for run in runs}
    # A run whose parent is gone (deleted) counts as top-level.
    top_level = [run for run in runs if run.data.tags.get(PARENT_TAG) not in known]
    if not top_level:
        return None
    top_level.sort(key=_run_order)
    top = top_level[-1]
    if run_id is not None:
        by_id = {run.info.run_id: run for run in runs}
        if run_id not in by_id:
            raise BackpropLabError(f"experiment {experiment.name!r} has no run {run_id!r}")
        top = by_id[run_id]
        # A child stands for its whole sweep: report from its top-level run.
        while top.data.tags.get(PARENT_TAG) in known:
            top = by_id[top.data.tags[PARENT_TAG]]
    return Selection(experiment.name, top, _descendants(runs, top), len(top_level) - 1)


def experiments_with_runs(mlflow_client) -> dict[str, Any]:
    """``{name: experiment}`` of every active experiment that has at least one run."""
    found = {}
    for experiment in mlflow_client.search_experiments():
        if mlflow_client.search_runs([experiment.experiment_id], max_results=1):
            found[experiment.name] = experiment
    return found


def store_client(uri: str):
    """What reads the store: plain SQL on the embedded store (no MLflow import, seconds per
    report process), else ``MlflowClient``."""
    from backprop_lab import tracking
    from backprop_lab.tracking.store_reader import StoreReader

    database = tracking.local_database(uri)
    return tracking.client(uri) if database is None else StoreReader(database, uri)


def open_store(uri: str):
    """``(client, {name: experiment})`` of a store that exists and has runs, else a clear error."""
    from backprop_lab import tracking

    # A folder or a device is named as such by check_store, not called missing.
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).exists():
        # MLflow would create an empty store; there is nothing to report from.
        raise BackpropLabError(
            f"the tracking store {uri} does not exist; train something first, e.g. bplab-train experiment=xor_mlp"
        )
    tracking.check_store(uri, create=False)
    try:
        mlflow_client = store_client(uri)
        experiments = experiments_with_runs(mlflow_client)
    except Exception as error:
        if tracking.is_unreachable_error(error):
            raise BackpropLabError(
                f"cannot read the tracking store {uri} ({type(error).__name__})"
            ) from None
        raise
    if not experiments:
        raise BackpropLabError(
            f"the tracking store {uri} has no runs; train something first, e.g. bplab-train experiment=xor_mlp"
        )
    return mlflow_client, experiments


def display_uri(uri: str) -> str:
    """The store as a reader should see it: paths inside the project relative to its root, so
    a report regenerated from another clone of the project reads the same."""
    from backprop_lab.paths import project_root

    root = str(project_root())
    if uri.startswith("sqlite:///") and uri[len("sqlite:///") :].startswith(root + "/"):
        return "sqlite:///./" + uri[len("sqlite:///") + len(root) + 1 :]
    return uri
