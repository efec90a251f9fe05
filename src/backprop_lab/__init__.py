"""backprop-lab: an experiment-tracked research pipeline for studying how neural networks learn.

The package is a pure JAX core (``activations``, ``losses``, ``model``, ``optim``, ``data``,
``train``, ``sweep``, ``explain``) wrapped in a thin shell of Hydra configs (``config``),
MLflow tracking (``tracking``), the pipeline that joins them (``pipeline``), reports
(``report``) and console commands (``cli``). The core imports neither Hydra nor MLflow.
"""

__version__ = "0.1.0"
