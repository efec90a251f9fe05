"""What tracking costs: batched run records against one ``mlflow.log_metric`` call per epoch.

In one run, on a fresh temporary SQLite store:

1. end to end: ``bplab-train experiment=xor_mlp training.epochs=5000`` as a user types it
   (start-up, training, and every epoch's loss and accuracy recorded), timed on a warm store;
2. the project's tracking alone: publishing that run's metrics (batched ``log_batch`` calls);
   the artifacts and the run's closing are timed and printed separately;
3. the plain baseline: the same per-epoch loss and accuracy sent with one ``mlflow.log_metric``
   call per metric per epoch (timed on ``--baseline-epochs`` epochs and scaled linearly, since
   each call costs the same; ``--baseline-epochs 0`` times all of them).

Usage: python benchmarks/bench_tracking.py [--epochs 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def end_to_end(store: str, epochs: int, workdir: Path) -> float:
    command = [
        str(BIN / "bplab-train"),
        "experiment=xor_mlp",
        f"training.epochs={epochs}",
        f"tracking.uri={store}",
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument(
        "--baseline-epochs",
        type=int,
        default=1000,
        help="epochs timed for the log_metric baseline (0 = all)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import mlflow
    import numpy as np

    from backprop_lab import tracking

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        store = f"sqlite:///{folder / 'mlflow.db'}"
        end_to_end(store, 10, folder)  # creates the store's tables; not timed
        end_to_end_s = end_to_end(store, args.epochs, folder)

        # The record the command above published, timed on its own.
        record_json = sorted(folder.rglob("mlflow_record/record.json"))[-1]
        record = tracking.RunRecord.load(record_json.parent)
        record.run_id, record.published, record.parent_run_id, record.children = (
            None,
            False,
            None,
            [],
        )
        record.folder = str(folder / "replay")
        tracking.create_run(record)
        started = time.perf_counter()
        tracking.publish_metrics(record)
        tracking_s = time.perf_counter() - started
        started = time.perf_counter()
        tracking.publish_artifacts_and_close(record)
        artifacts_s = time.perf_counter() - started
        points = sum(len(values) for values in record.metrics.values())

        loss = np.array([value for _, value in record.metrics["loss"]])
        accuracy = np.array([value for _, value in record.metrics["accuracy"]])
        timed = len(loss) if args.baseline_epochs <= 0 else min(args.baseline_epochs, len(loss))
        mlflow.set_tracking_uri(store)
        mlflow.set_experiment("bench_per_epoch_logging")
        with mlflow.start_run():
            started = time.perf_counter()
            for epoch in range(timed):
                mlflow.log_metric("loss", float(loss[epoch]), step=epoch + 1)
                mlflow.log_metric("accuracy", float(accuracy[epoch]), step=epoch + 1)
            per_epoch_logging_s = (time.perf_counter() - started) * len(loss) / timed

    results = {
        "epochs": args.epochs,
        "metric_points": points,
        "end_to_end_s": round(end_to_end_s, 3),
        "tracking_s": round(tracking_s, 4),
        "artifacts_and_close_s": round(artifacts_s, 4),
        "per_epoch_logging_s": round(per_epoch_logging_s, 3),
        "per_epoch_logging_timed_epochs": timed,
        "tracking_speedup": round(per_epoch_logging_s / tracking_s, 1),
        "target_end_to_end_s": 3.5,
        "target_tracking_speedup": 20.0,
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"bplab-train experiment=xor_mlp training.epochs={args.epochs}, end to end: {end_to_end_s:8.2f} s   (target <= 3.5 s)"
    )
    print(f"  its metrics ({points} points, batched log_batch): {tracking_s:8.3f} s")
    print(f"  (its artifacts and closing the run:               {artifacts_s:8.3f} s)")
    print(
        f"  mlflow.log_metric once per metric per epoch:     {per_epoch_logging_s:8.2f} s   (timed on {timed} epochs, scaled)"
    )
    print(
        f"  tracking speedup:                                {per_epoch_logging_s / tracking_s:8.1f}x  (target >= 20x)"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
