"""The explorer in a real browser (headless Chromium driven by Playwright).

* The page's forward pass equals the engine's ``model.forward`` on the same snapshot, to 1e-5,
  for every activation.
* It loads with no console errors and no network requests; the slider changes the picture;
  selecting a cell switches the network; compared cells move together; a run named with
  markup executes nothing.

Set ``BPLAB_UPDATE_SCREENSHOT=1`` to rewrite the README's ``docs/explorer.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from headless import launched_chromium
from report_store import _train

from backprop_lab.core.activations import ACTIVATION_NAMES
from backprop_lab.core.data import homework
from backprop_lab.core.model import (
    Architecture,
    forward,
    init_params,
    layer_activations,
    params_from_arrays,
    params_to_arrays,
)
from backprop_lab.core.sweep import train_grid
from backprop_lab.core.train import TrainSpec, to_device_data
from backprop_lab.explorer import render_explorer, write_explorer
from backprop_lab.explorer.sources import explorer_job

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
IMG = "<img src=x onerror=alert(1)>"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as launched:
        yield launched


class Page(SimpleNamespace):
    """An open explorer and what it did: console messages, errors, requests, dialogs."""

    def call(self, expression: str, *args):
        return self.page.evaluate(expression, *args)


@pytest.fixture()
def open_page(browser):
    opened = []

    def _open(path: Path, width: int = 1400, height: int = 1000) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        seen = Page(page=page, console=[], errors=[], requests=[], dialogs=[])
        page.on("console", lambda message: seen.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: seen.errors.append(str(error)))
        page.on("request", lambda request: seen.requests.append(request.url))
        page.on("dialog", lambda dialog: (seen.dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(path.as_uri())
        # Functions, not strings: the page's policy forbids evaluating strings as code.
        page.wait_for_function("() => window.bplab !== undefined")
        page.evaluate("window.bplab.ready")
        opened.append(context)
        return seen

    yield _open
    for context in opened:
        context.close()


def _clean(seen: Page, path: Path) -> None:
    problems = [text for kind, text in seen.console if kind in ("error", "warning")]
    assert problems == [] and seen.errors == [], (problems, seen.errors)
    assert seen.requests == [path.as_uri()]  # the page itself and nothing else
    assert seen.dialogs == []


# ---------------------------------------------------------------------------------------------
# The forward pass, for every activation


@pytest.fixture(scope="module")
def activations_page(tmp_path_factory):
    """One job per activation: a 2 x 2 grid of 2-3-2 networks (hidden and output units of that
    activation) trained by the engine on the homework set, with their snapshots."""
    data = to_device_data(homework())
    jobs, trajectories = [], []
    for name in ACTIVATION_NAMES:
        architecture = Architecture(
            (2, 3, 2), name, name, theta=0.3 if name == "threshold" else 0.0
        )
        spec = TrainSpec(
            architecture,
            epochs=30,
            method="ste" if name == "threshold" else "backprop",
            snapshot_epochs=(0, 1, 2, 5, 10, 30),
        )
        grid = train_grid(
            spec,
            lambda key, a=architecture: init_params(key, a, "normal", 1.5),
            [0.1, 1.0],
            [0, 1],
            data,
        )
        trajectory = {
            "epochs": np.array(spec.snapshot_epochs),
            **params_to_arrays(grid.result.snapshots),
        }
        history = grid.result.history
        cells = {
            "learning_rates": grid.learning_rates,
            "seeds": grid.seeds,
            "loss": np.asarray(history.loss),
            "accuracy": np.asarray(history.accuracy),
            "initial_loss": np.asarray(grid.result.initial_loss),
            "diverged_epoch": np.asarray(grid.result.diverged_epoch),
        }
        jobs.append(explorer_job(name, name, "", architecture, homework(), cells, trajectory))
        trajectories.append((architecture, trajectory))
    path = tmp_path_factory.mktemp("activations") / "explorer.html"
    write_explorer(path, render_explorer("every activation", jobs))
    return SimpleNamespace(path=path, trajectories=trajectories)


POINTS = np.concatenate(
    [
        np.stack(np.meshgrid(np.linspace(-2, 2, 5), np.linspace(-2, 2, 5)), -1).reshape(-1, 2),
        np.random.default_rng(0).normal(scale=1.5, size=(15, 2)),
    ]
).astype(np.float32)


def test_the_browsers_forward_pass_equals_the_engines_for_every_activation(
    open_page, activations_page
):
    seen = open_page(activations_page.path)
    assert [job["name"] for job in seen.call("bplab.info()")] == list(ACTIVATION_NAMES)
    for job_index, (architecture, trajectory) in enumerate(activations_page.trajectories):
        for cell, snapshot in ((0, 0), (1, 2), (2, 4), (3, 5)):
            in_browser = np.array(
                seen.call(
                    "([cell, snapshot, points, job]) => bplab.forward(cell, snapshot, points, job)",
                    [cell, snapshot, POINTS.tolist(), job_index],
                )
            )
            params = params_from_arrays(trajectory, (cell // 2, cell % 2, snapshot))
            expected = np.asarray(forward(params, POINTS, layer_activations(architecture)))
            np.testing.assert_allclose(
                in_browser,
                expected,
                rtol=TOLERANCE,
                atol=TOLERANCE,
                err_msg=f"{architecture.hidden_activation}, cell {cell}, snapshot {snapshot}",
            )
    _clean(seen, activations_page.path)


def test_the_explorer_of_a_tracked_grid_computes_what_its_trajectory_holds(open_page, built, store):
    """The whole path: a run's trajectory.npz in MLflow, read back by bplab-report."""
    from backprop_lab import tracking

    path = built / "grid_study" / "report" / "explorer.html"
    seen = open_page(path)
    folder = path.parent.parent / "downloaded"
    artifact = tracking.client(store.uri).download_artifacts(
        store.grid.run_id, "trajectory.npz", str(folder)
    )
    with np.load(artifact) as arrays:
        trajectory = {key: arrays[key] for key in arrays.files}
    activations = layer_activations(Architecture((2, 2, 1)))
    for cell, snapshot in ((0, 0), (1, 10), (2, 25), (3, len(trajectory["epochs"]) - 1)):
        in_browser = seen.call(
            "([cell, snapshot, points]) => bplab.forward(cell, snapshot, points)",
            [cell, snapshot, POINTS.tolist()],
        )
        params = params_from_arrays(trajectory, (cell // 2, cell % 2, snapshot))
        expected = np.asarray(forward(params, POINTS, activations))
        np.testing.assert_allclose(np.array(in_browser), expected, rtol=TOLERANCE, atol=TOLERANCE)
    _clean(seen, path)


# ---------------------------------------------------------------------------------------------
# Behaviour


def _shot(seen: Page, selector: str, index: int = 0) -> bytes:
    return seen.page.locator(selector).nth(index).screenshot()


def test_the_slider_moves_the_picture(open_page, built):
    path = built / "grid_study" / "report" / "explorer.html"
    seen = open_page(path)
    state = seen.call("bplab.state()")
    assert state["step"] == state["steps"] - 1  # it opens at the last epoch
    last = (
        _shot(seen, "canvas.plane"),
        _shot(seen, "canvas.diagram"),
        _shot(seen, "canvas.curves"),
    )
    slider = seen.page.locator("#epoch-slider")
    slider.evaluate("(node) => { node.value = '0'; node.dispatchEvent(new Event('input')); }")
    assert seen.call("bplab.state()")["epoch"] == 0
    assert seen.page.locator("#epoch").inner_text().startswith("epoch 0 of 30")
    first = (
        _shot(seen, "canvas.plane"),
        _shot(seen, "canvas.diagram"),
        _shot(seen, "canvas.curves"),
    )
    for before, after in zip(last, first, strict=True):
        assert before != after
    seen.page.locator("#play").click()
    seen.page.wait_for_function("() => bplab.state().step >= 3")
    seen.page.locator("#play").click()
    assert not seen.call("bplab.state()")["playing"]
    _clean(seen, path)


def test_clicking_a_cell_opens_its_network(open_page, built):
    path = built / "grid_study" / "report" / "explorer.html"
    seen = open_page(path)
    state = seen.call("bplab.state()")
    before = _shot(seen, "canvas.diagram")
    # The overview: 2 rates (rows) x 2 seeds (columns) of 26-pixel cells, 52 pixels from the left.
    target = 3 if state["cell"] != 3 else 0
    seen.page.locator("#cells").click(
        position={"x": 52 + (target % 2) * 26 + 13, "y": 4 + (target // 2) * 26 + 13}
    )
    state = seen.call("bplab.state()")
    assert state["cell"] == target and state["panels"][0]["cell"] == target
    assert _shot(seen, "canvas.diagram") != before
    assert "lr 2, seed" in seen.page.locator(".panel h3").inner_text()
    _clean(seen, path)


def test_compared_cells_move_together(open_page, built):
    path = built / "arch_study" / "report" / "explorer.html"
    seen = open_page(path)
    # One seed at two rates in the first job, against the same cell in the second job.
    seen.call("bplab.compare([[0, 0], [0, 2], [1, 0]])")
    assert seen.page.locator(".panel").count() == 3
    seen.call("bplab.setEpoch(5)")
    state = seen.call("bplab.state()")
    assert [panel["epoch"] for panel in state["panels"]] == [state["epoch"]] * 3
    before = [_shot(seen, "canvas.plane", i) for i in range(3)]
    seen.call("bplab.setEpoch(40)")
    state = seen.call("bplab.state()")
    assert [panel["epoch"] for panel in state["panels"]] == [state["epoch"]] * 3 and state[
        "epoch"
    ] > 5
    after = [_shot(seen, "canvas.plane", i) for i in range(3)]
    assert all(b != a for b, a in zip(before, after, strict=True))
    # The button: this cell in every job.
    seen.call("bplab.single()")
    cell = seen.call("bplab.state()")["cell"]
    seen.page.locator("#compare-jobs").click()
    assert seen.call("bplab.state()")["compared"] == [[0, cell], [1, cell]]
    _clean(seen, path)


def test_a_run_named_with_markup_executes_nothing(open_page, tmp_path):
    from backprop_lab.cli import view

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        summary = _train(
            tmp_path,
            uri,
            ["experiment=xor_mlp", "training.epochs=20", "tracking.plots=false"],
            run_name=IMG,
        )
    path = tmp_path / "explorer.html"
    assert view.run([summary.run_id, "--out", str(path), "--tracking-uri", uri]) == 0
    seen = open_page(path)
    assert seen.page.locator("img").count() == 0
    assert IMG in seen.page.locator("header").inner_text()
    seen.page.wait_for_timeout(300)
    _clean(seen, path)


def test_it_runs_where_mlflows_artifact_viewer_puts_it(browser, built):
    """MLflow's UI shows an HTML artifact in ``<iframe sandbox="allow-scripts">`` from a blob:
    URL: an opaque origin, scripts allowed, nothing else."""
    html = (built / "grid_study" / "report" / "explorer.html").read_text()
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.set_content("<!DOCTYPE html><html><body></body></html>")
    page.evaluate(
        """(html) => {
            const frame = document.createElement("iframe");
            frame.setAttribute("sandbox", "allow-scripts");
            frame.width = 1200;
            frame.height = 900;
            frame.src = URL.createObjectURL(new Blob([html], { type: "text/html" }));
            document.body.append(frame);
        }""",
        html,
    )
    page.wait_for_function("() => document.querySelector('iframe').contentWindow !== null")
    page.wait_for_timeout(500)
    frame = page.frames[1]
    frame.wait_for_function("() => window.bplab !== undefined")
    frame.evaluate("() => window.bplab.ready")
    state = frame.evaluate("() => { bplab.setEpoch(3); return bplab.state(); }")
    assert state["epoch"] == 3 and state["panels"][0]["snapshot"] == 3
    assert frame.locator("canvas.plane").count() == 1
    assert errors == []
    context.close()


# ---------------------------------------------------------------------------------------------
# The committed studies


STUDY_EXPLORERS = sorted((REPO / "experiments").glob("*/report/explorer.html"))


@pytest.mark.parametrize("path", STUDY_EXPLORERS, ids=[p.parts[-3] for p in STUDY_EXPLORERS])
def test_each_committed_study_explorer_opens_cleanly_and_is_under_3_mb(open_page, path):
    assert path.stat().st_size < 3_000_000
    seen = open_page(path)
    info = seen.call("bplab.info()")
    assert info and all(job["cells"] >= 1 for job in info)
    seen.call("bplab.setEpoch(0)")
    _clean(seen, path)


def test_the_readme_screenshot(open_page, tmp_path):
    """The README's picture of the explorer: the playground study, three settings compared."""
    path = REPO / "experiments" / "playground" / "report" / "explorer.html"
    if not path.is_file():
        pytest.skip("the playground study has no explorer yet (make demo)")
    seen = open_page(path, width=1500, height=1100)
    labels = [job["label"] for job in seen.call("bplab.info()")]
    spiral = [i for i, label in enumerate(labels) if "spiral" in label]
    seen.call("(job) => bplab.selectJob(job)", (spiral or [0])[0])
    seen.call("(jobs) => bplab.compare(jobs.map((job) => [job, 0]))", spiral[:3] or [0])
    seen.call("bplab.setEpoch(bplab.state().steps - 1)")
    target = (
        REPO / "docs" / "explorer.png"
        if os.environ.get("BPLAB_UPDATE_SCREENSHOT")
        else tmp_path / "explorer.png"
    )
    target.parent.mkdir(exist_ok=True)
    seen.page.screenshot(path=str(target), full_page=False)
    assert target.stat().st_size > 10_000
    _clean(seen, path)
