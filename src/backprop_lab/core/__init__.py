"""The pure core: networks, losses, optimizers, data sets, training and analysis.

Everything here imports only JAX, NumPy and optax (``tests/test_layering.py`` checks it), so it
can be tested, benchmarked and reused without Hydra, MLflow or matplotlib.
"""
