"""Figures shared by run records and reports (matplotlib, Agg backend, deterministic output).

Every function takes plain NumPy data and a path, writes one PNG, and returns the path.
PNG metadata is fixed so the same data gives the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from backprop_lab.core.analysis import nan_percentile  # noqa: E402

_PNG_METADATA = {"Software": None}
plt.rcParams.update(
    {"figure.dpi": 100, "savefig.dpi": 100, "font.size": 9, "svg.hashsalt": "backprop-lab"}
)


def _log_scale_if_positive(axis, values) -> None:
    """Log scale for losses, unless some reach exactly 0 (a solved threshold network does)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() > 0:
        axis.set_yscale("log")
    elif finite.size:
        axis.set_yscale("symlog", linthresh=1e-4)


# The figures every run and every report job draws get margins fixed in inches. Matplotlib's
# constrained layout measures every label before the figure is drawn, which costs about as much
# again as drawing it (a third to a half of these figures' time); their labels are known, and
# so is the room they need. Room for one line of the 9 pt text, in inches:
_TEXT_LINE_IN = 0.18


def _fixed_margins(
    figure,
    *,
    title: str = "",
    left: float = 0.68,
    right: float = 0.12,
    bottom: float = 0.48,
    wspace_in: float = 0.0,
) -> None:
    """Place the axes with these margins (inches); the top leaves room for ``title``'s lines."""
    width, height = figure.get_size_inches()
    top = 0.1 + (title.count("\n") + 1) * _TEXT_LINE_IN if title else 0.12
    columns = len(figure.axes)
    axes_width = (width - left - right - wspace_in * (columns - 1)) / columns
    figure.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=wspace_in / axes_width if columns > 1 else None,
    )


def _save(figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Laid out by the figure's constrained layout: "bbox_inches='tight'" would draw it twice.
    figure.savefig(path, format="png", metadata=_PNG_METADATA)
    plt.close(figure)
    return path


# A curve is drawn with at most this many points (a figure is 800 pixels wide, and the
# committed studies stay below it, so their figures keep their bytes).
_MAX_PLOTTED_POINTS = 20000
_MAX_SCATTERED = 2000


# A band (a filled polygon per learning rate) costs far more to draw than a line: at most this
# many points each, still more than the figure's 600 pixels.
_MAX_BAND_POINTS = 1000


def _thinned(
    history: dict[str, np.ndarray], max_points: int = _MAX_PLOTTED_POINTS
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Epochs (1-based) and curves cut to at most ``max_points`` evenly spaced epochs, the
    first and last always kept: a long run draws in the same time as a short one."""
    count = len(history["loss"])
    if count <= max_points:
        return np.arange(1, count + 1), history
    steps = np.unique(np.linspace(0, count - 1, max_points).round().astype(int))
    return steps + 1, {name: np.asarray(values)[steps] for name, values in history.items()}


def loss_curve(history: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """Training (and test) loss and accuracy per epoch; loss on a log scale."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(8, 3))
    epochs, history = _thinned(history)
    loss_axis.plot(epochs, history["loss"], label="train")
    if np.isfinite(history.get("test_loss", np.array([np.nan]))).any():
        loss_axis.plot(epochs, history["test_loss"], label="test")
    _log_scale_if_positive(
        loss_axis,
        np.concatenate([np.ravel(history["loss"]), np.ravel(history.get("test_loss", []))]),
    )
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    loss_axis.legend()
    accuracy_axis.plot(epochs, history["accuracy"], label="train")
    if np.isfinite(history.get("test_accuracy", np.array([np.nan]))).any():
        accuracy_axis.plot(epochs, history["test_accuracy"], label="test")
    accuracy_axis.set_ylim(-0.05, 1.05)
    accuracy_axis.set_xlabel("epoch")
    accuracy_axis.set_ylabel("accuracy")
    figure.suptitle(title)
    _fixed_margins(figure, title=title, wspace_in=0.75)
    return _save(figure, path)


def decision_boundary(
    predict,
    x: np.ndarray,
    y: np.ndarray,
    path: str | Path,
    *,
    hidden_lines: Sequence[tuple[float, float, float]] = (),
    title: str = "",
    resolution: int = 120,
) -> Path:
    """The network's output over the input plane, the data, and each hidden unit's line.

    Args:
      predict: ``(n, 2) -> (n,)`` network output for points of the plane.
      x, y: the data (2 features, one 0/1 target).
      hidden_lines: ``(w1, w2, b)`` per first-layer unit; its line is ``w1·x1 + w2·x2 + b = θ``
        (pass ``b − θ``).
    """
    margin = 0.5
    low, high = x.min(axis=0) - margin, x.max(axis=0) + margin
    grid_x1, grid_x2 = np.meshgrid(
        np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    )
    plane = np.stack([grid_x1.ravel(), grid_x2.ravel()], axis=1)
    values = np.asarray(predict(plane)).reshape(grid_x1.shape)
    figure, axis = plt.subplots(figsize=(4, 4))
    # The colour bar and its labels take their room from the axes.
    _fixed_margins(figure, title=title, left=0.72, right=0.02, bottom=0.45)
    image = axis.contourf(
        grid_x1,
        grid_x2,
        values,
        levels=np.linspace(0, 1, 11),
        cmap="RdBu_r",
        alpha=0.6,
        extend="both",
    )
    axis.contour(grid_x1, grid_x2, values, levels=[0.5], colors="k", linewidths=1.5)
    labels = y.reshape(len(y), -1)[:, 0]
    # Every n-th point, at most _MAX_SCATTERED: more hide each other and cost seconds each.
    step = max(1, -(-len(x) // _MAX_SCATTERED))
    axis.scatter(
        x[::step, 0], x[::step, 1], c=labels[::step], cmap="RdBu_r", vmin=0, vmax=1,
        edgecolors="k", s=30, zorder=3,
    )  # fmt: skip
    xs = np.linspace(low[0], high[0], 2)
    drawn = 0
    for index, (w1, w2, b) in enumerate(hidden_lines):
        # A unit with all-zero weights (a dead relu, say) has no line to draw.
        if abs(w2) > 1e-9:
            axis.plot(
                xs, -(w1 * xs + b) / w2, "--", lw=1, color=f"C{index % 10}", label=f"h{index + 1}"
            )
            drawn += 1
        elif abs(w1) > 1e-9:
            axis.axvline(-b / w1, ls="--", lw=1, color=f"C{index % 10}", label=f"h{index + 1}")
            drawn += 1
    if drawn:
        axis.legend(loc="upper right", fontsize=7)
    axis.set_xlim(low[0], high[0])
    axis.set_ylim(low[1], high[1])
    axis.set_xlabel("x1")
    axis.set_ylabel("x2")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, shrink=0.8)
    return _save(figure, path)


def hidden_unit_lines(architecture, params) -> list[tuple[float, float, float]]:
    """``(w1, w2, b − θ)`` of each first-layer unit of a 2-input network with a hidden layer.

    Each unit's line ``w1·x1 + w2·x2 + b = θ`` is where it switches (θ = 0 for smooth units,
    whose midpoint σ(0) = ½ lies on it).
    """
    if len(params) < 2 or architecture.layer_sizes[0] != 2 or architecture.layer_sizes[1] > 16:
        return []
    first = params[0]
    theta = architecture.theta if architecture.hidden_activation == "threshold" else 0.0
    weights = np.asarray(first.weights)
    biases = np.zeros(weights.shape[0]) if first.biases is None else np.asarray(first.biases)
    return [
        (float(w[0]), float(w[1]), float(b - theta)) for w, b in zip(weights, biases, strict=True)
    ]


# Work per figure: plane points × parameters (a 120 × 120 plane for networks up to ~140,000
# parameters), and values alive at once: points per batch × widest layer.
_PLANE_WORK = 2e9
_BATCH_VALUES = 1 << 22


def plane_resolution(num_parameters: int) -> int:
    """Points per side of the input plane: 120, fewer for huge networks (bounded time)."""
    return int(np.clip(np.sqrt(_PLANE_WORK / max(num_parameters, 1)), 24, 120))


def batched_predict(architecture, params):
    """``(n, 2) -> (n,)`` network outputs, evaluated in batches so memory stays bounded
    (points per batch × widest layer ≤ 4 M values) whatever the network's width."""
    widest = max(architecture.layer_sizes)
    batch = max(1, _BATCH_VALUES // widest)
    compiled = _compiled_forward(architecture)

    def predict(points: np.ndarray) -> np.ndarray:
        points = points.astype(np.float32)
        size = min(batch, len(points))
        parts = []
        for start in range(0, len(points), size):
            chunk = points[start : start + size]
            padded = np.zeros((size, points.shape[1]), np.float32)
            padded[: len(chunk)] = chunk
            parts.append(np.asarray(compiled(params, padded))[: len(chunk)])
        return np.concatenate(parts)

    return predict


@functools.lru_cache(maxsize=64)
def _compiled_forward(architecture):
    """One compiled forward pass per network shape, for every batch and every figure of it
    (the last batch is padded to the same shape). A new program per figure cost a trace and a
    compilation-cache look-up, about a quarter of a second each; op by op, each operation was
    loaded or compiled on its own."""
    import jax

    from backprop_lab.core.model import forward, layer_activations

    activations = layer_activations(architecture)
    return jax.jit(lambda params, points: forward(params, points, activations)[:, 0])


def network_decision_boundary(
    architecture, params, x: np.ndarray, y: np.ndarray, path: str | Path, *, title: str = ""
) -> Path:
    """:func:`decision_boundary` of a trained 2-input, 1-output network, with its hidden lines.

    Time and memory stay bounded whatever the network's width: the plane is coarser for huge
    networks and evaluated in batches.
    """
    from backprop_lab.core.model import count_parameters

    return decision_boundary(
        batched_predict(architecture, params),
        x,
        y,
        path,
        hidden_lines=hidden_unit_lines(architecture, params),
        title=title,
        resolution=plane_resolution(count_parameters(architecture)),
    )


def grid_loss_curves(
    learning_rates: np.ndarray, losses: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Median loss per learning rate with the 25–75% band across seeds; log scale.

    ``losses`` has shape ``(rates, seeds, epochs)``; diverged epochs are NaN and skipped.
    """
    figure, axis = plt.subplots(figsize=(6, 3.5))
    _fixed_margins(figure, title=title)
    epochs, thinned = _thinned({"loss": np.moveaxis(np.asarray(losses), -1, 0)}, _MAX_BAND_POINTS)
    losses = np.moveaxis(thinned["loss"], 0, -1)
    colors = plt.cm.viridis(np.linspace(0, 1, max(len(learning_rates), 2)))
    for index, rate in enumerate(learning_rates):
        curves = losses[index]
        with np.errstate(all="ignore"):
            finite = np.isfinite(curves).any(axis=0)
            if not finite.any():
                continue
            median = np.nanmedian(np.where(finite, curves, np.nan), axis=0)
            low, high = nan_percentile(curves, 25), nan_percentile(curves, 75)
        axis.plot(epochs, median, color=colors[index], lw=1.2, label=f"η={rate:.3g}")
        axis.fill_between(epochs, low, high, color=colors[index], alpha=0.15, lw=0)
    _log_scale_if_positive(axis, losses)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (median, 25–75% band)")
    axis.legend(fontsize=7, ncol=2)
    axis.set_title(title)
    return _save(figure, path)


def success_by(
    labels: Sequence[str],
    rates: np.ndarray,
    path: str | Path,
    *,
    xlabel: str,
    title: str = "",
    log_x_values: np.ndarray | None = None,
) -> Path:
    """Success rate (share of seeds solved) per learning rate or per architecture."""
    if log_x_values is not None:
        figure, axis = plt.subplots(figsize=(6, 3))
        _fixed_margins(figure, title=title)
        axis.plot(log_x_values, rates, "o-")
        axis.set_xscale("log")
    else:
        # Labels of any length, turned: measured by the constrained layout.
        figure, axis = plt.subplots(figsize=(6, 3), layout="constrained")
        axis.bar(range(len(labels)), rates)
        axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_ylim(0, 1.05)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("success rate")
    axis.set_title(title)
    return _save(figure, path)


def accuracy_by_rate(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]],
    path: str | Path,
    *,
    ylabel: str = "test accuracy",
    title: str = "",
) -> Path:
    """Final accuracy against the learning rate, one line per job: the median across seeds
    with the 25–75% band.

    Each entry of ``series`` is ``(label, rates, final accuracies (rates, seeds))``.
    """
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for label, rates, finals in series:
        finals = np.asarray(finals, dtype=float)
        with np.errstate(all="ignore"):
            median = np.nanmedian(finals, axis=1) if finals.size else finals
            low, high = nan_percentile(finals.T, 25), nan_percentile(finals.T, 75)
        (line,) = axis.plot(rates, median, "o-", ms=3, lw=1.2, label=label)
        axis.fill_between(rates, low, high, color=line.get_color(), alpha=0.15, lw=0)
    axis.set_xscale("log")
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("learning rate (peak of the schedule)")
    axis.set_ylabel(f"{ylabel} (median, 25–75% band)")
    if len(series) > 1:
        axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    axis.set_title(title)
    return _save(figure, path)


def confusion_matrix(
    matrix: np.ndarray, classes: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Counts of true (rows) against predicted (columns) classes, the counts written in."""
    matrix = np.asarray(matrix)
    size = max(3.0, min(7.0, 0.45 * len(classes) + 1.5))
    figure, axis = plt.subplots(figsize=(size + 0.8, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    ticks = range(len(classes))
    axis.set_xticks(ticks, [str(name)[:12] for name in classes], rotation=45, ha="right")
    axis.set_yticks(ticks, [str(name)[:12] for name in classes])
    if len(classes) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if count > threshold else "black"
            axis.text(
                column, row, str(int(count)), ha="center", va="center", fontsize=7, color=colour
            )
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    axis.set_title(title, fontsize=9)
    return _save(figure, path)
