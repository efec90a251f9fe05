"""``bplab-report``: a research report per experiment, rebuilt from the MLflow store alone.

For each experiment the report uses the most recent top-level run (a multirun's parent, or a
single or grid run without a parent) and every run below it, reads their artifacts
(``config.yaml``, ``history.csv``, ``weights.json``/``weights.npz``, ``grid.npz``) and writes

* ``<out>/<experiment>/report/report.md`` with its figures in ``report/figures/*.png``;
* ``<out>/<experiment>/report/report.html``, self-contained (figures as ``data:`` URIs, inline
  CSS, no scripts), with every value from MLflow HTML-escaped;
* ``<out>/index.md`` and ``<out>/index.html`` linking every experiment's report.

Every number is computed from the runs, and the same runs give the same bytes: everything is
sorted, floats have fixed formats, and the figures carry no timestamps (see ``plots``). Only
run ids and start times tie a report to one particular set of runs.

The page is built once as a list of blocks (:class:`Heading`, :class:`Paragraph`,
:class:`Table`, ...) and rendered twice, to Markdown and to HTML, so the two always agree.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from backprop_lab.errors import BackpropLabError

PROG = "bplab-report"
KIND_TAG = "backprop_lab.kind"
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"

# What a job of a multirun is called in the findings, by study.
_JOB_NOUNS = {
    "xor_architectures": "architecture",
    "perceptron_gates": "gate",
    "threshold_vs_sigmoid": "arm",
    "learning_rates": "data set",
    "playground": "setting",
}


# ---------------------------------------------------------------------------------------------
# Number formats: fixed, so the same runs give the same text


def fmt_number(value: float | None, decimals: int = 4) -> str:
    """A float with fixed decimals; scientific notation for very small or large magnitudes."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    value = float(value)
    if value != 0 and (abs(value) < 10 ** -(decimals - 1) or abs(value) >= 1e5):
        return f"{value:.{max(decimals - 2, 1)}e}"
    text = f"{value:.{decimals}f}"
    # "-0.0000" reads as a sign error: show 0.
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_value(value: float) -> str:
    """A value taken from a config or a data set (0.01, 1.2, -0.5): shortest exact form."""
    return f"{float(value):g}"


def fmt_rate(rate: float) -> str:
    """A learning rate, as the run names and figures print it."""
    return f"{float(rate):.3g}"


def fmt_percent(fraction: float | None) -> str:
    if fraction is None or not math.isfinite(float(fraction)):
        return "—"
    return f"{100 * float(fraction):.0f}%"


def fmt_time(milliseconds: int | None) -> str:
    if not milliseconds:
        return "—"
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------------------------
# The page as blocks, rendered to Markdown and to HTML


class Code(NamedTuple):
    """Inline code (a run id, a command)."""

    text: str


class Link(NamedTuple):
    text: str
    markdown_href: str
    html_href: str


Span = str | Code | Link
Inline = str | Code | Link | tuple


class Heading(NamedTuple):
    level: int
    text: str
    anchor: str = ""


class Paragraph(NamedTuple):
    content: Inline


class Bullets(NamedTuple):
    items: list


class Table(NamedTuple):
    headers: list[str]
    rows: list[list]
    caption: str = ""
    # Columns aligned right (numbers).
    numeric: tuple[int, ...] = ()


class Figure(NamedTuple):
    filename: str
    caption: str


class Figures(NamedTuple):
    """Figures shown side by side in HTML."""

    figures: list[Figure]


class CodeBlock(NamedTuple):
    """A block of text: fenced in Markdown; in HTML inside ``<details>`` when ``collapsed``."""

    summary: str
    text: str
    language: str = ""
    collapsed: bool = False


Block = Heading | Paragraph | Bullets | Table | Figures | CodeBlock


def _spans(content: Inline) -> list[Span]:
    # Code and Link are NamedTuples: a tuple of spans is any other tuple.
    return (
        list(content)
        if isinstance(content, tuple) and not isinstance(content, Code | Link)
        else [content]
    )


def _markdown_text(text: str) -> str:
    """Plain text for Markdown: characters that would turn into markup are escaped."""
    text = str(text).replace("\\", "\\\\")
    for character in "`*[]|":
        text = text.replace(character, "\\" + character)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _markdown_code(text: str) -> str:
    text = str(text).replace("\n", " ").replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if longest else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _markdown_inline(content: Inline) -> str:
    parts = []
    for span in _spans(content):
        if isinstance(span, Code):
            parts.append(_markdown_code(span.text))
        elif isinstance(span, Link):
            parts.append(f"[{_markdown_text(span.text)}]({span.markdown_href})")
        else:
            parts.append(_markdown_text(span))
    return "".join(parts)


def _html_inline(content: Inline) -> str:
    parts = []
    for span in _spans(content):
        if isinstance(span, Code):
            parts.append(f"<code>{html.escape(span.text)}</code>")
        elif isinstance(span, Link):
            parts.append(f'<a href="{html.escape(span.html_href)}">{html.escape(span.text)}</a>')
        else:
            parts.append(html.escape(str(span)))
    return "".join(parts)


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=2)
    return "`" * (longest + 1)


def render_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _markdown_text(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_markdown_inline(block.content), ""]
        elif isinstance(block, Bullets):
            lines += [f"- {_markdown_inline(item)}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"**{_markdown_text(block.caption)}**", ""]
            lines.append(
                "| " + " | ".join(_markdown_text(header) for header in block.headers) + " |"
            )
            lines.append(
                "| "
                + " | ".join(
                    "---:" if index in block.numeric else "---"
                    for index in range(len(block.headers))
                )
                + " |"
            )
            lines += [
                "| " + " | ".join(_markdown_inline(cell) for cell in row) + " |"
                for row in block.rows
            ]
            lines.append("")
        elif isinstance(block, Figures):
            for figure in block.figures:
                alt = _markdown_text(figure.caption)
                lines += [f"![{alt}](figures/{figure.filename})", "", f"*{alt}*", ""]
        elif isinstance(block, CodeBlock):
            fence = _fence(block.text)
            lines += [
                f"**{_markdown_text(block.summary)}**",
                "",
                fence + block.language,
                block.text.rstrip("\n"),
                fence,
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.5; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 90%; }
code { background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; padding: .8em 1em; border-radius: 6px; overflow-x: auto; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: .5em 0 1.2em; font-size: 92%; }
caption { text-align: left; font-weight: 600; padding-bottom: .3em; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0 0 1em; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 88%; color: #57606a; max-width: 600px; }
details { margin: .5em 0 1em; }
summary { cursor: pointer; font-weight: 600; }
nav ul { columns: 2; }
ul.findings li { margin-bottom: .3em; }
"""


def _html_page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def render_html(title: str, blocks: Sequence[Block], figure_dir: Path | None = None) -> str:
    """A self-contained page: figures from ``figure_dir`` are embedded as base64 PNGs."""
    body: list[str] = []
    sections = [
        block
        for block in blocks
        if isinstance(block, Heading) and block.level == 2 and block.anchor
    ]
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
            body.append(f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>")
            if block.level == 1 and len(sections) > 3:
                links = "".join(
                    f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.text)}</a></li>'
                    for s in sections
                )
                body.append(f"<nav><ul>{links}</ul></nav>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_html_inline(block.content)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
            body.append(f'<ul class="findings">{items}</ul>')
        elif isinstance(block, Table):
            rows = [f"<caption>{html.escape(block.caption)}</caption>"] if block.caption else []
            rows.append(
                "<thead><tr>"
                + "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                + "</tr></thead><tbody>"
            )
            for row in block.rows:
                cells = "".join(
                    (
                        f'<td class="num">{_html_inline(cell)}</td>'
                        if index in block.numeric
                        else f"<td>{_html_inline(cell)}</td>"
                    )
                    for index, cell in enumerate(row)
                )
                rows.append(f"<tr>{cells}</tr>")
            body.append("<table>" + "".join(rows) + "</tbody></table>")
        elif isinstance(block, Figures):
            figures = []
            for figure in block.figures:
                data = (
                    base64.b64encode((figure_dir / figure.filename).read_bytes()).decode("ascii")
                    if figure_dir
                    else ""
                )
                caption = html.escape(figure.caption)
                figures.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                    f"<figcaption>{caption}</figcaption></figure>"
                )
            body.append('<div class="figures">' + "".join(figures) + "</div>")
        elif isinstance(block, CodeBlock):
            language = f' class="language-{html.escape(block.language)}"' if block.language else ""
            pre = f"<pre><code{language}>{html.escape(block.text)}</code></pre>"
            if block.collapsed:
                body.append(
                    f"<details><summary>{html.escape(block.summary)}</summary>{pre}</details>"
                )
            else:
                body.append(f"<p><strong>{html.escape(block.summary)}</strong></p>{pre}")
    return _html_page(title, body)


# ---------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class Selection:
    """The runs a report uses: the latest top-level run and everything below it."""

    experiment_name: str
    top: Any
    descendants: list
    ignored_top_level: int

    @property
    def runs(self) -> list:
        return [self.top, *self.descendants]


def _kind(run) -> str:
    return run.data.tags.get(KIND_TAG, "single")


def _run_order(run) -> tuple:
    return (run.info.start_time or 0, run.info.run_id)


def _all_runs(mlflow_client, experiment_id: str) -> list:
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment_id], max_results=5000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def select_runs(mlflow_client, experiment, run_id: str | None = None) -> Selection | None:
    """The most recent top-level run of ``experiment`` (or the one holding ``run_id``) and all
    its descendants (None: no runs)."""
    runs = _all_runs(mlflow_client, experiment.experiment_id)
    known = {run.info.run_id for run in runs}
    # A run whose parent is gone (deleted) counts as top-level.
    top_level = [run for run in runs if run.data.tags.get(PARENT_TAG) not in known]
    if not top_level:
        return None
    top_level.sort(key=_run_order)
    top = top_level[-1]
    if run_id is not None:
        by_id = {run.info.run_id: run for run in runs}
        if run_id not in by_id:
            raise BackpropLabError(f"experiment {experiment.name!r} has no run {run_id!r}")
        top = by_id[run_id]
        # A child stands for its whole sweep: report from its top-level run.
        while top.data.tags.get(PARENT_TAG) in known:
            top = by_id[top.data.tags[PARENT_TAG]]
    children: dict[str, list] = {}
    for run in runs:
        parent = run.data.tags.get(PARENT_TAG)
        if parent in known:
            children.setdefault(parent, []).append(run)
    descendants, queue = [], [top.info.run_id]
    while queue:
        below = sorted(children.get(queue.pop(0), []), key=_run_order)
        descendants += below
        queue += [run.info.run_id for run in below]
    return Selection(experiment.name, top, descendants, len(top_level) - 1)


def experiments_with_runs(mlflow_client) -> dict[str, Any]:
    """``{name: experiment}`` of every active experiment that has at least one run."""
    found = {}
    for experiment in mlflow_client.search_experiments():
        if mlflow_client.search_runs([experiment.experiment_id], max_results=1):
            found[experiment.name] = experiment
    return found


@dataclass
class Job:
    """A single or grid run of the selection, with its artifacts read back."""

    run: Any
    kind: str
    label: str = ""
    # Short forms for axis labels: what varied, without the keys; and the keys that varied.
    short_label: str = ""
    varied: dict[str, str] = field(default_factory=dict)
    cfg: Any = None
    config_text: str = ""
    overrides: list[str] = field(default_factory=list)
    history: dict[str, np.ndarray] | None = None
    weights_json: dict | None = None
    weights: dict[str, np.ndarray] | None = None
    grid: dict[str, np.ndarray] | None = None
    problems: list[str] = field(default_factory=list)
    dataset: Any = None
    architecture: Any = None

    @property
    def name(self) -> str:
        return self.run.info.run_name or self.run.info.run_id

    @property
    def metrics(self) -> dict[str, float]:
        return self.run.data.metrics

    def metric(self, name: str) -> float:
        return float(self.metrics.get(name, float("nan")))


def _load_job(mlflow_client, run, folder: Path) -> Job:
    """Download and parse a job's artifacts; what is missing or unreadable goes to ``problems``."""
    from omegaconf import OmegaConf

    from backprop_lab.config import Config, build_architecture, build_dataset

    job = Job(run=run, kind=_kind(run))
    run_id = run.info.run_id
    try:
        available = {item.path for item in mlflow_client.list_artifacts(run_id)}
    except Exception as error:  # an artifact store that cannot be read
        job.problems.append(f"its artifacts could not be listed ({type(error).__name__})")
        return job
    target = folder / run_id

    def fetch(name: str) -> Path | None:
        if name not in available:
            return None
        try:
            return Path(mlflow_client.download_artifacts(run_id, name, str(target)))
        except Exception as error:
            job.problems.append(f"{name} could not be downloaded ({type(error).__name__})")
            return None

    config_path = fetch("config.yaml")
    if config_path is None:
        job.problems.append("it has no config.yaml")
    else:
        job.config_text = config_path.read_text()
        try:
            job.cfg = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(config_path))
            job.dataset = build_dataset(job.cfg)
            job.architecture = build_architecture(job.cfg, job.dataset)
        except Exception as error:
            job.problems.append(
                f"its config.yaml does not fit this version's schema ({type(error).__name__}: {error})"
            )
            job.cfg = job.dataset = job.architecture = None
    overrides_path = fetch("overrides.yaml")
    if overrides_path is not None:
        job.overrides = [
            str(item) for item in (OmegaConf.to_container(OmegaConf.load(overrides_path)) or [])
        ]
    if job.kind == "grid":
        path = fetch("grid.npz")
        if path is None:
            job.problems.append("it has no grid.npz")
        else:
            with np.load(path) as arrays:
                job.grid = {key: arrays[key] for key in arrays.files}
    else:
        path = fetch("history.csv")
        if path is None:
            job.problems.append("it has no history.csv")
        else:
            with path.open() as table:
                header = table.readline().strip().split(",")
            values = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
            job.history = {
                name: values[:, index] for index, name in enumerate(header) if name != "epoch"
            }
        path = fetch("weights.json")
        if path is not None:
            job.weights_json = json.loads(path.read_text())
        path = fetch("weights.npz")
        if path is not None:
            with np.load(path) as arrays:
                job.weights = {key: arrays[key] for key in arrays.files}
    return job


# ---------------------------------------------------------------------------------------------
# Labels: what varied between the jobs of a multirun


def _override_pairs(overrides: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in overrides:
        if "=" not in item or item.startswith(("experiment=", "tracking.", "hydra", "+tracking.")):
            continue
        key, value = item.split("=", 1)
        pairs.append((key.lstrip("+~"), value))
    return pairs


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
    """``model.hidden_sizes`` → ``hidden_sizes`` where the last part is unambiguous."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {
        key: (short if last.count(short) == 1 else key)
        for key, short in zip(keys, last, strict=True)
    }


def label_jobs(jobs: list[Job]) -> None:
    """Label each job by what varied: its explicit run name, else the overrides that differ."""
    pairs = [dict(_override_pairs(job.overrides)) for job in jobs]
    keys = sorted(
        {key for pair in pairs for key in pair},
        key=lambda key: min(list(p).index(key) for p in pairs if key in p),
    )
    varied = [key for key in keys if len({pair.get(key) for pair in pairs}) > 1]
    short = _short_keys(varied)
    for job, pair in zip(jobs, pairs, strict=True):
        job.varied = {short[key]: pair[key] for key in varied if key in pair}
        explicit = job.cfg is not None and job.cfg.tracking.run_name
        if explicit or len(jobs) == 1 or not job.varied:
            job.label = job.short_label = job.name
        else:
            job.label = ", ".join(f"{key}={value}" for key, value in job.varied.items())
            job.short_label = ", ".join(job.varied.values())
    seen: dict[str, int] = {}
    for job in jobs:
        seen[job.label] = seen.get(job.label, 0) + 1
        if seen[job.label] > 1:
            job.label = f"{job.label} #{seen[job.label]}"
            job.short_label = f"{job.short_label} #{seen[job.label]}"


def varied_keys(jobs: Sequence[Job]) -> list[str]:
    """The short names of the overrides that differ between jobs, in command-line order."""
    return list(dict.fromkeys(key for job in jobs for key in job.varied))


# ---------------------------------------------------------------------------------------------
# Grid statistics


class RateRow(NamedTuple):
    rate: float
    cells: int
    solved: int
    improved: float
    diverged: float
    median_final_loss: float
    reached: int
    median_epochs_to_target: float
    median_accuracy: float
    best_accuracy: float
    best_accuracy_any_epoch: float
    median_test_accuracy: float


def grid_rows(grid: dict[str, np.ndarray]) -> list[RateRow]:
    """Per learning rate: success, improvement, divergence, final loss and epochs to target."""
    rows = []
    finals = grid["loss"][..., -1]
    accuracy = grid["accuracy"][..., -1]
    test_accuracy = (
        grid["test_accuracy"][..., -1]
        if "test_accuracy" in grid
        else np.full_like(accuracy, np.nan)
    )
    with np.errstate(all="ignore"):
        for r, rate in enumerate(grid["learning_rates"]):
            finite = finals[r][np.isfinite(finals[r])]
            reached = grid["epochs_to_target"][r][grid["epochs_to_target"][r] > 0]
            finite_accuracy = accuracy[r][np.isfinite(accuracy[r])]
            finite_test = test_accuracy[r][np.isfinite(test_accuracy[r])]
            rows.append(
                RateRow(
                    rate=float(rate),
                    cells=int(finals.shape[1]),
                    solved=int(grid["solved"][r].sum()),
                    improved=float(grid["improved"][r].mean()),
                    diverged=float((grid["diverged_epoch"][r] > 0).mean()),
                    median_final_loss=float(np.median(finite)) if finite.size else float("nan"),
                    reached=int(reached.size),
                    median_epochs_to_target=float(np.median(reached))
                    if reached.size
                    else float("nan"),
                    median_accuracy=float(np.median(finite_accuracy))
                    if finite_accuracy.size
                    else float("nan"),
                    best_accuracy=float(finite_accuracy.max())
                    if finite_accuracy.size
                    else float("nan"),
                    best_accuracy_any_epoch=float(np.nanmax(grid["accuracy"][r]))
                    if np.isfinite(grid["accuracy"][r]).any()
                    else float("nan"),
                    median_test_accuracy=float(np.median(finite_test))
                    if finite_test.size
                    else float("nan"),
                )
            )
    return rows


def best_rate_index(rows: Sequence[RateRow]) -> int:
    """The rate with the highest success; ties go to the lower median final loss, then the lower rate."""
    from backprop_lab.core.analysis import best_rate_index as _best  # noqa: F401

    class _Row:  # the analysis module's rule on this module's rows
        def __init__(self, row):
            self.success_rate = row.solved / row.cells
            self.median_final_loss = row.median_final_loss

    return _best([_Row(row) for row in rows])


def success_phrase(cfg, num_rows: int | None) -> tuple[str, str]:
    """(what a solved cell did, the verb for it) in the config's own terms."""
    if cfg is None:
        return "solved", "solved"
    training = cfg.training
    if training.success_requires_target_loss:
        rows = (
            "all rows right"
            if training.success_accuracy >= 1.0
            else f"accuracy ≥ {fmt_percent(training.success_accuracy)}"
        )
        return f"converged (loss ≤ {fmt_value(training.target_loss)}, {rows})", "converged"
    if training.success_accuracy >= 1.0 and num_rows:
        return f"classify all {num_rows} training rows", "solved"
    return f"reach {fmt_percent(training.success_accuracy)} training accuracy", "solved"


def _has_test(grid_or_history: dict[str, np.ndarray]) -> bool:
    return "test_accuracy" in grid_or_history and bool(
        np.isfinite(grid_or_history["test_accuracy"]).any()
    )


# ---------------------------------------------------------------------------------------------
# Figures


def _params_of(arrays: dict[str, np.ndarray], num_layers: int, index: tuple = ()):
    """Model params from ``layer{i}_weights``/``layer{i}_biases`` arrays (one cell of a grid)."""
    import jax.numpy as jnp

    from backprop_lab.core.model import Layer

    layers = []
    for i in range(num_layers):
        weights = np.asarray(arrays[f"layer{i}_weights"][index], dtype=np.float32)
        biases = arrays.get(f"layer{i}_biases")
        layers.append(
            Layer(
                jnp.asarray(weights),
                None
                if biases is None
                else jnp.asarray(np.asarray(biases[index], dtype=np.float32)),
            )
        )
    return tuple(layers)


def _draws_boundary(job: Job) -> bool:
    architecture = job.architecture
    return (
        architecture is not None and architecture.num_inputs == 2 and architecture.num_outputs == 1
    )


def _finite_params(arrays: dict[str, np.ndarray], num_layers: int, index: tuple) -> bool:
    return all(
        np.isfinite(arrays[key][index]).all()
        for i in range(num_layers)
        for key in (f"layer{i}_weights", f"layer{i}_biases")
        if key in arrays
    )


def representative_cells(job: Job, rows: Sequence[RateRow]) -> list[tuple[str, int, int]]:
    """``(what, rate index, seed index)``: the first solved seed at the best rate, and a failed cell.

    The failed cell is the first one (best rate first, then the other rates in order) that did
    not solve the task and did not diverge.
    """
    grid = job.grid
    num_layers = len(job.architecture.layer_sizes) - 1
    best = best_rate_index(rows)
    solved = grid["solved"]

    def usable(r: int, s: int) -> bool:
        return grid["diverged_epoch"][r, s] == 0 and _finite_params(grid, num_layers, (r, s))

    cells = []
    for s in range(solved.shape[1]):
        if solved[best, s] and usable(best, s):
            cells.append(("solved", best, s))
            break
    order = [best, *[r for r in range(solved.shape[0]) if r != best]]
    for r in order:
        failed = [s for s in range(solved.shape[1]) if not solved[r, s] and usable(r, s)]
        if failed:
            cells.append(("failed", r, failed[0]))
            break
    return cells


def _lines_note(job: Job) -> str:
    sizes = job.architecture.layer_sizes
    return "; dashed lines are the hidden units' lines" if len(sizes) > 2 and sizes[1] <= 16 else ""


def _figure_name(index: int, what: str) -> str:
    return f"job{index:02d}_{what}.png"


def _job_figures(job: Job, index: int, figure_dir: Path) -> list[Figure]:
    """Draw a job's figures into ``figure_dir``; return them with captions."""
    from backprop_lab import plots

    figures: list[Figure] = []
    if job.kind == "grid" and job.grid is not None:
        grid = job.grid
        rates = grid["learning_rates"]
        name = _figure_name(index, "loss_by_learning_rate")
        plots.grid_loss_curves(rates, grid["loss"], figure_dir / name, title=job.label)
        figures.append(
            Figure(
                name,
                f"{job.label}: median training loss per learning rate with the 25–75% band across {grid['loss'].shape[1]} seeds (log scale).",
            )
        )
        rows = grid_rows(grid)
        if len(rates) > 1:
            name = _figure_name(index, "success_by_learning_rate")
            plots.success_by(
                [fmt_rate(rate) for rate in rates],
                np.array([row.solved / row.cells for row in rows]),
                figure_dir / name,
                xlabel="learning rate",
                log_x_values=rates,
                title=job.label,
            )
            figures.append(
                Figure(name, f"{job.label}: share of seeds solved at each learning rate.")
            )
        if _draws_boundary(job):
            num_layers = len(job.architecture.layer_sizes) - 1
            for what, r, s in representative_cells(job, rows):
                params = _params_of(grid, num_layers, (r, s))
                accuracy = float(grid["accuracy"][r, s, -1])
                detail = f"η={fmt_rate(rates[r])}, seed {int(grid['seeds'][s])}, accuracy {fmt_percent(accuracy)}"
                name = _figure_name(index, f"boundary_{what}")
                plots.network_decision_boundary(
                    job.architecture,
                    params,
                    job.dataset.x_train,
                    job.dataset.y_train,
                    figure_dir / name,
                    title=f"{job.label}\n{what}: {detail}",
                )
                figures.append(
                    Figure(
                        name,
                        f"{job.label}: decision boundary of a {what} cell ({detail}){_lines_note(job)}.",
                    )
                )
    elif job.history is not None:
        # A curve of one epoch is a single point: the table says all there is.
        if len(job.history["loss"]) > 1:
            name = _figure_name(index, "loss_curve")
            plots.loss_curve(job.history, figure_dir / name, title=job.label)
            figures.append(Figure(name, f"{job.label}: loss (log scale) and accuracy per epoch."))
        if _draws_boundary(job) and job.weights is not None and job.metric("diverged") != 1.0:
            num_layers = len(job.architecture.layer_sizes) - 1
            if _finite_params(job.weights, num_layers, ()):
                name = _figure_name(index, "boundary")
                params = _params_of(job.weights, num_layers)
                plots.network_decision_boundary(
                    job.architecture,
                    params,
                    job.dataset.x_train,
                    job.dataset.y_train,
                    figure_dir / name,
                    title=job.label,
                )
                figures.append(
                    Figure(
                        name, f"{job.label}: decision boundary after training{_lines_note(job)}."
                    )
                )
    return figures


# ---------------------------------------------------------------------------------------------
# Tables


_GRID_HEADERS = [
    "learning rate",
    "cells",
    "solved",
    "improved",
    "diverged",
    "median final loss",
    "median epochs to target (cells)",
    "median accuracy",
]


def grid_table(job: Job) -> Table:
    rows = grid_rows(job.grid)
    with_test = _has_test(job.grid)
    headers = _GRID_HEADERS + (["median test accuracy"] if with_test else [])
    table_rows = []
    best = best_rate_index(rows)
    for index, row in enumerate(rows):
        cells = [
            fmt_rate(row.rate) + (" (best)" if index == best else ""),
            str(row.cells),
            f"{row.solved} ({fmt_percent(row.solved / row.cells)})",
            fmt_percent(row.improved),
            fmt_percent(row.diverged),
            fmt_number(row.median_final_loss),
            f"{fmt_number(row.median_epochs_to_target, 0)} ({row.reached})"
            if row.reached
            else "— (0)",
            fmt_percent(row.median_accuracy),
        ]
        if with_test:
            cells.append(fmt_percent(row.median_test_accuracy))
        table_rows.append(cells)
    target = fmt_value(job.cfg.training.target_loss) if job.cfg is not None else "the target"
    caption = f"{job.label}: per learning rate (epochs to target: first epoch with loss ≤ {target}, among the cells that got there)"
    return Table(headers, table_rows, caption, numeric=tuple(range(1, len(headers))))


def _single_epochs_to_target(job: Job) -> float:
    """First epoch at or below the target loss (0 if never), from the run's full history."""
    from backprop_lab.core.analysis import epochs_to_target

    if job.cfg is None:
        return float("nan")
    losses = np.nan_to_num(np.asarray(job.history["loss"], dtype=float), nan=np.inf)
    return float(epochs_to_target(losses, job.cfg.training.target_loss))


def _single_values(job: Job) -> dict[str, str]:
    history = job.history
    epochs = len(history["loss"])
    to_target = _single_epochs_to_target(job)
    values = {
        "epochs": str(epochs),
        "initial loss": fmt_number(job.metric("initial_loss")),
        "final loss": fmt_number(history["loss"][-1]),
        "final accuracy": fmt_percent(history["accuracy"][-1]),
        "epochs to target": (fmt_number(to_target, 0) if to_target > 0 else "never")
        if math.isfinite(to_target)
        else "—",
        "solved": {1.0: "yes", 0.0: "no"}.get(job.metric("solved"), "—"),
        "diverged": f"at epoch {int(job.metric('diverged_epoch'))}"
        if job.metric("diverged") == 1.0
        else "no",
    }
    if _has_test(history):
        values["final test accuracy"] = fmt_percent(history["test_accuracy"][-1])
    return values


def single_table(jobs: Sequence[Job]) -> Table:
    values = [_single_values(job) for job in jobs]
    order = [
        "epochs",
        "initial loss",
        "final loss",
        "final accuracy",
        "final test accuracy",
        "epochs to target",
        "solved",
        "diverged",
    ]
    columns = [column for column in order if any(column in row for row in values)]
    rows = [
        [job.label, *[row.get(column, "—") for column in columns]]
        for job, row in zip(jobs, values, strict=True)
    ]
    return Table(
        ["run", *columns],
        rows,
        "Single runs" if len(jobs) > 1 else "",
        numeric=tuple(range(1, len(columns) + 1)),
    )


# ---------------------------------------------------------------------------------------------
# Findings: sentences computed from the runs


def _prefix(job: Job, several: bool) -> str:
    return f"{job.label}: " if several else ""


def single_findings(job: Job, several: bool) -> list[str]:
    history = job.history
    losses = history["loss"]
    epochs = len(losses)
    initial = job.metric("initial_loss")
    prefix = _prefix(job, several)
    found = []
    if math.isfinite(initial):
        previous = np.concatenate([[initial], losses[:-1]])
        fell = int(np.sum(losses < previous))
        span = f"{fmt_number(initial)} → {fmt_number(losses[-1])}"
        if epochs == 1:
            found.append(
                f"{prefix}loss {'fell' if fell else 'did not fall'} in its one epoch: {span}"
            )
        elif fell == epochs:
            found.append(f"{prefix}loss fell in every one of {epochs} epochs: {span}")
        else:
            lowest = int(np.nanargmin(losses)) if np.isfinite(losses).any() else 0
            found.append(
                f"{prefix}loss fell in {fell} of {epochs} epochs: {span} (lowest {fmt_number(losses[lowest])} at epoch {lowest + 1})"
            )
    accuracy = f"final training accuracy {fmt_percent(history['accuracy'][-1])}"
    if _has_test(history):
        accuracy += f", test accuracy {fmt_percent(history['test_accuracy'][-1])}"
    if job.metric("diverged") == 1.0:
        accuracy += f"; diverged at epoch {int(job.metric('diverged_epoch'))}"
    to_target = _single_epochs_to_target(job)
    if job.cfg is not None and math.isfinite(to_target):
        target = fmt_value(job.cfg.training.target_loss)
        budget = f"{epochs} epoch{'s' if epochs != 1 else ''}"
        accuracy += (
            f"; loss reached ≤ {target} at epoch {int(to_target)}"
            if to_target > 0
            else f"; loss never reached ≤ {target} in {budget}"
        )
    found.append(prefix + accuracy)
    return found


def _regimes(job: Job, rows: Sequence[RateRow], verb: str) -> str | None:
    """ "rates ≤ X and ≥ Y never converged ...": the zero-success ends around the best rate."""
    if len(rows) < 3:
        return None
    success = [row.solved / row.cells for row in rows]
    best = best_rate_index(rows)
    if success[best] == 0:
        return None
    low = max(
        (i for i in range(best) if all(value == 0 for value in success[: i + 1])), default=None
    )
    high = min(
        (i for i in range(best + 1, len(rows)) if all(value == 0 for value in success[i:])),
        default=None,
    )
    parts = []
    if low is not None:
        parts.append(f"≤ {fmt_rate(rows[low].rate)}")
    if high is not None:
        parts.append(f"≥ {fmt_rate(rows[high].rate)}")
    if not parts:
        return None
    epochs = job.grid["loss"].shape[-1]
    return f"rates {' and '.join(parts)} never {verb} within {epochs} epochs; best rate {fmt_rate(rows[best].rate)} {verb} in {fmt_percent(success[best])} of seeds"


def grid_findings(job: Job, several: bool) -> list[str]:
    grid = job.grid
    rows = grid_rows(grid)
    best = best_rate_index(rows)
    num_rows = len(job.dataset.x_train) if job.dataset is not None else None
    phrase, verb = success_phrase(job.cfg, num_rows)
    cells = sum(row.cells for row in rows)
    solved = sum(row.solved for row in rows)
    improved = float(grid["improved"].mean())
    diverged = float((grid["diverged_epoch"] > 0).mean())
    text = (
        f"{_prefix(job, several)}{solved} of {cells} cells {phrase} ({fmt_percent(solved / cells)}"
    )
    if solved == 0:
        any_epoch = max(row.best_accuracy_any_epoch for row in rows)
        final = max(row.best_accuracy for row in rows)
        text += f"; best accuracy {fmt_percent(any_epoch)}" + (
            f" at any epoch, {fmt_percent(final)} at the end" if final != any_epoch else ""
        )
    text += ")"
    text += f"; {fmt_percent(improved)} improved on their initial loss"
    if diverged > 0:
        text += f", {fmt_percent(diverged)} diverged"
    row = rows[best]
    if len(rows) > 1 and solved:
        text += f"; best learning rate {fmt_rate(row.rate)}: {row.solved} of {row.cells} seeds"
    if _has_test(grid):
        text += f"; median test accuracy {fmt_percent(row.median_test_accuracy)} at learning rate {fmt_rate(row.rate)}"
    found = [text]
    regimes = _regimes(job, rows, verb)
    if regimes:
        found.append(_prefix(job, several) + regimes)
    return found


def comparison_findings(experiment_name: str, jobs: Sequence[Job]) -> list[str]:
    """Best and worst jobs of a multirun of grids, by success at each job's best rate."""
    grids = [job for job in jobs if job.kind == "grid" and job.grid is not None]
    if len(grids) < 2:
        return []
    noun = _JOB_NOUNS.get(experiment_name, "job")
    scored = []
    for job in grids:
        rows = grid_rows(job.grid)
        row = rows[best_rate_index(rows)]
        scored.append((row.solved / row.cells, job, row))
    top = max(score for score, _, _ in scored)
    bottom = min(score for score, _, _ in scored)

    def name(items) -> str:
        # The rate is worth naming only where it made a difference.
        return "; ".join(
            f"{job.label} (learning rate {fmt_rate(row.rate)})"
            if score > 0 and len(job.grid["learning_rates"]) > 1
            else job.label
            for score, job, row in items
        )

    if top == bottom:
        return [f"every {noun} solved {fmt_percent(top)} of seeds at its best learning rate"]
    best = [item for item in scored if item[0] == top]
    worst = [item for item in scored if item[0] == bottom]
    found = [
        f"best {noun}{'s' if len(best) > 1 else ''} ({fmt_percent(top)} of seeds at the best learning rate): {name(best)}",
        f"worst {noun}{'s' if len(worst) > 1 else ''} ({fmt_percent(bottom)}): {name(worst)}",
    ]
    # With two or more things varied together, the mean success for each value of each one.
    keys = varied_keys(grids)
    if len(keys) > 1:
        for key in keys:
            groups: dict[str, list[float]] = {}
            for score, job, _ in scored:
                if key in job.varied:
                    groups.setdefault(job.varied[key], []).append(score)
            others = ", ".join(other for other in keys if other != key)
            means = ", ".join(
                f"{value} {fmt_percent(float(np.mean(scores)))}" for value, scores in groups.items()
            )
            found.append(f"by {key} (mean over {others}, at each best learning rate): {means}")
    return found


# ---------------------------------------------------------------------------------------------
# The worked example: one step recomputed from the logged config


def update_steps(job: Job) -> int | None:
    """How many gradient steps a single run took (None when unknown)."""
    if job.cfg is None or job.dataset is None:
        return None
    training = job.cfg.training
    samples = len(job.dataset.x_train)
    per_epoch = {
        "online": samples,
        "shuffled": samples,
        "full": 1,
        "minibatch": -(-samples // max(int(training.batch_size), 1)),
    }
    return (
        None
        if training.batching not in per_epoch
        else int(training.epochs) * per_epoch[training.batching]
    )


def worked_example(job: Job) -> tuple[list[Block], list[str]]:
    """The first gradient step from the logged initial weights, learning rate and first sample.

    When the run took exactly that one step, the recomputed weights are compared with the
    logged ``weights.json``.
    """
    from omegaconf import OmegaConf

    from backprop_lab.core.explain import explain_step, input_names, unit_names
    from backprop_lab.core.model import params_from_lists

    cfg, architecture = job.cfg, job.architecture
    params = params_from_lists(
        architecture,
        OmegaConf.to_container(cfg.model.initial_weights),
        None
        if cfg.model.initial_biases is None
        else OmegaConf.to_container(cfg.model.initial_biases),
    )
    x, y = job.dataset.x_train[0], job.dataset.y_train[0]
    rate = float(cfg.optimizer.learning_rate)
    step = explain_step(
        architecture, params, [float(v) for v in x], [float(v) for v in y], rate, cfg.loss.name
    )
    steps = update_steps(job)
    compare = steps == 1 and job.weights_json is not None and cfg.optimizer.name == "sgd"

    sample = "(" + ", ".join(fmt_value(v) for v in x) + ")"
    targets = "(" + ", ".join(fmt_value(v) for v in y) + ")"
    blocks: list[Block] = [
        Heading(2, "Worked example: the first gradient step", "worked-example"),
        Paragraph(
            f"Recomputed with the chain rule (backprop_lab.core.explain) from the run's logged initial weights, "
            f"learning rate η = {fmt_value(rate)}, loss {cfg.loss.name} and first training sample "
            f"x = {sample}, y = {targets}. Loss before the step: {fmt_number(step.loss)}."
        ),
        Table(
            ["unit", "net input z", "output"],
            [
                [unit.name, fmt_number(unit.net_input), fmt_number(unit.output)]
                for unit in step.forward
            ],
            "Forward pass",
            numeric=(1, 2),
        ),
    ]
    names = unit_names(architecture)
    sources = [input_names(architecture), *names[:-1]]
    layers = (job.weights_json or {}).get("layers", [])
    headers = [
        "weight",
        "value",
        "∂E/∂out",
        "∂out/∂net",
        "∂net/∂w",
        "gradient ∂E/∂w",
        "updated w − η·∂E/∂w",
    ]
    if compare:
        headers += ["logged (weights.json)", "difference"]
    rows, differences = [], []
    for weight in step.backward:
        row = [
            weight.name,
            fmt_number(weight.value),
            fmt_number(weight.dE_dout),
            fmt_number(weight.dout_dnet),
            fmt_number(weight.dnet_dw),
            fmt_number(weight.gradient),
            fmt_number(weight.updated),
        ]
        if compare:
            layer = layers[weight.layer - 1]
            unit = names[weight.layer - 1].index(weight.unit)
            if weight.source == "1":
                logged = float(layer["biases"][unit])
            else:
                logged = float(
                    layer["weights"][unit][sources[weight.layer - 1].index(weight.source)]
                )
            differences.append(abs(logged - weight.updated))
            row += [fmt_number(logged), f"{logged - weight.updated:.1e}"]
        rows.append(row)
    blocks.append(
        Table(
            headers,
            rows,
            "Backward pass and update (output layer first)",
            numeric=tuple(range(1, len(headers))),
        )
    )

    output_weight = step.backward[0]
    hidden_weight = next((w for w in step.backward if w.layer == 1), None)
    changes = [
        f"{w.name} {fmt_number(w.value)} → {fmt_number(w.updated)}"
        for w in (output_weight, hidden_weight)
        if w is not None
    ]
    found = [
        f"first gradient step (η = {fmt_value(rate)}, x = {sample}, y = {targets}): "
        + " and ".join(dict.fromkeys(changes))
    ]
    agreeing = sum(w.agrees for w in step.backward)
    found.append(
        f"the chain-rule product agrees with autodiff for all {agreeing} parameters"
        if step.agrees
        else f"the chain-rule product agrees with autodiff for only {agreeing} of {len(step.backward)} parameters"
    )
    if compare:
        found.append(
            f"the recomputed update matches the logged weights.json for all {len(differences)} parameters "
            f"(largest difference {max(differences):.1e})"
        )
    elif steps is not None and steps != 1:
        blocks.append(
            Paragraph(
                f"The run took {steps} gradient steps, so its logged final weights are not compared with this first step."
            )
        )
    return blocks, found


def _has_worked_example(job: Job) -> bool:
    return (
        job.kind == "single"
        and job.cfg is not None
        and job.architecture is not None
        and job.cfg.model.initial_weights is not None
    )


# ---------------------------------------------------------------------------------------------
# One experiment's report


@dataclass
class ExperimentReport:
    name: str
    description: str
    folder: Path
    top_run_name: str
    started: str
    jobs: int
    findings: list[str]
    # The finding the index shows: the comparison across jobs if there is one, else the first.
    headline: str = ""


def _slug(name: str) -> str:
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return "_" + slug if not slug or slug.startswith(".") else slug


def _commands(selection: Selection, jobs: Sequence[Job]) -> list[str]:
    commands = []
    top = selection.top
    if _kind(top) == "multirun":
        overrides = top.data.tags.get("backprop_lab.overrides", "")
        commands.append(f"bplab-train -m {overrides}".rstrip() + "   # the multirun; its jobs:")
    for job in jobs:
        command = job.run.data.tags.get("backprop_lab.command")
        if command and command not in commands:
            commands.append(command)
    return commands


def _description(selection: Selection, jobs: Sequence[Job]) -> str:
    for run in [selection.top, *(job.run for job in jobs)]:
        note = run.data.tags.get(NOTE_TAG)
        if note:
            return note
    return ""


def _runs_table(selection: Selection, jobs: Sequence[Job]) -> Table:
    labels = {job.run.info.run_id: job.label for job in jobs}
    with_labels = any(job.label != job.name for job in jobs)
    rows = []
    for run in selection.runs:
        kind = _kind(run)
        if kind == "grid_row":
            continue
        label = [labels.get(run.info.run_id, "—")] if with_labels else []
        rows.append(
            [
                run.info.run_name or "",
                *label,
                kind,
                run.info.status,
                fmt_time(run.info.start_time),
                Code(run.info.run_id),
            ]
        )
    headers = ["run", *(["label"] if with_labels else []), "kind", "status", "started", "run id"]
    return Table(headers, rows, "Runs used")


def build_blocks(
    selection: Selection, jobs: list[Job], figure_dir: Path, uri: str
) -> tuple[list[Block], list[str], str]:
    """The report of one experiment as blocks (figures are drawn into ``figure_dir``).

    Also returns the findings, and the one the index shows.
    """
    name = selection.experiment_name
    description = _description(selection, jobs)
    blocks: list[Block] = [Heading(1, name)]
    if description:
        blocks.append(Paragraph(description))
    top = selection.top
    blocks.append(
        Paragraph(
            (
                "Built from the MLflow store ",
                Code(_display_uri(uri)),
                " alone: the latest top-level run ",
                Code(top.info.run_name or top.info.run_id),
                f" ({_kind(top)}, {top.info.status}, started {fmt_time(top.info.start_time)})",
                f" and the {len(selection.descendants)} run{'s' if len(selection.descendants) != 1 else ''} below it."
                if selection.descendants
                else ".",
            )
        )
    )

    # --- runs, provenance, config
    blocks.append(Heading(2, "Runs", "runs"))
    blocks.append(_runs_table(selection, jobs))
    notes = []
    grid_row_count = sum(_kind(run) == "grid_row" for run in selection.runs)
    if grid_row_count:
        notes.append(
            f"{grid_row_count} grid_row child runs (one per learning rate of each grid, with downsampled curves) are not listed; the report reads the full curves from grid.npz."
        )
    older = selection.ignored_top_level
    notes.append(
        f"{older} other top-level run{'s' if older != 1 else ''} of this experiment {'were' if older != 1 else 'was'} not used "
        "(bplab-report --experiment NAME --run RUN_ID reports on another)."
        if older
        else "This experiment has no other top-level runs."
    )
    for job in jobs:
        for problem in job.problems:
            notes.append(
                f"Run {job.name} ({job.run.info.run_id}): {problem}; it is left out where that is needed."
            )
    blocks.append(Bullets(notes))
    commits = sorted(
        {
            (
                run.data.tags.get("backprop_lab.git_commit", "unknown"),
                run.data.tags.get("backprop_lab.git_dirty", "unknown"),
            )
            for run in selection.runs
            if _kind(run) != "grid_row" and "backprop_lab.git_commit" in run.data.tags
        }
    )
    if commits:
        blocks.append(
            Paragraph(
                (
                    "Commit" + ("s" if len(commits) > 1 else "") + ": ",
                    *[
                        item
                        for index, (commit, dirty) in enumerate(commits)
                        for item in ((", " if index else ""), Code(commit), f" (dirty: {dirty})")
                    ],
                )
            )
        )
    commands = _commands(selection, jobs)
    if commands:
        blocks.append(
            CodeBlock(
                "Command" + ("s" if len(commands) > 1 else ""), "\n".join(commands) + "\n", "sh"
            )
        )
    first = next((job for job in jobs if job.config_text), None)
    if first is not None:
        blocks.append(
            CodeBlock(
                f"Resolved config (config.yaml of {first.name}, {first.run.info.run_id})",
                first.config_text,
                "yaml",
                collapsed=True,
            )
        )

    # --- findings
    several = len(jobs) > 1
    findings: list[str] = []
    worked: list[Block] = []
    for job in jobs:
        if job.kind == "grid" and job.grid is not None:
            findings += grid_findings(job, several)
        elif job.history is not None:
            findings += single_findings(job, several)
    comparison = comparison_findings(name, jobs)
    findings += comparison
    for job in jobs:
        if _has_worked_example(job):
            example_blocks, example_findings = worked_example(job)
            worked += example_blocks
            findings = (
                [*example_findings, *findings]
                if not several
                else findings + [f"{job.label}: {f}" for f in example_findings]
            )
    blocks.append(Heading(2, "Findings", "findings"))
    blocks.append(Bullets(findings or ["no finished job with readable artifacts"]))
    blocks += worked

    # --- comparison across jobs
    grids = [job for job in jobs if job.kind == "grid" and job.grid is not None]
    singles = [job for job in jobs if job.kind != "grid" and job.history is not None]
    if len(grids) > 1:
        noun = _JOB_NOUNS.get(name, "job")
        blocks.append(Heading(2, f"Success by {noun}", "by-job"))
        rows, labels, rates = [], [], []
        for job in grids:
            stats = grid_rows(job.grid)
            row = stats[best_rate_index(stats)]
            cells = sum(r.cells for r in stats)
            solved = sum(r.solved for r in stats)
            labels.append(job.short_label)
            rates.append(row.solved / row.cells)
            rows.append(
                [
                    job.label,
                    str(cells),
                    f"{solved} ({fmt_percent(solved / cells)})",
                    fmt_rate(row.rate),
                    f"{row.solved} of {row.cells} ({fmt_percent(row.solved / row.cells)})",
                    fmt_percent(float(job.grid["improved"].mean())),
                    fmt_percent(float((job.grid["diverged_epoch"] > 0).mean())),
                    fmt_number(row.median_final_loss),
                ]
            )
        blocks.append(
            Table(
                [
                    noun,
                    "cells",
                    "solved (all rates)",
                    "best learning rate",
                    "solved at best rate",
                    "improved",
                    "diverged",
                    "median final loss at best rate",
                ],
                rows,
                f"Each {noun} at its best learning rate",
                numeric=(1, 2, 3, 4, 5, 6, 7),
            )
        )
        from backprop_lab import plots

        keys = varied_keys(grids)
        axis = (
            ", ".join(keys) if keys and all(job.short_label != job.name for job in grids) else noun
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plots.success_by(
                labels,
                np.array(rates),
                figure_dir / "success_by_job.png",
                xlabel=axis,
                title=f"{name}: success at the best learning rate",
            )
        blocks.append(
            Figures(
                [
                    Figure(
                        "success_by_job.png",
                        f"Share of seeds solved by each {noun} at its best learning rate.",
                    )
                ]
            )
        )
    if len(singles) > 1:
        blocks.append(Heading(2, "Single runs", "single-runs"))
        blocks.append(single_table(singles))

    # --- one section per job
    for index, job in enumerate(jobs, start=1):
        if job.kind == "grid" and job.grid is None or job.kind != "grid" and job.history is None:
            continue
        title = (
            job.label
            if several
            else ("Grid of learning rates × seeds" if job.kind == "grid" else "Training")
        )
        blocks.append(Heading(2, title, f"job-{index:02d}"))
        blocks.append(
            Paragraph(
                (
                    "Run ",
                    Code(job.name),
                    ", id ",
                    Code(job.run.info.run_id),
                    f", {job.run.info.status}.",
                )
            )
        )
        if job.kind == "grid":
            blocks.append(grid_table(job))
        elif len(singles) == 1:
            blocks.append(single_table([job]))
        with warnings.catch_warnings():
            # An all-zero hidden unit has no line, so a figure may have no legend entries.
            warnings.simplefilter("ignore")
            figures = _job_figures(job, index, figure_dir)
        if figures:
            blocks.append(Figures(figures))
    # The learning-rate study is about the regimes of the rate; elsewhere the comparison leads.
    regimes = [finding for finding in findings if " never converged within " in finding]
    lead = regimes if name == "learning_rates" and regimes else comparison
    return blocks, findings, (lead or findings or [""])[0]


def _display_uri(uri: str) -> str:
    """The store as a reader should see it: paths inside the project relative to its root, so
    a report regenerated from another clone of the project reads the same."""
    from backprop_lab.paths import project_root

    root = str(project_root())
    if uri.startswith("sqlite:///") and uri[len("sqlite:///") :].startswith(root + "/"):
        return "sqlite:///./" + uri[len("sqlite:///") + len(root) + 1 :]
    return uri


def build_experiment_report(
    mlflow_client, selection: Selection, out: Path, uri: str, progress=None
) -> ExperimentReport:
    """Write ``<out>/<experiment>/report/``; the old report is replaced only when the new one is done."""
    experiment_folder = out / _slug(selection.experiment_name)
    experiment_folder.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".report-", dir=experiment_folder))
    building.chmod(0o755)
    try:
        with tempfile.TemporaryDirectory(prefix="bplab-report-") as downloads:
            job_runs = [run for run in selection.runs if _kind(run) in ("single", "grid")]
            jobs = []
            for run in job_runs:
                if progress is not None:
                    progress(
                        f"{selection.experiment_name}: reading {run.info.run_name or run.info.run_id}"
                    )
                jobs.append(_load_job(mlflow_client, run, Path(downloads)))
        label_jobs(jobs)
        if progress is not None:
            progress(f"{selection.experiment_name}: drawing figures")
        figure_dir = building / "figures"
        figure_dir.mkdir()
        blocks, findings, headline = build_blocks(selection, jobs, figure_dir, uri)
        (building / "report.md").write_text(render_markdown(blocks))
        (building / "report.html").write_text(
            render_html(f"{selection.experiment_name} — backprop-lab report", blocks, figure_dir)
        )
        final = experiment_folder / "report"
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".report-old-", dir=experiment_folder))
            final.rename(old / "report")
            building.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            building.rename(final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return ExperimentReport(
        selection.experiment_name,
        _description(selection, jobs),
        final,
        selection.top.info.run_name or selection.top.info.run_id,
        fmt_time(selection.top.info.start_time),
        len(jobs),
        findings,
        headline,
    )


# ---------------------------------------------------------------------------------------------
# The index


def _study_order(names: Sequence[str]) -> list[str]:
    """The demo's order (the order a reader meets the studies in the article), then the rest sorted."""
    from backprop_lab.demo import STUDIES

    known = [name for name, _ in STUDIES]
    return sorted(
        names, key=lambda name: (known.index(name) if name in known else len(known), name)
    )


def write_index(out: Path, reports: dict[str, ExperimentReport]) -> tuple[Path, Path]:
    names = _study_order(list(reports))
    rows = []
    for name in names:
        report = reports[name]
        folder = _slug(name)
        rows.append(
            [
                Link(name, f"{folder}/report/report.md", f"{folder}/report/report.html"),
                report.description,
                report.top_run_name,
                report.started,
                str(report.jobs),
                report.headline or "—",
            ]
        )
    blocks: list[Block] = [
        Heading(1, "backprop-lab reports"),
        Paragraph(
            "One report per experiment, rebuilt from the MLflow store by bplab-report from the latest top-level run of each experiment."
        ),
        Table(
            ["experiment", "description", "latest run", "started", "jobs", "first finding"],
            rows,
            numeric=(4,),
        ),
    ]
    markdown, page = out / "index.md", out / "index.html"
    markdown.write_text(render_markdown(blocks))
    page.write_text(render_html("backprop-lab reports", blocks))
    return markdown, page


def _index_entries(
    mlflow_client, experiments: dict[str, Any], out: Path, built: dict[str, ExperimentReport]
) -> dict[str, ExperimentReport]:
    """The reports just built, plus reports of the store's other experiments already in ``out``."""
    entries = dict(built)
    for name, experiment in experiments.items():
        folder = out / _slug(name) / "report"
        if name in entries or not (folder / "report.html").is_file():
            continue
        selection = select_runs(mlflow_client, experiment)
        if selection is None:
            continue
        runs = [run for run in selection.runs if _kind(run) in ("single", "grid")]
        description = next(
            (
                run.data.tags[NOTE_TAG]
                for run in [selection.top, *runs]
                if run.data.tags.get(NOTE_TAG)
            ),
            "",
        )
        entries[name] = ExperimentReport(
            name,
            description,
            folder,
            selection.top.info.run_name or selection.top.info.run_id,
            fmt_time(selection.top.info.start_time),
            len(runs),
            [],
        )
    return entries


# ---------------------------------------------------------------------------------------------
# Command line


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BackpropLabError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=PROG, description="Build a research report per experiment from the MLflow store alone."
    )
    parser.add_argument(
        "--experiment",
        action="append",
        default=None,
        metavar="NAME",
        help="an experiment to report on (repeatable; default: every experiment of the store that has runs)",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="output folder (default: <project root>/experiments)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="the MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///<project root>/mlflow.db)",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN_ID",
        help="report on this run's sweep instead of the latest one (needs exactly one --experiment)",
    )
    return parser


def _open_store(uri: str):
    from backprop_lab import tracking

    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        # MLflow would create an empty store; there is nothing to report from.
        raise BackpropLabError(
            f"the tracking store {uri} does not exist; train something first, e.g. bplab-train experiment=xor_mlp"
        )
    tracking.check_store(uri, create=False)
    try:
        mlflow_client = tracking.client(uri)
        experiments = experiments_with_runs(mlflow_client)
    except Exception as error:
        if tracking.is_unreachable_error(error):
            raise BackpropLabError(
                f"cannot read the tracking store {uri} ({type(error).__name__})"
            ) from None
        raise
    if not experiments:
        raise BackpropLabError(
            f"the tracking store {uri} has no runs; train something first, e.g. bplab-train experiment=xor_mlp"
        )
    return mlflow_client, experiments


def main(argv: list[str] | None = None) -> int:
    """Run ``bplab-report``; return the exit code (2 for bad input)."""
    import logging

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from backprop_lab import tracking
    from backprop_lab.paths import project_root

    for name in ("mlflow", "alembic", "matplotlib", "jax", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        uri = tracking.resolve_tracking_uri(args.tracking_uri)
        mlflow_client, experiments = _open_store(uri)
        wanted = list(dict.fromkeys(args.experiment)) if args.experiment else sorted(experiments)
        unknown = [name for name in wanted if name not in experiments]
        if args.run and len(args.experiment or []) != 1:
            raise BackpropLabError("--run RUN_ID needs exactly one --experiment NAME")
        if unknown:
            raise BackpropLabError(
                f"no experiment with runs called {', '.join(repr(n) for n in unknown)} in {uri}; "
                f"available: {', '.join(_study_order(list(experiments)))}"
            )
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)

    out = Path(args.out) if args.out else project_root() / "experiments"
    console = Console(highlight=False, soft_wrap=True)
    built: dict[str, ExperimentReport] = {}
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task("reports", total=len(wanted))
        for name in _study_order(wanted):
            try:
                selection = select_runs(mlflow_client, experiments[name], args.run)
            except BackpropLabError as error:
                print(f"{PROG}: error: {error}", file=sys.stderr)
                return 2
            if selection is None:
                continue
            report = build_experiment_report(
                mlflow_client,
                selection,
                out,
                uri,
                progress=lambda text: bar.update(task, description=text),
            )
            built[name] = report
            bar.advance(task)
            console.print(
                f"{name}: {report.folder / 'report.html'} ({report.jobs} job{'s' if report.jobs != 1 else ''}; {len(report.findings)} findings)"
            )
    markdown, page = write_index(out, _index_entries(mlflow_client, experiments, out, built))
    console.print(f"[bold green]Report[/]: {page} (Markdown: {markdown})")
    return 0
