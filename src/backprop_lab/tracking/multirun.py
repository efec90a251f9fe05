"""Hydra multiruns: one parent run, created before the jobs start."""

from __future__ import annotations

import atexit
import contextlib
import json
from pathlib import Path

from backprop_lab.interrupt import sweep_stop
from backprop_lab.tracking.provenance import TAG_PREFIX
from backprop_lab.tracking.publishing import (
    child_statuses,
    create_run,
    end_run,
    experiment_id_for,
    run_status,
)
from backprop_lab.tracking.records import (
    MAX_RUN_NAME,
    PARENT_RUN_FILE,
    RunRecord,
    this_process,
)
from backprop_lab.tracking.store import check_store, resolve_tracking_uri, ui_command

try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - Hydra is a dependency
    _HydraCallback = object


class MultirunTrackingCallback(_HydraCallback):
    """Before a multirun's jobs start: create the store, the experiment and a parent run.

    Jobs find the parent's id in ``<sweep dir>/mlflow_parent_run.json`` (a file, so it works
    for local processes and for cluster jobs on a shared file system alike) and log as its
    children. When the multirun ends the parent is closed FINISHED, or FAILED if a job failed;
    if the launcher process is interrupted, KILLED; if it is killed outright,
    ``bplab-sync --check`` closes it.
    """

    def on_multirun_start(self, config, **kwargs) -> None:
        from omegaconf import OmegaConf

        uri = resolve_tracking_uri(config.tracking.uri)
        check_store(uri)
        experiment_name = config.tracking.experiment_name or config.name
        # On the embedded store, with plain SQL: MLflow's import costs seconds per multirun.
        self._experiment_id = experiment_id_for(uri, experiment_name)
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = [
            item
            for item in OmegaConf.select(config, "hydra.overrides.task") or []
            if not item.startswith("tracking.")
        ]
        record = RunRecord(
            folder=str(sweep_dir / "parent_record"),
            experiment_name=experiment_name,
            run_name=f"multirun {' '.join(overrides)}".strip()[:MAX_RUN_NAME],
            tracking_uri=uri,
            tags={
                TAG_PREFIX + "kind": "multirun",
                TAG_PREFIX + "overrides": " ".join(overrides)[:5000],
            },
            process=this_process(),
        )
        create_run(record)
        self._uri, self._run_id, self._sweep_dir = uri, record.run_id, sweep_dir
        (sweep_dir / PARENT_RUN_FILE).write_text(
            json.dumps(
                {"run_id": record.run_id, "tracking_uri": uri, "experiment_name": experiment_name}
            )
        )
        # The process may end before the multirun does (a job raised, a signal).
        atexit.register(self._close_if_running, None, ended=False)

    def on_multirun_end(self, config, **kwargs) -> None:
        self._close_if_running(None)
        with contextlib.suppress(Exception):
            status = run_status(self._uri, self._run_id)
            print(f"multirun parent run {self._run_id} ({status}); its jobs are its child runs")
            print(f"MLflow UI: {ui_command(self._uri, self._experiment_id)}")

    def _close_if_running(self, status: str | None, *, ended: bool = True) -> None:
        """Close the parent with ``status``, or with its jobs' outcome: KILLED if stopped,
        FAILED if a job failed, else FINISHED (KILLED when the multirun had not ``ended``)."""
        with contextlib.suppress(Exception):
            if run_status(self._uri, self._run_id) != "RUNNING":
                return
            if status is None:
                statuses = child_statuses(self._uri, self._run_id)
                if sweep_stop() or "KILLED" in statuses:
                    status = "KILLED"
                elif "FAILED" in statuses:
                    status = "FAILED"
                else:
                    status = "FINISHED" if ended else "KILLED"
            end_run(self._uri, self._run_id, status)
