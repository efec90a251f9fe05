"""``bplab-rerun RUN_ID``: train a logged run again and compare the weights bit for bit."""

from __future__ import annotations

import sys

from backprop_lab.cli.common import (
    OneLineParser,
    add_store_option,
    enable_compilation_cache,
    quiet_libraries,
)
from backprop_lab.errors import BackpropLabError

PROG = "bplab-rerun"


def run(argv: list[str] | None = None) -> int:
    from backprop_lab import rerun
    from backprop_lab.devices import use_cpu_cores

    quiet_libraries()
    parser = OneLineParser(
        prog=PROG,
        description="Rebuild a run's config from MLflow, train again, compare the final "
        "weights bit for bit.",
    )
    parser.add_argument("run_id", help="the MLflow run id to reproduce")
    add_store_option(parser)
    try:
        args = parser.parse_args(argv)
        # Before JAX starts: as many CPU devices as the grid had shards, to split it the same way.
        recorded = rerun.read_recorded(
            args.run_id,
            args.tracking_uri,
            on_run=lambda run: use_cpu_cores(at_least=rerun.devices_needed(run)),
        )
        enable_compilation_cache()
        identical, difference, kind = rerun.reproduce(recorded)
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if identical:
        print(f"run {args.run_id} ({kind}): final weights are bitwise identical")
        return 0
    print(f"run {args.run_id} ({kind}): final weights DIFFER (largest difference {difference:.3g})")
    return 1


def main() -> None:
    sys.exit(run())
