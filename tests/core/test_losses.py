"""Losses and accuracy against NumPy formulas, the worked example and known identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_numpy as ref

from backprop_lab.core.losses import LOSSES, accuracy, get_loss
from backprop_lab.errors import BackpropLabError

RNG = np.random.default_rng(20240611)
TARGETS = RNG.uniform(0.0, 1.0, size=(6, 3))
PREDICTIONS = RNG.uniform(0.05, 0.95, size=(6, 3))


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_registry_has_the_four_losses():
    assert set(LOSSES) == {"half_sse", "mse", "bce", "cce"}


@pytest.mark.parametrize("name", ["half_sse", "mse", "bce"])
def test_loss_value_matches_reference(name, x64):
    value = get_loss(name)(jnp.asarray(TARGETS), jnp.asarray(PREDICTIONS))
    expected, _ = ref.loss_and_output_gradient(name, TARGETS, PREDICTIONS)
    assert float(value) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", ["half_sse", "mse", "bce"])
def test_loss_gradient_matches_reference(name, x64):
    gradient = jax.grad(lambda p: get_loss(name)(jnp.asarray(TARGETS), p))(jnp.asarray(PREDICTIONS))
    _, expected = ref.loss_and_output_gradient(name, TARGETS, PREDICTIONS)
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-10)


def test_explicit_formulas():
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    p = np.array([[0.8, 0.4], [0.5, 0.5]])
    half_sse = get_loss("half_sse")(jnp.asarray(y), jnp.asarray(p))
    mse = get_loss("mse")(jnp.asarray(y), jnp.asarray(p))
    bce = get_loss("bce")(jnp.asarray(y), jnp.asarray(p))
    # samples: ½(0.04 + 0.16) = 0.1 and ½(0.25 + 0.25) = 0.25, mean 0.175
    assert float(half_sse) == pytest.approx(0.175, rel=1e-6)
    # samples: (0.04 + 0.16)/2 = 0.1 and (0.25 + 0.25)/2 = 0.25; with two outputs mse = half_sse
    assert float(mse) == pytest.approx(0.175, rel=1e-6)
    expected_bce = -(np.log(0.8) + np.log(0.6) + 2 * np.log(0.5)) / 4
    assert float(bce) == pytest.approx(expected_bce, rel=1e-6)


def test_half_sse_on_the_worked_example_first_sample():
    # SEED-NOTES §4–5: targets (0.9, 0.1), outputs (0.7164, 0.5238).
    targets = jnp.asarray([[0.9, 0.1]])
    outputs = jnp.asarray([[0.7164, 0.5238]])
    value = get_loss("half_sse")(targets, outputs)
    assert float(value) == pytest.approx(
        0.5 * ((0.9 - 0.7164) ** 2 + (0.1 - 0.5238) ** 2), rel=1e-6
    )
    # The ½ makes ∂E/∂ŷ₁ = −(y₁ − ŷ₁) = −0.1836.
    gradient = jax.grad(lambda p: get_loss("half_sse")(targets, p))(outputs)
    np.testing.assert_allclose(np.asarray(gradient), [[-0.1836, 0.4238]], atol=1e-6)


def test_bce_through_a_sigmoid_has_gradient_prediction_minus_target(x64):
    # The classic identity ∂BCE/∂z = (σ(z) − y) / outputs for a sigmoid output, independent of
    # how the loss is written.
    z = jnp.asarray(RNG.normal(size=(4, 2)))
    y = jnp.asarray(RNG.integers(0, 2, size=(4, 2)).astype(np.float64))
    gradient = jax.grad(lambda v: get_loss("bce")(y, jax.nn.sigmoid(v)))(z)
    expected = (ref.sigmoid(np.asarray(z)) - np.asarray(y)) / (4 * 2)
    np.testing.assert_allclose(np.asarray(gradient), expected, rtol=1e-9)


def test_bce_is_finite_for_saturated_predictions():
    y = jnp.asarray([[1.0], [0.0], [1.0], [0.0]])
    p = jnp.asarray([[0.0], [1.0], [1.0], [0.0]])
    value = float(get_loss("bce")(y, p))
    assert np.isfinite(value)
    # Each of the two confidently wrong samples costs about −log(ε) = −log(1e−7) ≈ 16.1 (a
    # little less on the 1 − ε side, which float32 rounds), the right ones about 0; mean of 4.
    assert 15.0 < 2 * value < 16.2
    gradient = jax.grad(lambda q: get_loss("bce")(y, q))(p)
    assert np.all(np.isfinite(np.asarray(gradient)))


@pytest.mark.parametrize("name", ["half_sse", "mse", "bce"])
def test_sample_weight_averages_only_the_weighted_samples(name, x64):
    weight = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    kept = weight > 0
    value = get_loss(name)(jnp.asarray(TARGETS), jnp.asarray(PREDICTIONS), jnp.asarray(weight))
    expected, _ = ref.loss_and_output_gradient(name, TARGETS[kept], PREDICTIONS[kept])
    assert float(value) == pytest.approx(expected, rel=1e-12)


def test_all_zero_sample_weight_does_not_divide_by_zero():
    value = get_loss("half_sse")(jnp.ones((2, 1)), jnp.zeros((2, 1)), jnp.zeros(2))
    assert float(value) == 0.0


def test_accuracy_counts_samples_whose_every_output_is_within_half():
    y = jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.9, 0.1]])
    p = jnp.asarray([[0.9, 0.2], [0.6, 0.9], [0.51, 0.49], [0.7164, 0.5238]])
    # sample 2: 0.6 is 0.6 from 0; sample 3: 0.49 is 0.51 from 1; sample 4: 0.4238 from 0.1 is fine.
    assert float(accuracy(y, p)) == pytest.approx(0.5)
    assert float(accuracy(y, p, jnp.asarray([1.0, 0.0, 0.0, 1.0]))) == pytest.approx(1.0)


def test_unknown_loss_names_the_choices():
    with pytest.raises(BackpropLabError, match=r"unknown loss 'l2'.*half_sse, mse, bce"):
        get_loss("l2")


# ---------------------------------------------------------------------------------------------
# Softmax with categorical cross-entropy

CLASSES = 4
LOGITS = RNG.normal(scale=2.0, size=(7, CLASSES))
ONE_HOT = np.eye(CLASSES)[RNG.integers(0, CLASSES, size=7)]


def _softmax_ce(logits):
    from backprop_lab.core.activations import get_activation

    return get_loss("cce")(jnp.asarray(ONE_HOT), get_activation("softmax")(logits))


def test_cce_value_matches_reference(x64):
    probabilities = ref.softmax(LOGITS)
    value = get_loss("cce")(jnp.asarray(ONE_HOT), jnp.asarray(probabilities))
    expected, _ = ref.loss_and_output_gradient("cce", ONE_HOT, probabilities)
    assert float(value) == pytest.approx(expected, rel=1e-12)
    # By hand: the mean over samples of −log of the target class's probability.
    by_hand = -np.mean(np.log(probabilities[ONE_HOT.astype(bool)]))
    assert float(value) == pytest.approx(by_hand, rel=1e-12)


def test_softmax_ce_gradient_is_probabilities_minus_targets(x64):
    # ∂E/∂z through the softmax's full Jacobian (the NumPy reference) equals (ŷ − y)/B.
    gradient = np.asarray(jax.grad(_softmax_ce)(jnp.asarray(LOGITS)))
    _, output_gradient = ref.loss_and_output_gradient("cce", ONE_HOT, ref.softmax(LOGITS))
    np.testing.assert_allclose(
        gradient, ref.softmax_delta(output_gradient, ref.softmax(LOGITS)), rtol=1e-10
    )
    np.testing.assert_allclose(gradient, (ref.softmax(LOGITS) - ONE_HOT) / len(LOGITS), atol=1e-14)


def test_softmax_ce_gradients_match_finite_differences(x64):
    from jax.test_util import check_grads

    check_grads(_softmax_ce, (jnp.asarray(LOGITS),), order=2, modes=["rev"], eps=1e-5)


def test_softmax_ce_network_gradients_match_numpy_backprop_and_finite_differences(x64):
    from backprop_lab.core.model import Architecture, forward, layer_activations, params_from_lists

    architecture = Architecture((3, 5, CLASSES), "tanh", "softmax")
    weights = [RNG.normal(size=(5, 3)), RNG.normal(size=(CLASSES, 5))]
    biases = [RNG.normal(size=5), RNG.normal(size=CLASSES)]
    inputs = RNG.normal(size=(7, 3))
    params = params_from_lists(architecture, weights, biases, dtype=jnp.float64)
    activations = layer_activations(architecture)

    def loss(params):
        return get_loss("cce")(
            jnp.asarray(ONE_HOT), forward(params, jnp.asarray(inputs), activations)
        )

    gradients = jax.grad(loss)(params)
    names = ["tanh", "softmax"]
    _, weight_grads, bias_grads = ref.backprop(weights, biases, inputs, ONE_HOT, names, "cce")
    fd_weights, fd_biases = ref.finite_difference_gradients(
        weights, biases, inputs, ONE_HOT, names, "cce"
    )
    for layer, expected_w, expected_b, fd_w, fd_b in zip(
        gradients, weight_grads, bias_grads, fd_weights, fd_biases, strict=True
    ):
        np.testing.assert_allclose(np.asarray(layer.weights), expected_w, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(layer.biases), expected_b, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(layer.weights), fd_w, rtol=1e-5, atol=1e-8)
        np.testing.assert_allclose(np.asarray(layer.biases), fd_b, rtol=1e-5, atol=1e-8)


def test_a_vanished_probability_gives_a_large_finite_loss_that_still_pulls():
    # float32 softmax underflows to exactly 0 for a class 200 below the largest net input.
    logits = jnp.asarray([[200.0, 0.0, 0.0]], jnp.float32)
    targets = jnp.asarray([[0.0, 1.0, 0.0]], jnp.float32)
    value, gradient = jax.value_and_grad(
        lambda z: get_loss("cce")(targets, jax.nn.softmax(z, axis=-1))
    )(logits)
    assert np.isfinite(float(value)) and float(value) > 80  # −log of float32's tiniest normal
    assert np.isfinite(np.asarray(gradient)).all()


def test_accuracy_of_a_softmax_output_is_by_argmax():
    targets = jnp.asarray(np.eye(3)[[0, 1, 2, 2]])
    # Sample 3 puts most probability on class 1. No sample has every output within 0.5 of its
    # target, the rule for other outputs: spread-out probabilities never pass it.
    predictions = jnp.asarray(
        [[0.5, 0.3, 0.2], [0.2, 0.45, 0.35], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]]
    )
    assert float(accuracy(targets, predictions, categorical=True)) == pytest.approx(0.75)
    assert float(accuracy(targets, predictions)) == 0.0


def test_epoch_metrics_of_cce_equal_the_loss_and_argmax_accuracy_per_epoch(x64):
    from backprop_lab.core.losses import epoch_metrics

    epochs = RNG.dirichlet(np.ones(CLASSES), size=(5, 7))
    targets = jnp.asarray(ONE_HOT)
    loss, accuracy_ = epoch_metrics("cce", targets, jnp.asarray(epochs))
    for epoch, predictions in enumerate(epochs):
        assert float(loss[epoch]) == pytest.approx(
            float(get_loss("cce")(targets, jnp.asarray(predictions))), rel=1e-12
        )
        right = np.argmax(predictions, axis=1) == np.argmax(ONE_HOT, axis=1)
        assert float(accuracy_[epoch]) == pytest.approx(right.mean())
