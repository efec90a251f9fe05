"""The MLP against the article's worked example, finite differences and a NumPy backprop."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_numpy as ref
from jax.test_util import check_grads

from backprop_lab.core.losses import get_loss
from backprop_lab.core.model import (
    Architecture,
    count_parameters,
    forward,
    forward_trace,
    init_params,
    layer_activations,
    params_from_dict,
    params_from_lists,
    params_to_arrays,
    params_to_dict,
    validate_architecture,
)
from backprop_lab.errors import BackpropLabError

# SEED-NOTES §4: the worked example's network, initial weights (one row per unit) and data.
WORKED = Architecture((2, 2, 2), "sigmoid", "sigmoid")
WORKED_WEIGHTS = [[[0.1, -0.2], [0.3, 0.55]], [[0.37, 0.9], [-0.22, -0.12]]]
WORKED_BIASES = [[0.01, -0.02], [0.31, 0.27]]
FIRST_INPUT = np.array([0.5, -0.5])
FIRST_TARGET = np.array([0.9, 0.1])
# The article rounds every intermediate to four decimals (SEED-NOTES §5).
ARTICLE_ATOL = 1e-4


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _worked_params(dtype=None):
    return params_from_lists(WORKED, WORKED_WEIGHTS, WORKED_BIASES, dtype=dtype)


def _half_sse_of_sample(params, inputs, targets, activations):
    return get_loss("half_sse")(targets[None], forward(params, inputs[None], activations))


# ---------------------------------------------------------------- worked example (§4–5)


def test_worked_example_forward_pass_layer_by_layer():
    """Each figure of §4 from the article's own (rounded) inputs to that step."""
    params = _worked_params()
    sigmoid = layer_activations(WORKED)[0]
    inputs = jnp.asarray(FIRST_INPUT)
    (z_hidden,), (hidden,) = forward_trace(params[:1], inputs, layer_activations(WORKED)[:1])
    np.testing.assert_allclose(np.asarray(z_hidden), [0.16, -0.145], atol=ARTICLE_ATOL)
    np.testing.assert_allclose(np.asarray(hidden), [0.5399, 0.4638], atol=ARTICLE_ATOL)
    article_hidden = jnp.asarray([0.5399, 0.4638])
    (z_output,), _ = forward_trace(params[1:], article_hidden, layer_activations(WORKED)[1:])
    np.testing.assert_allclose(np.asarray(z_output), [0.9271, 0.0955], atol=ARTICLE_ATOL)
    outputs = sigmoid(jnp.asarray([0.9271, 0.0955]))
    np.testing.assert_allclose(np.asarray(outputs), [0.7164, 0.5238], atol=ARTICLE_ATOL)


def test_worked_example_forward_pass_end_to_end():
    """The whole trace at full precision.

    Exact arithmetic gives z_o1 = 0.92720 and o1 = 0.71651, where the article, carrying
    rounded h1 and h2, prints 0.9271 and 0.7164: 1.1e-4 apart. Every other figure is within 1e-4.
    """
    inputs = jnp.asarray(FIRST_INPUT)
    net_inputs, outputs = forward_trace(_worked_params(), inputs, layer_activations(WORKED))
    np.testing.assert_allclose(np.asarray(net_inputs[0]), [0.16, -0.145], atol=ARTICLE_ATOL)
    np.testing.assert_allclose(np.asarray(outputs[0]), [0.5399, 0.4638], atol=ARTICLE_ATOL)
    np.testing.assert_allclose(np.asarray(net_inputs[1]), [0.9271, 0.0955], atol=1.5e-4)
    np.testing.assert_allclose(np.asarray(outputs[1]), [0.7164, 0.5238], atol=1.5e-4)
    batch_outputs = forward(_worked_params(), inputs[None], layer_activations(WORKED))
    np.testing.assert_allclose(np.asarray(batch_outputs[0]), np.asarray(outputs[1]), rtol=1e-6)


def test_worked_example_backward_pass_with_jax_grad():
    params = _worked_params()
    activations = layer_activations(WORKED)
    inputs, targets = jnp.asarray(FIRST_INPUT), jnp.asarray(FIRST_TARGET)
    grads = jax.grad(_half_sse_of_sample)(params, inputs, targets, activations)
    learning_rate = 1.2

    # Output weight w(h1→o1): ∂E/∂w = ∂E/∂o1 · o1(1 − o1) · h1 ≈ −0.0201; 0.37 + 1.2·0.0201.
    output_gradient = float(grads[1].weights[0, 0])
    assert output_gradient == pytest.approx(-0.0201, abs=ARTICLE_ATOL)
    assert 0.37 - learning_rate * output_gradient == pytest.approx(0.3941, abs=ARTICLE_ATOL)

    # Hidden weight w(x1→h1): ∂E/∂h1 · h1(1 − h1) · x1 ≈ −0.0370 · 0.2484 · 0.5 ≈ −0.0046.
    hidden_gradient = float(grads[0].weights[0, 0])
    assert hidden_gradient == pytest.approx(-0.0046, abs=ARTICLE_ATOL)
    assert 0.1 - learning_rate * hidden_gradient == pytest.approx(0.1055, abs=ARTICLE_ATOL)


def test_worked_example_chain_rule_factors():
    params = _worked_params()
    activations = layer_activations(WORKED)
    inputs, targets = jnp.asarray(FIRST_INPUT), jnp.asarray(FIRST_TARGET)
    net_inputs, (hidden, outputs) = forward_trace(params, inputs, activations)
    loss = get_loss("half_sse")

    # ∂E/∂o1 = −(0.9 − 0.7164) = −0.1836 (1.1e-4 off at full precision, see above).
    d_outputs = jax.grad(lambda o: loss(targets[None], o[None]))(outputs)
    assert float(d_outputs[0]) == pytest.approx(-0.1836, abs=1.5e-4)
    # ∂o1/∂z_o1 = o1(1 − o1) = 0.2031 and ∂h1/∂z_h1 = h1(1 − h1) = 0.2484.
    slope = jax.grad(activations[1])
    assert float(slope(net_inputs[1][0])) == pytest.approx(0.2031, abs=ARTICLE_ATOL)
    assert float(slope(net_inputs[0][0])) == pytest.approx(0.2484, abs=ARTICLE_ATOL)
    # ∂E/∂h1 = Σₖ δₖ · w(h1→oₖ) = −0.0370: the gradient of E with respect to the hidden output.
    d_hidden = jax.grad(lambda h: _half_sse_of_sample(params[1:], h, targets, activations[1:]))(
        hidden
    )
    assert float(d_hidden[0]) == pytest.approx(-0.0370, abs=ARTICLE_ATOL)


def test_worked_example_gradients_match_numpy_backprop(x64):
    params = _worked_params(jnp.float64)
    grads = jax.grad(_half_sse_of_sample)(
        params, jnp.asarray(FIRST_INPUT), jnp.asarray(FIRST_TARGET), layer_activations(WORKED)
    )
    assert grads[0].weights.dtype == jnp.float64
    weights = [np.asarray(w, np.float64) for w in WORKED_WEIGHTS]
    biases = [np.asarray(b, np.float64) for b in WORKED_BIASES]
    _, weight_grads, bias_grads = ref.backprop(
        weights,
        biases,
        np.array([[0.5, -0.5]]),
        np.array([[0.9, 0.1]]),
        ["sigmoid"] * 2,
        "half_sse",
    )
    for layer, expected_w, expected_b in zip(grads, weight_grads, bias_grads, strict=True):
        np.testing.assert_allclose(np.asarray(layer.weights), expected_w, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(layer.biases), expected_b, rtol=1e-12)


# ---------------------------------------------------------------- the Harvard neuron (§1)

HARVARD_INPUTS = [0.31, 0.67, 0.87, 0.8, 0.8, 0.7, 0.9]
HARVARD_WEIGHTS = [0.0, 0.0, 0.3, 0.3, 0.5, 0.7, 1.0]


def test_harvard_neuron_passes_with_threshold_one():
    architecture = Architecture((7, 1), output_activation="threshold", use_bias=False, theta=1.0)
    params = params_from_lists(architecture, [[HARVARD_WEIGHTS]])
    (z,), (output,) = forward_trace(
        params, jnp.asarray(HARVARD_INPUTS), layer_activations(architecture)
    )
    assert float(z[0]) == pytest.approx(2.291, abs=1e-5)
    assert float(output[0]) == 1.0


def test_harvard_neuron_with_bias_input_instead_of_threshold():
    # θ = 1 is the same unit as θ = 0 with a bias weight of −1 on an input fixed at 1.
    architecture = Architecture((7, 1), output_activation="threshold", use_bias=True, theta=0.0)
    params = params_from_lists(architecture, [[HARVARD_WEIGHTS]], [[-1.0]])
    (z,), (output,) = forward_trace(
        params, jnp.asarray(HARVARD_INPUTS), layer_activations(architecture)
    )
    assert float(z[0]) == pytest.approx(1.291, abs=1e-5)
    assert float(output[0]) == 1.0
    # A weaker student, z = 0.87·0.3 + 0.8·0.3 = 0.501, fails.
    weak = jnp.asarray([0.31, 0.67, 0.87, 0.8, 0.0, 0.0, 0.0])
    assert float(forward(params, weak, layer_activations(architecture))[0]) == 0.0


# ---------------------------------------------------------------- gradients on random networks

SHAPES = [(2, 1), (3, 4, 2), (2, 5, 3, 1)]
HIDDEN = ["sigmoid", "tanh", "relu", "linear"]
# Cross-entropy needs probabilities, so it gets a sigmoid output; the others get a mix.
OUTPUT_FOR_LOSS = {"half_sse": "linear", "mse": "tanh", "bce": "sigmoid"}
GRADIENT_CASES = [
    (shape, hidden, OUTPUT_FOR_LOSS[loss], loss)
    for shape, hidden, loss in itertools.product(SHAPES, HIDDEN, ["half_sse", "mse", "bce"])
    if not (len(shape) == 2 and hidden != "sigmoid")  # (2, 1) has no hidden layer
] + [((3, 4, 2), "relu", "relu", "half_sse"), ((2, 5, 3, 1), "sigmoid", "sigmoid", "half_sse")]


def _random_problem(shape, hidden, output, loss, *, seed, use_bias=True, samples=5):
    rng = np.random.default_rng(seed)
    weights, biases = ref.random_network(rng, shape, use_bias=use_bias)
    inputs = rng.normal(size=(samples, shape[0]))
    targets = rng.uniform(0.0, 1.0, size=(samples, shape[-1]))
    if loss == "bce":
        targets = np.round(targets)
    architecture = Architecture(tuple(shape), hidden, output, use_bias=use_bias)
    params = params_from_lists(
        architecture,
        [w.tolist() for w in weights],
        [b.tolist() for b in biases] if use_bias else None,
        dtype=jnp.float64,
    )
    return architecture, params, weights, biases, inputs, targets


def _engine_loss(architecture, loss):
    activations = layer_activations(architecture)
    loss_fn = get_loss(loss)
    return lambda params, inputs, targets: loss_fn(targets, forward(params, inputs, activations))


@pytest.mark.parametrize("shape, hidden, output, loss", GRADIENT_CASES)
def test_jax_gradients_match_numpy_backprop(shape, hidden, output, loss, x64):
    seed = GRADIENT_CASES.index((shape, hidden, output, loss))
    architecture, params, weights, biases, inputs, targets = _random_problem(
        shape, hidden, output, loss, seed=seed
    )
    value, grads = jax.value_and_grad(_engine_loss(architecture, loss))(
        params, jnp.asarray(inputs), jnp.asarray(targets)
    )
    activations = ref.layer_activation_names(hidden, output, len(shape) - 1)
    expected_value, weight_grads, bias_grads = ref.backprop(
        weights, biases, inputs, targets, activations, loss
    )
    assert float(value) == pytest.approx(expected_value, rel=1e-12)
    for layer, expected_w, expected_b in zip(grads, weight_grads, bias_grads, strict=True):
        np.testing.assert_allclose(np.asarray(layer.weights), expected_w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(layer.biases), expected_b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape, hidden, output, loss", GRADIENT_CASES)
def test_jax_gradients_match_finite_differences(shape, hidden, output, loss, x64):
    architecture, params, *_, inputs, targets = _random_problem(shape, hidden, output, loss, seed=7)
    function = _engine_loss(architecture, loss)
    check_grads(
        lambda p: function(p, jnp.asarray(inputs), jnp.asarray(targets)),
        (params,),
        order=1,
        modes=("rev",),
        atol=1e-6,
        rtol=1e-6,
    )


def test_gradients_without_biases_match_numpy_backprop(x64):
    architecture, params, weights, biases, inputs, targets = _random_problem(
        (3, 4, 2), "tanh", "sigmoid", "half_sse", seed=3, use_bias=False
    )
    grads = jax.grad(_engine_loss(architecture, "half_sse"))(
        params, jnp.asarray(inputs), jnp.asarray(targets)
    )
    _, weight_grads, bias_grads = ref.backprop(
        weights, biases, inputs, targets, ["tanh", "sigmoid"], "half_sse"
    )
    assert all(layer.biases is None for layer in grads) and bias_grads == [None, None]
    for layer, expected in zip(grads, weight_grads, strict=True):
        np.testing.assert_allclose(np.asarray(layer.weights), expected, rtol=1e-9)


@pytest.mark.parametrize(
    "hidden, loss", [("sigmoid", "bce"), ("tanh", "mse"), ("relu", "half_sse")]
)
def test_numpy_backprop_itself_matches_finite_differences(hidden, loss):
    """The reference is only worth trusting if it is checked too."""
    output = OUTPUT_FOR_LOSS[loss]
    _, _, weights, biases, inputs, targets = _random_problem(
        (2, 5, 3, 1), hidden, output, loss, seed=11
    )
    activations = ref.layer_activation_names(hidden, output, 3)
    _, weight_grads, bias_grads = ref.backprop(weights, biases, inputs, targets, activations, loss)
    fd_weights, fd_biases = ref.finite_difference_gradients(
        weights, biases, inputs, targets, activations, loss
    )
    for analytic, numeric in zip(weight_grads + bias_grads, fd_weights + fd_biases, strict=True):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_threshold_network_has_zero_gradient_and_ste_does_not():
    architecture = Architecture((2, 3, 1), "threshold", "sigmoid", theta=0.0)
    params = init_params(jax.random.PRNGKey(0), architecture, "normal", 1.0)
    inputs = jnp.asarray([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    targets = jnp.asarray([[0.0], [1.0], [1.0], [0.0]])
    loss = get_loss("half_sse")

    def gradient(straight_through):
        activations = layer_activations(architecture, straight_through=straight_through)
        return jax.grad(lambda p: loss(targets, forward(p, inputs, activations)))(params)

    plain, ste = gradient(False), gradient(True)
    np.testing.assert_array_equal(np.asarray(plain[0].weights), 0.0)
    np.testing.assert_array_equal(np.asarray(plain[0].biases), 0.0)
    assert np.any(np.asarray(ste[0].weights) != 0.0)
    # The output layer sees the same step outputs either way, so its gradient is the same.
    np.testing.assert_allclose(np.asarray(ste[1].weights), np.asarray(plain[1].weights), rtol=1e-6)


# ---------------------------------------------------------------- shapes, init and checks


@pytest.mark.parametrize(
    "sizes, use_bias, expected",
    [
        ((2, 1), True, 3),
        ((2, 2, 1), True, 9),
        ((2, 2, 2), True, 12),
        ((3, 4, 2), False, 20),
        ((7, 1), False, 7),
    ],
)
def test_count_parameters(sizes, use_bias, expected):
    architecture = Architecture(sizes, use_bias=use_bias)
    assert count_parameters(architecture) == expected
    params = init_params(jax.random.PRNGKey(0), architecture)
    assert sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)) == expected


@pytest.mark.parametrize(
    "scheme", ["normal", "uniform", "glorot_uniform", "glorot_normal", "he_normal"]
)
def test_init_shapes_zero_biases_and_determinism(scheme):
    architecture = Architecture((3, 4, 2))
    params = init_params(jax.random.PRNGKey(1), architecture, scheme)
    again = init_params(jax.random.PRNGKey(1), architecture, scheme)
    other = init_params(jax.random.PRNGKey(2), architecture, scheme)
    assert [layer.weights.shape for layer in params] == [(4, 3), (2, 4)]
    assert [layer.biases.shape for layer in params] == [(4,), (2,)]
    for layer, same, different in zip(params, again, other, strict=True):
        np.testing.assert_array_equal(np.asarray(layer.biases), 0.0)
        np.testing.assert_array_equal(np.asarray(layer.weights), np.asarray(same.weights))
        assert not np.array_equal(np.asarray(layer.weights), np.asarray(different.weights))


def test_init_scales():
    wide = Architecture((300, 200))
    normal = np.asarray(init_params(jax.random.PRNGKey(0), wide, "normal", 0.5)[0].weights)
    assert normal.std() == pytest.approx(0.5, rel=0.02)
    uniform = np.asarray(init_params(jax.random.PRNGKey(0), wide, "uniform", 0.3)[0].weights)
    assert uniform.min() >= -0.3 and uniform.max() <= 0.3 and uniform.max() > 0.29
    limit = np.sqrt(6.0 / (300 + 200))  # Glorot & Bengio (2010)
    glorot = np.asarray(init_params(jax.random.PRNGKey(0), wide, "glorot_uniform")[0].weights)
    assert np.abs(glorot).max() <= limit and np.abs(glorot).max() > 0.99 * limit
    he = np.asarray(init_params(jax.random.PRNGKey(0), wide, "he_normal")[0].weights)
    assert he.std() == pytest.approx(np.sqrt(2.0 / 300), rel=0.02)  # He et al. (2015)


def test_init_vmaps_over_keys():
    architecture = Architecture((2, 2, 1))
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    stacked = jax.vmap(lambda k: init_params(k, architecture, "normal"))(keys)
    assert stacked[0].weights.shape == (8, 2, 2)
    single = init_params(keys[3], architecture, "normal")
    np.testing.assert_array_equal(np.asarray(stacked[0].weights[3]), np.asarray(single[0].weights))


def test_unknown_init_scheme():
    with pytest.raises(BackpropLabError, match=r"unknown init scheme 'xavier'.*glorot_uniform"):
        init_params(jax.random.PRNGKey(0), Architecture((2, 1)), "xavier")


def test_single_sample_forward_equals_batch_row():
    architecture = Architecture((3, 4, 2), "tanh", "sigmoid")
    params = init_params(jax.random.PRNGKey(0), architecture, "normal")
    inputs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    activations = layer_activations(architecture)
    batch = np.asarray(forward(params, inputs, activations))
    for row in range(5):
        np.testing.assert_allclose(
            np.asarray(forward(params, inputs[row], activations)), batch[row], rtol=1e-6
        )


@pytest.mark.parametrize(
    "sizes, message",
    [
        (
            (2, 0, 1),
            r"layer size 0 at position 1 of \[2, 0, 1\] is invalid; every layer needs at least 1 unit",
        ),
        ((0, 1), r"layer size 0 at position 0"),
        ((3,), r"needs at least an input and an output size"),
        ((2, -1, 1), r"layer size -1 at position 1"),
    ],
)
def test_impossible_layer_sizes(sizes, message):
    with pytest.raises(BackpropLabError, match=message):
        validate_architecture(Architecture(sizes))


def test_unknown_activation_in_architecture():
    with pytest.raises(
        BackpropLabError,
        match=r"model.hidden_activation='sigmod' is invalid: choose one of threshold, sigmoid",
    ):
        validate_architecture(Architecture((2, 2, 1), hidden_activation="sigmod"))
    with pytest.raises(BackpropLabError, match=r"model.output_activation='relux'"):
        validate_architecture(Architecture((2, 2, 1), output_activation="relux"))


def test_params_from_lists_rejects_wrong_shapes():
    with pytest.raises(
        BackpropLabError, match=r"give 1 layers but layer_sizes=\[2, 2, 2\] needs 2"
    ):
        params_from_lists(WORKED, WORKED_WEIGHTS[:1], WORKED_BIASES[:1])
    transposed = [np.asarray(WORKED_WEIGHTS[0]).T.tolist(), [[0.37, 0.9, 0.1], [-0.22, -0.12, 0.1]]]
    with pytest.raises(BackpropLabError, match=r"layer 1 have shape \(2, 3\), expected \(2, 2\)"):
        params_from_lists(WORKED, transposed, WORKED_BIASES)
    with pytest.raises(BackpropLabError, match=r"need explicit biases"):
        params_from_lists(WORKED, WORKED_WEIGHTS)
    with pytest.raises(
        BackpropLabError, match=r"biases of layer 0 have shape \(3,\), expected \(2,\)"
    ):
        params_from_lists(WORKED, WORKED_WEIGHTS, [[0.0, 0.0, 0.0], [0.0, 0.0]])


def test_params_round_trip_through_dict_and_arrays():
    params = _worked_params()
    payload = params_to_dict(params)
    np.testing.assert_allclose(payload["layers"][0]["weights"], WORKED_WEIGHTS[0], rtol=1e-6)
    np.testing.assert_allclose(payload["layers"][1]["biases"], WORKED_BIASES[1], rtol=1e-6)
    restored = params_from_dict(payload)
    for layer, back in zip(params, restored, strict=True):
        np.testing.assert_array_equal(np.asarray(layer.weights), np.asarray(back.weights))
        np.testing.assert_array_equal(np.asarray(layer.biases), np.asarray(back.biases))
    arrays = params_to_arrays(params)
    assert sorted(arrays) == ["layer0_biases", "layer0_weights", "layer1_biases", "layer1_weights"]
    np.testing.assert_array_equal(arrays["layer1_weights"], np.asarray(params[1].weights))
