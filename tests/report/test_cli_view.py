"""``bplab-view RUN_ID --out FILE``: the explorer of any run, and one-line errors for bad input."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from report_store import EVIL_NAME, _train

from backprop_lab import tracking
from backprop_lab.cli import view


def _jobs(path) -> list[dict]:
    text = re.search(r'id="bplab-data">(.*?)</script>', path.read_text(), re.S).group(1)
    return json.loads(text)["jobs"]


def _error(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("bplab-view: error: ")
    return lines[0]


def test_a_grid_runs_explorer(store, tmp_path, capsys):
    out = tmp_path / "grid.html"
    assert view.run([store.grid.run_id, "--out", str(out), "--tracking-uri", store.uri]) == 0
    assert f"Explorer: {out}" in capsys.readouterr().out
    (job,) = _jobs(out)
    assert job["run_id"] == store.grid.run_id and len(job["param_cells"]) == 4


def test_a_grids_per_rate_child_stands_for_its_grid(store, tmp_path):
    client = tracking.client(store.uri)
    grid = client.get_run(store.grid.run_id)
    (child, *_) = client.search_runs(
        [grid.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{store.grid.run_id}'"
    )
    out = tmp_path / "child.html"
    assert view.run([child.info.run_id, "--out", str(out), "--tracking-uri", store.uri]) == 0
    assert [job["run_id"] for job in _jobs(out)] == [store.grid.run_id]


def test_a_multiruns_explorer_holds_every_job(store, tmp_path):
    out = tmp_path / "multirun.html"
    assert view.run([store.parent, "--out", str(out), "--tracking-uri", store.uri]) == 0
    jobs = _jobs(out)
    assert [job["run_id"] for job in jobs] == [child.run_id for child in store.children]
    assert [job["layers"] for job in jobs] == [[2, 2, 1], [2, 3, 1]]
    assert [job["label"] for job in jobs] == ["hidden_sizes=[2]", "hidden_sizes=[3]"]


def test_a_single_run_named_with_markup_is_only_text(store, tmp_path):
    out = tmp_path / "single.html"
    assert view.run([store.latest.run_id, "--out", str(out), "--tracking-uri", store.uri]) == 0
    page = out.read_text()
    assert EVIL_NAME not in page and page.count("<script") == 2
    assert _jobs(out)[0]["name"] == EVIL_NAME


def test_an_unknown_run_is_one_line_and_exit_2(store, tmp_path, capsys):
    out = tmp_path / "x.html"
    assert view.run(["0123456789abcdef", "--out", str(out), "--tracking-uri", store.uri]) == 2
    assert "no run '0123456789abcdef'" in _error(capsys)
    assert not out.exists()


def test_a_run_without_a_trajectory_is_one_line_and_exit_2(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # not the shared store: it gains no run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        bare = _train(
            tmp_path,
            uri,
            [
                "experiment=xor_mlp",
                "training.epochs=5",
                "tracking.snapshots=0",
                "tracking.plots=false",
            ],
        )
    out = tmp_path / "x.html"
    assert view.run([bare.run_id, "--out", str(out), "--tracking-uri", uri]) == 2
    assert "has no trajectory to show" in _error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("where", ["missing folder", "a folder", "read-only folder"])
def test_an_unwritable_out_is_one_line_and_exit_2(store, tmp_path, capsys, where):
    if where == "missing folder":
        out = tmp_path / "no" / "such" / "explorer.html"
    elif where == "a folder":
        out = tmp_path
    else:
        if shutil.os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        out = folder / "explorer.html"
    assert view.run([store.grid.run_id, "--out", str(out), "--tracking-uri", store.uri]) == 2
    assert "--out" in _error(capsys)


def test_a_missing_store_and_bad_options_are_one_line_and_exit_2(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'none.db'}"
    assert view.run(["abc", "--out", str(tmp_path / "x.html"), "--tracking-uri", uri]) == 2
    assert "does not exist" in _error(capsys)
    assert not (tmp_path / "none.db").exists()
    assert view.run(["abc", "--max-mb", "-1"]) == 2
    assert "--max-mb" in _error(capsys)
    assert view.run([]) == 2
    _error(capsys)
