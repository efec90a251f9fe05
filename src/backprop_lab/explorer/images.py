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

from backprop_lab.core.model import forward, layer_activations, params_from_arrays

IMAGE_KEY = "decision_boundary"
# A few images: the first and last snapshot epochs and some between (snapshots are dense early).
IMAGE_COUNT = 6
IMAGE_SIZE = 160
# MLflow's thumbnails (``mlflow.tracking.multimedia.COMPRESSED_IMAGE_SIZE``).
THUMBNAIL_SIZE = 256
LOGGED_IMAGES_TAG = "mlflow.loggedImages"
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


def boundary_image(architecture, params, dataset, size: int = IMAGE_SIZE) -> np.ndarray:
    """``(size, size, 3)`` uint8: the first output over the input plane, the boundary at 1/2
    in dark grey, training points ringed in white and test points in black."""
    splits = [(dataset.x_train, dataset.y_train, 255)]
    if dataset.has_test:
        splits.append((dataset.x_test, dataset.y_test, 0))
    x0, x1, y0, y1 = plane_box(np.concatenate([x for x, _, _ in splits]))
    columns = x0 + (np.arange(size) + 0.5) / size * (x1 - x0)
    rows = y1 - (np.arange(size) + 0.5) / size * (y1 - y0)
    grid = np.stack(np.meshgrid(columns, rows), axis=-1).reshape(-1, 2).astype(np.float32)
    values = np.asarray(forward(params, grid, layer_activations(architecture)))[:, 0]
    values = values.reshape(size, size)
    image = _colours(values)
    side = values > 0.5
    edge = np.zeros_like(side)
    edge[:, :-1] |= side[:, :-1] != side[:, 1:]
    edge[:-1, :] |= side[:-1, :] != side[1:, :]
    image[edge] = 40
    yy, xx = np.mgrid[0:size, 0:size]
    for points, targets, ring in splits:
        for (px, py), target in zip(points, targets[:, 0], strict=True):
            cx, cy = (px - x0) / (x1 - x0) * size, (y1 - py) / (y1 - y0) * size
            distance = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy)
            image[distance <= 3.6] = ring
            image[distance <= 2.6] = _BLUE if target >= 0.5 else _ORANGE
    return image.astype(np.uint8)


def record_boundary_images(record, architecture, dataset, trajectory) -> int:
    """Write a few decision-boundary images of a 2-input run's snapshots into its record, as
    MLflow's ``log_image(key="decision_boundary", step=epoch)`` would; return how many."""
    if not trajectory or dataset is None or architecture.num_inputs != 2:
        return 0
    from PIL import Image

    folder = record.artifact_dir / "images"
    epochs = np.asarray(trajectory["epochs"])
    written = 0
    for index in image_snapshots(len(epochs)):
        params = params_from_arrays(trajectory, (index,))
        if not all(
            np.isfinite(np.asarray(leaf)).all()
            for layer in params
            for leaf in layer
            if leaf is not None
        ):
            continue  # a diverged network has no boundary to draw
        picture = Image.fromarray(boundary_image(architecture, params, dataset))
        name = (
            f"{IMAGE_KEY}+step+{int(epochs[index])}+timestamp+{record.timestamp_ms}"
            f"+{uuid.uuid5(uuid.NAMESPACE_URL, f'{record.folder}/{index}')}"
        )
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{name}.png")
        picture.resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE)).save(folder / f"{name}+compressed.webp")
        written += 1
    if written:
        record.tags[LOGGED_IMAGES_TAG] = "True"
    return written
