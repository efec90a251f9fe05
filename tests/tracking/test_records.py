"""Run records left behind by a process that quit in a hurry keep every journaled epoch."""

from __future__ import annotations

import numpy as np

from backprop_lab.tracking.records import RunRecord, find_records


def _journaled_record(folder, epochs=7) -> RunRecord:
    record = RunRecord(
        folder=str(folder), experiment_name="e", run_name="r", tracking_uri="sqlite:///x.db"
    )
    record.open(["loss", "accuracy", "test_loss", "test_accuracy"])
    rows = np.stack(
        [np.linspace(1.0, 0.1, epochs), np.linspace(0.5, 1.0, epochs)]
        + [np.full(epochs, np.nan)] * 2,
        axis=1,
    )
    record.append_epochs(rows)
    return record


def test_a_record_closed_while_its_curves_were_being_added_takes_them_from_the_journal(tmp_path):
    record = _journaled_record(tmp_path / "run")
    # A second Ctrl-C ended the process after the accuracy curve was added, before the loss.
    record.add_curve("accuracy", [0.5, 1.0])
    record.add_scalar("epochs_done", 7)
    record.close("KILLED", "interrupted; exited at once on a second signal")
    (pending,) = find_records(tmp_path).pending
    assert [step for step, _ in pending.metrics["loss"]] == list(range(1, 8))
    np.testing.assert_allclose([v for _, v in pending.metrics["loss"]], np.linspace(1, 0.1, 7))
    assert len(pending.metrics["accuracy"]) == 7
    assert "test_loss" not in pending.metrics  # never measured: no curve of NaN
    assert RunRecord.load(tmp_path / "run").metrics["loss"] == pending.metrics["loss"]


def test_a_complete_record_keeps_its_own_curves(tmp_path):
    record = _journaled_record(tmp_path / "run")
    record.add_curve("loss", [9.0, 8.0], steps=[1, 7])
    record.add_curve("accuracy", [0.0, 1.0], steps=[1, 7])
    record.close("FINISHED")
    (pending,) = find_records(tmp_path).pending
    assert pending.metrics["loss"] == [[1, 9.0], [7, 8.0]]
