"""``bplab-explain``: one sample, one step of backprop, as tables."""

from __future__ import annotations

import sys


def main() -> None:
    from backprop_lab.core import explain

    sys.exit(explain.main())
