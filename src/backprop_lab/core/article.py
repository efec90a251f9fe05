"""The article's worked example and its threshold neuron, as numbers (SEED-NOTES §1, §4–5).

The 2-2-2 sigmoid network with its initial weights, its three-sample training set and learning
rate 1.2, and the "Harvard finals" threshold neuron. :mod:`backprop_lab.core.explain` walks
through one step of the network; :func:`harvard_neuron` computes the neuron's verdict.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from backprop_lab.core.data import HOMEWORK_INPUTS, HOMEWORK_TARGETS
from backprop_lab.core.model import (
    Architecture,
    Params,
    forward_trace,
    layer_activations,
    params_from_lists,
)
from backprop_lab.errors import BackpropLabError


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
