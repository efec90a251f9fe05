"""``bplab-explain --run RUN_ID --epoch N``: one step of a recorded run, from its own numbers.

Epoch ``N`` of a run is the optimizer steps that turn the parameters after epoch ``N − 1``
into those after epoch ``N``: one per sample for online training, one per mini-batch, or one
for the full batch. The walk-through explains one of them (by default the last, which gives
the run's recorded weights at epoch ``N``), so it needs the state before epoch ``N``:

* **Plain SGD** keeps no optimizer state. When the run's trajectory (``trajectory.npz``)
  holds a snapshot at epoch ``N − 1``, the parameters come from it.
* **Otherwise** (no such snapshot, or momentum, Adam and the other optimizers, whose state is
  not recorded) the run is **replayed**: its config and recorded data set (``dataset.npz``)
  are trained again to epoch ``N − 1`` with the run's own compiled program and chunk length,
  which gives the parameters and the optimizer state bit for bit (checked against a snapshot
  when there is one).

The steps of epoch ``N`` before the explained one are then taken in the run's order (the same
shuffle as training draws), and the step is compared with what the run recorded at epoch
``N``: the snapshot at ``N``, or the final weights at the last epoch. The store is read as
untrusted data, as the report reads it (:mod:`backprop_lab.tracking.artifacts`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from backprop_lab.errors import BackpropLabError
from backprop_lab.explain.sources import (
    Explained,
    batch_label,
    cell_note,
    cell_position,
    explain_batch,
    sample_index,
    scheduled_rate_note,
    spec_settings,
    step_samples,
)
from backprop_lab.explain.view import Context


class RecordedRun(NamedTuple):
    """A run as bplab-explain reads it: config, data set, trajectory and final weights."""

    run_id: str
    kind: str
    cfg: Any
    job: Any
    trajectory: dict[str, np.ndarray] | None
    final: dict[str, np.ndarray]


class Start(NamedTuple):
    """The state before an epoch, and where it came from."""

    params: Any
    opt_state: Any
    notes: tuple[str, ...]
    parameters_from: str


def open_run(run_id: str, tracking_uri: str | None = None) -> RecordedRun:
    """Read a FINISHED single or grid run's config, data set, trajectory and final weights."""
    from backprop_lab import tracking
    from backprop_lab.tracking.artifacts import RunArtifacts, finished_training_run

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.check_store_exists(uri)
    mlflow_client = tracking.client(uri)
    run, kind = finished_training_run(
        mlflow_client, run_id, uri, "has every epoch to explain",
        "its grid parent with --cell LR,SEED",
    )  # fmt: skip
    from backprop_lab.interrupt import sigterm_unwinds

    # SIGTERM's default action would leave the downloads folder behind.
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="bplab-explain-") as folder:
        artifacts = RunArtifacts(mlflow_client, run, Path(folder))
        cfg, dataset, trajectory, final = _read_artifacts(run_id, artifacts, kind)
    from backprop_lab.jobs import prepare
    from backprop_lab.rerun import as_recorded

    job = as_recorded(prepare(cfg, dataset), run.data.tags)
    return RecordedRun(run_id, kind, cfg, job, trajectory, final)


def _read_artifacts(run_id: str, artifacts, kind: str):
    from backprop_lab.core.data import DATASET_ARTIFACT
    from backprop_lab.tracking.artifacts import (
        UnreadableArtifact,
        read_config,
        read_dataset,
        read_npz,
    )

    def required(name: str) -> Path:
        path = artifacts.path(name)
        if path is None:
            raise BackpropLabError(
                f"run {run_id} has no {name} artifact; it was not recorded by this version of "
                "bplab-train"
            )
        return path

    try:
        cfg = read_config(required("config.yaml"))
        dataset = read_dataset(required(DATASET_ARTIFACT), str(cfg.data.name))
        final = read_npz(required("grid.npz" if kind == "grid" else "weights.npz"), "final weights")
        trajectory_path = artifacts.path("trajectory.npz")
        trajectory = (
            None if trajectory_path is None else read_npz(trajectory_path, "trajectory.npz")
        )
    except UnreadableArtifact as error:
        raise BackpropLabError(f"run {run_id}: {error}") from None
    return cfg, dataset, trajectory, final


# ---------------------------------------------------------------------------------------------
# Parameters from the record


def _params(arrays: dict[str, np.ndarray], index: tuple, architecture, what: str):
    """One network of a recorded array layout, checked against the run's architecture."""
    from backprop_lab.core.model import params_from_arrays

    sizes = architecture.layer_sizes
    try:
        dtype = arrays["layer0_weights"].dtype
        params = params_from_arrays(arrays, index, dtype=dtype)
        fits = len(params) == len(sizes) - 1 and all(
            layer.weights.shape == (n_out, n_in)
            and (layer.biases is None) != architecture.use_bias
            and (layer.biases is None or layer.biases.shape == (n_out,))
            for layer, n_in, n_out in zip(params, sizes[:-1], sizes[1:], strict=False)
        )
    except (KeyError, IndexError, ValueError, TypeError):
        fits = False
    if not fits:
        raise BackpropLabError(f"the {what} do not fit the run's network {list(sizes)}")
    return params


def snapshot(run: RecordedRun, epoch: int, cell: tuple[int, int]):
    """The parameters the trajectory kept at ``epoch``; None when it kept none there."""
    if run.trajectory is None or "epochs" not in run.trajectory:
        return None
    epochs = np.asarray(run.trajectory["epochs"]).reshape(-1).tolist()
    if epoch not in epochs:
        return None
    index = (*cell, epochs.index(epoch)) if run.job.grid else (epochs.index(epoch),)
    return _params(run.trajectory, index, run.job.architecture, "trajectory snapshots")


def final_params(run: RecordedRun, cell: tuple[int, int]):
    name = "grid.npz weights" if run.job.grid else "weights.npz weights"
    return _params(run.final, cell if run.job.grid else (), run.job.architecture, name)


def replay(run: RecordedRun, cell: tuple[int, int], epochs: int):
    """Train the run again to ``epochs`` with its own program: ``(params, opt_state)``.

    Epochs past a chunk's end are skipped inside the program, so a run of ``epochs`` epochs
    and epoch ``epochs`` of a longer run give the same bits.
    """
    import jax
    import jax.numpy as jnp

    from backprop_lab.core.runner import run_in_chunks, seeded_programs
    from backprop_lab.core.sweep import cell_inputs, cell_programs
    from backprop_lab.core.train import to_device_data

    job = run.job
    data = to_device_data(job.dataset)
    spec = job.spec._replace(
        epochs=max(epochs, 1),
        snapshot_epochs=tuple(e for e in job.spec.snapshot_epochs if e <= max(epochs, 1)),
    )
    if job.grid:
        programs = cell_programs(spec, job.init_fn)
        state = programs.start(
            *cell_inputs(job.learning_rates, job.seeds, data.x_train.dtype), data
        )[0]
    else:
        programs = seeded_programs(spec, job.init_fn)
        rate = jnp.asarray(job.learning_rates[0], data.x_train.dtype)
        state = programs.start(jnp.asarray(job.seeds[cell[1]], jnp.uint32), rate, data)[0]
    if epochs > 0:
        state = run_in_chunks(spec, lambda s, first: programs.run_chunk(s, data, first), state)[0]
    params, opt_state = state.params, state.opt_state
    if job.grid:
        flat = cell[0] * len(job.seeds) + cell[1]
        params, opt_state = jax.tree_util.tree_map(lambda leaf: leaf[flat], (params, opt_state))
    return params, opt_state


def _same_bits(left, right) -> bool:
    from backprop_lab.core.model import params_to_arrays

    a, b = params_to_arrays(left), params_to_arrays(right)
    return a.keys() == b.keys() and all(
        a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes() for key in a
    )


def largest_difference(left, right) -> float:
    from backprop_lab.core.model import params_to_arrays

    a, b = params_to_arrays(left), params_to_arrays(right)
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a)


def start_of_epoch(run: RecordedRun, cell: tuple[int, int], epoch: int) -> Start:
    """Parameters and optimizer state before epoch ``epoch``: snapshot or replay (see above)."""
    before = epoch - 1
    kept = snapshot(run, before, cell)
    optimizer = run.job.spec.optimizer
    if kept is not None and optimizer == "sgd":
        note = (
            f"Parameters before epoch {epoch}: the snapshot at epoch {before} (trajectory.npz). "
            "Plain SGD keeps no optimizer state, so nothing else is needed."
        )
        return Start(kept, None, (note,), f"snapshot at epoch {before}")
    params, opt_state = replay(run, cell, before)
    why = (
        f"{optimizer} keeps an optimizer state that runs do not record"
        if optimizer != "sgd"
        else f"the trajectory kept no snapshot at epoch {before}"
    )
    notes = [
        f"Parameters{' and optimizer state' if optimizer != 'sgd' else ''} before epoch {epoch}: "
        f"replayed from the run's config and data set to epoch {before}, with the run's own "
        f"program ({why})."
    ]
    if kept is not None:
        verdict = (
            "bit for bit"
            if _same_bits(params, kept)
            else (f"to within {largest_difference(params, kept):.2g}")
        )
        notes.append(f"The replay equals the snapshot at epoch {before} {verdict}.")
    return Start(params, opt_state, tuple(notes), f"replay to epoch {before}")


# ---------------------------------------------------------------------------------------------
# One step of one epoch


class _Epoch(NamedTuple):
    """The optimizer steps of one epoch as training takes them (a padded mini-batch with its
    mask), the samples each trains on, and the step explained."""

    batches: list[tuple]
    samples: list[np.ndarray]
    chosen: int


def _epoch_steps(run: RecordedRun, seed: int, epoch: int, sample: int | None) -> _Epoch:
    from backprop_lab.core.batches import epoch_sample_order
    from backprop_lab.core.runner import seed_keys

    spec, dataset = run.job.spec, run.job.dataset
    count = len(dataset.x_train)
    order, mask = epoch_sample_order(spec, seed_keys(seed)[1], epoch - 1, count)
    batches = [
        (dataset.x_train[rows], dataset.y_train[rows], None if mask is None else mask[step])
        for step, rows in enumerate(order)
    ]
    samples = [step_samples(order, mask, step) for step in range(len(order))]
    if sample is None:
        return _Epoch(batches, samples, len(samples) - 1)
    index = sample_index(sample, count, f"run {run.run_id}'s training set")
    if spec.batching == "full":
        raise BackpropLabError(
            f"--sample {sample}: run {run.run_id} trains on the full batch "
            "(training.batching=full), so every step uses every sample; leave out --sample"
        )
    return _Epoch(batches, samples, next(s for s, rows in enumerate(samples) if index in rows))


def _recorded_at(run: RecordedRun, cell: tuple[int, int], epoch: int):
    """``(params, description)`` the run recorded at ``epoch``, or ``(None, "")``."""
    kept = snapshot(run, epoch, cell)
    if kept is not None:
        return kept, f"the snapshot at epoch {epoch} (trajectory.npz)"
    if epoch == int(run.cfg.training.epochs):
        name = "grid.npz" if run.job.grid else "weights.npz"
        return final_params(run, cell), f"the final weights ({name})"
    return None, ""


def _check_note(run, cell, epoch: int, after, last_step: bool) -> tuple[str, dict]:
    """How the epoch's steps compare with the weights the run recorded at ``epoch``."""
    recorded, where = _recorded_at(run, cell, epoch)
    if recorded is None:
        return f"The run recorded no weights at epoch {epoch} to compare with.", {}
    difference = largest_difference(after, recorded)
    exact = _same_bits(after, recorded)
    outcome = "bit for bit" if exact else f"to within {difference:.2g} (rounding)"
    lead = "This step gives" if last_step else "This step and the rest of the epoch give"
    check = {"against": where, "largest_difference": difference, "bitwise": exact}
    return f"{lead} the weights the run recorded at epoch {epoch}, {where}, {outcome}.", check


def explain_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    epoch: int | None = None,
    cell: str | None = None,
    sample: int | None = None,
) -> Explained:
    """Explain one optimizer step of epoch ``epoch`` (default: the last) of a recorded run."""
    from backprop_lab.core.steps import make_step_optimizer, take_steps

    run = open_run(run_id, tracking_uri)
    job, total = run.job, int(run.cfg.training.epochs)
    if job.spec.method == "perceptron":
        raise BackpropLabError(
            f"run {run_id} trained by the perceptron rule (training.method=perceptron), not by "
            "backprop: there is no gradient step to explain"
        )
    position = (0, 0)
    if job.grid:
        position = cell_position(cell, job.learning_rates, job.seeds, f"run {run_id}")
    elif cell is not None:
        raise BackpropLabError(f"--cell {cell}: run {run_id} is a single run, not a grid")
    epoch = total if epoch is None else epoch
    if not 1 <= epoch <= total:
        raise BackpropLabError(
            f"--epoch {epoch} is out of range: run {run_id} trained epochs 1 to {total}"
        )
    rate, rate_note = scheduled_rate_note(job.spec, job.learning_rates[position[0]], epoch)
    seed = job.seeds[position[1]]
    start = start_of_epoch(run, position, epoch)
    if rate_note:
        start = start._replace(notes=(*start.notes, rate_note))
    params, opt_state = start.params, start.opt_state
    if opt_state is None:
        opt_state = make_step_optimizer(job.spec, rate, params[0].weights.dtype).init(params)
    steps = _epoch_steps(run, seed, epoch, sample)
    params, opt_state = take_steps(job.spec, params, opt_state, steps.batches[: steps.chosen], rate)
    indices = steps.samples[steps.chosen]
    explanation = explain_batch(job.spec, params, job.dataset, indices, rate, opt_state)
    # The check takes the step exactly as training did (a padded mini-batch with its mask).
    after, _ = take_steps(job.spec, params, opt_state, steps.batches[steps.chosen :], rate)
    last = steps.chosen == len(steps.batches) - 1
    check = _check_note(run, position, epoch, after, last)
    return Explained(explanation, _context(run, position, epoch, start, steps, check))


def _context(run: RecordedRun, position, epoch: int, start: Start, steps: _Epoch, check):
    """What the walk-through says about where the step of a run comes from."""
    job, total, chosen = run.job, int(run.cfg.training.epochs), steps.chosen
    rate, seed = job.learning_rates[position[0]], job.seeds[position[1]]
    step_text = f"Step {chosen + 1} of {len(steps.batches)} of epoch {epoch} (of {total})"
    if chosen:
        before = "step 1 is" if chosen == 1 else f"steps 1 to {chosen} are"
        step_text += f"; {before} taken first, in the run's order"
    grid = [cell_note(job.learning_rates, job.seeds, position)] if job.grid else []
    note, recorded = check
    notes = [f"Run {run.run_id} ({run.cfg.name}, {run.kind} run).", *grid, step_text + "."]
    numbers = tuple(int(i) + 1 for i in steps.samples[chosen])
    replayed_state = start.opt_state is not None
    source = {
        "source": "run",
        "run_id": run.run_id,
        "kind": run.kind,
        "epoch": epoch,
        "epochs": total,
        "step": chosen + 1,
        "steps": len(steps.batches),
        "cell": {"learning_rate": rate, "seed": seed} if job.grid else None,
        "parameters_from": start.parameters_from,
        "optimizer_state_from": "replay" if replayed_state else "fresh (plain SGD has none)",
        "recorded_check": recorded,
    }
    return Context(
        sample_label=batch_label(job.spec.batching, numbers),
        sample_numbers=numbers,
        notes=(*notes, *start.notes, note),
        settings=spec_settings(job.spec),
        # Epoch 1's first step starts from the optimizer's initial state, replayed or not.
        fresh_state=not replayed_state or (epoch == 1 and chosen == 0),
        source=tuple(source.items()),
    )
