"""``bplab-sync FOLDER...``: publish runs kept on disk while the tracking server was away.

Every job writes its run record (params, tags, per-epoch metrics, artifacts) into its output
folder before sending it to MLflow. When the server disappears mid-sweep, the records stay
there marked pending; this command finds them under the given folders and publishes them,
completing runs MLflow already knows about and creating the ones it does not.
"""

from __future__ import annotations

import argparse
import sys

from backprop_lab.errors import BackpropLabError

PROG = "bplab-sync"


def sync(folders: list[str], tracking_uri: str | None = None, dry_run: bool = False) -> list:
    """Publish every pending record under ``folders``; return the records handled."""
    from backprop_lab import tracking

    handled = []
    for folder in folders:
        for record in tracking.pending_records(folder):
            if tracking_uri:
                record.tracking_uri = tracking.resolve_tracking_uri(tracking_uri)
            if not dry_run:
                if record.status == "RUNNING":
                    # The job ended without closing its record: it never finished.
                    record.status = "FAILED"
                try:
                    tracking.check_reachable(record.tracking_uri)
                    tracking.publish(record)
                except Exception as error:
                    # One record that cannot be published must not block the others.
                    record.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            handled.append(record)
    return handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "folders",
        nargs="+",
        help="output folders to search (outputs/, multirun/ or one run's folder)",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="publish to this store instead of the one each run was meant for",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be published")
    args = parser.parse_args(argv)
    try:
        handled = sync(args.folders, args.tracking_uri, args.dry_run)
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    verb = "would publish" if args.dry_run else "published"
    failed = 0
    for record in handled:
        metric_points = sum(len(points) for points in record.metrics.values())
        error = getattr(record, "error", None)
        if error:
            failed += 1
            print(f"{PROG}: error: could not publish {record.folder}: {error}", file=sys.stderr)
            continue
        print(
            f"{verb} {record.run_name!r} ({record.status}, {metric_points} metric points) "
            f"-> {record.tracking_uri} run {record.run_id}"
        )
    if not handled:
        print("nothing to sync: every run under the given folders is already in its store")
    return 1 if failed else 0
