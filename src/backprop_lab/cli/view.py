"""``bplab-view RUN_ID --out explorer.html``: the explorer of any tracked run, from the store alone."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from backprop_lab.cli.common import OneLineParser, add_store_option, quiet_libraries
from backprop_lab.errors import BackpropLabError

PROG = "bplab-view"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description=(
            "Write the explorer of a tracked run: one self-contained HTML page that shows every "
            "cell learning, epoch by epoch. A multirun shows all its jobs."
        ),
    )
    parser.add_argument("run_id", metavar="RUN_ID", help="a single, grid or multirun run")
    parser.add_argument(
        "--out", default="explorer.html", metavar="FILE", help="the page (default: explorer.html)"
    )
    add_store_option(parser)
    parser.add_argument(
        "--max-mb",
        type=float,
        default=None,
        metavar="MB",
        help="largest page; above it the page keeps fewer snapshots (default: 3)",
    )
    return parser


def _writable(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise BackpropLabError(
            f"--out {str(path)!r} is a folder; name a file such as explorer.html"
        )
    if not folder.is_dir():
        raise BackpropLabError(
            f"cannot write --out {str(path)!r}: folder {str(folder)!r} does not exist"
        )
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise BackpropLabError(f"cannot write --out {str(path)!r} ({error.strerror})") from None
    return path


def run(argv: list[str] | None = None) -> int:
    """Run ``bplab-view``; return the exit code (2 for bad input)."""
    from backprop_lab import tracking
    from backprop_lab.explorer import DEFAULT_MAX_BYTES, write_explorer

    quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        out = _writable(Path(args.out))
        if args.max_mb is not None and not args.max_mb > 0:
            raise BackpropLabError(f"--max-mb {args.max_mb} must be > 0")
        max_bytes = DEFAULT_MAX_BYTES if args.max_mb is None else int(args.max_mb * 1e6)
        uri = tracking.resolve_tracking_uri(args.tracking_uri)
        tracking.check_store_exists(uri)
        from backprop_lab.explorer.sources import explorer_for_run
        from backprop_lab.interrupt import sigterm_unwinds

        # SIGTERM's default action would leave the downloads folder behind.
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="bplab-view-") as downloads:
            page = explorer_for_run(tracking.client(uri), args.run_id, Path(downloads), max_bytes)
        size = write_explorer(out, page)
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)
    except OSError as error:
        print(f"{PROG}: error: cannot write {args.out!r} ({error.strerror})", file=sys.stderr)
        return 2
    print(f"Explorer: {out} ({size / 1e6:.2f} MB); open it in a browser (no network needed)")
    return 0


def main() -> None:
    sys.exit(run())
