"""Decision-boundary images at a few snapshot epochs, for MLflow's image view.

MLflow's ``log_image(run_id, image, key=..., step=...)`` stores each image as the artifacts
``images/<key>+step+<step>+timestamp+<ms>+<id>.png`` (and a small ``...+compressed.webp``) and
sets the tag ``mlflow.loggedImages``; its UI then shows the images of a key on a step slider.
The images are written into the run record in that layout, so they travel with the record's
other artifacts (also through ``bplab-sync``) instead of needing the run to exist first.
"""

from __future__ import annotations

import uuid

import numpy as np

from backprop_lab.core.model import Layer, forward, layer_activations, num_layers_in
from backprop_lab.explorer.data import MAX_PLANE_POINTS

IMAGE_KEY = "decision_boundary"
# A few images: the first and last snapshot epochs and some between (snapshots are dense early).
IMAGE_COUNT = 6
# The size of the report figures' plane (plots.plane_resolution), so both share compiled operations.
IMAGE_SIZE = 120
# MLflow's thumbnails (``mlflow.tracking.multimedia.COMPRESSED_IMAGE_SIZE``).
THUMBNAIL_SIZE = 256
LOGGED_IMAGES_TAG = "mlflow.loggedImages"
# The most unit values computed at once for the images (64 MB of float32).
MAX_VALUES = 1 << 24
_ORANGE, _WHITE, _BLUE = (
    np.array([245, 147, 34]),
    np.array([255, 255, 255]),
    np.array([8, 119, 189]),
)


def image_snapshots(count: int, wanted: int = IMAGE_COUNT) -> list[int]:
    """Indices of about ``wanted`` snapshots out of ``count``, the first and last included."""
    if count <= 0:
        return []
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, min(wanted, count))})


def plane_box(points: np.ndarray, margin: float = 0.5) -> tuple[float, float, float, float]:
    """A square around the points and ``margin`` more (as ``plots.decision_boundary``)."""
    low, high = points.min(axis=0), points.max(axis=0)
    centre = (low + high) / 2
    half = float(np.max(high - low)) / 2 + margin
    return centre[0] - half, centre[0] + half, centre[1] - half, centre[1] + half


def _colours(values: np.ndarray) -> np.ndarray:
    """Outputs in [0, 1] as orange (0), white (1/2), blue (1); grey where not finite."""
    v = np.clip(np.nan_to_num(values, nan=0.5), 0.0, 1.0)[..., None]
    low = _ORANGE + (_WHITE - _ORANGE) * (v * 2)
    high = _WHITE + (_BLUE - _WHITE) * ((v - 0.5) * 2)
    image = np.where(v < 0.5, low, high)
    image[~np.isfinite(values)] = 200
    return image


def _splits(dataset) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """``(points, targets, ring colour)``: training points ringed in white, test points in black.

    At most ``MAX_PLANE_POINTS`` of each (every n-th), as the explorer draws them: a 256-pixel
    image shows no more, and each point costs a disc of pixels (a million took minutes).
    """
    splits = [(dataset.x_train, dataset.y_train, 255)]
    if dataset.has_test:
        splits.append((dataset.x_test, dataset.y_test, 0))
    strides = [max(1, -(-len(points) // MAX_PLANE_POINTS)) for points, _, _ in splits]
    return [
        (points[::step], targets[::step], ring)
        for (points, targets, ring), step in zip(splits, strides, strict=True)
    ]


def plane_grid(dataset, size: int = IMAGE_SIZE) -> tuple[np.ndarray, tuple]:
    """The ``(size * size, 2)`` pixel centres of the plane, row by row from the top, and its box."""
    box = plane_box(np.concatenate([x for x, _, _ in _splits(dataset)]))
    x0, x1, y0, y1 = box
    columns = x0 + (np.arange(size) + 0.5) / size * (x1 - x0)
    rows = y1 - (np.arange(size) + 0.5) / size * (y1 - y0)
    return np.stack(np.meshgrid(columns, rows), axis=-1).reshape(-1, 2).astype(np.float32), box


def plane_outputs(architecture, snapshots: dict[str, np.ndarray], grid: np.ndarray) -> np.ndarray:
    """The first output of each snapshot's network (``params_to_arrays`` layout with a leading
    snapshot axis) at every point of ``grid``: ``(snapshots, points)``, in one compiled call."""
    import jax

    activations = layer_activations(architecture)
    # NumPy arrays straight into the compiled call (jnp.asarray would compile a copy of each).
    params = tuple(
        Layer(
            np.asarray(snapshots[f"layer{i}_weights"], np.float32),
            None
            if f"layer{i}_biases" not in snapshots
            else np.asarray(snapshots[f"layer{i}_biases"], np.float32),
        )
        for i in range(num_layers_in(snapshots))
    )
    one = lambda p: forward(p, grid, activations)[:, 0]  # noqa: E731
    return np.asarray(jax.jit(jax.vmap(one))(params))


def boundary_image(values: np.ndarray, dataset, box: tuple, size: int = IMAGE_SIZE) -> np.ndarray:
    """``(size, size, 3)`` uint8: ``values`` (the output at :func:`plane_grid`'s points) as
    colours, the boundary at 1/2 in dark grey, and the data's points."""
    x0, x1, y0, y1 = box
    values = values.reshape(size, size)
    image = _colours(values)
    side = values > 0.5
    edge = np.zeros_like(side)
    edge[:, :-1] |= side[:, :-1] != side[:, 1:]
    edge[:-1, :] |= side[:-1, :] != side[1:, :]
    image[edge] = 40
    for points, targets, ring in _splits(dataset):
        centres = np.stack(
            [(points[:, 0] - x0) / (x1 - x0) * size, (y1 - points[:, 1]) / (y1 - y0) * size], 1
        )
        fills = np.where(targets[:, :1] >= 0.5, _BLUE, _ORANGE)
        for radius, colour in ((3.6, np.full_like(fills, ring)), (2.6, fills)):
            rows, columns, which = _discs(centres, radius, size)
            image[rows, columns] = colour[which]
    return image.astype(np.uint8)


def _discs(centres: np.ndarray, radius: float, size: int):
    """``(rows, columns, point)`` of the pixels whose centres lie within ``radius`` of each
    point's centre (pixels), all points at once."""
    reach = int(np.ceil(radius))
    offsets = np.arange(-reach, reach + 1)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    columns = np.floor(centres[:, 0])[:, None, None].astype(int) + dx
    rows = np.floor(centres[:, 1])[:, None, None].astype(int) + dy
    distance = np.hypot(
        columns + 0.5 - centres[:, 0, None, None], rows + 0.5 - centres[:, 1, None, None]
    )
    inside = (distance <= radius) & (rows >= 0) & (rows < size) & (columns >= 0) & (columns < size)
    which = np.broadcast_to(np.arange(len(centres))[:, None, None], inside.shape)
    return rows[inside], columns[inside], which[inside]


def record_boundary_images(record, architecture, dataset, trajectory) -> int:
    """Write a few decision-boundary images of a 2-input run's snapshots into its record, as
    MLflow's ``log_image(key="decision_boundary", step=epoch)`` would; return how many."""
    if not trajectory or dataset is None or architecture.num_inputs != 2:
        return 0
    from PIL import Image

    folder = record.artifact_dir / "images"
    epochs = np.asarray(trajectory["epochs"])
    layers = {key: np.asarray(v) for key, v in trajectory.items() if key.startswith("layer")}
    # A diverged network has no boundary to draw.
    finite = [
        index
        for index in image_snapshots(len(epochs))
        if all(np.isfinite(v[index]).all() for v in layers.values())
    ]
    # Every unit's value at every point of every image at once: bounded, so a very wide
    # network draws none instead of filling the memory.
    if not finite or IMAGE_SIZE**2 * max(architecture.layer_sizes) * len(finite) > MAX_VALUES:
        return 0
    grid, box = plane_grid(dataset)
    outputs = plane_outputs(architecture, {k: v[finite] for k, v in layers.items()}, grid)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, values in zip(finite, outputs, strict=True):
        picture = Image.fromarray(boundary_image(values, dataset, box))
        name = (
            f"{IMAGE_KEY}+step+{int(epochs[index])}+timestamp+{record.timestamp_ms}"
            f"+{uuid.uuid5(uuid.NAMESPACE_URL, f'{record.folder}/{index}')}"
        )
        picture.save(folder / f"{name}.png")
        picture.resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE)).save(folder / f"{name}+compressed.webp")
        written += 1
    if written:
        record.tags[LOGGED_IMAGES_TAG] = "True"
    return written
