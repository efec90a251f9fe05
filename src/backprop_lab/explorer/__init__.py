"""The explorer: one self-contained HTML page that shows every cell of a run or grid learning.

A run keeps its parameters at its snapshot epochs (``trajectory.npz``, see
:mod:`backprop_lab.core.trajectory`). The explorer embeds those snapshots, the cells' curves and
the data set in one page that opens from ``file://`` with no network: the output over the
input plane is recomputed in the browser from each snapshot's weights.

Modules, in the order the data flows: :mod:`.data` holds what one job of the page shows
(:class:`ExplorerJob`) and encodes it within a size budget; :mod:`.sources` builds jobs from a
run being recorded or from runs read back from MLflow; :mod:`.page` writes the HTML around
``explorer.js`` and ``explorer.css``; :mod:`.images` draws the decision-boundary images that
MLflow's image view steps through. The command line is :mod:`backprop_lab.cli.view`.
"""

from backprop_lab.explorer.data import DEFAULT_MAX_BYTES, ExplorerJob
from backprop_lab.explorer.page import EXPLORER_ARTIFACT, render_explorer, write_explorer

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EXPLORER_ARTIFACT",
    "ExplorerJob",
    "render_explorer",
    "write_explorer",
]
