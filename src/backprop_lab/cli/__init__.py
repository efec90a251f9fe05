"""Console entry points, one module per command. Each is a few lines around importable logic.

Bad input prints one line, ``<command>: error: <what was wrong>``, with no traceback, and exits
with status 2.
"""

from __future__ import annotations

import os
import sys

from backprop_lab.devices import use_cpu_cores
from backprop_lab.errors import BackpropLabError

# Quieter start-up: no C++ logs. MLflow's usage telemetry is off unless the user turns it on:
# it cannot reach its server from closed lab networks and costs about a second at exit.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's own INFO lines (creating tables, the experiment link) are noise in a CLI summary.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

# One XLA device per CPU core, before anything imports JAX: a grid's cells train on all of them.
try:
    use_cpu_cores()
except BackpropLabError as error:
    sys.exit(f"bplab: error: {error}")
