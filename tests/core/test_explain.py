"""Tests for backprop_lab.core.explain: one gradient step of any network, every number shown.

The references are the article's published four-decimal values (SEED-NOTES §1, §4–5), the
figures bplab-explain printed for it before it took configs and runs, ``jax.grad`` on random
networks (Hypothesis, float64), and a hand-written NumPy backprop (``reference_numpy``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import reference_numpy as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop_lab.core import explain, steps
from backprop_lab.core.activations import ACTIVATION_NAMES
from backprop_lab.core.data import HOMEWORK_INPUTS, HOMEWORK_TARGETS
from backprop_lab.core.losses import LOSSES
from backprop_lab.core.model import (
    Architecture,
    count_parameters,
    init_params,
    params_from_lists,
)
from backprop_lab.core.train import TrainSpec
from backprop_lab.errors import BackpropLabError

# The article rounds intermediates to four decimals, so its figures agree to about 1e-4.
TOL = 1e-4
# z_o1 and o1 are built from the already-rounded h1, h2 (and o1 is truncated, σ(0.9271) =
# 0.71649): exact maths gives 0.92720 and 0.71651, 1.0e-4 and 1.1e-4 from the printed values.
# ∂E/∂o1 = −(0.9 − o1) inherits the same 1.1e-4.
ROUNDED_TOL = 1.5e-4

ARTICLE_FORWARD = {  # unit: (net input z, output), SEED-NOTES §4
    "h1": (0.16, 0.5399),
    "h2": (-0.145, 0.4638),
    "o1": (0.9271, 0.7164),
    "o2": (0.0955, 0.5238),
}


@pytest.fixture(scope="module")
def article_step() -> explain.StepExplanation:
    return explain.explain_article_step()


def _weight(step: explain.StepExplanation, name: str) -> explain.WeightStep:
    (match,) = [w for w in step.backward if w.name == name]
    return match


def test_article_constants_match_the_homework_set():
    np.testing.assert_allclose(explain.ARTICLE_SAMPLE.inputs, HOMEWORK_INPUTS[0], atol=1e-7)
    np.testing.assert_allclose(explain.ARTICLE_SAMPLE.targets, HOMEWORK_TARGETS[0], atol=1e-7)
    assert explain.homework_sample(1) == explain.ARTICLE_SAMPLE
    assert explain.ARTICLE_ARCHITECTURE.layer_sizes == (2, 2, 2)


def test_forward_pass_matches_the_article(article_step):
    units = {unit.name: unit for unit in article_step.forward}
    assert list(units) == ["h1", "h2", "o1", "o2"]
    for name, (z, out) in ARTICLE_FORWARD.items():
        tol = ROUNDED_TOL if name == "o1" else TOL
        assert units[name].net_input == pytest.approx(z, abs=tol), name
        assert units[name].output == pytest.approx(out, abs=tol), name
    # E = ½ Σ (y − ŷ)² from the printed outputs.
    expected_loss = 0.5 * ((0.9 - 0.7164) ** 2 + (0.1 - 0.5238) ** 2)
    assert article_step.loss == pytest.approx(expected_loss, abs=2 * TOL)


def test_output_weight_matches_the_article(article_step):
    step = _weight(article_step, "w(h1→o1)")
    assert step.value == pytest.approx(0.37)
    assert step.dE_dout == pytest.approx(-0.1836, abs=ROUNDED_TOL)
    assert step.dout_dnet == pytest.approx(0.2031, abs=TOL)
    assert step.dnet_dw == pytest.approx(0.5399, abs=TOL)
    assert step.gradient == pytest.approx(-0.0201, abs=TOL)
    assert step.updated == pytest.approx(0.3941, abs=TOL)
    assert step.agrees


def test_hidden_weight_matches_the_article(article_step):
    step = _weight(article_step, "w(x1→h1)")
    assert step.dE_dout == pytest.approx(-0.0370, abs=TOL)
    assert step.dout_dnet == pytest.approx(0.2484, abs=TOL)
    assert step.dnet_dw == pytest.approx(0.5)
    assert step.gradient == pytest.approx(-0.0046, abs=TOL)
    assert step.updated == pytest.approx(0.1055, abs=TOL)


def test_every_weight_and_bias_is_explained(article_step):
    names = [w.name for w in article_step.backward]
    assert len(names) == 12  # 2·2 + 2 per layer
    assert names[:3] == ["w(h1→o1)", "w(h2→o1)", "b(o1)"]
    assert names[-1] == "b(h2)"
    assert _weight(article_step, "b(h1)").dnet_dw == 1.0
    assert article_step.agrees
    for w in article_step.backward:
        assert w.updated == pytest.approx(w.value - 1.2 * w.gradient)


def _numpy_backprop(params, x, y):
    """Plain NumPy backprop for a tanh network with E = ½ Σ (y − ŷ)², written from the maths."""
    weights = [np.asarray(layer.weights, np.float64) for layer in params]
    biases = [np.asarray(layer.biases, np.float64) for layer in params]
    signals, nets, outs = [x], [], []
    for w, b in zip(weights, biases, strict=True):
        nets.append(w @ signals[-1] + b)
        outs.append(np.tanh(nets[-1]))
        signals.append(outs[-1])
    error = -(y - outs[-1])
    dE_dout, slopes, grads = [None] * len(weights), [None] * len(weights), [None] * len(weights)
    for layer in reversed(range(len(weights))):
        dE_dout[layer] = error
        slopes[layer] = 1 - outs[layer] ** 2
        delta = error * slopes[layer]
        grads[layer] = (np.outer(delta, signals[layer]), delta)
        error = weights[layer].T @ delta
    return nets, outs, dE_dout, slopes, grads


def test_chain_rule_matches_numpy_backprop_on_a_tanh_network():
    architecture = Architecture((3, 4, 2), hidden_activation="tanh", output_activation="tanh")
    params = init_params(jax.random.PRNGKey(3), architecture, scheme="normal")
    params = tuple(layer._replace(biases=layer.weights[:, 0] * 0.5) for layer in params)
    x, y = np.array([0.4, -1.3, 0.8]), np.array([0.2, -0.7])
    step = explain.explain_step(architecture, params, x.tolist(), y.tolist(), 0.1)

    nets, outs, dE_dout, slopes, grads = _numpy_backprop(params, x, y)
    assert [u.name for u in step.forward] == ["h1", "h2", "h3", "h4", "o1", "o2"]
    np.testing.assert_allclose([u.net_input for u in step.forward], np.concatenate(nets), atol=1e-5)
    np.testing.assert_allclose([u.output for u in step.forward], np.concatenate(outs), atol=1e-5)
    assert len(step.backward) == 2 * 4 + 2 + 4 * 3 + 4
    for w in step.backward:
        layer, unit = w.layer - 1, int(w.unit[1:]) - 1
        weight_grads, bias_grads = grads[layer]
        if w.name.startswith("b("):
            expected = bias_grads[unit]
        else:
            expected = weight_grads[unit, int(w.source[1:]) - 1]
        assert w.dE_dout == pytest.approx(dE_dout[layer][unit], abs=1e-5), w.name
        assert w.dout_dnet == pytest.approx(slopes[layer][unit], abs=1e-5), w.name
        assert w.chain_rule == pytest.approx(expected, abs=1e-5), w.name
        assert w.gradient == pytest.approx(expected, abs=1e-5), w.name
        assert w.agrees, w.name
    assert step.agrees
    assert step.loss == pytest.approx(0.5 * np.sum((y - outs[-1]) ** 2), abs=1e-5)


def test_a_softmax_outputs_delta_is_probabilities_minus_targets_and_every_weight_agrees():
    architecture = Architecture((3, 4, 3), hidden_activation="tanh", output_activation="softmax")
    params = init_params(jax.random.PRNGKey(5), architecture, scheme="normal")
    x, y = np.array([0.4, -1.3, 0.8]), np.array([0.0, 1.0, 0.0])
    step = explain.explain_step(architecture, params, x.tolist(), y.tolist(), 0.1, loss="cce")

    weights = [np.asarray(layer.weights, np.float64) for layer in params]
    biases = [np.asarray(layer.biases, np.float64) for layer in params]
    names = ["tanh", "softmax"]
    value, weight_grads, bias_grads = ref.backprop(weights, biases, x[None], y[None], names, "cce")
    _, outputs = ref.forward(weights, biases, x[None], names)
    # The output units' δ is ∂E/∂z = ŷ − y, shown whole: no ∂E/∂out or ∂out/∂net of their own.
    output_deltas = [d for d in step.deltas if d.name.startswith("o")]
    np.testing.assert_allclose([d.delta for d in output_deltas], outputs[-1][0] - y, atol=1e-6)
    assert all(d.dE_dout is None and d.dout_dnet is None for d in output_deltas)
    for w in step.backward:
        layer, unit = w.layer - 1, int(w.unit[1:]) - 1
        if w.name.startswith("b("):
            expected = bias_grads[layer][unit]
        else:
            expected = weight_grads[layer][unit, int(w.source[1:]) - 1]
        assert w.chain_rule == pytest.approx(expected, abs=1e-5), w.name
        assert w.agrees, w.name
    assert step.agrees
    assert step.loss == pytest.approx(value, rel=1e-5)


def test_unit_names_for_deeper_networks():
    names = explain.unit_names(Architecture((2, 3, 2, 1)))
    assert names == [["h1_1", "h1_2", "h1_3"], ["h2_1", "h2_2"], ["o1"]]


def test_harvard_neuron():
    neuron = explain.harvard_neuron()
    assert neuron.net_input == pytest.approx(2.291, abs=1e-6)
    assert neuron.output == 1.0
    assert neuron.verdict == "pass"


def test_explain_step_rejects_a_sample_of_the_wrong_size():
    with pytest.raises(BackpropLabError, match="3 inputs"):
        explain.explain_step(
            explain.ARTICLE_ARCHITECTURE, explain.article_params(), [1.0, 2.0, 3.0], [0.1, 0.2], 1.0
        )


# ---------------------------------------------------------------------------------------------
# The article's figures, exactly as bplab-explain printed them before it took any config

GOLDEN = json.loads((Path(__file__).parent / "explain_article_golden.json").read_text())


def _seven_digits(value):
    if isinstance(value, float):
        return float(f"{value:.7g}")
    if isinstance(value, dict):
        return {key: _seven_digits(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_seven_digits(item) for item in value]
    return value


@pytest.mark.parametrize("sample", [1, 2])
def test_the_article_gives_exactly_the_figures_it_gave_before(sample):
    golden = GOLDEN[str(sample)]
    payload = _seven_digits(explain.explain_article_step(sample).to_dict())
    for key in ("inputs", "targets", "learning_rate", "loss"):
        assert payload[key] == golden[key], key
    for section in ("forward", "backward"):
        assert len(payload[section]) == len(golden[section])
        for new, old in zip(payload[section], golden[section], strict=True):
            assert {key: new[key] for key in old} == old, (section, old["name"])
    assert _seven_digits(explain.harvard_neuron().to_dict()) == golden["harvard"]


# ---------------------------------------------------------------------------------------------
# Any network: the chain rule against jax.grad (Hypothesis) and against a NumPy backprop


def _params(architecture: Architecture, rng: np.random.Generator, dtype=np.float64):
    sizes = architecture.layer_sizes
    weights = [
        rng.normal(size=(n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.normal(size=n_out) for n_out in sizes[1:]] if architecture.use_bias else None
    return params_from_lists(architecture, weights, biases, dtype=dtype)


@st.composite
def networks(draw):
    """A random network, loss and batch: depth 1 to 3 hidden layers (or none), widths 1 to 5,
    every activation, every loss, with and without biases, one sample or several."""
    widths = st.integers(1, 5)
    sizes = (draw(widths), *draw(st.lists(widths, min_size=0, max_size=3)), draw(widths))
    architecture = Architecture(
        sizes,
        hidden_activation=draw(st.sampled_from(ACTIVATION_NAMES)),
        output_activation=draw(st.sampled_from(ACTIVATION_NAMES)),
        use_bias=draw(st.booleans()),
        theta=draw(st.sampled_from([0.0, 0.5])),
    )
    loss = draw(st.sampled_from(sorted(LOSSES)))
    samples = draw(st.integers(1, 4))
    single = samples == 1 and draw(st.booleans())
    return architecture, loss, samples, single, draw(st.integers(0, 2**32 - 1))


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(networks())
def test_chain_rule_products_equal_jax_grad_in_float64(case):
    """``gradient`` is ``jax.grad`` of the loss (the NumPy tests above check which entry each
    name is); every chain-rule product must equal it to 1e-9."""
    architecture, loss, samples, single, seed = case
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        params = _params(architecture, rng)
        x = rng.normal(size=(samples, architecture.num_inputs))
        # Targets in (0, 1), so every loss (cross-entropy too) is defined.
        y = rng.uniform(0.05, 0.95, size=(samples, architecture.num_outputs))
        spec = TrainSpec(architecture, loss=loss)
        step = explain.explain_update(
            spec, params, x[0] if single else x, y[0] if single else y, 0.3
        )
    assert step.precision == "float64"
    assert step.agrees
    by_name = {w.name: w for w in step.backward}
    assert len(by_name) == count_parameters(architecture)
    for w in step.backward:
        assert abs(w.chain_rule - w.gradient) <= 1e-9, w.name
        assert w.updated == pytest.approx(w.value - 0.3 * w.gradient, abs=1e-12)
    for delta in step.deltas:  # the δ recursion adds up: ∂E/∂out = Σₖ δₖ·w(j→k)
        if delta.terms:
            total = sum(t.product for t in delta.terms)
            assert delta.dE_dout == pytest.approx(total, rel=1e-12, abs=1e-12)
        assert delta.delta == pytest.approx(delta.dE_dout * delta.dout_dnet, abs=1e-15)


def test_a_two_layer_sigmoid_network_equals_a_numpy_chain_rule():
    """Forward pass, δ of every unit and every gradient of a 3-4-2 sigmoid network, against
    the hand-written NumPy backprop of ``reference_numpy``."""
    architecture = Architecture((3, 4, 2), "sigmoid", "sigmoid")
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        params = _params(architecture, rng)
        x, y = rng.normal(size=(1, 3)), rng.uniform(size=(1, 2))
        step = explain.explain_update(TrainSpec(architecture), params, x[0], y[0], 0.5)
    weights = [np.asarray(layer.weights) for layer in params]
    biases = [np.asarray(layer.biases) for layer in params]
    nets, outs = ref.forward(weights, biases, x, ["sigmoid", "sigmoid"])
    _, weight_grads, bias_grads = ref.backprop(
        weights, biases, x, y, ["sigmoid", "sigmoid"], "half_sse"
    )
    np.testing.assert_allclose(
        [u.net_input for u in step.forward], np.concatenate(nets, axis=1)[0], atol=1e-12
    )
    np.testing.assert_allclose(
        [u.output for u in step.forward], np.concatenate(outs, axis=1)[0], atol=1e-12
    )
    # δ by hand: output δ = −(y − ŷ)·ŷ(1 − ŷ); hidden δ = (δ_out · W₂)·h(1 − h).
    delta_out = -(y - outs[1]) * outs[1] * (1 - outs[1])
    delta_hidden = (delta_out @ weights[1]) * outs[0] * (1 - outs[0])
    deltas = {d.name: d.delta for d in step.deltas}
    np.testing.assert_allclose([deltas["o1"], deltas["o2"]], delta_out[0], atol=1e-12)
    np.testing.assert_allclose([deltas[f"h{j}"] for j in range(1, 5)], delta_hidden[0], atol=1e-12)
    for w in step.backward:
        unit = int(w.unit[1:]) - 1
        if w.source == "1":
            expected = bias_grads[w.layer - 1][unit]
        else:
            expected = weight_grads[w.layer - 1][unit, int(w.source[1:]) - 1]
        assert w.chain_rule == pytest.approx(expected, abs=1e-12), w.name
        assert w.dE_dout * w.dout_dnet * w.dnet_dw == pytest.approx(expected, abs=1e-12)


def test_a_batch_sums_one_product_per_sample():
    architecture = Architecture((2, 3, 1), "tanh", "sigmoid")
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        params = _params(architecture, rng)
        x, y = rng.normal(size=(3, 2)), rng.uniform(size=(3, 1))
        batch = explain.explain_update(TrainSpec(architecture, loss="mse"), params, x, y, 0.1)
        alone = [
            explain.explain_update(TrainSpec(architecture, loss="mse"), params, x[n], y[n], 0.1)
            for n in range(3)
        ]
    assert batch.batch_size == 3 and len(batch.inputs) == 3
    assert len(batch.forward) == 3 * 4 and {u.sample for u in batch.forward} == {1, 2, 3}
    for w in batch.backward:
        assert w.dE_dout is None and len(w.terms) == 3
        # E is the mean of the samples' losses: each product carries 1/3.
        singles = [next(s for s in step.backward if s.name == w.name) for step in alone]
        for term, single in zip(w.terms, singles, strict=True):
            assert term.product == pytest.approx(single.chain_rule / 3, abs=1e-12)
        assert w.chain_rule == pytest.approx(w.gradient, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# The optimizer's step


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_momentum_and_adam_take_optax_step_which_is_not_eta_g(optimizer):
    """Three steps from a fresh state: the third is explained, and matches the NumPy rules."""
    architecture = Architecture((2, 2, 1), "sigmoid", "sigmoid")
    rng = np.random.default_rng(5)
    spec = TrainSpec(architecture, optimizer=optimizer)
    x, y = rng.normal(size=(3, 2)), rng.uniform(size=(3, 1))
    with jax.enable_x64(True):
        params = _params(architecture, rng)
        opt_state = steps.make_step_optimizer(spec, 0.1).init(params)
        before, opt_state = steps.take_steps(
            spec, params, opt_state, [(x[:1], y[:1]), (x[1:2], y[1:2])], 0.1
        )
        step = explain.explain_update(spec, before, x[2], y[2], 0.1, opt_state)
    weights = [np.asarray(layer.weights) for layer in params]
    biases = [np.asarray(layer.biases) for layer in params]
    numpy_optimizer = ref.Optimizer(optimizer, 0.1)
    for n in range(3):
        flat = [*weights, *biases]
        _, wg, bg = ref.backprop(
            weights, biases, x[n : n + 1], y[n : n + 1], ["sigmoid"] * 2, "half_sse"
        )
        flat = numpy_optimizer.apply(flat, [*wg, *bg])
        weights, biases = flat[:2], flat[2:]
    by_name = {w.name: w for w in step.backward}
    assert by_name["w(h1→o1)"].updated == pytest.approx(weights[1][0, 0], abs=1e-12)
    assert by_name["b(h2)"].updated == pytest.approx(biases[0][1], abs=1e-12)
    for w in step.backward:
        assert w.updated == pytest.approx(w.value + w.step, abs=1e-12)
        assert w.step != pytest.approx(-0.1 * w.gradient, abs=1e-9), w.name  # not η·g


def test_momentum_from_a_fresh_state_steps_like_sgd():
    spec = TrainSpec(explain.ARTICLE_ARCHITECTURE, optimizer="momentum")
    x, y = explain.ARTICLE_SAMPLE
    step = explain.explain_update(spec, explain.article_params(), x, y, 1.2)
    for w in step.backward:
        assert w.step == pytest.approx(-1.2 * w.gradient, rel=1e-6, abs=1e-7)


# ---------------------------------------------------------------------------------------------
# Threshold units


def test_threshold_units_pass_no_gradient_and_record_the_straight_through_slope():
    architecture = Architecture((2, 2, 1), "threshold", "threshold", theta=0.5)
    rng = np.random.default_rng(3)
    params = _params(architecture, rng, np.float32)
    x, y = [0.3, -0.8], [1.0]
    step = explain.explain_update(TrainSpec(architecture), params, x, y, 0.5)
    assert step.agrees
    assert all(w.gradient == 0.0 and w.chain_rule == 0.0 for w in step.backward)
    sigmoid_slope = lambda z: 1 / (1 + np.exp(-z)) * (1 - 1 / (1 + np.exp(-z)))  # noqa: E731
    for delta in step.deltas:
        assert delta.dout_dnet == 0.0
        assert delta.straight_through_slope == pytest.approx(
            sigmoid_slope(delta.net_input - 0.5), rel=1e-5
        )

    ste = explain.explain_update(TrainSpec(architecture, method="ste"), params, x, y, 0.5)
    assert ste.straight_through and ste.agrees
    assert any(w.gradient != 0.0 for w in ste.backward)
    for delta in ste.deltas:
        assert delta.dout_dnet == pytest.approx(delta.straight_through_slope, rel=1e-6)
    # The forward pass is still the step.
    assert [u.output for u in ste.forward] == [u.output for u in step.forward]


def test_the_perceptron_rule_is_not_explained_as_backprop():
    architecture = Architecture((2, 1), output_activation="threshold")
    params = _params(architecture, np.random.default_rng(0), np.float32)
    with pytest.raises(BackpropLabError, match="Rosenblatt"):
        explain.explain_update(
            TrainSpec(architecture, method="perceptron"), params, [0, 1], [1], 1.0
        )


def test_core_explain_imports_no_shell_library():
    """The layering rule: core/ imports only jax, numpy and optax (never rich, argparse,
    hydra, mlflow or matplotlib)."""
    code = (
        "import sys; import backprop_lab.core.explain; "
        "bad = [m for m in ('rich', 'argparse', 'hydra', 'mlflow', 'matplotlib', 'omegaconf') "
        "if m in sys.modules]; print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
