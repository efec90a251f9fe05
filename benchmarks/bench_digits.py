"""Real data: the digits study's grid, 16 learning rates × 8 seeds of a 64-32-10 softmax MLP on
scikit-learn's bundled 8×8 digits (1,438 training images), mini-batch SGD (batches of 32),
10 epochs under a cosine schedule.

In one run:

1. the engine: ``core.sweep.train_grid`` as ``bplab-train`` builds it (chunked, the schedule's
   rate per epoch, per-epoch training and test loss and accuracy, the trajectory's snapshots,
   the cells on one XLA device per CPU core when the grid has a second or more of training);
2. the plain baseline: what a JAX engineer would write for the same job, ``jit(vmap(...))``
   over the 128 (rate, seed) cells of a ``lax.scan`` over epochs around a ``lax.scan`` over
   shuffled mini-batches, with optax's SGD at the epoch's cosine rate and optax's softmax
   cross-entropy, and the same four metrics per epoch;

and prints each one's time for the whole grid, first call (compiling) and best warm call,
and their ratio.

Usage: python benchmarks/bench_digits.py [--json] [--epochs 10] [--rates 16] [--seeds 8]
       [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baselines import glorot_mlp_init  # noqa: E402

SIZES = (64, 32, 10)
BATCH = 32


def plain_trainer(data, epochs: int):
    """A plain ``jit(vmap(train))`` over (rate, seed) cells: the baseline, written the usual
    way (logits and ``optax.softmax_cross_entropy``, rather than the project's probabilities)."""
    import jax
    import jax.numpy as jnp
    import optax

    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    steps = len(x) // BATCH
    schedule = optax.cosine_decay_schedule(1.0, epochs)

    def init(key):
        return glorot_mlp_init(key, SIZES)

    def forward(params, inputs):
        (w1, b1), (w2, b2) = params
        return jax.nn.sigmoid(inputs @ w1 + b1) @ w2 + b2  # logits

    def loss(params, inputs, targets):
        return optax.softmax_cross_entropy(forward(params, inputs), targets).mean()

    def metrics(params, inputs, targets):
        logits = forward(params, inputs)
        right = jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1)
        return optax.softmax_cross_entropy(logits, targets).mean(), right.mean()

    def train(peak_rate, key):
        init_key, shuffle_key = jax.random.split(key)
        params = init(init_key)

        def epoch(params, inputs):
            index, epoch_key = inputs
            optimizer = optax.sgd(peak_rate * schedule(index))
            state = optimizer.init(params)

            def step(carry, batch):
                params, state = carry
                grads = jax.grad(loss)(params, *batch)
                updates, state = optimizer.update(grads, state, params)
                return (optax.apply_updates(params, updates), state), None

            order = jax.random.permutation(epoch_key, len(x))[: steps * BATCH]
            batches = (x[order].reshape(steps, BATCH, -1), y[order].reshape(steps, BATCH, -1))
            (params, _), _ = jax.lax.scan(step, (params, state), batches)
            return params, (*metrics(params, x, y), *metrics(params, x_test, y_test))

        keys = jax.random.split(shuffle_key, epochs)
        return jax.lax.scan(epoch, params, (jnp.arange(epochs), keys))

    return jax.jit(jax.vmap(train))


def _first_calls(*runs) -> list[float]:
    """Seconds of each one's first call, compiling included."""
    import jax

    times = []
    for run in runs:
        started = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - started)
    return times


def _best_interleaved(repeats: int, *runs) -> list[float]:
    """Best warm seconds of each, their calls taking turns, so that a change in the load of a
    shared machine falls on both rather than on whichever ran second."""
    import jax

    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for index, run in enumerate(runs):
            started = time.perf_counter()
            jax.block_until_ready(run())
            best[index] = min(best[index], time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rates", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from backprop_lab.devices import use_cpu_cores

    use_cpu_cores()  # as every bplab command does, before JAX starts
    import jax
    import jax.numpy as jnp

    from backprop_lab.bundled import load_bundled
    from backprop_lab.core.data import scale_features
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.optim import Schedule
    from backprop_lab.core.runner import chunk_epochs_for
    from backprop_lab.core.sweep import default_shards, log_spaced, train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data
    from backprop_lab.core.trajectory import snapshot_plan

    dataset = scale_features(load_bundled("digits", test_fraction=0.2, seed=0), "standardize")
    data = to_device_data(dataset)
    samples = len(dataset.x_train)
    architecture = Architecture(SIZES, "sigmoid", "softmax")
    spec = TrainSpec(
        architecture, loss="cce", epochs=args.epochs, batching="minibatch", batch_size=BATCH,
        schedule=Schedule("cosine"),
    )  # fmt: skip
    rates = log_spaced(0.001, 100.0, args.rates)
    seeds = list(range(args.seeds))
    cells = len(rates) * len(seeds)
    # As bplab-train builds it: chunked, with the study's trajectory (10 snapshots).
    spec = spec._replace(chunk_epochs=chunk_epochs_for(spec, samples, cells))
    plan = snapshot_plan(args.epochs, 10, architecture, cells, 64 * 2**20)
    spec = spec._replace(snapshot_epochs=plan.epochs)
    init = lambda key: init_params(key, architecture, "glorot_uniform")  # noqa: E731
    plain = plain_trainer(data, args.epochs)
    cell_rates = jnp.repeat(jnp.asarray(rates, jnp.float32), len(seeds))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.tile(jnp.arange(len(seeds)), len(rates)))
    runs = (
        lambda: train_grid(spec, init, rates, seeds, data).result.params,
        lambda: plain(cell_rates, keys),
    )
    engine_first, plain_first = _first_calls(*runs)
    engine_s, plain_s = _best_interleaved(args.repeats, *runs)

    trained = cells * args.epochs * samples
    results = {
        "data": "digits",
        "network": "-".join(map(str, SIZES)),
        "rates": len(rates),
        "seeds": len(seeds),
        "epochs": args.epochs,
        "engine_first_s": round(engine_first, 3),
        "engine_s": round(engine_s, 3),
        "plain_jax_first_s": round(plain_first, 3),
        "plain_jax_s": round(plain_s, 3),
        "engine_samples_per_s": round(trained / engine_s),
        "plain_jax_samples_per_s": round(trained / plain_s),
        "speedup_vs_plain_jax": round(plain_s / engine_s, 3),
        "first_call_speedup_vs_plain_jax": round(plain_first / engine_first, 3),
        "engine_shards": default_shards(spec, len(data.x_train), len(rates) * len(seeds)),
        "backend": jax.default_backend(),
    }
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"digits, {results['network']} softmax MLP, SGD under a cosine schedule, "
          f"{samples:,} images, batches of {BATCH}, {args.epochs} epochs, "
          f"{len(rates)} rates x {len(seeds)} seeds as one grid")  # fmt: skip
    print(f"  engine (train_grid):  first {engine_first:7.3f} s  warm {engine_s:7.3f} s  "
          f"{trained / engine_s:12,.0f} samples/s")  # fmt: skip
    print(f"  plain JAX + optax:    first {plain_first:7.3f} s  warm {plain_s:7.3f} s  "
          f"{trained / plain_s:12,.0f} samples/s")  # fmt: skip
    print(f"  speedup vs plain JAX: warm {plain_s / engine_s:.2f}x, first call "
          f"{plain_first / engine_first:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
