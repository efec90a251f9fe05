"""``bplab-sync FOLDER...``: upload runs that were kept on disk while the server was away."""

from __future__ import annotations

import sys


def main() -> None:
    from backprop_lab import sync

    sys.exit(sync.main())
