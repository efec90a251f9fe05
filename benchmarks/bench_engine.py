"""Training speed: the compiled engine against plain NumPy and PyTorch loops, in one run.

All three train the same network on the same data with the same rule: XOR, a 2-2-1 sigmoid
network, online SGD in the data set's order (one update per sample), ``E = ½ Σ (y − ŷ)²``,
learning rate 0.5, from the same initial weights.

1. the engine: ``train.make_train`` under one ``jax.jit`` (every epoch and sample a
   ``lax.scan``). Compile time is the first call minus a steady call; the steady rate is the
   best of ``--repeats`` calls;
2. NumPy: the project's plain baseline, ``baselines.numpy_online_sgd`` (a per-sample loop
   over layers that, like the engine, records every epoch's loss); this is the one
   ``speedup_vs_numpy`` uses. Also a bare loop written for exactly this 2-2-1 network with no
   per-epoch loss, the fastest plain NumPy we know, reported beside it. Both are timed on
   ``--numpy-epochs`` epochs and scaled, since every epoch costs the same;
3. PyTorch eager: ``nn.Sequential`` + ``torch.optim.SGD``, one ``backward()`` per sample
   (timed on ``--torch-epochs`` epochs and scaled); skipped when ``import torch`` fails.

The engine is also run for exactly the NumPy loops' epochs and its weights and per-epoch
losses compared with theirs, so all of them really do the same work.

Usage: python benchmarks/bench_engine.py [--epochs 20000] [--repeats 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from backprop_lab.core.data import logic_gate
from backprop_lab.core.model import Architecture, init_params
from backprop_lab.core.train import TrainSpec, make_train, single_network_spec, to_device_data

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import numpy_online_sgd  # noqa: E402

ARCHITECTURE = Architecture((2, 2, 1), "sigmoid", "sigmoid")
LEARNING_RATE = 0.5
SEED = 0
# The project's stated targets for this benchmark.
TARGET_SPEEDUP_VS_NUMPY = 300.0
TARGET_COMPILE_S = 0.5


def _engine_program(epochs: int):
    spec = TrainSpec(
        ARCHITECTURE, loss="half_sse", optimizer="sgd", epochs=epochs, batching="online"
    )
    # The spec train_network uses for one network (broadcast net inputs for tiny layers).
    return jax.jit(make_train(single_network_spec(spec)))


def _initial_params():
    return init_params(jax.random.PRNGKey(SEED), ARCHITECTURE, "normal", 1.0)


def bench_engine(epochs: int, repeats: int) -> dict:
    """Compile time and steady-state updates/s of the jitted whole-run program."""
    data = to_device_data(logic_gate("xor"))
    params = _initial_params()
    key = jax.random.PRNGKey(SEED)
    learning_rate = jnp.float32(LEARNING_RATE)
    train = _engine_program(epochs)

    started = time.perf_counter()
    result = jax.block_until_ready(train(params, learning_rate, key, data))
    first_call_s = time.perf_counter() - started
    steady = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(train(params, learning_rate, key, data))
        steady.append(time.perf_counter() - started)
    steady_s = min(steady)
    updates = epochs * len(data.x_train)
    return {
        "first_call_s": first_call_s,
        "steady_s": steady_s,
        "compile_s": max(first_call_s - steady_s, 0.0),
        "updates_per_s": updates / steady_s,
        "final_loss": float(result.history.loss[-1]),
    }


def engine_reference_run(epochs: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The engine's trained weights and per-epoch loss, for the cross-check with NumPy."""
    result = _engine_program(epochs)(
        _initial_params(),
        jnp.float32(LEARNING_RATE),
        jax.random.PRNGKey(SEED),
        to_device_data(logic_gate("xor")),
    )
    weights = [np.asarray(leaf, np.float64) for layer in result.params for leaf in layer]
    return weights, np.asarray(result.history.loss, np.float64)


def numpy_baseline_train(epochs: int) -> tuple[float, list[np.ndarray], np.ndarray]:
    """The project's NumPy baseline; returns seconds, the final weights and per-epoch loss."""
    dataset = logic_gate("xor")
    params = _initial_params()
    started = time.perf_counter()
    weights, biases, epoch_loss = numpy_online_sgd(
        [np.asarray(layer.weights) for layer in params],
        [np.asarray(layer.biases) for layer in params],
        dataset.x_train.astype(np.float64),
        dataset.y_train.astype(np.float64),
        LEARNING_RATE,
        epochs,
    )
    seconds = time.perf_counter() - started
    flat = [array for pair in zip(weights, biases, strict=True) for array in pair]
    return seconds, flat, epoch_loss


def numpy_bare_train(epochs: int) -> tuple[float, list[np.ndarray]]:
    """Online SGD as a NumPy loop for this 2-2-1 network only; returns seconds and weights."""
    dataset = logic_gate("xor")
    x, y = dataset.x_train.astype(np.float64), dataset.y_train.astype(np.float64)
    (hidden, output) = _initial_params()
    w1, b1 = np.array(hidden.weights, np.float64), np.array(hidden.biases, np.float64)
    w2, b2 = np.array(output.weights, np.float64), np.array(output.biases, np.float64)
    rate = LEARNING_RATE
    started = time.perf_counter()
    for _ in range(epochs):
        for sample in range(len(x)):
            inputs, targets = x[sample], y[sample]
            h = 1.0 / (1.0 + np.exp(-(w1 @ inputs + b1)))
            o = 1.0 / (1.0 + np.exp(-(w2 @ h + b2)))
            delta_output = -(targets - o) * o * (1.0 - o)  # ∂E/∂z_o, with ∂E/∂o = −(y − o)
            delta_hidden = (w2.T @ delta_output) * h * (1.0 - h)  # ∂E/∂z_h
            w2 -= rate * np.outer(delta_output, h)
            b2 -= rate * delta_output
            w1 -= rate * np.outer(delta_hidden, inputs)
            b1 -= rate * delta_hidden
    return time.perf_counter() - started, [w1, b1, w2, b2]


def torch_train(epochs: int) -> tuple[float | None, str]:
    """Online SGD as a PyTorch eager loop; returns seconds (None when PyTorch is unusable) and why."""
    try:
        import torch

        dataset = logic_gate("xor")
        x, y = torch.tensor(dataset.x_train), torch.tensor(dataset.y_train)
        network = torch.nn.Sequential(
            torch.nn.Linear(2, 2), torch.nn.Sigmoid(), torch.nn.Linear(2, 1), torch.nn.Sigmoid()
        )
        (hidden, output) = _initial_params()
        with torch.no_grad():  # nn.Linear stores weights one row per unit too
            network[0].weight.copy_(torch.tensor(np.asarray(hidden.weights)))
            network[0].bias.copy_(torch.tensor(np.asarray(hidden.biases)))
            network[2].weight.copy_(torch.tensor(np.asarray(output.weights)))
            network[2].bias.copy_(torch.tensor(np.asarray(output.biases)))
        optimizer = torch.optim.SGD(network.parameters(), lr=LEARNING_RATE)
    except ImportError as error:
        return None, f"skipped: {error}"
    started = time.perf_counter()
    for _ in range(epochs):
        for sample in range(len(x)):
            optimizer.zero_grad()
            loss = 0.5 * torch.sum((y[sample] - network(x[sample])) ** 2)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started, f"PyTorch {torch.__version__}"


def run(epochs: int, repeats: int, numpy_epochs: int, torch_epochs: int) -> dict:
    samples = len(logic_gate("xor").x_train)
    updates = epochs * samples
    engine = bench_engine(epochs, repeats)

    numpy_epochs = min(numpy_epochs, epochs)
    numpy_s, numpy_weights, numpy_loss = numpy_baseline_train(numpy_epochs)
    numpy_updates_per_s = numpy_epochs * samples / numpy_s
    bare_s, bare_weights = numpy_bare_train(numpy_epochs)
    bare_updates_per_s = numpy_epochs * samples / bare_s
    engine_weights, engine_loss = engine_reference_run(numpy_epochs)
    weight_gap = max(
        float(np.max(np.abs(a - b)))
        for other in (numpy_weights, bare_weights)
        for a, b in zip(engine_weights, other, strict=True)
    )
    loss_gap = float(np.max(np.abs(engine_loss - numpy_loss)))

    results = {
        "epochs": epochs,
        "updates": updates,
        "learning_rate": LEARNING_RATE,
        "engine_compile_s": engine["compile_s"],
        "engine_first_call_s": engine["first_call_s"],
        "engine_steady_s": engine["steady_s"],
        "engine_updates_per_s": engine["updates_per_s"],
        "engine_final_loss": engine["final_loss"],
        "numpy_epochs_timed": numpy_epochs,
        "numpy_updates_per_s": numpy_updates_per_s,
        "numpy_run_s_scaled": updates / numpy_updates_per_s,
        "speedup_vs_numpy": engine["updates_per_s"] / numpy_updates_per_s,
        "numpy_bare_updates_per_s": bare_updates_per_s,
        "numpy_bare_run_s_scaled": updates / bare_updates_per_s,
        "speedup_vs_numpy_bare": engine["updates_per_s"] / bare_updates_per_s,
        "max_weight_difference_engine_vs_numpy": weight_gap,
        "max_epoch_loss_difference_engine_vs_numpy": loss_gap,
        "jax_version": jax.__version__,
        "jax_backend": jax.default_backend(),
        "python": platform.python_version(),
    }
    torch_epochs = min(torch_epochs, epochs)
    torch_s, torch_note = torch_train(torch_epochs)
    results["torch"] = torch_note
    if torch_s is not None:
        torch_updates_per_s = torch_epochs * samples / torch_s
        results.update(
            torch_epochs_timed=torch_epochs,
            torch_updates_per_s=torch_updates_per_s,
            torch_run_s_scaled=updates / torch_updates_per_s,
            speedup_vs_torch=engine["updates_per_s"] / torch_updates_per_s,
        )
    results["meets_speedup_target"] = results["speedup_vs_numpy"] >= TARGET_SPEEDUP_VS_NUMPY
    results["meets_compile_target"] = results["engine_compile_s"] < TARGET_COMPILE_S
    return results


def print_table(results: dict) -> None:
    print(
        f"XOR 2-2-1 sigmoid, online SGD, half_sse, lr {results['learning_rate']}: "
        f"{results['epochs']} epochs = {results['updates']} updates "
        f"(JAX {results['jax_version']} on {results['jax_backend']})\n"
    )
    rows = [
        (
            "engine (jit + lax.scan)",
            results["engine_updates_per_s"],
            results["engine_steady_s"],
            "all",
        )
    ]
    rows.append(
        (
            "NumPy baseline loop",
            results["numpy_updates_per_s"],
            results["numpy_run_s_scaled"],
            results["numpy_epochs_timed"],
        )
    )
    rows.append(
        (
            "NumPy bare 2-2-1 loop",
            results["numpy_bare_updates_per_s"],
            results["numpy_bare_run_s_scaled"],
            results["numpy_epochs_timed"],
        )
    )
    if "torch_updates_per_s" in results:
        rows.append(
            (
                "PyTorch eager loop",
                results["torch_updates_per_s"],
                results["torch_run_s_scaled"],
                results["torch_epochs_timed"],
            )
        )
    header = f"{'implementation':<26}{'updates/s':>12}{'run time (s)':>14}{'epochs timed':>14}{'engine is':>18}"
    print(header)
    print("-" * len(header))
    for name, rate, seconds, timed in rows:
        ratio = results["engine_updates_per_s"] / rate
        relative = "-" if ratio == 1.0 else f"{ratio:,.0f}x faster"
        print(f"{name:<26}{rate:>12.3g}{seconds:>14.4g}{timed!s:>14}{relative:>18}")
    if "torch_updates_per_s" not in results:
        print(f"{'PyTorch eager loop':<26}  {results['torch']}")
    print()
    print(
        f"engine compile: {results['engine_compile_s']:.3f} s "
        f"(first call {results['engine_first_call_s']:.3f} s − steady {results['engine_steady_s']:.4f} s); "
        f"target < {TARGET_COMPILE_S} s: {'met' if results['meets_compile_target'] else 'MISSED'}"
    )
    print(
        f"speedup vs NumPy baseline: {results['speedup_vs_numpy']:,.0f}x; target >= {TARGET_SPEEDUP_VS_NUMPY:.0f}x: "
        f"{'met' if results['meets_speedup_target'] else 'MISSED'} "
        f"(vs the bare loop: {results['speedup_vs_numpy_bare']:,.0f}x)"
    )
    if "speedup_vs_torch" in results:
        print(f"speedup vs PyTorch eager: {results['speedup_vs_torch']:,.0f}x")
    print(
        f"same work: after {results['numpy_epochs_timed']} epochs the engine's and NumPy's weights differ by at most "
        f"{results['max_weight_difference_engine_vs_numpy']:.1e} and their per-epoch losses by at most "
        f"{results['max_epoch_loss_difference_engine_vs_numpy']:.1e} (float32 vs float64); "
        f"final loss after {results['epochs']} epochs: {results['engine_final_loss']:.2e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs", type=int, default=20000, help="epochs of the timed run (4 updates each)"
    )
    parser.add_argument(
        "--repeats", type=int, default=10, help="steady-state engine calls; the best counts"
    )
    parser.add_argument(
        "--numpy-epochs",
        type=int,
        default=2000,
        help="epochs timed for the NumPy loops, then scaled",
    )
    parser.add_argument(
        "--torch-epochs",
        type=int,
        default=200,
        help="epochs timed for the PyTorch loop, then scaled",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats", "numpy_epochs", "torch_epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    results = run(args.epochs, args.repeats, args.numpy_epochs, args.torch_epochs)
    if args.json:
        print(json.dumps(results))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
