"""backprop-lab: an experiment-tracked research pipeline for studying how neural networks learn.

The package is a pure JAX core (``core/``) wrapped in a thin shell of Hydra configs
(``config/``), MLflow tracking (``tracking/``), the pipeline that joins them (``pipeline``),
reports (``report/``) and console commands (``cli/``). The core imports neither Hydra nor
MLflow nor matplotlib.
"""

import time as _time

__version__ = "0.1.0"
# When the package was first imported: a console command's start-up is timed from here.
IMPORTED_AT = _time.time()
