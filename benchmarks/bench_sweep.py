"""A 32 × 32 learning-rate × seed grid on XOR (2-2-1 sigmoid, online SGD, 2,000 epochs).

In one run:

1. training alone: the grid's compiled program in chunks (its cells last, as ``bplab-train``
   lays out a grid of this network; see ``backprop_lab.core.lanes``), with the trajectory's
   60 snapshots of every cell and per-epoch loss and accuracy copied back, at its best
   ``training.unroll`` of 1, 2, 4 and 8, its cells split across one XLA device per CPU core (as ``bplab-train``
   runs a grid with a second or more of training; this one has 0.2 s, which it keeps on one
   device, since splitting costs a longer first compilation): sample-updates per second; and
   the same program on one device (``one_device_updates_per_s``);
2. against a plain ``jit(vmap(lax.scan))`` trainer of the same network written in this file's
   ``baselines.plain_jax_grid``, recording the same per-epoch loss and accuracy, at its best
   ``unroll`` of 1, 2, 4 and 8 (``speedup_vs_plain_jax``);
3. against a NumPy per-network loop (run on a few cells and scaled to the grid);
4. against the project's own one-network-at-a-time training (the same compiled program,
   called per cell; run on a subset of cells and scaled);
5. end to end: ``bplab-train`` on the same grid, with every MLflow record written, with its
   trajectory (60 snapshots of every cell, ``trajectory.npz`` and ``explorer.html``) and
   without (``tracking.snapshots=0``), alternately, the fastest of ``--repeats`` each; and the
   seconds of each phase of the fastest run (``phases``: import, compile, train, record,
   figures, publish), read from its run record.

Usage: python benchmarks/bench_sweep.py [--json] [--rates 32] [--seeds 32] [--epochs 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import numpy_online_sgd, plain_jax_grid  # noqa: E402

BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument(
        "--numpy-cells", type=int, default=2, help="cells the NumPy loop trains (scaled up)"
    )
    parser.add_argument(
        "--single-cells", type=int, default=64, help="cells trained one at a time (scaled up)"
    )
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--repeats", type=int, default=3, help="end-to-end runs with and without trajectories"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from backprop_lab.devices import use_cpu_cores

    use_cpu_cores()  # as every bplab command does, before JAX starts
    import jax

    from backprop_lab.core.data import make_dataset
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.runner import chunk_epochs_for
    from backprop_lab.core.sweep import log_spaced, seed_keys, train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data, train_network
    from backprop_lab.core.trajectory import snapshot_epochs

    dataset = make_dataset("xor")
    data = to_device_data(dataset)
    architecture = Architecture((2, 2, 1), "sigmoid", "sigmoid")
    plain_spec = TrainSpec(architecture, epochs=args.epochs)
    rates = log_spaced(0.05, 20.0, args.rates)
    seeds = list(range(args.seeds))
    cells = len(rates) * len(seeds)
    updates = cells * args.epochs * len(dataset.x_train)
    init = lambda key: init_params(key, architecture)  # noqa: E731
    # The grid as bplab-train builds it: chunked, with the default trajectory.
    spec = plain_spec._replace(
        chunk_epochs=chunk_epochs_for(plain_spec, len(dataset.x_train), cells),
        snapshot_epochs=snapshot_epochs(args.epochs, 60),
    )

    started = time.perf_counter()
    train_grid(spec, init, rates, seeds, data)
    first_call_s = time.perf_counter() - started
    shards = jax.device_count()
    grid_s, engine_unroll = _best_unroll(
        lambda unroll: (
            lambda: train_grid(
                spec._replace(unroll=unroll), init, rates, seeds, data, shards=shards
            )
        )
    )
    spec = spec._replace(unroll=engine_unroll)
    grid_updates_per_s = updates / grid_s
    one_device_s = min(
        _timed(lambda: train_grid(spec, init, rates, seeds, data, shards=1)) for _ in range(5)
    )
    plain_s, plain_unroll = _plain_jax(data, init, rates, seeds, args.epochs)
    trajectory = _trajectory_costs(spec, init, rates, seeds, data)

    # NumPy, one network after another, on a few cells.
    numpy_s = 0.0
    for index in range(args.numpy_cells):
        init_key, _ = seed_keys(seeds[index % len(seeds)])
        params = init(init_key)
        weights = [np.asarray(layer.weights) for layer in params]
        biases = [np.asarray(layer.biases) for layer in params]
        started = time.perf_counter()
        numpy_online_sgd(
            weights, biases, dataset.x_train, dataset.y_train, rates[index], args.epochs
        )
        numpy_s += time.perf_counter() - started
    numpy_updates_per_s = args.numpy_cells * args.epochs * len(dataset.x_train) / numpy_s

    # The project's own single-network program, called once per cell.
    single_cells = min(args.single_cells, cells)
    init_key, shuffle_key = seed_keys(0)
    jax.block_until_ready(
        train_network(plain_spec, init(init_key), rates[0], shuffle_key, data)
    )  # compile
    started = time.perf_counter()
    for index in range(single_cells):
        init_key, shuffle_key = seed_keys(seeds[index % len(seeds)])
        jax.block_until_ready(
            train_network(plain_spec, init(init_key), rates[index % len(rates)], shuffle_key, data)
        )
    single_updates_per_s = (
        single_cells * args.epochs * len(dataset.x_train) / (time.perf_counter() - started)
    )

    end_to_end_s = end_to_end_bare_s = explorer_bytes = phases = None
    if not args.skip_end_to_end:
        end_to_end_s, end_to_end_bare_s, explorer_bytes, phases = _end_to_end(args, rates)

    results = {
        "cells": cells,
        "epochs": args.epochs,
        "sample_updates": updates,
        "grid_first_call_s": round(first_call_s, 3),
        "grid_train_s": round(grid_s, 4),
        "grid_updates_per_s": round(grid_updates_per_s),
        "grid_best_unroll": engine_unroll,
        "grid_shards": shards,
        "one_device_updates_per_s": round(updates / one_device_s),
        "one_device_speedup_vs_plain_jax": round(plain_s / one_device_s, 3),
        "plain_jax_updates_per_s": round(updates / plain_s),
        "plain_jax_best_unroll": plain_unroll,
        "speedup_vs_plain_jax": round(plain_s / grid_s, 3),
        "numpy_updates_per_s": round(numpy_updates_per_s),
        "one_at_a_time_updates_per_s": round(single_updates_per_s),
        "speedup_vs_numpy": round(grid_updates_per_s / numpy_updates_per_s, 1),
        "speedup_vs_one_at_a_time": round(grid_updates_per_s / single_updates_per_s, 1),
        "end_to_end_s": None if end_to_end_s is None else round(end_to_end_s, 2),
        "end_to_end_without_trajectory_s": None
        if end_to_end_bare_s is None
        else round(end_to_end_bare_s, 2),
        "trajectory_overhead": None
        if end_to_end_s is None
        else round(end_to_end_s / end_to_end_bare_s - 1, 3),
        "explorer_bytes": explorer_bytes,
        "phases": phases,
        **{f"trajectory_{key}": value for key, value in trajectory.items()},
        "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"grid: {args.rates} rates x {args.seeds} seeds = {cells} networks, {args.epochs} epochs, {updates:,} sample-updates"
    )
    print(f"  jit(vmap) grid, first call (compile + run): {first_call_s:8.3f} s")
    print(
        f"  jit(vmap) grid, steady state, unroll {engine_unroll}, {shards} shard(s): {grid_s:8.3f} s  {grid_updates_per_s:14,.0f} updates/s  (target >= 100,000,000)"
    )
    print(
        f"  the same grid on one device:                {one_device_s:8.3f} s  {updates / one_device_s:14,.0f} updates/s  -> {plain_s / one_device_s:.2f}x plain JAX"
    )
    print(
        f"  plain jit(vmap(lax.scan)), unroll {plain_unroll}:        {plain_s:8.3f} s  {updates / plain_s:14,.0f} updates/s  -> engine is {plain_s / grid_s:.2f}x  (target >= 1.0)"
    )
    print(
        f"  NumPy loop per network ({args.numpy_cells} cells, scaled): {'':1}{numpy_updates_per_s:14,.0f} updates/s  -> grid is {grid_updates_per_s / numpy_updates_per_s:,.0f}x  (target ~1,500x)"
    )
    print(
        f"  one network at a time ({single_cells} cells, scaled):  {single_updates_per_s:14,.0f} updates/s  -> grid is {grid_updates_per_s / single_updates_per_s:,.1f}x"
    )
    if end_to_end_s is not None:
        print(
            f"  end to end, bplab-train with every MLflow record: {end_to_end_s:.2f} s  (target <= 8 s)"
        )
        print(
            "    phases: "
            + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items())
        )
        print(
            f"    without trajectories (tracking.snapshots=0):     {end_to_end_bare_s:.2f} s  -> "
            f"trajectories add {100 * (end_to_end_s / end_to_end_bare_s - 1):+.1f}%  (target <= +10%)"
        )
        print(f"    the run's explorer.html: {explorer_bytes / 1e6:.2f} MB")
    print(
        "  the trajectory's own work, in process: training with 60 snapshots "
        f"{trajectory['training_extra_s']:+.3f} s, trajectory.npz {trajectory['npz_s']:.3f} s, "
        f"explorer.html {trajectory['explorer_s']:.3f} s ({trajectory['explorer_bytes'] / 1e6:.2f} MB)"
    )
    return 0


def _plain_jax(data, init, rates, seeds, epochs: int) -> tuple[float, int]:
    """Seconds of the plain trainer at its best unroll, per-epoch history copied to NumPy."""
    import jax
    import jax.numpy as jnp

    from backprop_lab.core.runner import seed_keys

    cell_seeds = np.tile(seeds, len(rates))
    cell_rates = jnp.asarray(np.repeat(rates, len(seeds)), jnp.float32)
    keys = jax.vmap(lambda seed: seed_keys(seed)[0])(jnp.asarray(cell_seeds, jnp.uint32))
    layers = jax.vmap(init)(keys)
    params = tuple(leaf for layer in layers for leaf in (layer.weights, layer.biases))

    def program(unroll):
        train = plain_jax_grid(data.x_train, data.y_train, epochs, unroll)

        def run():
            trained, history = train(params, cell_rates)
            return trained, [np.asarray(curve) for curve in history]

        return run

    return _best_unroll(program)


def _best_unroll(program) -> tuple[float, int]:
    """``(seconds, unroll)`` of the fastest of ``program(unroll)()`` over unroll 1, 2, 4 and 8
    (each compiled first, then the best of 5 calls)."""
    best = None
    for unroll in (1, 2, 4, 8):
        run = program(unroll)
        run()  # compile
        seconds = min(_timed(run) for _ in range(5))
        if best is None or seconds < best[0]:
            best = (seconds, unroll)
    return best


def _trajectory_costs(spec, init, rates, seeds, data) -> dict[str, float]:
    """What keeping a trajectory adds, measured alone: training with 60 snapshots against
    without, then writing trajectory.npz and rendering the explorer from the result."""
    from backprop_lab.core.sweep import train_grid
    from backprop_lab.explorer import render_explorer
    from backprop_lab.explorer.sources import explorer_job
    from backprop_lab.recording import trajectory_arrays, write_trajectory

    without = spec._replace(snapshot_epochs=())
    train_grid(without, init, rates, seeds, data)  # compile
    bare_s = min(_timed(lambda: train_grid(without, init, rates, seeds, data)) for _ in range(3))
    snapshots_s = min(_timed(lambda: train_grid(spec, init, rates, seeds, data)) for _ in range(3))
    grid = train_grid(spec, init, rates, seeds, data)
    result = grid.result
    arrays = trajectory_arrays(spec.snapshot_epochs, result.snapshots, spec.epochs)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_trajectory(Path(folder), arrays)
        npz_s = time.perf_counter() - started
    started = time.perf_counter()
    cells = {
        "learning_rates": grid.learning_rates,
        "seeds": grid.seeds,
        "loss": np.asarray(result.history.loss),
        "accuracy": np.asarray(result.history.accuracy),
        "initial_loss": np.asarray(result.initial_loss),
        "diverged_epoch": np.asarray(result.diverged_epoch),
    }
    job = explorer_job("bench", "bench", "", spec.architecture, None, cells, arrays)
    page = render_explorer("bench", [job])
    explorer_s = time.perf_counter() - started
    return {
        "training_extra_s": round(snapshots_s - bare_s, 3),
        "npz_s": round(npz_s, 3),
        "explorer_s": round(explorer_s, 3),
        "explorer_bytes": len(page.encode()),
    }


def _end_to_end(args, rates) -> tuple[float, float, int, dict[str, float]]:
    """Seconds of ``bplab-train`` on the grid with and without trajectories (the fastest of
    ``args.repeats`` each, run alternately), the size of the explorer it wrote, and the phases
    of the fastest run with trajectories (from its run record)."""
    with tempfile.TemporaryDirectory() as folder:
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        rate_list = "[" + ",".join(f"{rate:.6g}" for rate in rates) + "]"
        command = [
            str(BIN / "bplab-train"),
            "experiment=xor_mlp",
            f"training.epochs={args.epochs}",
            f"sweep.learning_rates={rate_list}",
            f"sweep.seeds={args.seeds}",
            f"tracking.uri={store}",
        ]
        # The store is created once, outside the timings.
        subprocess.run(
            [*command[:2], "training.epochs=1", f"tracking.uri={store}"],
            cwd=folder,
            check=True,
            capture_output=True,
        )
        timings: dict[bool, list[float]] = {True: [], False: []}
        phases, fastest = {}, float("inf")
        for _ in range(args.repeats):
            for trajectories in (True, False):
                extra = [] if trajectories else ["tracking.snapshots=0"]
                started = time.perf_counter()
                subprocess.run([*command, *extra], cwd=folder, check=True, capture_output=True)
                seconds = time.perf_counter() - started
                timings[trajectories].append(seconds)
                if trajectories and seconds < fastest:
                    fastest, phases = seconds, _latest_phases(Path(folder))
        pages = sorted((Path(folder) / "outputs").rglob("explorer.html"))
        size = max((page.stat().st_size for page in pages), default=0)
    return min(timings[True]), min(timings[False]), size, phases


def _latest_phases(folder: Path) -> dict[str, float]:
    """The phases of the newest run record under ``folder`` (``start_up`` named ``import``)."""
    records = sorted((folder / "outputs").rglob("record.json"), key=lambda p: p.stat().st_mtime)
    timings = json.loads(records[-1].read_text())["timings"]
    names = {"start_up": "import", "compile": "compile", "train": "train", "record": "record",
             "figures": "figures", "publish": "publish"}  # fmt: skip
    return {label: round(timings.get(key, 0.0), 3) for key, label in names.items()}


def _timed(function) -> float:
    started = time.perf_counter()
    result = function()
    import jax

    jax.block_until_ready(result)
    return time.perf_counter() - started


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
