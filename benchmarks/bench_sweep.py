"""A 32 × 32 learning-rate × seed grid on XOR (2-2-1 sigmoid, online SGD, 2,000 epochs).

In one run:

1. training alone, as one ``jit(vmap(train))`` program: sample-updates per second;
2. against a NumPy per-network loop (run on a few cells and scaled to the grid);
3. against the project's own one-network-at-a-time training (the same compiled program,
   called per cell; run on a subset of cells and scaled);
4. end to end: ``bplab-train`` on the same grid, with every MLflow record written.

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
from baselines import numpy_online_sgd  # noqa: E402

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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import jax

    from backprop_lab.core.data import make_dataset
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.sweep import log_spaced, seed_keys, train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data, train_network

    dataset = make_dataset("xor")
    data = to_device_data(dataset)
    architecture = Architecture((2, 2, 1), "sigmoid", "sigmoid")
    spec = TrainSpec(architecture, epochs=args.epochs)
    rates = log_spaced(0.05, 20.0, args.rates)
    seeds = list(range(args.seeds))
    cells = len(rates) * len(seeds)
    updates = cells * args.epochs * len(dataset.x_train)
    init = lambda key: init_params(key, architecture)  # noqa: E731

    started = time.perf_counter()
    train_grid(spec, init, rates, seeds, data)
    first_call_s = time.perf_counter() - started
    grid_s = min(_timed(lambda: train_grid(spec, init, rates, seeds, data)) for _ in range(3))
    grid_updates_per_s = updates / grid_s

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
        train_network(spec, init(init_key), rates[0], shuffle_key, data)
    )  # compile
    started = time.perf_counter()
    for index in range(single_cells):
        init_key, shuffle_key = seed_keys(seeds[index % len(seeds)])
        jax.block_until_ready(
            train_network(spec, init(init_key), rates[index % len(rates)], shuffle_key, data)
        )
    single_updates_per_s = (
        single_cells * args.epochs * len(dataset.x_train) / (time.perf_counter() - started)
    )

    end_to_end_s = None
    if not args.skip_end_to_end:
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
            subprocess.run(
                [*command[:2], "training.epochs=1", f"tracking.uri={store}"],
                cwd=folder,
                check=True,
                capture_output=True,
            )
            started = time.perf_counter()
            subprocess.run(command, cwd=folder, check=True, capture_output=True)
            end_to_end_s = time.perf_counter() - started

    results = {
        "cells": cells,
        "epochs": args.epochs,
        "sample_updates": updates,
        "grid_first_call_s": round(first_call_s, 3),
        "grid_train_s": round(grid_s, 4),
        "grid_updates_per_s": round(grid_updates_per_s),
        "numpy_updates_per_s": round(numpy_updates_per_s),
        "one_at_a_time_updates_per_s": round(single_updates_per_s),
        "speedup_vs_numpy": round(grid_updates_per_s / numpy_updates_per_s, 1),
        "speedup_vs_one_at_a_time": round(grid_updates_per_s / single_updates_per_s, 1),
        "end_to_end_s": None if end_to_end_s is None else round(end_to_end_s, 2),
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
        f"  jit(vmap) grid, steady state:               {grid_s:8.3f} s  {grid_updates_per_s:14,.0f} updates/s  (target >= 50,000,000)"
    )
    print(
        f"  NumPy loop per network ({args.numpy_cells} cells, scaled): {'':1}{numpy_updates_per_s:14,.0f} updates/s  -> grid is {grid_updates_per_s / numpy_updates_per_s:,.0f}x  (target ~1,500x)"
    )
    print(
        f"  one network at a time ({single_cells} cells, scaled):  {single_updates_per_s:14,.0f} updates/s  -> grid is {grid_updates_per_s / single_updates_per_s:,.1f}x"
    )
    if end_to_end_s is not None:
        print(
            f"  end to end, bplab-train with every MLflow record: {end_to_end_s:.2f} s  (target < 60 s)"
        )
    return 0


def _timed(function) -> float:
    started = time.perf_counter()
    result = function()
    import jax

    jax.block_until_ready(result)
    return time.perf_counter() - started


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
