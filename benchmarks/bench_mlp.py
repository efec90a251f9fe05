"""A larger network: a 2-256-256-1 ReLU MLP, Adam, 10,000 samples, mini-batches of 128,
20 epochs, 8 seeds trained as one grid.

In one run:

1. the engine: ``core.sweep.train_grid`` (the program ``bplab-train`` runs for a grid:
   chunked, with per-epoch training loss and accuracy and the trajectory's snapshots, its
   cells split across one XLA device per CPU core, as for any grid with a second or more of
   training);
2. the plain baseline: what a JAX engineer would write for the same job, ``jit(vmap(...))``
   of a ``lax.scan`` over epochs around a ``lax.scan`` over shuffled mini-batches, with optax's
   Adam and the same per-epoch loss and accuracy on the training set;

and prints the samples trained per second of each and their ratio.

Usage: python benchmarks/bench_mlp.py [--json] [--epochs 20] [--seeds 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines import glorot_mlp_init  # noqa: E402

SIZES = (2, 256, 256, 1)
SAMPLES, BATCH, LEARNING_RATE = 10_000, 128, 1e-3


def plain_trainer(x, y, epochs: int):
    """A plain ``jit(vmap(train))``: the baseline, written the usual way."""
    import jax
    import jax.numpy as jnp
    import optax

    def init(key):
        return glorot_mlp_init(key, SIZES)

    def forward(params, inputs):
        for w, b in params[:-1]:
            inputs = jax.nn.relu(inputs @ w + b)
        w, b = params[-1]
        return inputs @ w + b  # logits

    def loss(params, inputs, targets):
        return optax.sigmoid_binary_cross_entropy(forward(params, inputs), targets).mean()

    optimizer = optax.adam(LEARNING_RATE)
    steps = len(x) // BATCH

    def train(key):
        init_key, shuffle_key = jax.random.split(key)
        params = init(init_key)

        def step(carry, batch):
            params, state = carry
            grads = jax.grad(loss)(params, *batch)
            updates, state = optimizer.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        def epoch(carry, epoch_key):
            order = jax.random.permutation(epoch_key, len(x))[: steps * BATCH]
            batches = (x[order].reshape(steps, BATCH, -1), y[order].reshape(steps, BATCH, -1))
            carry, _ = jax.lax.scan(step, carry, batches)
            logits = forward(carry[0], x)
            accuracy = jnp.mean((logits > 0) == (y > 0.5))
            return carry, (loss(carry[0], x, y), accuracy)

        keys = jax.random.split(shuffle_key, epochs)
        (params, _), history = jax.lax.scan(epoch, (params, optimizer.init(params)), keys)
        return params, history

    return jax.jit(jax.vmap(train))


def _best_of(repeats: int, run) -> float:
    import jax

    jax.block_until_ready(run())  # compile
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(run())
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from backprop_lab.devices import use_cpu_cores

    use_cpu_cores()  # as every bplab command does, before JAX starts
    import jax
    import jax.numpy as jnp

    from backprop_lab.core.data import make_dataset
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.runner import chunk_epochs_for
    from backprop_lab.core.sweep import default_shards, train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data
    from backprop_lab.core.trajectory import snapshot_plan

    dataset = make_dataset("moons", num_samples=SAMPLES, noise=0.2, test_fraction=0.0, seed=0)
    data = to_device_data(dataset)
    architecture = Architecture(SIZES, "relu", "sigmoid")
    spec = TrainSpec(
        architecture, loss="bce", optimizer="adam", epochs=args.epochs,
        batching="minibatch", batch_size=BATCH,
    )  # fmt: skip
    seeds = list(range(args.seeds))
    # As bplab-train builds it: chunked, with the default trajectory.
    spec = spec._replace(chunk_epochs=chunk_epochs_for(spec, SAMPLES, len(seeds)))
    plan = snapshot_plan(args.epochs, 60, architecture, len(seeds), 64 * 2**20)
    spec = spec._replace(snapshot_epochs=plan.epochs)
    init = lambda key: init_params(key, architecture)  # noqa: E731
    engine_s = _best_of(
        args.repeats, lambda: train_grid(spec, init, [LEARNING_RATE], seeds, data).result.params
    )

    plain = plain_trainer(data.x_train, data.y_train, args.epochs)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(args.seeds))
    plain_s = _best_of(args.repeats, lambda: plain(keys))

    samples = args.seeds * args.epochs * SAMPLES
    results = {
        "network": "-".join(map(str, SIZES)),
        "seeds": args.seeds,
        "epochs": args.epochs,
        "engine_s": round(engine_s, 3),
        "plain_jax_s": round(plain_s, 3),
        "engine_samples_per_s": round(samples / engine_s),
        "plain_jax_samples_per_s": round(samples / plain_s),
        "speedup_vs_plain_jax": round(plain_s / engine_s, 3),
        "engine_shards": default_shards(spec, SAMPLES, len(seeds)),
        "backend": jax.default_backend(),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{results['network']} ReLU MLP, Adam, {SAMPLES:,} samples, batches of {BATCH}, "
          f"{args.epochs} epochs, {args.seeds} seeds as one grid")  # fmt: skip
    print(f"  engine (train_grid):  {engine_s:7.3f} s  {samples / engine_s:12,.0f} samples/s")
    print(f"  plain JAX + optax:    {plain_s:7.3f} s  {samples / plain_s:12,.0f} samples/s")
    print(f"  speedup vs plain JAX: {plain_s / engine_s:.2f}x  (target >= 0.9)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
