"""A hand-written NumPy backprop: the independent reference the engine's tests check against.

Written from the math of SEED-NOTES §4–5, not from the engine's code, and uses no JAX:

* a layer stores one row of weights per unit, ``weights[j][i]`` from input ``i`` to unit ``j``;
  its net input is ``z_j = Σᵢ weights[j][i]·xᵢ + biases[j]`` and its output ``f(z_j)``;
* the backward pass is the explicit chain rule: ``δ = ∂E/∂z`` of the output layer is
  ``∂E/∂ŷ · f'(z)``; each layer's gradient is ``∂E/∂W = δᵀ · (its input)`` and
  ``∂E/∂b = Σ δ``; and ``δ`` of the layer below is ``(δ · W) · f'(z_below)``;
* losses are means over samples (optionally weighted, as the engine pads mini-batches):
  ``half_sse`` is ``½ Σₖ (yₖ − ŷₖ)²``, ``mse`` is ``meanₖ (yₖ − ŷₖ)²``, ``bce`` is the
  clipped binary cross-entropy averaged over outputs and ``cce`` is ``−Σₖ yₖ log ŷₖ``;
* a softmax output layer ``ŷₖ = e^(zₖ) / Σⱼ e^(zⱼ)`` is not elementwise: its ``δ`` is the
  full Jacobian product ``Σₖ ∂E/∂ŷₖ · ŷₖ(1[k = j] − ŷⱼ)``, written out, not the shortcut
  ``ŷ − y`` the engine's explanation uses;
* optimizers follow the published update rules: plain SGD ``w ← w − η g``, heavy-ball momentum
  ``v ← g + μ v; w ← w − η v`` and Adam (Kingma & Ba, 2015, Algorithm 1).

Everything is float64 unless the caller passes other arrays.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np

# The same clipping as ``losses.binary_cross_entropy``: probabilities stay in [ε, 1 − ε].
BCE_EPSILON = 1e-7


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``σ(z) = 1 / (1 + e^(−z))``."""
    return 1.0 / (1.0 + np.exp(-z))


# name -> (f(z), f'(z) written in terms of z and the output a = f(z))
ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (sigmoid, lambda z, a: a * (1.0 - a)),
    "tanh": (np.tanh, lambda z, a: 1.0 - a**2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
    "linear": (lambda z: z, lambda z, a: np.ones_like(z)),
}


def softmax(z: np.ndarray) -> np.ndarray:
    """``e^(zₖ − max z) / Σⱼ e^(zⱼ − max z)`` along the last axis."""
    shifted = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


def softmax_delta(output_gradient: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """``δ = Jᵀ · ∂E/∂ŷ`` per sample, with the softmax Jacobian ``J = diag(ŷ) − ŷŷᵀ``."""
    jacobians = np.einsum("sk,kj->skj", outputs, np.eye(outputs.shape[1])) - np.einsum(
        "sk,sj->skj", outputs, outputs
    )
    return np.einsum("sk,skj->sj", output_gradient, jacobians)


def layer_activation_names(hidden: str, output: str, num_layers: int) -> list[str]:
    """The activation of each layer: ``hidden`` for all but the last, then ``output``."""
    return [hidden] * (num_layers - 1) + [output]


def forward(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    inputs: np.ndarray,
    activations: Sequence[str],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Net inputs ``z`` and outputs of every layer for ``inputs`` of shape ``(samples, inputs)``."""
    net_inputs, outputs = [], []
    signal = np.asarray(inputs)
    for layer_weights, layer_biases, name in zip(weights, biases, activations, strict=True):
        function = softmax if name == "softmax" else ACTIVATIONS[name][0]
        z = signal @ layer_weights.T  # z[s, j] = Σᵢ x[s, i] · W[j, i]
        if layer_biases is not None:
            z = z + layer_biases
        signal = function(z)
        net_inputs.append(z)
        outputs.append(signal)
    return net_inputs, outputs


def loss_and_output_gradient(
    loss: str,
    targets: np.ndarray,
    predictions: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """The batch loss and ``∂E/∂ŷ`` for every sample and output.

    The batch loss is ``Σₛ wₛ Eₛ / max(Σₛ wₛ, 1)``, which is the plain mean when no weights
    are given.
    """
    num_samples, num_outputs = targets.shape
    if sample_weight is None:
        sample_weight = np.ones(num_samples)
    denominator = max(float(np.sum(sample_weight)), 1.0)
    error = targets - predictions
    if loss == "half_sse":
        per_sample = 0.5 * np.sum(error**2, axis=1)
        # The ½ makes ∂E/∂ŷ = −(y − ŷ), the worked example's first factor.
        gradient = -error
    elif loss == "mse":
        per_sample = np.mean(error**2, axis=1)
        gradient = -2.0 * error / num_outputs
    elif loss == "bce":
        clipped = np.clip(predictions, BCE_EPSILON, 1.0 - BCE_EPSILON)
        per_output = -(targets * np.log(clipped) + (1.0 - targets) * np.log(1.0 - clipped))
        per_sample = np.mean(per_output, axis=1)
        inside = (predictions > BCE_EPSILON) & (predictions < 1.0 - BCE_EPSILON)
        gradient = (-targets / clipped + (1.0 - targets) / (1.0 - clipped)) / num_outputs * inside
    elif loss == "cce":
        per_sample = -np.sum(targets * np.log(predictions), axis=1)
        gradient = -targets / predictions
    else:
        raise ValueError(f"reference has no loss {loss!r}")
    value = float(np.sum(per_sample * sample_weight) / denominator)
    return value, gradient * (sample_weight / denominator)[:, None]


def backprop(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    inputs: np.ndarray,
    targets: np.ndarray,
    activations: Sequence[str],
    loss: str,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, list[np.ndarray], list[np.ndarray | None]]:
    """The loss and its gradients ``∂E/∂W`` and ``∂E/∂b`` for every layer, by the chain rule."""
    net_inputs, outputs = forward(weights, biases, inputs, activations)
    value, output_gradient = loss_and_output_gradient(loss, targets, outputs[-1], sample_weight)
    layer_inputs = [np.asarray(inputs), *outputs[:-1]]
    weight_gradients: list[np.ndarray] = [np.empty(0)] * len(weights)
    bias_gradients: list[np.ndarray | None] = [None] * len(weights)
    if activations[-1] == "softmax":
        delta = softmax_delta(output_gradient, outputs[-1])
    else:
        _, derivative = ACTIVATIONS[activations[-1]]
        delta = output_gradient * derivative(net_inputs[-1], outputs[-1])  # δ = ∂E/∂ŷ · f'(z)
    for index in reversed(range(len(weights))):
        weight_gradients[index] = delta.T @ layer_inputs[index]  # Σₛ δ[s, j] · input[s, i]
        if biases[index] is not None:
            bias_gradients[index] = np.sum(delta, axis=0)
        if index > 0:
            _, derivative = ACTIVATIONS[activations[index - 1]]
            # ∂E/∂(output of unit i below) = Σⱼ δⱼ · W[j, i]; times that unit's slope.
            delta = (delta @ weights[index]) * derivative(net_inputs[index - 1], outputs[index - 1])
    return value, weight_gradients, bias_gradients


def finite_difference_gradients(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    inputs: np.ndarray,
    targets: np.ndarray,
    activations: Sequence[str],
    loss: str,
    step: float = 1e-6,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Central differences ``(E(w + h) − E(w − h)) / 2h`` of every weight and bias."""

    def loss_at(ws, bs):
        _, outputs = forward(ws, bs, inputs, activations)
        return loss_and_output_gradient(loss, targets, outputs[-1])[0]

    def differences(arrays, rebuild):
        gradients = []
        for index, array in enumerate(arrays):
            if array is None:
                gradients.append(None)
                continue
            gradient = np.zeros_like(array, dtype=np.float64)
            for position in np.ndindex(array.shape):
                plus = [a.copy() if a is not None else None for a in arrays]
                minus = [a.copy() if a is not None else None for a in arrays]
                plus[index][position] += step
                minus[index][position] -= step
                gradient[position] = (loss_at(*rebuild(plus)) - loss_at(*rebuild(minus))) / (
                    2 * step
                )
            gradients.append(gradient)
        return gradients

    weights = [np.asarray(w, np.float64) for w in weights]
    biases = [None if b is None else np.asarray(b, np.float64) for b in biases]
    weight_gradients = differences(weights, lambda ws: (ws, biases))
    bias_gradients = differences(biases, lambda bs: (weights, bs))
    return weight_gradients, bias_gradients


class Optimizer:
    """The update rules of ``sgd``, ``momentum`` (heavy ball) and ``adam`` on a list of arrays."""

    def __init__(
        self,
        name: str,
        learning_rate: float,
        *,
        momentum: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ):
        if name not in ("sgd", "momentum", "adam"):
            raise ValueError(f"reference has no optimizer {name!r}")
        self.name, self.learning_rate = name, learning_rate
        self.momentum, self.beta1, self.beta2, self.eps = momentum, beta1, beta2, eps
        self.step_count = 0
        self.first: list[np.ndarray] | None = None
        self.second: list[np.ndarray] | None = None

    def apply(self, params: list[np.ndarray], gradients: list[np.ndarray]) -> list[np.ndarray]:
        """One step; returns the new parameters."""
        if self.first is None:
            self.first = [np.zeros_like(p) for p in params]
            self.second = [np.zeros_like(p) for p in params]
        self.step_count += 1
        new_params = []
        for index, (param, gradient) in enumerate(zip(params, gradients, strict=True)):
            if self.name == "sgd":
                direction = gradient
            elif self.name == "momentum":
                # v ← g + μ v; w ← w − η v (the "heavy ball" form optax and PyTorch use).
                self.first[index] = gradient + self.momentum * self.first[index]
                direction = self.first[index]
            else:
                # Adam, Kingma & Ba (2015), Algorithm 1, with ε outside the square root.
                self.first[index] = self.beta1 * self.first[index] + (1 - self.beta1) * gradient
                self.second[index] = (
                    self.beta2 * self.second[index] + (1 - self.beta2) * gradient**2
                )
                first_hat = self.first[index] / (1 - self.beta1**self.step_count)
                second_hat = self.second[index] / (1 - self.beta2**self.step_count)
                direction = first_hat / (np.sqrt(second_hat) + self.eps)
            new_params.append(param - self.learning_rate * direction)
        return new_params


def online_batches(num_samples: int) -> list[np.ndarray]:
    """One sample per update, in the data set's order (the article's online SGD)."""
    return [np.array([s]) for s in range(num_samples)]


def full_batches(num_samples: int) -> list[np.ndarray]:
    """One update per epoch from all samples."""
    return [np.arange(num_samples)]


def padded_minibatches(
    order: Sequence[int], batch_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mini-batches of ``order``; the last one is topped up with zero-weight repeats.

    Returns ``(indices, sample_weight)`` pairs, every batch of ``batch_size`` samples.
    """
    order = np.asarray(order)
    batches = []
    for start in range(0, len(order), batch_size):
        real = order[start : start + batch_size]
        filler = order[: batch_size - len(real)]
        weight = np.concatenate([np.ones(len(real)), np.zeros(len(filler))])
        batches.append((np.concatenate([real, filler]), weight))
    return batches


def train(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray | None],
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    activations: Sequence[str],
    loss: str,
    optimizer: Optimizer,
    epochs: Iterable[Sequence],
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[float]]:
    """Gradient descent over ``epochs``, each a list of batches.

    A batch is an index array, or an ``(indices, sample_weight)`` pair for a padded one. Returns
    the final weights, biases and the loss on the whole training set after each epoch.
    """
    weights = [np.array(w, dtype=np.float64) for w in weights]
    biases = [None if b is None else np.array(b, dtype=np.float64) for b in biases]
    epoch_losses = []
    for batches in epochs:
        for batch in batches:
            indices, sample_weight = batch if isinstance(batch, tuple) else (batch, None)
            _, weight_gradients, bias_gradients = backprop(
                weights, biases, inputs[indices], targets[indices], activations, loss, sample_weight
            )
            flat = _flatten(weights, biases)
            flat = optimizer.apply(flat, _flatten(weight_gradients, bias_gradients))
            weights, biases = _unflatten(flat, biases)
        epoch_losses.append(evaluate_loss(weights, biases, inputs, targets, activations, loss))
    return weights, biases, epoch_losses


def evaluate_loss(weights, biases, inputs, targets, activations, loss) -> float:
    """The loss of the network on a whole set."""
    _, outputs = forward(weights, biases, inputs, activations)
    return loss_and_output_gradient(loss, targets, outputs[-1])[0]


def _flatten(weights, biases) -> list[np.ndarray]:
    return [w for w in weights] + [b for b in biases if b is not None]


def _unflatten(flat, biases_like):
    num_layers = len(biases_like)
    weights = list(flat[:num_layers])
    rest = iter(flat[num_layers:])
    biases = [None if b is None else next(rest) for b in biases_like]
    return weights, biases


def perceptron(
    weights: np.ndarray,
    bias: np.ndarray,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    learning_rate: float,
    epochs: int,
    theta: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Rosenblatt's rule ``w ← w + η (y − ŷ) x``, one sample at a time, for threshold units.

    ``ŷ = 1`` when ``z > θ``, else 0. Returns the final weights, bias and the accuracy after
    every epoch.
    """
    weights = np.array(weights, dtype=np.float64)
    bias = np.array(bias, dtype=np.float64)
    accuracies = []
    for _ in range(epochs):
        for x, y in zip(inputs, targets, strict=True):
            prediction = (weights @ x + bias > theta).astype(np.float64)
            weights = weights + learning_rate * np.outer(y - prediction, x)
            bias = bias + learning_rate * (y - prediction)
        predictions = (inputs @ weights.T + bias > theta).astype(np.float64)
        accuracies.append(float(np.mean(np.all(predictions == targets, axis=1))))
    return weights, bias, accuracies


def all_orders(num_samples: int) -> list[tuple[int, ...]]:
    """Every permutation of the samples, for matching a shuffled run whatever its key."""
    return list(itertools.permutations(range(num_samples)))


def random_network(
    rng: np.random.Generator,
    layer_sizes: Sequence[int],
    *,
    use_bias: bool = True,
    scale: float = 1.0,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Random weights (rows per unit) and biases for ``layer_sizes``."""
    weights, biases = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        weights.append(scale * rng.normal(size=(n_out, n_in)))
        biases.append(scale * rng.normal(size=n_out) if use_bias else None)
    return weights, biases
