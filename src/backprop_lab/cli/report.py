"""``bplab-report``: figures and tables regenerated from the MLflow store."""

from __future__ import annotations

import sys


def main() -> None:
    from backprop_lab import report

    sys.exit(report.main())
