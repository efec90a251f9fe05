"""One sample, one gradient step, every number shown: the engine of ``bplab-explain``.

:func:`explain_step` runs the forward pass of a network on one sample, then takes every weight
and bias through the chain rule of SEED-NOTES §5::

    ∂E/∂w = ∂E/∂out · ∂out/∂net · ∂net/∂w

where ``out`` and ``net`` belong to the unit the weight feeds. For an output unit ``∂E/∂out`` is
the loss derivative; for a hidden unit it is ``Σₖ δₖ·w(unit→k)`` with ``δₖ = ∂E/∂outₖ ·
∂outₖ/∂netₖ`` of the units it feeds. ``∂net/∂w`` is the weight's input value (1 for a bias).
Each factor comes from JAX (``jax.grad`` of the loss with respect to the outputs and of the
activation on a scalar), so any smooth activation works. The product is checked against
``jax.grad`` of the loss with respect to the parameters, and the step ``w ← w − η·∂E/∂w`` is
taken with the autodiff gradient.

The defaults are the article's worked example (SEED-NOTES §4–5): a 2-2-2 sigmoid network, the
sample ``x = (0.5, −0.5)``, ``y = (0.9, 0.1)``, learning rate 1.2 and ``E = ½ Σ (y − ŷ)²``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from backprop_lab.core.activations import Activation
from backprop_lab.core.data import HOMEWORK_INPUTS, HOMEWORK_TARGETS
from backprop_lab.core.losses import get_loss
from backprop_lab.core.model import (
    Architecture,
    Params,
    forward_trace,
    layer_activations,
    params_from_lists,
    validate_architecture,
)
from backprop_lab.errors import BackpropLabError

PROG = "bplab-explain"


class Sample(NamedTuple):
    """One training sample: the inputs ``x`` and the targets ``y``."""

    inputs: tuple[float, ...]
    targets: tuple[float, ...]


# SEED-NOTES §4: the worked example's network, initial weights (one row per unit, as in the
# notes' table: weights from x₁/h₁ then x₂/h₂), biases, first sample and learning rate.
ARTICLE_ARCHITECTURE = Architecture(
    layer_sizes=(2, 2, 2), hidden_activation="sigmoid", output_activation="sigmoid", use_bias=True
)
ARTICLE_WEIGHTS: tuple[tuple[tuple[float, ...], ...], ...] = (
    ((0.1, -0.2), (0.3, 0.55)),  # hidden h1, h2
    ((0.37, 0.9), (-0.22, -0.12)),  # output o1, o2
)
ARTICLE_BIASES: tuple[tuple[float, ...], ...] = ((0.01, -0.02), (0.31, 0.27))
ARTICLE_SAMPLE = Sample(inputs=(0.5, -0.5), targets=(0.9, 0.1))
ARTICLE_LEARNING_RATE = 1.2
ARTICLE_LOSS = "half_sse"

# SEED-NOTES §1: the "Harvard finals" threshold neuron.
HARVARD_INPUTS: tuple[float, ...] = (0.31, 0.67, 0.87, 0.8, 0.8, 0.7, 0.9)
HARVARD_WEIGHTS: tuple[float, ...] = (0.0, 0.0, 0.3, 0.3, 0.5, 0.7, 1.0)
HARVARD_THETA = 1.0

# The chain-rule product and the autodiff gradient must agree this closely (float32 maths).
CHAIN_RULE_RTOL = 1e-5
CHAIN_RULE_ATOL = 1e-5


class UnitStep(NamedTuple):
    """Forward pass of one unit: its net input ``z = Σ w·input + b`` and output ``activation(z)``.

    ``layer`` counts from 1 (the first layer after the inputs); ``index`` counts from 1.
    """

    name: str
    layer: int
    index: int
    net_input: float
    output: float


class WeightStep(NamedTuple):
    """The chain rule for one weight or bias, and its gradient-descent update.

    ``chain_rule`` is ``dE_dout · dout_dnet · dnet_dw``; ``gradient`` is ``jax.grad`` of the
    loss; ``updated`` is ``value − η·gradient``; ``agrees`` says whether the two gradients match.
    """

    name: str
    layer: int
    unit: str
    source: str
    value: float
    dE_dout: float
    dout_dnet: float
    dnet_dw: float
    chain_rule: float
    gradient: float
    updated: float
    agrees: bool


class StepExplanation(NamedTuple):
    """Everything :func:`explain_step` found for one sample and one gradient step.

    ``forward`` lists the units layer by layer; ``backward`` lists the weights from the output
    layer back to the first, each unit's incoming weights followed by its bias.
    """

    architecture: Architecture
    loss_name: str
    inputs: tuple[float, ...]
    targets: tuple[float, ...]
    learning_rate: float
    loss: float
    forward: tuple[UnitStep, ...]
    backward: tuple[WeightStep, ...]
    agrees: bool

    def to_dict(self) -> dict:
        """A JSON-ready dict of plain floats, ints, strings and bools."""
        arch = self.architecture
        return {
            "architecture": {
                "layer_sizes": list(arch.layer_sizes),
                "hidden_activation": arch.hidden_activation,
                "output_activation": arch.output_activation,
                "use_bias": arch.use_bias,
            },
            "loss_function": self.loss_name,
            "inputs": list(self.inputs),
            "targets": list(self.targets),
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "forward": [unit._asdict() for unit in self.forward],
            "backward": [weight._asdict() for weight in self.backward],
            "agrees": self.agrees,
        }


class HarvardNeuron(NamedTuple):
    """The threshold neuron of SEED-NOTES §1 and its verdict."""

    inputs: tuple[float, ...]
    weights: tuple[float, ...]
    theta: float
    net_input: float
    output: float
    verdict: str

    def to_dict(self) -> dict:
        return {**self._asdict(), "inputs": list(self.inputs), "weights": list(self.weights)}


def input_names(architecture: Architecture) -> list[str]:
    """``x1, x2, …`` for the network's inputs."""
    return [f"x{i + 1}" for i in range(architecture.num_inputs)]


def unit_names(architecture: Architecture) -> list[list[str]]:
    """Names of the units of each layer after the inputs.

    Outputs are ``o1, o2, …``. With one hidden layer its units are ``h1, h2, …`` as in the
    article; with several, unit ``j`` of hidden layer ``l`` is ``h{l}_{j}``.
    """
    sizes = architecture.layer_sizes[1:]
    hidden_layers = len(sizes) - 1
    names = []
    for layer, size in enumerate(sizes, start=1):
        if layer == len(sizes):
            prefix = "o"
        elif hidden_layers == 1:
            prefix = "h"
        else:
            prefix = f"h{layer}_"
        names.append([f"{prefix}{j + 1}" for j in range(size)])
    return names


def article_params(dtype=None) -> Params:
    """The worked example's initial weights and biases (SEED-NOTES §4)."""
    return params_from_lists(ARTICLE_ARCHITECTURE, ARTICLE_WEIGHTS, ARTICLE_BIASES, dtype=dtype)


def homework_sample(number: int) -> Sample:
    """Sample ``number`` (counting from 1) of the article's three-sample training set."""
    count = len(HOMEWORK_INPUTS)
    if not 1 <= number <= count:
        raise BackpropLabError(
            f"--sample {number} does not exist; the article's training set has samples 1 to {count}"
        )
    # The data set stores float32; round-trip through str so 0.9 stays 0.9 in the output.
    as_floats = lambda row: tuple(float(str(value)) for value in row)  # noqa: E731
    return Sample(as_floats(HOMEWORK_INPUTS[number - 1]), as_floats(HOMEWORK_TARGETS[number - 1]))


def _activation_slopes(activation: Activation, net_inputs: jax.Array) -> jax.Array:
    """``∂out/∂net`` of every unit: the activation's derivative at its net input."""
    return jax.vmap(jax.grad(activation))(net_inputs)


def _autodiff_gradients(loss_of_params, params: Params) -> Params:
    """``∂E/∂w`` for every parameter, by reverse-mode autodiff of the whole loss."""
    return jax.grad(loss_of_params)(params)


def explain_step(
    architecture: Architecture,
    params: Params,
    x: Sequence[float],
    y: Sequence[float],
    learning_rate: float,
    loss: str = "half_sse",
) -> StepExplanation:
    """Forward pass, chain rule and one gradient-descent step for one sample.

    Args:
      architecture: the network's shape and activations.
      params: its current weights (see :func:`backprop_lab.core.model.params_from_lists`).
      x: the sample's inputs, one per input unit.
      y: its targets, one per output unit.
      learning_rate: the step size η of ``w ← w − η·∂E/∂w``.
      loss: a loss name of :func:`backprop_lab.core.losses.get_loss`; the article's is ``half_sse``.

    Returns:
      A :class:`StepExplanation`. Its ``agrees`` is False when any chain-rule product differs
      from the autodiff gradient by more than ``CHAIN_RULE_RTOL``/``CHAIN_RULE_ATOL``.

    Raises:
      BackpropLabError: for inputs or targets of the wrong length, an unknown loss or
        activation, or a learning rate that is not a positive number.
    """
    validate_architecture(architecture)
    loss_fn = get_loss(loss)
    if len(params) != len(architecture.layer_sizes) - 1:
        raise BackpropLabError(
            f"params have {len(params)} layers but layer_sizes={list(architecture.layer_sizes)} "
            f"needs {len(architecture.layer_sizes) - 1}"
        )
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise BackpropLabError(f"learning rate {learning_rate} must be a positive number")
    if len(x) != architecture.num_inputs:
        raise BackpropLabError(
            f"the sample has {len(x)} inputs but the network takes {architecture.num_inputs}"
        )
    if len(y) != architecture.num_outputs:
        raise BackpropLabError(
            f"the sample has {len(y)} targets but the network has {architecture.num_outputs} outputs"
        )

    dtype = params[0].weights.dtype
    inputs = jnp.asarray(np.asarray(x, dtype=np.float64), dtype=dtype)
    targets = jnp.asarray(np.asarray(y, dtype=np.float64), dtype=dtype)
    activations = layer_activations(architecture)

    def loss_of_outputs(predictions: jax.Array) -> jax.Array:
        # The project's losses take a batch; this is a batch of one sample.
        return loss_fn(targets[None], predictions[None])

    def loss_of_params(p: Params) -> jax.Array:
        return loss_of_outputs(forward_trace(p, inputs, activations)[1][-1])

    net_inputs, outputs = forward_trace(params, inputs, activations)
    layer_inputs = [inputs, *outputs[:-1]]
    slopes = [_activation_slopes(act, z) for act, z in zip(activations, net_inputs, strict=True)]

    # Backwards through the layers: ∂E/∂out of the outputs is the loss derivative; a hidden
    # unit's is Σₖ δₖ·w(unit→k) over the units k of the next layer (SEED-NOTES §5).
    dE_dout: list[jax.Array] = [jnp.zeros(())] * len(params)
    dE_dout[-1] = jax.grad(loss_of_outputs)(outputs[-1])
    for layer in range(len(params) - 1, 0, -1):
        delta = dE_dout[layer] * slopes[layer]
        dE_dout[layer - 1] = params[layer].weights.T @ delta

    grads = _autodiff_gradients(loss_of_params, params)
    loss_value = float(loss_of_outputs(outputs[-1]))

    names = unit_names(architecture)
    source_names = [input_names(architecture), *names[:-1]]
    forward = tuple(
        UnitStep(name, layer + 1, j + 1, float(z), float(out))
        for layer in range(len(params))
        for j, (name, z, out) in enumerate(
            zip(
                names[layer], np.asarray(net_inputs[layer]), np.asarray(outputs[layer]), strict=True
            )
        )
    )

    backward = []
    for layer in range(len(params) - 1, -1, -1):
        weights = np.asarray(params[layer].weights)
        weight_grads = np.asarray(grads[layer].weights)
        error = np.asarray(dE_dout[layer])
        slope = np.asarray(slopes[layer])
        signal = np.asarray(layer_inputs[layer])
        biases = None if params[layer].biases is None else np.asarray(params[layer].biases)
        bias_grads = None if biases is None else np.asarray(grads[layer].biases)
        for j, unit in enumerate(names[layer]):
            rows = [
                (f"w({source}→{unit})", source, weights[j, i], signal[i], weight_grads[j, i])
                for i, source in enumerate(source_names[layer])
            ]
            if biases is not None:
                rows.append((f"b({unit})", "1", biases[j], 1.0, bias_grads[j]))
            for name, source, value, dnet_dw, gradient in rows:
                chain_rule = float(error[j]) * float(slope[j]) * float(dnet_dw)
                agrees = math.isclose(
                    chain_rule, float(gradient), rel_tol=CHAIN_RULE_RTOL, abs_tol=CHAIN_RULE_ATOL
                )
                backward.append(
                    WeightStep(
                        name=name,
                        layer=layer + 1,
                        unit=unit,
                        source=source,
                        value=float(value),
                        dE_dout=float(error[j]),
                        dout_dnet=float(slope[j]),
                        dnet_dw=float(dnet_dw),
                        chain_rule=chain_rule,
                        gradient=float(gradient),
                        updated=float(value) - learning_rate * float(gradient),
                        agrees=agrees,
                    )
                )

    return StepExplanation(
        architecture=architecture,
        loss_name=loss,
        inputs=tuple(float(v) for v in x),
        targets=tuple(float(v) for v in y),
        learning_rate=float(learning_rate),
        loss=loss_value,
        forward=forward,
        backward=tuple(backward),
        agrees=all(step.agrees for step in backward),
    )


def explain_article_step(
    sample: int = 1, learning_rate: float = ARTICLE_LEARNING_RATE
) -> StepExplanation:
    """:func:`explain_step` on the article's network and one of its three samples."""
    x, y = homework_sample(sample)
    return explain_step(ARTICLE_ARCHITECTURE, article_params(), x, y, learning_rate, ARTICLE_LOSS)


def harvard_neuron() -> HarvardNeuron:
    """The "Harvard finals" neuron: seven inputs, no bias, a threshold unit with θ = 1.

    ``z = Σ xᵢ·wᵢ = 2.291`` is above θ, so the neuron outputs 1: "pass" (SEED-NOTES §1).
    """
    architecture = Architecture(
        layer_sizes=(len(HARVARD_INPUTS), 1),
        output_activation="threshold",
        use_bias=False,
        theta=HARVARD_THETA,
    )
    params = params_from_lists(architecture, [[HARVARD_WEIGHTS]])
    net_inputs, outputs = forward_trace(
        params,
        jnp.asarray(HARVARD_INPUTS, dtype=params[0].weights.dtype),
        layer_activations(architecture),
    )
    output = float(outputs[-1][0])
    return HarvardNeuron(
        inputs=HARVARD_INPUTS,
        weights=HARVARD_WEIGHTS,
        theta=HARVARD_THETA,
        net_input=float(net_inputs[-1][0]),
        output=output,
        verdict="pass" if output == 1.0 else "fail",
    )


# --- console output -------------------------------------------------------------------------

# Why ∂E/∂ŷ has the form it has, for each loss the project knows.
_LOSS_SENTENCES = {
    "half_sse": "E = ½ Σₖ (yₖ − ŷₖ)², summed over the outputs. The ½ cancels the 2 of the square, "
    "so ∂E/∂ŷₖ = −(yₖ − ŷₖ).",
    "mse": "E = (1/K) Σₖ (yₖ − ŷₖ)² over the K outputs, so ∂E/∂ŷₖ = −2(yₖ − ŷₖ)/K.",
    "bce": "E = −(1/K) Σₖ [yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)], so ∂E/∂ŷₖ = (ŷₖ − yₖ) / (K ŷₖ(1 − ŷₖ)).",
}

_ACTIVATION_SENTENCES = {
    "sigmoid": "σ(z) = 1 / (1 + e^(−z)), and its slope is σ'(z) = σ(z)(1 − σ(z)), "
    "so ∂out/∂net = out·(1 − out).",
    "tanh": "tanh'(z) = 1 − tanh²(z), so ∂out/∂net = 1 − out².",
    "linear": "The unit outputs its net input, so ∂out/∂net = 1.",
}


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if not text.startswith("-"):
        return text
    # A tiny negative number rounds to "-0.0000": show zero. Otherwise use a true minus sign.
    return text[1:] if float(text) == 0 else "−" + text[1:]


def _vector(values: Sequence[float], decimals: int) -> str:
    return "(" + ", ".join(_number(v, decimals) for v in values) + ")"


def _signed(value: float, decimals: int) -> str:
    """A factor inside a product: negative numbers in parentheses."""
    text = _number(value, decimals)
    return f"({text})" if text.startswith("−") else text


def render(
    explanation: StepExplanation,
    harvard: HarvardNeuron | None = None,
    *,
    decimals: int = 4,
    sample_label: str = "the sample",
    console=None,
) -> None:
    """Print the walk-through as rich tables with short sentences a student can follow."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    fmt = lambda value: _number(value, decimals)  # noqa: E731
    arch = explanation.architecture

    if harvard is not None:
        table = Table(title="Harvard finals neuron", title_justify="left")
        table.add_column("input")
        table.add_column("x", justify="right")
        table.add_column("w", justify="right")
        table.add_column("x·w", justify="right")
        for i, (x, w) in enumerate(zip(harvard.inputs, harvard.weights, strict=True), start=1):
            table.add_row(f"x{i}", fmt(x), fmt(w), fmt(x * w))
        console.print(table)
        relation = "above" if harvard.output == 1.0 else "not above"
        console.print(
            f"z = Σ xᵢ·wᵢ = {fmt(harvard.net_input)}, which is {relation} the threshold "
            f"θ = {harvard.theta:g}, so the threshold unit outputs {harvard.output:g}: "
            f"[bold]{harvard.verdict}[/bold].\n"
        )

    names = unit_names(arch)
    sizes = "-".join(str(size) for size in arch.layer_sizes)
    console.print(
        f"[bold]Network[/bold] {sizes}: {arch.hidden_activation} hidden units, "
        f"{arch.output_activation} outputs{', one bias per unit' if arch.use_bias else ''}."
    )
    console.print(
        f"{sample_label.capitalize()}: x = {_vector(explanation.inputs, decimals)}, "
        f"target y = {_vector(explanation.targets, decimals)}; "
        f"learning rate η = {explanation.learning_rate:g}.\n"
    )

    table = Table(title="Forward pass", title_justify="left")
    table.add_column("unit")
    table.add_column("net input z", justify="right")
    table.add_column("output", justify="right")
    for unit in explanation.forward:
        table.add_row(unit.name, fmt(unit.net_input), fmt(unit.output))
    console.print(table)
    bias_text = " + b" if arch.use_bias else ""
    console.print(
        f"Each unit adds up its weighted inputs, z = Σ w·input{bias_text}, and outputs activation(z)."
    )
    for activation in dict.fromkeys((arch.hidden_activation, arch.output_activation)):
        if activation in _ACTIVATION_SENTENCES:
            console.print(_ACTIVATION_SENTENCES[activation], markup=False)
    if arch == ARTICLE_ARCHITECTURE and explanation.inputs == ARTICLE_SAMPLE.inputs:
        console.print(
            "These figures are not rounded along the way. The article rounds each intermediate "
            "value to four decimals, so its last digit can be one off: it prints z = 0.9271 and "
            "0.7164 for o1."
        )
    prediction = [unit.output for unit in explanation.forward if unit.layer == len(names)]
    console.print(
        f"Prediction ŷ = {_vector(prediction, decimals)}; loss E = [bold]{fmt(explanation.loss)}[/bold].\n"
    )

    table = Table(title="Backward pass", title_justify="left")
    for header in ("weight", "w", "∂E/∂out", "∂out/∂net", "∂net/∂w", "∂E/∂w", "new w", ""):
        table.add_column(header, justify="left" if header == "weight" else "right")
    for step in explanation.backward:
        mark = "[green]✓[/green]" if step.agrees else "[red]✗[/red]"
        table.add_row(
            step.name,
            fmt(step.value),
            fmt(step.dE_dout),
            fmt(step.dout_dnet),
            fmt(step.dnet_dw),
            fmt(step.gradient),
            fmt(step.updated),
            mark,
        )
    console.print(table)

    console.print(
        "Chain rule: ∂E/∂w = ∂E/∂out · ∂out/∂net · ∂net/∂w, for the unit the weight feeds."
    )
    # markup=False: the formulas contain square brackets, which rich would read as styles.
    loss_sentence = _LOSS_SENTENCES.get(explanation.loss_name, "∂E/∂ŷ is the loss's derivative.")
    console.print(loss_sentence, markup=False)
    if len(names) > 1:
        console.print(
            "A hidden unit feeds every unit k of the next layer, so ∂E/∂out = Σₖ δₖ·w(unit→k), "
            "where δₖ = ∂E/∂outₖ · ∂outₖ/∂netₖ."
        )
    console.print("∂net/∂w is the input that the weight multiplies: 1 for a bias.")
    console.print(
        f"Every weight then steps downhill, w ← w − η·∂E/∂w with η = {explanation.learning_rate:g}; "
        "all gradients use the weights from before the step."
    )
    if explanation.agrees:
        console.print("✓: the chain-rule product equals JAX's autodiff gradient (jax.grad).\n")
    else:
        console.print(
            "[red]✗: the chain-rule product differs from JAX's autodiff gradient.[/red]\n"
        )

    _print_worked_examples(explanation, console, decimals)


def _print_worked_examples(explanation: StepExplanation, console, decimals: int) -> None:
    """Spell out the arithmetic for the first weight of the output layer and of the layer below."""
    fmt = lambda value: _number(value, decimals)  # noqa: E731
    last_layer = len(explanation.architecture.layer_sizes) - 1
    units = {unit.name: unit for unit in explanation.forward}
    by_layer: dict[int, list[WeightStep]] = {}
    for step in explanation.backward:
        by_layer.setdefault(step.layer, []).append(step)

    console.print("[bold]Worked through[/bold]")
    output_step = by_layer[last_layer][0]
    if explanation.loss_name == "half_sse":
        k = int(output_step.unit[1:]) - 1
        console.print(
            f"  ∂E/∂{output_step.unit} = −(y{k + 1} − {output_step.unit}) = "
            f"−({fmt(explanation.targets[k])} − {fmt(units[output_step.unit].output)}) = "
            f"{fmt(output_step.dE_dout)}"
        )
    _print_product(output_step, explanation.learning_rate, console, decimals)

    if last_layer > 1:
        hidden_step = by_layer[last_layer - 1][0]
        # The units the hidden unit feeds, with their δ and the connecting weight.
        terms = [step for step in by_layer[last_layer] if step.source == hidden_step.unit]
        symbols = " + ".join(f"δ{step.unit}·{step.name}" for step in terms)
        numbers = " + ".join(
            f"{_signed(step.dE_dout * step.dout_dnet, decimals)}·{_signed(step.value, decimals)}"
            for step in terms
        )
        console.print(
            f"  ∂E/∂{hidden_step.unit} = {symbols} = {numbers} = {fmt(hidden_step.dE_dout)}"
        )
        _print_product(hidden_step, explanation.learning_rate, console, decimals)


def _print_product(step: WeightStep, learning_rate: float, console, decimals: int) -> None:
    fmt = lambda value: _number(value, decimals)  # noqa: E731
    console.print(
        f"  ∂E/∂{step.name} = {_signed(step.dE_dout, decimals)} × {_signed(step.dout_dnet, decimals)} × "
        f"{_signed(step.dnet_dw, decimals)} = {fmt(step.chain_rule)}"
    )
    console.print(
        f"  new {step.name} = {fmt(step.value)} − {learning_rate:g}·{_signed(step.gradient, decimals)} "
        f"= {fmt(step.updated)}"
    )


# --- command line ---------------------------------------------------------------------------


class _OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line instead of usage plus error."""

    def error(self, message: str):
        raise BackpropLabError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog=PROG,
        description="Walk through one sample and one gradient step of the article's 2-2-2 sigmoid "
        "network: forward pass, chain rule for every weight, and the update.",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=1,
        metavar="K",
        help=f"which of the article's training samples to walk through, 1 to {len(HOMEWORK_INPUTS)} "
        "(default 1), always from the article's initial weights",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=ARTICLE_LEARNING_RATE,
        metavar="ETA",
        help=f"step size η of w ← w − η·∂E/∂w (default {ARTICLE_LEARNING_RATE})",
    )
    parser.add_argument(
        "--decimals", type=int, default=4, metavar="N", help="decimals shown in tables (default 4)"
    )
    parser.add_argument("--json", action="store_true", help="print the same figures as JSON")
    return parser


def _significant(value, digits: int = 7):
    """Floats to 7 significant digits, float32's precision: 0.1 prints as 0.1, not
    0.10000000149011612."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {key: _significant(item, digits) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_significant(item, digits) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """Run ``bplab-explain``; return the exit code (2 for bad input)."""
    try:
        args = build_parser().parse_args(argv)
        if not 0 <= args.decimals <= 12:
            raise BackpropLabError(f"--decimals {args.decimals} must be between 0 and 12")
        explanation = explain_article_step(args.sample, args.learning_rate)
        harvard = harvard_neuron()
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)

    if args.json:
        payload = {"sample": args.sample, **explanation.to_dict(), "harvard": harvard.to_dict()}
        print(json.dumps(_significant(payload), indent=2))
    else:
        render(explanation, harvard, decimals=args.decimals, sample_label=f"sample {args.sample}")
    if not explanation.agrees:
        wrong = ", ".join(step.name for step in explanation.backward if not step.agrees)
        print(f"{PROG}: error: chain rule and autodiff disagree for {wrong}", file=sys.stderr)
        return 1
    return 0
