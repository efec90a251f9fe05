"""MLflow tracking: the store, run records, publishing, provenance and multiruns.

Every run is first written as a *record* (a folder holding its params, tags, a journal of
per-epoch metrics and its artifacts) in the job's output folder, and then *published* to
MLflow in a few batched calls. A record that could not be published, because the store went
away or the process died, stays on disk, and ``bplab-sync`` publishes it later: no run is
lost and none is left RUNNING.

The names most callers need are re-exported here; importing this package does not import
MLflow (that happens on first use, or on a background thread: ``start_importing_mlflow``), and
a run on a local SQLite store never does (:mod:`.local_store`).
"""

from backprop_lab.tracking.provenance import TAG_PREFIX, config_hash, provenance_tags
from backprop_lab.tracking.publishing import (
    create_run,
    end_run,
    local_database,
    publish,
    publish_artifacts_and_close,
    publish_metrics,
)
from backprop_lab.tracking.records import RECORD_FILE, RunRecord, curve_steps, find_records
from backprop_lab.tracking.store import (
    check_store,
    check_store_exists,
    client,
    ensure_experiment,
    find_experiment_id,
    is_remote,
    is_store_full_error,
    is_unreachable_error,
    resolve_tracking_uri,
    start_importing_mlflow,
    ui_command,
)

__all__ = [
    "RECORD_FILE",
    "TAG_PREFIX",
    "RunRecord",
    "check_store",
    "check_store_exists",
    "client",
    "config_hash",
    "create_run",
    "curve_steps",
    "end_run",
    "ensure_experiment",
    "find_experiment_id",
    "find_records",
    "local_database",
    "is_remote",
    "is_store_full_error",
    "is_unreachable_error",
    "provenance_tags",
    "publish",
    "publish_artifacts_and_close",
    "publish_metrics",
    "resolve_tracking_uri",
    "start_importing_mlflow",
    "ui_command",
]
