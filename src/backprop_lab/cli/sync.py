"""``bplab-sync FOLDER...``: publish runs kept on disk; ``--check``: close orphaned runs."""

from __future__ import annotations

import sys

from backprop_lab.cli.common import OneLineParser, add_store_option, quiet_libraries
from backprop_lab.errors import BackpropLabError

PROG = "bplab-sync"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Publish runs kept on disk (the server was away, the disk full, the process "
        "killed) and close runs left RUNNING by processes that died.",
    )
    parser.add_argument(
        "folders",
        nargs="*",
        help="output folders to search (outputs/, multirun/ or one run's folder)",
    )
    add_store_option(parser, "publish to this store instead of the one each run was meant for")
    parser.add_argument("--dry-run", action="store_true", help="list what would be published")
    parser.add_argument(
        "--check",
        action="store_true",
        help="list the store's RUNNING runs and close those whose process is gone",
    )
    return parser


def _print_sync(report, verb: str) -> None:
    for path, why in report.damaged:
        print(f"{PROG}: error: skipped {path}: {why}", file=sys.stderr)
    for record, why in report.failed:
        print(f"{PROG}: error: could not publish {record.folder}: {why}", file=sys.stderr)
    for record in report.running:
        process = record.process or {}
        print(
            f"still running: {record.run_name!r} (pid {process.get('pid')} on "
            f"{process.get('host')}) in {record.folder}; left alone"
        )
    for record in report.published:
        points = sum(len(values) for values in record.metrics.values())
        reason = f": {record.reason}" if record.reason else ""
        print(
            f"{verb} {record.run_name!r} ({record.status}{reason}; {points} metric points) "
            f"-> {record.tracking_uri} run {record.run_id}"
        )
    if not (report.published or report.failed or report.damaged or report.running):
        print("nothing to sync: every run under the given folders is already in its store")


def _print_check(stale) -> None:
    if not stale:
        print("no run is left RUNNING in the store")
    for run in stale:
        what = f"{run.run_id} {run.run_name!r} ({run.experiment})"
        if run.closed:
            print(f"closed {what}: {run.note}")
        elif run.orphaned:
            print(f"{PROG}: error: {what} is orphaned and {run.note}", file=sys.stderr)
        elif run.orphaned is None:
            print(f"running on {run.host} (pid {run.pid}), cannot tell from here: {what}")
        else:
            print(f"still running (pid {run.pid}): {what}")


def run(argv: list[str] | None = None) -> int:
    from backprop_lab import sync

    quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        if not args.folders and not args.check:
            raise BackpropLabError("give the folders to sync (outputs/ multirun/) or --check")
        if args.check:
            stale = sync.check_store(args.tracking_uri, close=not args.dry_run)
            _print_check(stale)
            if not args.folders:
                return 0
        report = sync.sync(args.folders, args.tracking_uri, args.dry_run)
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    _print_sync(report, "would publish" if args.dry_run else "published")
    return 0 if report.ok else 1


def main() -> None:
    sys.exit(run())
