"""Tests for backprop_lab.core.explain: the article's worked example, step by step.

The reference figures are the article's published four-decimal values (SEED-NOTES §1, §4–5)
and a hand-written NumPy backprop, both independent of JAX.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from backprop_lab.core import explain
from backprop_lab.core.data import HOMEWORK_INPUTS, HOMEWORK_TARGETS
from backprop_lab.core.model import Architecture, init_params
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


def test_disagreement_is_flagged(monkeypatch, capsys):
    def doubled(loss_of_params, params):
        return jax.tree_util.tree_map(lambda g: 2 * g, jax.grad(loss_of_params)(params))

    monkeypatch.setattr(explain, "_autodiff_gradients", doubled)
    step = explain.explain_article_step()
    assert not step.agrees
    assert not any(w.agrees for w in step.backward)
    assert explain.main(["--json"]) == 1
    assert "disagree" in capsys.readouterr().err


def test_unit_names_for_deeper_networks():
    names = explain.unit_names(Architecture((2, 3, 2, 1)))
    assert names == [["h1_1", "h1_2", "h1_3"], ["h2_1", "h2_2"], ["o1"]]


def test_harvard_neuron():
    neuron = explain.harvard_neuron()
    assert neuron.net_input == pytest.approx(2.291, abs=1e-6)
    assert neuron.output == 1.0
    assert neuron.verdict == "pass"


def test_json_output_has_the_same_numbers(capsys, article_step):
    assert explain.main(["--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["sample"] == 1
    assert payload["learning_rate"] == 1.2
    assert payload["loss"] == pytest.approx(article_step.loss)
    units = {u["name"]: u for u in payload["forward"]}
    assert units["h2"]["net_input"] == pytest.approx(-0.145, abs=TOL)
    assert units["o2"]["output"] == pytest.approx(0.5238, abs=TOL)
    weights = {w["name"]: w for w in payload["backward"]}
    assert weights["w(h1→o1)"]["updated"] == pytest.approx(0.3941, abs=TOL)
    assert weights["w(x1→h1)"]["updated"] == pytest.approx(0.1055, abs=TOL)
    # JSON carries 7 significant digits (float32's precision), so 0.1 prints as 0.1.
    for key in ("forward", "backward"):
        expected = json.loads(json.dumps(article_step.to_dict()[key]))
        assert len(payload[key]) == len(expected)
        for got, want in zip(payload[key], expected, strict=True):
            assert got.keys() == want.keys()
            for field, value in want.items():
                if isinstance(value, float):
                    assert got[field] == pytest.approx(value, rel=1e-6, abs=1e-12), (key, field)
                else:
                    assert got[field] == value
    assert units["h1"]["net_input"] == 0.16
    assert payload["agrees"] is True
    assert payload["harvard"]["net_input"] == pytest.approx(2.291, abs=1e-6)
    assert payload["harvard"]["verdict"] == "pass"
    for w in payload["backward"]:
        assert all(
            isinstance(w[key], float) for key in ("dE_dout", "dout_dnet", "dnet_dw", "gradient")
        )


def test_json_sample_and_learning_rate_options(capsys):
    assert explain.main(["--json", "--sample", "3", "--learning-rate", "0.5"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["inputs"] == [0.7, 0.9]
    assert payload["targets"] == [0.1, 0.1]
    for w in payload["backward"]:
        assert w["updated"] == pytest.approx(w["value"] - 0.5 * w["gradient"])


def test_human_output_reads_well(capsys):
    assert explain.main(["--decimals", "3"]) == 0
    out = capsys.readouterr().out
    for title in ("Harvard finals neuron", "Forward pass", "Backward pass"):
        assert title in out
    assert "w(h1→o1)" in out and "b(o2)" in out and "✓" in out
    assert "0.394" in out and "0.106" in out  # new w(h1→o1), w(x1→h1) to 3 decimals
    assert "σ'(z) = σ(z)(1 − σ(z))" in out
    assert "−(yₖ − ŷₖ)" in out
    assert "−0.05" not in out and "e^(0.16)" not in out  # the article's typos


@pytest.mark.parametrize(
    "argv",
    [
        ["--sample", "7"],
        ["--sample", "0"],
        ["--sample", "two"],
        ["--learning-rate", "-1"],
        ["--decimals", "40"],
        ["--no-such-option"],
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(argv, capsys):
    assert explain.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bplab-explain: error:")
    assert "Traceback" not in captured.err


def test_sample_out_of_range_names_the_valid_range(capsys):
    explain.main(["--sample", "7"])
    assert "samples 1 to 3" in capsys.readouterr().err


def test_explain_step_rejects_a_sample_of_the_wrong_size():
    with pytest.raises(BackpropLabError, match="3 inputs"):
        explain.explain_step(
            explain.ARTICLE_ARCHITECTURE, explain.article_params(), [1.0, 2.0, 3.0], [0.1, 0.2], 1.0
        )


def test_render_keeps_square_brackets_of_formulas():
    from io import StringIO

    from rich.console import Console

    x, y = explain.ARTICLE_SAMPLE
    step = explain.explain_step(
        explain.ARTICLE_ARCHITECTURE, explain.article_params(), x, y, 1.2, loss="bce"
    )
    buffer = StringIO()
    explain.render(step, console=Console(file=buffer, width=200))
    assert "[yₖ log ŷₖ + (1 − yₖ) log(1 − ŷₖ)]" in buffer.getvalue()
