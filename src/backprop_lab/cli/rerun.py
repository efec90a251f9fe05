"""``bplab-rerun RUN_ID``: train a logged run again and compare the weights bit for bit."""

from __future__ import annotations

import sys


def main() -> None:
    from backprop_lab import rerun

    sys.exit(rerun.main())
