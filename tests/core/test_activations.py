"""Activations against their textbook formulas and hand-written derivatives."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_numpy as ref

from backprop_lab.core.activations import (
    ACTIVATION_NAMES,
    get_activation,
    threshold,
    threshold_straight_through,
)
from backprop_lab.errors import BackpropLabError

GRID = np.linspace(-4.0, 4.0, 81)
# Points away from ReLU's kink and the step's jump, for derivative checks.
SMOOTH_GRID = GRID[np.abs(GRID) > 1e-3]


def _gelu_tanh(z):
    # jax.nn.gelu's default is the tanh approximation of Hendrycks & Gimpel (2016).
    return 0.5 * z * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z**3)))


FORMULAS = {
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "gelu": _gelu_tanh,
    "swish": lambda z: z / (1.0 + np.exp(-z)),
    "hard_sigmoid": lambda z: np.clip(z / 6.0 + 0.5, 0.0, 1.0),
}


def test_every_listed_activation_has_a_formula_here():
    assert set(ACTIVATION_NAMES) == {"threshold", *FORMULAS}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_values_match_formula(name):
    values = np.asarray(get_activation(name)(jnp.asarray(GRID, jnp.float32)))
    np.testing.assert_allclose(values, FORMULAS[name](GRID), rtol=1e-5, atol=1e-6)


def test_sigmoid_of_worked_example_net_inputs():
    # SEED-NOTES §4: σ(0.16) = 0.5399, σ(−0.145) = 0.4638, σ(0.9271) = 0.7164, σ(0.0955) = 0.5238.
    sigmoid = get_activation("sigmoid")
    values = np.asarray(sigmoid(jnp.asarray([0.16, -0.145, 0.9271, 0.0955])))
    np.testing.assert_allclose(values, [0.5399, 0.4638, 0.7164, 0.5238], atol=1e-4)


@pytest.mark.parametrize("name", sorted(ref.ACTIVATIONS))
def test_derivative_matches_hand_written_slope(name):
    function, derivative = ref.ACTIVATIONS[name]
    slopes = jax.vmap(jax.grad(get_activation(name)))(jnp.asarray(SMOOTH_GRID, jnp.float32))
    expected = derivative(SMOOTH_GRID, function(SMOOTH_GRID))
    np.testing.assert_allclose(np.asarray(slopes), expected, rtol=1e-5, atol=1e-6)


def test_threshold_is_a_strict_step_at_theta():
    z = jnp.asarray([-1.0, 0.0, 0.5, 0.999, 1.0, 1.001, 2.291])
    np.testing.assert_array_equal(np.asarray(threshold(z, 1.0)), [0, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(np.asarray(threshold(z)), [0, 0, 1, 1, 1, 1, 1])
    named = get_activation("threshold", theta=1.0)
    np.testing.assert_array_equal(np.asarray(named(z)), np.asarray(threshold(z, 1.0)))


def test_threshold_keeps_the_input_dtype():
    assert threshold(jnp.zeros(3, jnp.float32)).dtype == jnp.float32
    assert threshold(jnp.zeros(3, jnp.bfloat16)).dtype == jnp.bfloat16


@pytest.mark.parametrize("theta", [0.0, 1.0])
def test_threshold_gradient_is_zero_everywhere(theta):
    z = jnp.asarray(np.concatenate([GRID, [theta - 1e-3, theta, theta + 1e-3]]), jnp.float32)
    slopes = jax.vmap(jax.grad(get_activation("threshold", theta=theta)))(z)
    np.testing.assert_array_equal(np.asarray(slopes), np.zeros(z.shape))


@pytest.mark.parametrize("theta", [0.0, 1.0, -0.5])
def test_straight_through_steps_forward_and_passes_sigmoid_slope_back(theta):
    z = jnp.asarray(SMOOTH_GRID, jnp.float32)
    step = get_activation("threshold", theta=theta, straight_through=True)
    np.testing.assert_array_equal(np.asarray(step(z)), np.asarray(threshold(z, theta)))
    slopes = np.asarray(jax.vmap(jax.grad(step))(z))
    s = ref.sigmoid(SMOOTH_GRID - theta)
    np.testing.assert_allclose(slopes, s * (1.0 - s), rtol=1e-5, atol=1e-7)
    assert np.all(slopes > 0)
    # The slope peaks at θ, where σ'(0) = 1/4.
    assert float(jax.grad(step)(jnp.float32(theta))) == pytest.approx(0.25, abs=1e-6)


def test_straight_through_function_matches_named_lookup():
    z = jnp.asarray(SMOOTH_GRID, jnp.float32)
    named = get_activation("threshold", theta=0.3, straight_through=True)
    direct = jax.vmap(jax.grad(lambda v: threshold_straight_through(v, 0.3)))(z)
    np.testing.assert_array_equal(np.asarray(jax.vmap(jax.grad(named))(z)), np.asarray(direct))


def test_unknown_activation_names_the_choices():
    with pytest.raises(BackpropLabError, match=r"unknown activation 'sigmoidd'.*sigmoid.*tanh"):
        get_activation("sigmoidd")
