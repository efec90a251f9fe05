"""Tests for backprop_lab.report: reports rebuilt from a small temporary MLflow store.

The store is filled once per module by :func:`backprop_lab.pipeline.execute` on tiny configs:
the worked example, two single XOR runs (the older one must be ignored), a small grid, and a
hand-made multirun of two grids. Expected numbers come from the article (SEED-NOTES §5) or are
recomputed here from the runs' own artifacts.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf

from backprop_lab import pipeline, report, tracking
from backprop_lab.tracking import TAG_PREFIX

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "conf"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL_NAME = "<script>alert(1)</script>"
GRID = ["sweep.learning_rates=[0.5,2.0]", "sweep.seeds=2", "training.epochs=30"]
EXPERIMENTS = ("seed_example", "xor_mlp", "grid_study", "arch_study")
CHROMIUM = Path("/usr/bin/chromium")


def _compose(overrides: list[str]):
    """The ``compose`` fixture's logic, for the module-scoped store."""
    from hydra import compose, initialize_config_dir

    from backprop_lab.config import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=list(overrides))


def _train(
    root: Path,
    uri: str,
    overrides: list[str],
    *,
    extra: list[str] = (),
    run_name: str | None = None,
    parent: str | None = None,
):
    cfg = _compose([*overrides, *extra])
    if run_name is not None:
        # Set after composing: Hydra's override grammar has no use for angle brackets.
        cfg.tracking.run_name = run_name
    (root / "outputs").mkdir(exist_ok=True)
    folder = tempfile.mkdtemp(dir=root / "outputs")
    return pipeline.execute(
        cfg, output_dir=folder, overrides=overrides, parent_run_id=parent, tracking_uri=uri
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        _train(root, uri, ["experiment=seed_example"])
        older = _train(root, uri, ["experiment=xor_mlp", "training.epochs=30"])
        latest = _train(root, uri, ["experiment=xor_mlp", "training.epochs=30"], run_name=EVIL_NAME)
        grid = _train(
            root, uri, ["experiment=xor_mlp", *GRID], extra=["tracking.experiment_name=grid_study"]
        )
        # A multirun as the Hydra callback records it: a parent run, then one child per job.
        tracking.ensure_experiment(uri, "arch_study")
        parent = tracking.RunRecord(
            folder=str(root / "parent"),
            experiment_name="arch_study",
            run_name="multirun experiment=xor_mlp",
            tracking_uri=uri,
            tags={TAG_PREFIX + "kind": "multirun", TAG_PREFIX + "overrides": "experiment=xor_mlp"},
        )
        tracking.create_run(parent)
        children = [
            _train(
                root,
                uri,
                [f"model.hidden_sizes={sizes}", "experiment=xor_mlp", *GRID],
                extra=["tracking.experiment_name=arch_study"],
                parent=parent.run_id,
            )
            for sizes in ("[2]", "[3]")
        ]
        tracking.client(uri).set_terminated(parent.run_id, status="FINISHED")
        yield SimpleNamespace(
            root=root,
            uri=uri,
            older=older,
            latest=latest,
            grid=grid,
            parent=parent.run_id,
            children=children,
        )


def _build(store, out: Path, *experiments: str) -> int:
    argv = ["--out", str(out), "--tracking-uri", store.uri]
    for name in experiments:
        argv += ["--experiment", name]
    return report.main(argv)


@pytest.fixture(scope="module")
def built(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert _build(store, out) == 0
    return out


def _texts(built: Path, name: str) -> tuple[str, str]:
    folder = built / name / "report"
    return (folder / "report.md").read_text(), (folder / "report.html").read_text()


def _grid_npz(store, run_id: str, tmp_path: Path) -> dict[str, np.ndarray]:
    path = tracking.client(store.uri).download_artifacts(run_id, "grid.npz", str(tmp_path))
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


# ---------------------------------------------------------------------------------------------
# Files


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_gets_markdown_html_and_valid_png_figures(built, name):
    import matplotlib.image

    folder = built / name / "report"
    markdown, page = _texts(built, name)
    figures = sorted((folder / "figures").glob("*.png"))
    # The worked example trains one epoch: a one-point loss curve is not drawn.
    assert figures or name == "seed_example", f"{name} has no figures"
    for path in figures:
        assert path.read_bytes().startswith(PNG_SIGNATURE), path
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 50 and image.shape[1] > 50, path
    referenced = sorted(set(re.findall(r"\]\(figures/([^)]+\.png)\)", markdown)))
    assert referenced == [path.name for path in figures]
    assert page.count("<img ") == len(figures)
    assert f"# {name}" in markdown and f"<h1>{name}</h1>" in page


def test_the_index_links_every_report(built):
    index_html = (built / "index.html").read_text()
    index_md = (built / "index.md").read_text()
    for name in EXPERIMENTS:
        assert f'href="{name}/report/report.html"' in index_html
        assert f"]({name}/report/report.md)" in index_md


def test_figures_of_a_grid_and_a_single_run(built):
    grid_figures = {
        path.name for path in (built / "grid_study" / "report" / "figures").glob("*.png")
    }
    assert {"job01_loss_by_learning_rate.png", "job01_success_by_learning_rate.png"} <= grid_figures
    assert any(name.startswith("job01_boundary_") for name in grid_figures)
    single_figures = {
        path.name for path in (built / "xor_mlp" / "report" / "figures").glob("*.png")
    }
    assert single_figures == {"job01_loss_curve.png", "job01_boundary.png"}
    arch_figures = {
        path.name for path in (built / "arch_study" / "report" / "figures").glob("*.png")
    }
    assert "success_by_job.png" in arch_figures
    assert {"job01_loss_by_learning_rate.png", "job02_loss_by_learning_rate.png"} <= arch_figures


# ---------------------------------------------------------------------------------------------
# Content


def test_seed_example_report_recomputes_the_article_step_and_compares_it_with_the_logged_weights(
    built,
):
    markdown, page = _texts(built, "seed_example")
    for text in (markdown, page):
        # SEED-NOTES §4–5: h1, h2 and the two updated weights.
        for number in ("0.5399", "0.4638", "0.3941", "0.1055"):
            assert number in text, number
        assert "w(h1→o1) 0.3700 → 0.3941" in text
        assert "w(x1→h1) 0.1000 → 0.1055" in text
        assert "logged (weights.json)" in text
    row = next(line for line in markdown.splitlines() if line.startswith("| w(h1→o1)"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    updated, logged, difference = cells[6], cells[7], float(cells[8])
    assert updated == logged == "0.3941"
    assert abs(difference) < 1e-6
    assert "matches the logged weights.json for all 12 parameters" in markdown


def test_single_run_findings_and_table_come_from_its_history(store, built, tmp_path):
    markdown, _ = _texts(built, "xor_mlp")
    client = tracking.client(store.uri)
    path = client.download_artifacts(store.latest.run_id, "history.csv", str(tmp_path))
    history = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    run = client.get_run(store.latest.run_id)
    initial, final = run.data.metrics["initial_loss"], history[-1, 1]
    fell = int(np.sum(history[:, 1] < np.concatenate([[initial], history[:-1, 1]])))
    span = f"{report.fmt_number(initial)} → {report.fmt_number(final)}"
    expected = (
        f"loss fell in every one of 30 epochs: {span}"
        if fell == 30
        else f"loss fell in {fell} of 30 epochs: {span}"
    )
    assert expected in markdown
    assert f"| {report.fmt_number(final)} |" in markdown


def test_only_the_latest_top_level_run_is_reported(store, built):
    markdown, page = _texts(built, "xor_mlp")
    assert store.latest.run_id in markdown
    assert store.older.run_id not in markdown and store.older.run_id not in page
    assert "1 other top-level run of this experiment was not used" in markdown


def test_grid_table_matches_the_logged_grid(store, built, tmp_path):
    markdown, _ = _texts(built, "grid_study")
    grid = _grid_npz(store, store.grid.run_id, tmp_path)
    for r, rate in enumerate(grid["learning_rates"]):
        solved = int(grid["solved"][r].sum())
        finals = grid["loss"][r, :, -1]
        median = report.fmt_number(float(np.median(finals[np.isfinite(finals)])))
        row = next(
            line for line in markdown.splitlines() if line.startswith(f"| {report.fmt_rate(rate)}")
        )
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "2"
        assert cells[2] == f"{solved} ({report.fmt_percent(solved / 2)})"
        assert cells[5] == median
    total = int(grid["solved"].sum())
    assert f"{total} of 4 cells classify all 4 training rows" in markdown


def test_a_multirun_report_uses_its_children_and_compares_them(store, built):
    markdown, page = _texts(built, "arch_study")
    for child in store.children:
        assert child.run_id in markdown
    assert store.parent in markdown
    assert "bplab-train -m experiment=xor_mlp" in markdown
    assert "Success by job" in markdown
    assert "hidden_sizes=[2]" in page and "hidden_sizes=[3]" in page
    assert "4 grid_row child runs" in markdown


def test_the_resolved_config_is_in_a_details_block(built):
    markdown, page = _texts(built, "grid_study")
    assert "<details><summary>Resolved config" in page
    assert "```yaml\nname: xor_mlp" in markdown


# ---------------------------------------------------------------------------------------------
# HTML: self-contained and escaped


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_html_is_self_contained(built, name):
    _, page = _texts(built, name)
    for html_page in (page, (built / "index.html").read_text()):
        lowered = html_page.lower()
        for forbidden in ('src="http', 'href="http', "<link", "<script", "url(", "@import"):
            assert forbidden not in lowered, forbidden
    sources = re.findall(r'<img [^>]*src="([^"]*)"', page)
    assert sources or name == "seed_example"
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)


def test_values_from_mlflow_are_escaped(built):
    markdown, page = _texts(built, "xor_mlp")
    assert EVIL_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # In Markdown the name appears as text (escaped) or inside code, which renders literally.
    outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))
    assert "<script" not in outside_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in outside_code
    index = (built / "index.html").read_text()
    assert EVIL_NAME not in index


# ---------------------------------------------------------------------------------------------
# Determinism and bad input


def test_building_twice_gives_identical_files(store, built, tmp_path):
    assert _build(store, tmp_path / "again") == 0
    first = sorted(path.relative_to(built) for path in built.rglob("*") if path.is_file())
    second = sorted(
        path.relative_to(tmp_path / "again")
        for path in (tmp_path / "again").rglob("*")
        if path.is_file()
    )
    assert first == second
    for relative in first:
        assert (built / relative).read_bytes() == (tmp_path / "again" / relative).read_bytes(), (
            relative
        )


def test_rebuilding_replaces_the_old_report(store, tmp_path):
    out = tmp_path / "out"
    stale = out / "grid_study" / "report" / "figures" / "stale.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG_SIGNATURE)
    assert _build(store, out, "grid_study") == 0
    assert not stale.exists()
    assert [path.name for path in (out / "grid_study").iterdir()] == ["report"]
    index = (out / "index.md").read_text()
    assert "grid_study/report/report.md" in index and "seed_example" not in index


def test_unknown_experiment_is_one_line_and_exit_2(store, tmp_path, capsys):
    assert _build(store, tmp_path / "out", "grid_study", "no_such_study") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith("bplab-report: error: ")
    assert "no_such_study" in error
    for name in EXPERIMENTS:
        assert name in error
    assert not (tmp_path / "out").exists()


def test_a_store_without_runs_is_exit_2(store_uri, tmp_path, capsys):
    # No database file at all: nothing is created.
    assert report.main(["--out", str(tmp_path / "out"), "--tracking-uri", store_uri]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not Path(store_uri[len("sqlite:///") :]).exists()
    # A database with an experiment but no runs.
    tracking.ensure_experiment(store_uri, "empty")
    assert report.main(["--out", str(tmp_path / "out"), "--tracking-uri", store_uri]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bplab-report: error: ") and "has no runs" in error


# ---------------------------------------------------------------------------------------------
# Findings on a synthetic grid (independent of training)


def _synthetic_job(compose, success: list[float], rates: list[float]) -> report.Job:
    from backprop_lab.config import Config, build_architecture, build_dataset

    cfg = OmegaConf.merge(
        OmegaConf.structured(Config), compose(["experiment=learning_rates", "data=xor"])
    )
    seeds, epochs = 4, 10
    solved = np.array(
        [[s < round(rate_success * seeds) for s in range(seeds)] for rate_success in success]
    )
    loss = np.where(solved[..., None], 0.001, 0.2) * np.ones((len(rates), seeds, epochs))
    grid = {
        "learning_rates": np.array(rates),
        "seeds": np.arange(seeds),
        "loss": loss,
        "accuracy": np.where(solved[..., None], 1.0, 0.75) * np.ones_like(loss),
        "test_loss": np.full_like(loss, np.nan),
        "test_accuracy": np.full_like(loss, np.nan),
        "solved": solved,
        "improved": np.ones_like(solved),
        "diverged_epoch": np.zeros(solved.shape, int),
        "epochs_to_target": np.where(solved, 5, 0),
        "initial_loss": np.full(solved.shape, 0.3),
    }
    dataset = build_dataset(cfg)
    return report.Job(
        run=None,
        kind="grid",
        label="xor",
        cfg=cfg,
        grid=grid,
        dataset=dataset,
        architecture=build_architecture(cfg, dataset),
    )


def test_regime_finding_names_the_rates_that_never_converged(compose):
    rates = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    job = _synthetic_job(compose, [0, 0, 0.5, 1.0, 0.25, 0], rates)
    found = report.grid_findings(job, several=False)
    # 2 + 4 + 1 of the 4 seeds at 0.1, 1 and 10.
    assert found[0].startswith("7 of 24 cells converged (loss ≤ 0.01, all rows right) (29%)")
    assert "best learning rate 1: 4 of 4 seeds" in found[0]
    assert (
        found[1]
        == "rates ≤ 0.01 and ≥ 100 never converged within 10 epochs; best rate 1 converged in 100% of seeds"
    )


def test_a_grid_that_never_succeeds_reports_its_best_accuracy(compose):
    job = _synthetic_job(compose, [0, 0, 0], [0.1, 1.0, 10.0])
    (sentence,) = report.grid_findings(job, several=True)
    assert sentence.startswith("xor: 0 of 12 cells converged")
    assert "best accuracy 75%" in sentence
    assert "best learning rate" not in sentence


def test_number_formats_are_fixed():
    assert report.fmt_number(0.39411) == "0.3941"
    assert report.fmt_number(-0.00001) == "-1.00e-05"
    assert report.fmt_number(-0.00004, 4) == "-4.00e-05"
    assert report.fmt_number(float("nan")) == "—"
    assert report.fmt_number(-1e-12 * 0) == "0.0000"
    assert report.fmt_rate(0.0031622776) == "0.00316"
    assert report.fmt_percent(0.66) == "66%"


# ---------------------------------------------------------------------------------------------
# In a browser


@pytest.mark.slow
def test_every_figure_loads_in_headless_chromium(built, tmp_path):
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(
            "needs /usr/bin/chromium (Debian package `chromium`: apt-get install -y chromium)"
        )
    probe = (
        "<script>window.addEventListener('load', function () {"
        " var images = Array.from(document.images);"
        " var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;"
        " document.body.setAttribute('data-images', loaded + '/' + images.length); });</script>"
    )
    for name in ("xor_mlp", "grid_study", "arch_study"):
        page = (built / name / "report" / "report.html").read_text()
        copy = tmp_path / f"{name}.html"
        copy.write_text(page.replace("</body>", probe + "</body>"))
        done = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                copy.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        match = re.search(r'data-images="(\d+)/(\d+)"', done.stdout)
        assert match, (
            f"{name}: no result from chromium (exit {done.returncode}): {done.stderr[-2000:]}"
        )
        loaded, total = int(match.group(1)), int(match.group(2))
        assert total == page.count("<img ") > 0
        assert loaded == total, f"{name}: only {loaded} of {total} figures loaded"


def test_run_picks_an_older_sweep_to_report_on(store, tmp_path, capsys):
    out = tmp_path / "older"
    code = report.main(
        [
            "--tracking-uri",
            store.uri,
            "--out",
            str(out),
            "--experiment",
            "xor_mlp",
            "--run",
            store.older.run_id,
        ]
    )
    assert code == 0
    markdown = (out / "xor_mlp" / "report" / "report.md").read_text()
    assert store.older.run_id in markdown and store.latest.run_id not in markdown
    capsys.readouterr()
    assert (
        report.main(["--tracking-uri", store.uri, "--out", str(out), "--run", store.older.run_id])
        == 2
    )
    assert "needs exactly one --experiment" in capsys.readouterr().err
    assert (
        report.main(
            [
                "--tracking-uri",
                store.uri,
                "--out",
                str(out),
                "--experiment",
                "xor_mlp",
                "--run",
                "nope",
            ]
        )
        == 2
    )
