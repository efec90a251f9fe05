"""What MLflow 3's own UI needs to show backprop-lab's runs as model training.

* **The experiment's kind.** MLflow 3's UI opens an experiment on its GenAI overview (traces,
  "Detect Issues") unless the experiment tag ``mlflow.experimentKind`` says it is for model
  training (``custom_model_development``, "Machine learning" in the UI's kind selector); then
  it opens on the runs table. :func:`~backprop_lab.tracking.store.ensure_experiment` sets it.
* **The data set, as run inputs.** The runs table's Dataset column and filter read a run's
  dataset inputs: name, digest, source, schema and profile, and the context tag
  (``training``, ``test``). :func:`dataset_inputs` describes them as the plain strings
  ``mlflow.log_input(mlflow.data.from_pandas(...))`` would store, so a run record carries
  them to ``bplab-sync`` and a grid's children share their parent's without any MLflow import
  at training time; ``tests/tracking/test_native.py`` checks them against ``from_pandas``.
* **The page to open.** MLflow 3.17's UI no longer reads that tag to choose between its
  GenAI and model-training pages: a toggle at the top left does ("GenAI" | "Model training"),
  kept in the browser and GenAI until someone changes it, or the query ``workflowType`` of the
  page's address. :func:`runs_page` is the address of an experiment's runs table in the
  model-training view, which ``bplab-train`` prints.
* **Tables.** :func:`add_table` writes a table as ``MlflowClient.log_table`` does (a JSON
  file in pandas' ``split`` layout, and the run tag ``mlflow.loggedArtifacts`` that lists it),
  into the record's artifacts: it goes with the run's other files, costs no MLflow call, and
  publishing it twice leaves it as it was (``log_table`` appends rows to a table it finds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backprop_lab.core.data import Dataset, fingerprint

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
CONTEXT_TAG = "mlflow.data.context"
LOGGED_ARTIFACTS_TAG = "mlflow.loggedArtifacts"
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
# A grid run's per-learning-rate table (one row per rate, as its children hold them).
RATE_TABLE = "rates.json"
# MLflow's own digests are 8 hex digits; ours are the start of the split's SHA-256.
_DIGEST_LENGTH = 8
_GENERATOR = "backprop_lab.core.data.make_dataset"


def runs_page(experiment_id: str) -> str:
    """The UI's page (after the server's address) with an experiment's runs table, in the
    model-training view."""
    return f"#/experiments/{experiment_id}/runs?{MODEL_TRAINING_VIEW}"


# ---------------------------------------------------------------------------------------------
# Data sets


def _column_names(prefix: str, count: int, given: Sequence[str]) -> list[str]:
    if len(given) == count:
        return [str(name) for name in given]
    return [prefix] if count == 1 else [f"{prefix}{i}" for i in range(1, count + 1)]


def _column_type(array: np.ndarray) -> str:
    return "float" if np.asarray(array).dtype == np.float32 else "double"


def _source(data_config: Mapping[str, Any]) -> tuple[str, str]:
    """A CSV file is a local source; any other data set is made by code from these options."""
    path = data_config.get("path")
    if path:
        return "local", json.dumps({"uri": str(Path(path).resolve())})
    options = {
        f"data.{key}": str(value)
        for key, value in data_config.items()
        if value not in (None, [], "") and key not in ("feature_columns", "target_columns")
    }
    return "code", json.dumps({"tags": {"mlflow.source.name": _GENERATOR, **options}})


def dataset_inputs(dataset: Dataset, data_config: Mapping[str, Any]) -> list[dict[str, str]]:
    """The run's dataset inputs: its training split, and its test split when it has one.

    Each is ``{name, digest, source_type, source, schema, profile, context}``. The name is the
    data set's (``xor``, ``moons``, a CSV file's stem), the digest the first 8 hex digits of
    the split's SHA-256 (for a data set without a test split, of ``backprop_lab.data_sha256``),
    and the schema names the CSV's columns (``x1, x2, y`` for a generated set).
    ``data_config`` is the run's ``data`` config (``path``, ``feature_columns``, ...).
    """
    source_type, source = _source(data_config)
    splits = [("training", dataset.x_train, dataset.y_train)]
    if dataset.has_test:
        splits.append(("test", dataset.x_test, dataset.y_test))
    inputs = []
    for context, features, targets in splits:
        names = _column_names(
            "x", features.shape[1], data_config.get("feature_columns") or ()
        ) + _column_names("y", targets.shape[1], data_config.get("target_columns") or ())
        types = [_column_type(features)] * features.shape[1] + [_column_type(targets)] * (
            targets.shape[1]
        )
        schema = [
            {"type": kind, "name": name, "required": True}
            for name, kind in zip(names, types, strict=True)
        ]
        rows = len(features)
        inputs.append(
            {
                "name": dataset.name,
                "digest": fingerprint(Dataset(dataset.name, features, targets))[:_DIGEST_LENGTH],
                "source_type": source_type,
                "source": source,
                "schema": json.dumps({"mlflow_colspec": schema}),
                "profile": json.dumps({"num_rows": rows, "num_elements": rows * len(names)}),
                "context": context,
            }
        )
    return inputs


def log_inputs(mlflow_client, run_id: str, inputs: Sequence[Mapping[str, str]]) -> None:
    """Log the described inputs to a run in one call (MLflow skips ones it already has)."""
    if not inputs:
        return
    from mlflow.entities import Dataset as MlflowDataset
    from mlflow.entities import DatasetInput, InputTag

    datasets = [
        DatasetInput(
            MlflowDataset(
                name=item["name"],
                digest=item["digest"],
                source_type=item["source_type"],
                source=item["source"],
                schema=item["schema"],
                profile=item["profile"],
            ),
            tags=[InputTag(CONTEXT_TAG, item["context"])],
        )
        for item in inputs
    ]
    mlflow_client.log_inputs(run_id, datasets=datasets)


# ---------------------------------------------------------------------------------------------
# Tables


def _cell(value: Any) -> Any:
    """A JSON cell: NaN and inf become null, as pandas writes them."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def add_table(record, artifact_file: str, columns: Mapping[str, Sequence[Any]]) -> None:
    """Put ``columns`` (name to values, all of one length) in ``record`` as an MLflow table."""
    names = list(columns)
    rows = [[_cell(value) for value in row] for row in zip(*columns.values(), strict=True)]
    path = record.artifact_dir / artifact_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"columns": names, "data": rows}, separators=(",", ":")))
    listed = json.loads(record.tags.get(LOGGED_ARTIFACTS_TAG, "[]"))
    entry = {"path": artifact_file, "type": "table"}
    if entry not in listed:
        record.tags[LOGGED_ARTIFACTS_TAG] = json.dumps([*listed, entry])


def rate_table(rows: Sequence[Any]) -> dict[str, list[Any]]:
    """A grid's per-rate rows (:class:`~backprop_lab.core.analysis.RateRow`) as table columns:
    ``learning_rate`` and ``success_rate`` first, then every field of the row."""
    fields = [name for name in rows[0]._fields if name != "rate"] if rows else []
    return {
        "learning_rate": [row.rate for row in rows],
        "success_rate": [row.success_rate for row in rows],
        **{name: [getattr(row, name) for row in rows] for name in fields},
    }
