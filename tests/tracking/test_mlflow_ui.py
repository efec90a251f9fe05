"""A grid in MLflow's own UI, as a user opens it: ``mlflow server`` on the store, the address
``bplab-train`` prints, headless Chromium (slow: a server start and a real browser).

It checks that the page is the runs table of the model-training view, not the GenAI overview
(traces, "Detect Issues"), and that the grid's children appear under it, each with its data set
in the Dataset column. Set ``BPLAB_UPDATE_SCREENSHOT=1`` to rewrite the README's
``docs/mlflow_ui.png``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from headless import launched_chromium
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GRID = [
    "experiment=learning_rates",
    "data=xor",
    "training.epochs=50",
    "sweep.log_space=[0.1,10.0,3]",
    "sweep.seeds=2",
    "tracking.plots=false",
]
SERVER_START_S = 180  # four-worker servers take a minute on two busy cores; one worker less
PAGE_TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train(uri: str, folder: Path) -> str:
    """Run the grid with ``bplab-train``; return the page it says to open (after the host)."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "bplab-train"), *GRID, f"tracking.uri={uri}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    printed = re.search(r"MLflow UI: .*open http://127\.0\.0\.1:5000/(\S+)", done.stdout)
    assert printed, done.stdout[-2000:]
    return printed.group(1)


def _serve(uri: str, folder: Path, port: int) -> subprocess.Popen:
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(1)
    server.terminate()
    raise AssertionError(f"mlflow server not up in {SERVER_START_S} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The grid trained into a fresh store, the store served, and what bplab-train printed."""
    folder = tmp_path_factory.mktemp("mlflow_ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    page = _train(uri, folder)
    port = _free_port()
    server = _serve(uri, folder, port)
    try:
        yield uri, f"http://127.0.0.1:{port}/{page}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_grid_opens_on_its_runs_with_children_and_data_set(served, tmp_path):
    uri, address = served
    client = MlflowClient(uri)
    (experiment,) = client.search_experiments(filter_string="name = 'learning_rates'")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (grid,) = client.search_runs([experiment.experiment_id], "tags.`backprop_lab.kind` = 'grid'")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{grid.info.run_id}'"
    )
    assert len(children) == 3
    (data,) = grid.inputs.dataset_inputs
    shown_data = f"{data.dataset.name} ({data.dataset.digest})"

    with launched_chromium() as browser:
        page = browser.new_page(viewport={"width": 1500, "height": 700})
        page.goto(address)
        page.get_by_text("matching runs").wait_for(timeout=PAGE_TIMEOUT_MS)
        body = page.inner_text("body")
        # The GenAI overview's own panels, absent from the runs table.
        assert "Detect Issues" not in body and "Token Usage" not in body
        assert "/runs" in page.url and "overview" not in page.url
        page.locator('.ag-header-cell[col-id="attributes.`Dataset`"]').wait_for(
            timeout=PAGE_TIMEOUT_MS
        )

        page.locator(f'.ag-row[row-id="{grid.info.run_id}"]').first.locator(
            'button[data-component-id*="runnamecellrenderer"]'
        ).click()  # the grid's expander
        for run in (grid, *children):
            cells = page.locator(f'.ag-row[row-id="{run.info.run_id}"]')
            cells.first.wait_for(timeout=PAGE_TIMEOUT_MS)
            shown = " ".join(cells.all_inner_texts())
            assert run.info.run_name in shown and shown_data in shown, shown

        with_panel_closed = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
        if with_panel_closed.count():
            with_panel_closed.click()  # the assistant's panel only narrows the table
        target = (
            REPO / "docs" / "mlflow_ui.png"
            if os.environ.get("BPLAB_UPDATE_SCREENSHOT")
            else tmp_path / "mlflow_ui.png"
        )
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000
