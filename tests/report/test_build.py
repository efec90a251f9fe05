"""Reports built from the shared store: files, content, escaping and determinism."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from report_store import EVIL_NAME, EXPERIMENTS, build_reports, report_texts

from backprop_lab import tracking
from backprop_lab.report.formats import fmt_number, fmt_percent, fmt_rate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM = Path("/usr/bin/chromium")


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
    markdown, page = report_texts(built, name)
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
    markdown, page = report_texts(built, "seed_example")
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
    markdown, _ = report_texts(built, "xor_mlp")
    client = tracking.client(store.uri)
    path = client.download_artifacts(store.latest.run_id, "history.csv", str(tmp_path))
    history = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    run = client.get_run(store.latest.run_id)
    initial, final = run.data.metrics["initial_loss"], history[-1, 1]
    fell = int(np.sum(history[:, 1] < np.concatenate([[initial], history[:-1, 1]])))
    span = f"{fmt_number(initial)} → {fmt_number(final)}"
    expected = (
        f"loss fell in every one of 30 epochs: {span}"
        if fell == 30
        else f"loss fell in {fell} of 30 epochs: {span}"
    )
    assert expected in markdown
    assert f"| {fmt_number(final)} |" in markdown


def test_only_the_latest_top_level_run_is_reported(store, built):
    markdown, page = report_texts(built, "xor_mlp")
    assert store.latest.run_id in markdown
    assert store.older.run_id not in markdown and store.older.run_id not in page
    assert "1 other top-level run of this experiment was not used" in markdown


def test_grid_table_matches_the_logged_grid(store, built, tmp_path):
    markdown, _ = report_texts(built, "grid_study")
    grid = _grid_npz(store, store.grid.run_id, tmp_path)
    for r, rate in enumerate(grid["learning_rates"]):
        solved = int(grid["solved"][r].sum())
        finals = grid["loss"][r, :, -1]
        median = fmt_number(float(np.median(finals[np.isfinite(finals)])))
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {fmt_rate(rate)}"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == "2"
        assert cells[2] == f"{solved} ({fmt_percent(solved / 2)})"
        assert cells[5] == median
    total = int(grid["solved"].sum())
    assert f"{total} of 4 cells classify all 4 training rows" in markdown


def test_a_multirun_report_uses_its_children_and_compares_them(store, built):
    markdown, page = report_texts(built, "arch_study")
    for child in store.children:
        assert child.run_id in markdown
    assert store.parent in markdown
    assert "bplab-train -m experiment=xor_mlp" in markdown
    # xor_mlp's preset keeps the schema's report.job_noun, "job".
    assert "Success by job" in markdown
    assert "hidden_sizes=[2]" in page and "hidden_sizes=[3]" in page
    assert "4 grid_row child runs" in markdown


def test_the_resolved_config_is_in_a_details_block(built):
    markdown, page = report_texts(built, "grid_study")
    assert "<details><summary>Resolved config" in page
    assert "```yaml\nname: xor_mlp" in markdown


# ---------------------------------------------------------------------------------------------
# HTML: self-contained and escaped


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_html_is_self_contained(built, name):
    _, page = report_texts(built, name)
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
    markdown, page = report_texts(built, "xor_mlp")
    assert EVIL_NAME not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # In Markdown the name appears as text (escaped) or inside code, which renders literally.
    outside_code = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL))
    assert "<script" not in outside_code
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in outside_code
    index = (built / "index.html").read_text()
    assert EVIL_NAME not in index


# ---------------------------------------------------------------------------------------------
# Determinism and rebuilding


def test_building_twice_gives_identical_files(store, built, tmp_path):
    assert build_reports(store.uri, tmp_path / "again") == 0
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
    assert build_reports(store.uri, out, "grid_study") == 0
    assert not stale.exists()
    assert [path.name for path in (out / "grid_study").iterdir()] == ["report"]
    index = (out / "index.md").read_text()
    assert "grid_study/report/report.md" in index and "seed_example" not in index


def test_the_index_keeps_reports_built_earlier_in_preset_order(store, tmp_path):
    out = tmp_path / "out"
    assert build_reports(store.uri, out, "seed_example") == 0
    assert build_reports(store.uri, out, "xor_mlp", "arch_study") == 0
    index = (out / "index.md").read_text()
    # seed_example, kept from the first build, comes first (report.order 1 in its preset); the
    # others come from xor_mlp's preset (order 3), ties sorted by name.
    positions = [index.index(f"[{name}]") for name in ("seed_example", "arch_study", "xor_mlp")]
    assert positions == sorted(positions)


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
