"""The decision-boundary figures evaluate the network in padded, compiled batches: the same
outputs as the network's forward pass on every point."""

from __future__ import annotations

import jax
import numpy as np

from backprop_lab import plots
from backprop_lab.core.model import Architecture, forward, init_params, layer_activations


def test_batched_predict_equals_the_forward_pass_on_every_point():
    # 4,194,304 values per batch / 5,000 units = 838 points a batch: 3 batches, the last one
    # padded.
    arch = Architecture((2, 5000, 1), "tanh", "sigmoid")
    params = init_params(jax.random.PRNGKey(3), arch, "normal", 1.0)
    points = np.random.default_rng(0).uniform(-2, 2, size=(2000, 2))
    got = plots.batched_predict(arch, params)(points)
    want = np.asarray(forward(params, points.astype(np.float32), layer_activations(arch)))[:, 0]
    assert got.shape == (2000,)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    small = plots.batched_predict(
        Architecture((2, 2, 1)), init_params(jax.random.PRNGKey(0), Architecture((2, 2, 1)))
    )
    assert small(points[:3]).shape == (3,)
