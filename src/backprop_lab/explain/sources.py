"""What ``bplab-explain`` explains: the article's example, or any config ``bplab-train`` takes.

:func:`article` is the worked example of SEED-NOTES §4–5 with its fixed weights.
:func:`from_config` composes a config exactly as ``bplab-train`` does (a preset and any Hydra
overrides), draws the initial weights with :func:`backprop_lab.jobs.initial_params_fn` (explicit
``model.initial_weights`` are honoured) and explains the first step training would take, or a
step on one chosen sample. Recorded runs are :mod:`backprop_lab.explain.run`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from backprop_lab.core.explain import (
    ARTICLE_LEARNING_RATE,
    StepExplanation,
    explain_article_step,
    explain_update,
    harvard_neuron,
)
from backprop_lab.errors import BackpropLabError
from backprop_lab.explain.view import Context


class Explained(NamedTuple):
    """A step's explanation and what it was computed from."""

    explanation: StepExplanation
    context: Context


def article(sample: int | None = None, learning_rate: float | None = None) -> Explained:
    """The article's 2-2-2 example from its initial weights, on one of its three samples."""
    number = 1 if sample is None else sample
    rate = ARTICLE_LEARNING_RATE if learning_rate is None else learning_rate
    explanation = explain_article_step(number, rate)
    context = Context(
        sample_label=f"sample {number}",
        sample_numbers=(number,),
        harvard=harvard_neuron(),
        source=(("source", "article"), ("sample", number)),
    )
    return Explained(explanation, context)


# ---------------------------------------------------------------------------------------------
# Shared by configs and recorded runs


def spec_settings(spec) -> tuple[tuple[str, float], ...]:
    """The optimizer's hyperparameters, for the sentence that explains its rule."""
    return tuple(
        (name, float(getattr(spec, name))) for name in ("momentum", "beta1", "beta2", "eps")
    )


def sample_index(number: int, count: int, where: str) -> int:
    """The 0-based index of sample ``number`` (from 1), or a one-line error naming the range."""
    if not 1 <= number <= count:
        raise BackpropLabError(
            f"--sample {number} does not exist; {where} has samples 1 to {count}"
        )
    return number - 1


def parse_cell(text: str) -> tuple[float, int]:
    """``LR,SEED`` (``0.5,3``) as a learning rate and a seed."""
    parts = text.split(",")
    try:
        rate, seed = float(parts[0]), int(parts[1])
        if len(parts) != 2 or not math.isfinite(rate):
            raise ValueError
    except (ValueError, IndexError):
        raise BackpropLabError(
            f"--cell {text!r} is not LR,SEED (a learning rate and a seed, e.g. --cell 0.5,3)"
        ) from None
    return rate, seed


def cell_position(
    cell: str | None, rates: Sequence[float], seeds: Sequence[int], what: str
) -> tuple[int, int]:
    """``(rate index, seed index)`` of ``--cell LR,SEED`` in a grid; the first cell when None.

    A rate matches when it is equal to 9 significant digits, or to the 3 that run names show.
    """
    if cell is None:
        return 0, 0
    rate, seed = parse_cell(cell)
    matches = [
        index
        for index, known in enumerate(rates)
        if math.isclose(known, rate, rel_tol=1e-9) or f"{known:.3g}" == f"{rate:.3g}"
    ]
    grid = (
        f"learning rates {', '.join(f'{r:g}' for r in rates)} × seeds "
        f"{', '.join(str(s) for s in seeds)}"
    )
    if not matches or seed not in list(seeds):
        raise BackpropLabError(f"--cell {cell} is not in the grid of {what}: it has {grid}")
    return matches[0], list(seeds).index(seed)


def cell_note(rates: Sequence[float], seeds: Sequence[int], position: tuple[int, int]) -> str:
    rate_index, seed_index = position
    return (
        f"Grid cell: learning rate {rates[rate_index]:g}, seed {seeds[seed_index]} "
        f"(of {len(rates)} rates × {len(seeds)} seeds; --cell LR,SEED picks another)."
    )


def step_samples(order: np.ndarray, mask: np.ndarray | None, step: int) -> np.ndarray:
    """The data set's indices of the samples one optimizer step trains on (padding dropped)."""
    indices = order[step]
    return indices if mask is None else indices[np.asarray(mask[step]) > 0]


def batch_label(batching: str, numbers: Sequence[int]) -> str:
    """How the samples of a step are named in the walk-through."""
    if len(numbers) == 1:
        return f"sample {numbers[0]}"
    if batching == "full":
        return "the full batch"
    return f"the mini-batch of samples {', '.join(str(n) for n in numbers)}"


def explain_batch(spec, params, dataset, indices: np.ndarray, rate: float, opt_state=None):
    """:func:`explain_update` on the samples ``indices`` of the training set (one sample is
    explained as a sample, several as a batch)."""
    x, y = dataset.x_train[indices], dataset.y_train[indices]
    as_floats = lambda rows: [[float(v) for v in row] for row in rows]  # noqa: E731
    x, y = as_floats(x), as_floats(y)
    if len(indices) == 1:
        return explain_update(spec, params, x[0], y[0], rate, opt_state)
    return explain_update(spec, params, x, y, rate, opt_state)


# ---------------------------------------------------------------------------------------------
# A config


def compose_config(overrides: Sequence[str]):
    """The config ``bplab-train`` would compose from ``overrides``, validated; one-line errors."""
    from hydra import compose, initialize_config_dir

    from backprop_lab.cli.common import one_line
    from backprop_lab.config import register_configs, validate
    from backprop_lab.paths import conf_dir

    register_configs()
    try:
        with initialize_config_dir(
            version_base="1.3", config_dir=str(conf_dir()), job_name="bplab-explain"
        ):
            cfg = compose("train", overrides=list(overrides))
    except BackpropLabError:
        raise
    except Exception as error:  # Hydra's and OmegaConf's composition errors
        raise BackpropLabError(one_line(error)) from None
    validate(cfg)
    return cfg


def _initial_weights_note(cfg, seed: int) -> str:
    if cfg.model.initial_weights is not None:
        return "Weights: the config's model.initial_weights and initial_biases."
    return (
        f"Weights: drawn by model.init={cfg.model.init} (scale {cfg.model.init_scale:g}) from "
        f"seed {seed}, as bplab-train draws them."
    )


def scheduled_rate_note(spec, peak_rate: float, epoch: int) -> tuple[float, str]:
    """The learning rate epoch ``epoch`` (from 1) trains at, and a note saying so when a
    schedule (``schedule.name``) makes it other than the configured peak."""
    from backprop_lab.core.train import epoch_learning_rates

    if spec.schedule.name == "constant":
        return float(peak_rate), ""
    rate = float(epoch_learning_rates(spec, peak_rate, epoch)[-1])
    return rate, (
        f"Learning rate of epoch {epoch}: η = {rate:.6g}, from the {spec.schedule.name} "
        f"schedule with peak {float(peak_rate):g} (schedule.*)."
    )


def from_config(
    overrides: Sequence[str],
    *,
    sample: int | None = None,
    learning_rate: float | None = None,
    cell: str | None = None,
) -> Explained:
    """The first step training with this config takes, or a step on sample ``sample`` alone,
    from the config's initial weights and a fresh optimizer."""
    from backprop_lab.core.batches import epoch_sample_order
    from backprop_lab.core.runner import seed_keys
    from backprop_lab.jobs import prepare

    cfg = compose_config(overrides)
    job = prepare(cfg)
    position = (0, 0)
    notes = [f"Config: {' '.join(overrides)}."]
    if job.grid:
        position = cell_position(cell, job.learning_rates, job.seeds, "this config")
        notes.append(cell_note(job.learning_rates, job.seeds, position))
    elif cell is not None:
        raise BackpropLabError(f"--cell {cell}: this config is not a grid (no sweep.*)")
    if learning_rate is None:
        rate, note = scheduled_rate_note(job.spec, job.learning_rates[position[0]], 1)
        notes += [note] if note else []
    else:
        rate = learning_rate
    seed = job.seeds[position[1]]
    init_key, shuffle_key = seed_keys(seed)
    params = job.init_fn(init_key)
    notes.append(_initial_weights_note(cfg, seed))
    count = len(job.dataset.x_train)
    if sample is not None:
        indices = np.array(
            [sample_index(sample, count, f"the training set of {job.dataset.name!r}")]
        )
        notes.append(f"A step on sample {sample} alone, from the initial weights.")
    else:
        order, mask = epoch_sample_order(job.spec, shuffle_key, 0, count)
        indices = step_samples(order, mask, 0)
        notes.append(
            f"The first optimizer step of training (training.batching={job.spec.batching})."
        )
    numbers = tuple(int(i) + 1 for i in indices)
    explanation = explain_batch(job.spec, params, job.dataset, indices, rate)
    context = Context(
        sample_label=batch_label(job.spec.batching, numbers),
        sample_numbers=numbers,
        notes=tuple(notes),
        settings=spec_settings(job.spec),
        fresh_state=True,
        source=(("source", "config"), ("overrides", list(overrides)), ("sample", sample)),
    )
    return Explained(explanation, context)
