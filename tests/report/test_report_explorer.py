"""Each report gets an explorer beside it, linked from the report and the index."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
from report_store import EVIL_NAME, EXPERIMENTS, GRID, _train, build_reports, report_texts

from backprop_lab import tracking


def _jobs(path: Path) -> list[dict]:
    text = re.search(r'id="bplab-data">(.*?)</script>', path.read_text(), re.S).group(1)
    return json.loads(text)["jobs"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_report_links_its_explorer(built, name):
    explorer = built / name / "report" / "explorer.html"
    assert 0 < explorer.stat().st_size < 3_000_000
    markdown, page = report_texts(built, name)
    assert "Explorer: [explorer.html](explorer.html) shows every cell" in markdown
    assert '<a href="explorer.html">explorer.html</a>' in page
    index = (built / "index.md").read_text()
    assert f"([explorer]({name}/report/explorer.html))" in index
    assert f'href="{name}/report/explorer.html"' in (built / "index.html").read_text()


def test_a_multiruns_explorer_shows_every_job_by_its_label(built, store):
    jobs = _jobs(built / "arch_study" / "report" / "explorer.html")
    assert [job["run_id"] for job in jobs] == [child.run_id for child in store.children]
    assert [job["label"] for job in jobs] == ["hidden_sizes=[2]", "hidden_sizes=[3]"]


def test_the_explorer_holds_names_from_the_store_only_as_data(built):
    page = (built / "xor_mlp" / "report" / "explorer.html").read_text()
    assert EVIL_NAME not in page and page.count("<script") == 2
    assert _jobs(built / "xor_mlp" / "report" / "explorer.html")[0]["name"] == EVIL_NAME


def test_the_report_prints_the_explorers_size(store, tmp_path, capsys):
    assert build_reports(store.uri, tmp_path / "out", "grid_study") == 0
    size = (tmp_path / "out" / "grid_study" / "report" / "explorer.html").stat().st_size
    assert f"explorer.html {size / 1e6:.2f} MB" in capsys.readouterr().out


def test_a_malformed_trajectory_is_a_note_and_the_rest_still_shows(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        run = _train(tmp_path, uri, ["experiment=xor_mlp", *GRID, "tracking.plots=false"])
    artifacts = Path(
        unquote(urlparse(tracking.client(uri).get_run(run.run_id).info.artifact_uri).path)
    )
    # Parameters for a 2-3-1 network where the config says 2-2-1.
    np.savez(
        artifacts / "trajectory.npz",
        epochs=np.array([0, 30]),
        layer0_weights=np.zeros((2, 2, 2, 3, 2), np.float32),
        layer0_biases=np.zeros((2, 2, 2, 3), np.float32),
        layer1_weights=np.zeros((2, 2, 2, 1, 3), np.float32),
        layer1_biases=np.zeros((2, 2, 2, 1), np.float32),
    )
    out = tmp_path / "out"
    assert build_reports(uri, out) == 0
    markdown, _ = report_texts(out, "xor_mlp")
    assert "its trajectory.npz does not fit the network of its config" in markdown
    assert "## Grid of learning rates × seeds" in markdown  # the report itself is whole
    assert not (out / "xor_mlp" / "report" / "explorer.html").exists()
    assert "explorer" not in markdown.lower()
