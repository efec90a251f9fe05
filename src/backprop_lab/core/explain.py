"""One gradient step, every number shown: the engine of ``bplab-explain``.

:func:`explain_update` runs the forward pass of a network on one sample or a batch, then takes
every weight and bias through the chain rule of SEED-NOTES §5::

    ∂E/∂w = ∂E/∂out · ∂out/∂net · ∂net/∂w

where ``out`` and ``net`` belong to the unit the weight feeds. For an output unit ``∂E/∂out`` is
the loss derivative; for a hidden unit ``j`` it is ``Σₖ δₖ·w(j→k)`` over the units ``k`` it
feeds, with ``δₖ = ∂E/∂outₖ · ∂outₖ/∂netₖ``: the δ recursion ``δⱼ = f'(zⱼ)·Σₖ δₖ·wₖⱼ``.
``∂net/∂w`` is the weight's input value (1 for a bias). Each factor comes from JAX (``jax.grad``
of the loss with respect to the outputs and of the activation on a scalar), so any activation
works. The product is checked against ``jax.grad`` of the loss with respect to the parameters.
For a batch the loss is the mean over its samples, so ``∂E/∂w`` is the sum of one such product
per sample (each ``∂E/∂out`` carries the ``1/B``).

The step itself is the optimizer's, from optax (:mod:`backprop_lab.core.steps`): ``w − η·∂E/∂w``
for plain SGD, and the momentum or Adam update (which is not ``η·∂E/∂w``) otherwise. Threshold
units have a zero derivative almost everywhere; each such unit also records the slope a
straight-through estimator would use instead, ``σ'(z − θ)``.

A softmax output is not elementwise: each ``ŷₖ`` depends on every net input of its layer
(``∂ŷₖ/∂zⱼ = ŷₖ(1[k = j] − ŷⱼ)``), so its units have no ``∂out/∂net`` of their own. With
categorical cross-entropy, the only loss it is paired with, the loss derivative ``−yₖ/ŷₖ`` and
that Jacobian collapse to ``∂E/∂zₖ = ŷₖ·Σⱼyⱼ − yₖ`` (``ŷₖ − yₖ`` for a one-hot target), so the
output units' ``δ`` is that, taken as a whole: their ``∂E/∂out`` and ``∂out/∂net`` are None, and
every weight into them is ``δ · ∂net/∂w``. The δ recursion below them and the check against
``jax.grad`` are unchanged.

:func:`explain_step` and :func:`explain_article_step` are the article's worked example
(SEED-NOTES §4–5, numbers in :mod:`backprop_lab.core.article`): a 2-2-2 sigmoid network, the
sample ``x = (0.5, −0.5)``, ``y = (0.9, 0.1)``, learning rate 1.2 and ``E = ½ Σ (y − ŷ)²``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from backprop_lab.core.activations import LAYERWISE_ACTIVATIONS, Activation, get_activation
from backprop_lab.core.article import (  # noqa: F401 (the article's numbers, re-exported)
    ARTICLE_ARCHITECTURE,
    ARTICLE_BIASES,
    ARTICLE_LEARNING_RATE,
    ARTICLE_LOSS,
    ARTICLE_SAMPLE,
    ARTICLE_WEIGHTS,
    HARVARD_INPUTS,
    HARVARD_THETA,
    HARVARD_WEIGHTS,
    HarvardNeuron,
    Sample,
    article_params,
    harvard_neuron,
    homework_sample,
)
from backprop_lab.core.losses import get_loss
from backprop_lab.core.model import (
    Architecture,
    Params,
    forward_trace,
    validate_architecture,
)
from backprop_lab.core.steps import (
    OptimizerStep,
    apply_optimizer,
    batch_loss,
    gradient_activations,
)
from backprop_lab.core.train import TrainSpec
from backprop_lab.errors import BackpropLabError

# The chain-rule product and the autodiff gradient must agree this closely: (rtol, atol) for
# float32 maths, and for float64, where the two differ only by rounding.
CHAIN_RULE_RTOL = 1e-5
CHAIN_RULE_ATOL = 1e-5
CHAIN_RULE_TOLERANCE = {"float32": (CHAIN_RULE_RTOL, CHAIN_RULE_ATOL), "float64": (1e-9, 1e-12)}


class UnitStep(NamedTuple):
    """Forward pass of one unit: its net input ``z = Σ w·input + b`` and output ``activation(z)``.

    ``layer`` counts from 1 (the first layer after the inputs); ``index`` and ``sample`` count
    from 1.
    """

    name: str
    layer: int
    index: int
    net_input: float
    output: float
    sample: int = 1


class DeltaTerm(NamedTuple):
    """One term ``δₖ·w(j→k)`` of a hidden unit ``j``'s ``∂E/∂out``."""

    unit: str
    delta: float
    weight: float
    product: float


class DeltaStep(NamedTuple):
    """``δ = ∂E/∂net`` of one unit for one sample.

    For an output unit ``dE_dout`` is the loss derivative and ``terms`` is empty; for a hidden
    unit ``dE_dout = Σ terms``. ``delta = dE_dout · dout_dnet``. For a threshold unit
    ``straight_through_slope`` is ``σ'(z − θ)``, the slope a straight-through estimator would
    use in place of the step's zero (None for other units).
    """

    name: str
    layer: int
    sample: int
    net_input: float
    dE_dout: float | None
    dout_dnet: float | None
    delta: float
    terms: tuple[DeltaTerm, ...] = ()
    straight_through_slope: float | None = None


class ChainTerm(NamedTuple):
    """A weight's chain rule for one sample of a batch; ``delta`` is ``∂E/∂net`` of the unit
    (for a softmax output unit the only factor besides ``dnet_dw``: the others are None)."""

    sample: int
    dE_dout: float | None
    dout_dnet: float | None
    dnet_dw: float
    product: float
    delta: float | None = None


class WeightStep(NamedTuple):
    """The chain rule for one weight or bias, and its update.

    ``chain_rule`` is ``dE_dout · dout_dnet · dnet_dw`` (for a batch, the sum of one product per
    sample, listed in ``terms``, and the three factors are None); ``gradient`` is ``jax.grad``
    of the loss; ``agrees`` says whether the two match. ``step`` is the optimizer's change to
    the weight (from optax) and ``updated`` the weight after it: ``value − η·gradient`` for SGD.
    """

    name: str
    layer: int
    unit: str
    source: str
    value: float
    dE_dout: float | None
    dout_dnet: float | None
    dnet_dw: float | None
    chain_rule: float
    gradient: float
    updated: float
    agrees: bool
    step: float = 0.0
    terms: tuple[ChainTerm, ...] = ()
    # ∂E/∂net of the unit the weight feeds (one sample; None for a batch).
    delta: float | None = None


class StepExplanation(NamedTuple):
    """Everything :func:`explain_update` found for one gradient step.

    ``inputs`` and ``targets`` are the sample's values, or one tuple per sample for a batch.
    ``forward`` and ``deltas`` list the units layer by layer, for each sample in turn;
    ``deltas`` goes from the output layer back. ``backward`` lists the weights from the output
    layer back to the first, each unit's incoming weights followed by its bias.
    """

    architecture: Architecture
    loss_name: str
    inputs: tuple
    targets: tuple
    learning_rate: float
    loss: float
    forward: tuple[UnitStep, ...]
    backward: tuple[WeightStep, ...]
    agrees: bool
    deltas: tuple[DeltaStep, ...] = ()
    optimizer: str = "sgd"
    straight_through: bool = False
    batch_size: int = 1
    precision: str = "float32"

    def to_dict(self) -> dict:
        """A JSON-ready dict of plain floats, ints, strings, bools and None."""
        arch = self.architecture
        return {
            "architecture": {
                "layer_sizes": list(arch.layer_sizes),
                "hidden_activation": arch.hidden_activation,
                "output_activation": arch.output_activation,
                "use_bias": arch.use_bias,
                "theta": arch.theta,
            },
            "loss_function": self.loss_name,
            "optimizer": self.optimizer,
            "straight_through": self.straight_through,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "inputs": _plain(self.inputs),
            "targets": _plain(self.targets),
            "learning_rate": self.learning_rate,
            "loss": self.loss,
            "forward": [unit._asdict() for unit in self.forward],
            "deltas": [_record(delta) for delta in self.deltas],
            "backward": [_record(weight) for weight in self.backward],
            "agrees": self.agrees,
        }


def _plain(value):
    return [_plain(item) for item in value] if isinstance(value, tuple | list) else value


def _record(step: NamedTuple) -> dict:
    """A step as a dict, its ``terms`` as dicts too."""
    return {**step._asdict(), "terms": [term._asdict() for term in step.terms]}


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


def _autodiff_gradients(loss_of_params, params: Params) -> Params:
    """``∂E/∂w`` for every parameter, by reverse-mode autodiff of the whole loss."""
    return jax.grad(loss_of_params)(params)


# ---------------------------------------------------------------------------------------------
# The explanation


class _Pass(NamedTuple):
    """The forward and backward pass of a batch, every array ``(samples, units)``;
    ``straight_through`` holds ``σ'(z − θ)`` of threshold layers (None for other layers)."""

    net_inputs: list[jax.Array]
    outputs: list[jax.Array]
    slopes: list[jax.Array]
    dE_dout: list[jax.Array]
    straight_through: list[jax.Array | None]
    loss: jax.Array
    # The output layer is a softmax: dE_dout[-1] holds its δ = ∂E/∂z, and slopes[-1] ones.
    softmax_output: bool = False


def _activation_slopes(activation: Activation, net_inputs: jax.Array) -> jax.Array:
    """``∂out/∂net`` of every unit: the activation's derivative at its net input."""
    flat = net_inputs.reshape(-1)
    return jax.vmap(jax.grad(activation))(flat).reshape(net_inputs.shape)


def _chain_rule_pass(spec: TrainSpec, params: Params, inputs, targets) -> _Pass:
    """Forward pass, then ``∂E/∂out`` of every unit by the δ recursion (SEED-NOTES §5)."""
    loss_fn = get_loss(spec.loss)
    activations = gradient_activations(spec)

    def loss_of_outputs(predictions: jax.Array) -> jax.Array:
        return loss_fn(targets, predictions)

    net_inputs, outputs = forward_trace(params, inputs, activations)
    softmax = spec.architecture.output_activation in LAYERWISE_ACTIVATIONS
    elementwise = activations[:-1] if softmax else activations
    slopes = [_activation_slopes(act, z) for act, z in zip(elementwise, net_inputs, strict=False)]
    # Backwards through the layers: ∂E/∂out of the outputs is the loss derivative; a hidden
    # unit's is Σₖ δₖ·w(unit→k) over the units k of the next layer.
    dE_dout: list[jax.Array] = [jnp.zeros(())] * len(params)
    if softmax:
        # Softmax with cross-entropy: ∂E/∂zₖ = (ŷₖ·Σⱼyⱼ − yₖ)/B for a batch of B (the loss is
        # the batch mean), taken whole as the output units' δ, with a slope of 1 beside it.
        predictions = outputs[-1]
        batch = predictions.shape[0]
        dE_dout[-1] = (predictions * jnp.sum(targets, -1, keepdims=True) - targets) / batch
        slopes.append(jnp.ones_like(predictions))
    else:
        dE_dout[-1] = jax.grad(loss_of_outputs)(outputs[-1])
    for layer in range(len(params) - 1, 0, -1):
        delta = dE_dout[layer] * slopes[layer]
        dE_dout[layer - 1] = delta @ params[layer].weights
    straight_through = [
        _straight_through_slopes(spec.architecture, layer, net_inputs[layer])
        for layer in range(len(params))
    ]
    return _Pass(
        net_inputs,
        outputs,
        slopes,
        dE_dout,
        straight_through,
        loss_of_outputs(outputs[-1]),
        softmax,
    )


def _step_arrays(spec: TrainSpec, autodiff, params, inputs, targets, learning_rate, opt_state):
    """Every array of an explanation: the chain-rule pass and the optimizer's step."""
    chain = _chain_rule_pass(spec, params, inputs, targets)
    gradients = autodiff(batch_loss(spec, inputs, targets), params)
    return chain, apply_optimizer(spec, params, gradients, learning_rate, opt_state)


@functools.lru_cache(maxsize=64)
def _compiled_step_arrays(spec: TrainSpec, autodiff):
    """One compiled program per network and batch shape (op-by-op, each new shape would
    compile dozens of tiny programs instead)."""
    return jax.jit(functools.partial(_step_arrays, spec, autodiff))


def _check_inputs(spec: TrainSpec, params: Params, x: np.ndarray, y: np.ndarray, rate) -> None:
    architecture = spec.architecture
    validate_architecture(architecture)
    get_loss(spec.loss)
    if spec.method == "perceptron":
        raise BackpropLabError(
            "training.method=perceptron updates by Rosenblatt's rule w ← w + η(y − ŷ)x, not by "
            "backprop; explain a backprop or ste config instead"
        )
    if len(params) != len(architecture.layer_sizes) - 1:
        raise BackpropLabError(
            f"params have {len(params)} layers but layer_sizes={list(architecture.layer_sizes)} "
            f"needs {len(architecture.layer_sizes) - 1}"
        )
    if not (math.isfinite(learning_rate := float(rate)) and learning_rate > 0):
        raise BackpropLabError(f"learning rate {rate} must be a positive number")
    if x.ndim != 2 or x.shape[1] != architecture.num_inputs or len(x) < 1:
        raise BackpropLabError(
            f"the sample has {x.shape[-1]} inputs but the network takes {architecture.num_inputs}"
        )
    if y.shape != (len(x), architecture.num_outputs):
        raise BackpropLabError(
            f"the sample has {y.shape[-1]} targets but the network has "
            f"{architecture.num_outputs} outputs"
        )


def _forward_steps(architecture: Architecture, chain: _Pass) -> tuple[UnitStep, ...]:
    names = unit_names(architecture)
    return tuple(
        UnitStep(name, layer + 1, j + 1, float(z[n, j]), float(out[n, j]), n + 1)
        for n in range(chain.outputs[0].shape[0])
        for layer, (z, out) in enumerate(zip(chain.net_inputs, chain.outputs, strict=True))
        for j, name in enumerate(names[layer])
    )


def _delta_steps(spec: TrainSpec, params: Params, chain: _Pass) -> tuple[DeltaStep, ...]:
    """The δ recursion, output layer first, each sample in turn."""
    architecture = spec.architecture
    names = unit_names(architecture)
    net = [np.asarray(z) for z in chain.net_inputs]
    error = [np.asarray(e) for e in chain.dE_dout]
    slope = [np.asarray(s) for s in chain.slopes]
    straight_through = [None if ste is None else np.asarray(ste) for ste in chain.straight_through]
    steps = []
    for n in range(net[0].shape[0]):
        for layer in range(len(params) - 1, -1, -1):
            above = layer + 1 < len(params)
            weights = np.asarray(params[layer + 1].weights) if above else None
            for j, name in enumerate(names[layer]):
                terms = ()
                if above:
                    deltas = error[layer + 1][n] * slope[layer + 1][n]
                    terms = tuple(
                        DeltaTerm(unit, float(deltas[k]), float(weights[k, j]), 0.0)
                        for k, unit in enumerate(names[layer + 1])
                    )
                    terms = tuple(t._replace(product=t.delta * t.weight) for t in terms)
                ste = straight_through[layer]
                # A softmax output unit's δ is ∂E/∂z itself, with no factors of its own.
                whole = chain.softmax_output and not above
                steps.append(
                    DeltaStep(
                        name=name,
                        layer=layer + 1,
                        sample=n + 1,
                        net_input=float(net[layer][n, j]),
                        dE_dout=None if whole else float(error[layer][n, j]),
                        dout_dnet=None if whole else float(slope[layer][n, j]),
                        delta=float(error[layer][n, j]) * float(slope[layer][n, j]),
                        terms=terms,
                        straight_through_slope=None if ste is None else float(ste[n, j]),
                    )
                )
    return tuple(steps)


def _straight_through_slopes(architecture: Architecture, layer: int, net_inputs: jax.Array):
    """``σ'(z − θ)`` of a threshold layer's units (what an STE uses); None for other layers."""
    last = layer == len(architecture.layer_sizes) - 2
    name = architecture.output_activation if last else architecture.hidden_activation
    if name != "threshold":
        return None
    activation = get_activation(name, theta=architecture.theta, straight_through=True)
    return _activation_slopes(activation, net_inputs)


def _weight_rows(architecture: Architecture, params: Params, layer: int):
    """``(name, unit index, source index or None for the bias, source name)`` of a layer."""
    names = unit_names(architecture)
    sources = [input_names(architecture), *names[:-1]][layer]
    for j, unit in enumerate(names[layer]):
        for i, source in enumerate(sources):
            yield f"w({source}→{unit})", j, i, source
        if params[layer].biases is not None:
            yield f"b({unit})", j, None, "1"


def _entry(tree: Params, layer: int, unit: int, source: int | None) -> float:
    """One weight (``source`` given) or bias (``source`` None) of a params-shaped tree."""
    if source is None:
        return float(tree[layer].biases[unit])
    return float(tree[layer].weights[unit, source])


def _chain_terms(chain: _Pass, layer: int, unit: int, signal: np.ndarray) -> tuple[ChainTerm, ...]:
    """``∂E/∂out · ∂out/∂net · ∂net/∂w`` of one weight for each sample (``δ · ∂net/∂w`` into a
    softmax output unit)."""
    error, slope = np.asarray(chain.dE_dout[layer]), np.asarray(chain.slopes[layer])
    whole = chain.softmax_output and layer == len(chain.dE_dout) - 1
    terms = []
    for n in range(len(signal)):
        factors = float(error[n, unit]), float(slope[n, unit]), float(signal[n])
        delta = factors[0] * factors[1]
        product = factors[0] * factors[1] * factors[2]
        if whole:
            terms.append(ChainTerm(n + 1, None, None, factors[2], product, delta))
        else:
            terms.append(ChainTerm(n + 1, *factors, product, delta))
    return tuple(terms)


def _weight_steps(
    spec: TrainSpec, params: Params, inputs: np.ndarray, chain: _Pass, taken: OptimizerStep, rate
) -> tuple[WeightStep, ...]:
    """The chain rule and the update of every weight, output layer first."""
    names = unit_names(spec.architecture)
    dtype = str(params[0].weights.dtype)
    rtol, atol = CHAIN_RULE_TOLERANCE.get(dtype, CHAIN_RULE_TOLERANCE["float32"])
    layer_inputs = [inputs, *(np.asarray(out) for out in chain.outputs[:-1])]
    steps = []
    for layer in range(len(params) - 1, -1, -1):
        for name, j, i, source in _weight_rows(spec.architecture, params, layer):
            signal = layer_inputs[layer][:, i] if i is not None else np.ones(len(inputs))
            terms = _chain_terms(chain, layer, j, signal)
            # One sample: the product itself; a batch: the sum of one product per sample.
            chain_rule = (
                terms[0].product if len(terms) == 1 else math.fsum(t.product for t in terms)
            )
            scale = math.fsum(abs(t.product) for t in terms)
            value, gradient = _entry(params, layer, j, i), _entry(taken.gradients, layer, j, i)
            if spec.optimizer == "sgd":
                updated = value - rate * gradient  # the article's arithmetic, w − η·∂E/∂w
            else:
                updated = _entry(taken.params, layer, j, i)
            single = terms[0] if len(terms) == 1 else ChainTerm(0, None, None, None, None, None)
            steps.append(
                WeightStep(
                    name=name,
                    layer=layer + 1,
                    unit=names[layer][j],
                    source=source,
                    value=value,
                    dE_dout=single.dE_dout,
                    dout_dnet=single.dout_dnet,
                    dnet_dw=single.dnet_dw,
                    chain_rule=chain_rule,
                    gradient=gradient,
                    updated=updated,
                    # Rounding grows with the size of the terms summed, not of their sum.
                    agrees=math.isclose(
                        chain_rule, gradient, rel_tol=rtol, abs_tol=atol + rtol * scale
                    ),
                    step=_entry(taken.updates, layer, j, i),
                    terms=terms if len(terms) > 1 else (),
                    delta=single.delta,
                )
            )
    return tuple(steps)


def explain_update(
    spec: TrainSpec,
    params: Params,
    x: Sequence[float] | Sequence[Sequence[float]],
    y: Sequence[float] | Sequence[Sequence[float]],
    learning_rate: float,
    opt_state=None,
    *,
    compiled: bool = True,
) -> StepExplanation:
    """Forward pass, δ recursion, chain rule and the optimizer's step for a sample or a batch.

    Args:
      spec: the network (``spec.architecture``), its loss, optimizer and training method
        (``backprop``, or ``ste`` for straight-through threshold units).
      params: the weights before the step (see :func:`backprop_lab.core.model.params_from_lists`);
        their dtype (float32 or float64) is the precision of every computation.
      x: one sample's inputs, or one row of inputs per sample of a batch.
      y: its targets, the same way.
      learning_rate: the step size η.
      opt_state: the optimizer's state before the step; None starts it afresh.
      compiled: compute every array in one compiled program (fast for a new shape); False
        runs op by op, with the arithmetic the article's figures were first printed with
        (the two can differ in the last bit of float32).

    Returns:
      A :class:`StepExplanation`. Its ``agrees`` is False when any chain-rule product differs
      from the autodiff gradient by more than :data:`CHAIN_RULE_TOLERANCE` allows.

    Raises:
      BackpropLabError: for inputs or targets of the wrong shape, an unknown loss or
        activation, the perceptron method, or a learning rate that is not a positive number.
    """
    single = np.ndim(x) == 1
    x_rows = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y_rows = np.atleast_2d(np.asarray(y, dtype=np.float64))
    _check_inputs(spec, params, x_rows, y_rows, learning_rate)
    dtype = params[0].weights.dtype
    inputs, targets = jnp.asarray(x_rows, dtype), jnp.asarray(y_rows, dtype)
    arrays = (
        _compiled_step_arrays(spec, _autodiff_gradients)
        if compiled
        else functools.partial(_step_arrays, spec, _autodiff_gradients)
    )
    chain, taken = arrays(params, inputs, targets, jnp.asarray(learning_rate, dtype), opt_state)
    chain, taken = jax.tree_util.tree_map(np.asarray, (chain, taken))
    backward = _weight_steps(spec, params, np.asarray(inputs), chain, taken, float(learning_rate))
    as_tuple = lambda rows: tuple(tuple(float(v) for v in row) for row in rows)  # noqa: E731
    return StepExplanation(
        architecture=spec.architecture,
        loss_name=spec.loss,
        inputs=as_tuple(np.atleast_2d(x))[0] if single else as_tuple(x_rows),
        targets=as_tuple(np.atleast_2d(y))[0] if single else as_tuple(y_rows),
        learning_rate=float(learning_rate),
        loss=float(chain.loss),
        forward=_forward_steps(spec.architecture, chain),
        backward=backward,
        agrees=all(step.agrees for step in backward),
        deltas=_delta_steps(spec, params, chain),
        optimizer=spec.optimizer,
        straight_through=spec.method == "ste",
        batch_size=len(x_rows),
        precision=str(dtype),
    )


def explain_step(
    architecture: Architecture,
    params: Params,
    x: Sequence[float],
    y: Sequence[float],
    learning_rate: float,
    loss: str = "half_sse",
) -> StepExplanation:
    """:func:`explain_update` for one sample and one plain SGD step ``w ← w − η·∂E/∂w``, op by
    op: the article's figures, bit for bit as bplab-explain has always printed them."""
    spec = TrainSpec(architecture, loss=loss)
    return explain_update(spec, params, x, y, learning_rate, compiled=False)


def explain_article_step(
    sample: int = 1, learning_rate: float = ARTICLE_LEARNING_RATE
) -> StepExplanation:
    """:func:`explain_step` on the article's network and one of its three samples."""
    x, y = homework_sample(sample)
    return explain_step(ARTICLE_ARCHITECTURE, article_params(), x, y, learning_rate, ARTICLE_LOSS)
