"""``bplab-explain``: one step of backprop, every number shown.

With no arguments it walks through the article's worked example. With a preset and Hydra
overrides (the same as ``bplab-train`` takes) it explains the first step of that config's
training; with ``--run RUN_ID [--epoch N] [--cell LR,SEED]`` a step of a recorded run. Rich
tables on a terminal, ``--markdown`` for notes, ``--json`` for programs. Bad input prints one
line and exits 2; a chain-rule product that disagrees with ``jax.grad`` exits 1.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from backprop_lab.cli.common import OneLineParser, exit_now, quiet_libraries
from backprop_lab.errors import BackpropLabError

if TYPE_CHECKING:
    from backprop_lab.core.explain import StepExplanation
    from backprop_lab.explain.view import Context

PROG = "bplab-explain"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Walk through one gradient step: forward pass, δ recursion, chain rule for "
        "every weight checked against jax.grad, and the optimizer's update. No arguments: the "
        "article's 2-2-2 example.",
        epilog="examples: bplab-explain | bplab-explain experiment=xor_mlp "
        "model.hidden_sizes=[3] model.hidden_activation=tanh | bplab-explain --run RUN_ID --epoch 40",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="a preset and Hydra overrides, as bplab-train takes them (experiment=xor_mlp ...)",
    )
    parser.add_argument("--run", metavar="RUN_ID", help="explain a step of this recorded run")
    parser.add_argument(
        "--epoch",
        type=int,
        metavar="N",
        help="with --run: the epoch whose step to explain (default: the last)",
    )
    parser.add_argument(
        "--cell",
        metavar="LR,SEED",
        help="a grid's cell: its learning rate and seed (default: the first)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="K",
        help="a step on training sample K (from 1); with --run, the epoch's step that trains on it",
    )
    parser.add_argument(
        "--learning-rate", type=float, metavar="ETA", help="step size η (not with --run)"
    )
    parser.add_argument("--tracking-uri", help="the store of --run (default: as bplab-train)")
    parser.add_argument(
        "--decimals", type=int, default=4, metavar="N", help="decimals shown in tables (default 4)"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the figures as JSON")
    output.add_argument(
        "--markdown", action="store_true", help="print the walk-through as Markdown"
    )
    return parser


def _check(args) -> None:
    if not 0 <= args.decimals <= 12:
        raise BackpropLabError(f"--decimals {args.decimals} must be between 0 and 12")
    if args.learning_rate is not None and not args.learning_rate > 0:
        raise BackpropLabError(f"--learning-rate {args.learning_rate} must be a positive number")
    if args.run is None:
        if args.epoch is not None:
            raise BackpropLabError("--epoch needs --run RUN_ID: an epoch belongs to a recorded run")
        if args.tracking_uri is not None:
            raise BackpropLabError("--tracking-uri needs --run RUN_ID")
        return
    if args.overrides:
        raise BackpropLabError(
            f"{args.overrides[0]}: a recorded run keeps its own config; leave out the overrides "
            "with --run"
        )
    if args.learning_rate is not None:
        raise BackpropLabError("--learning-rate: a recorded run keeps its own learning rate")


def explained(args):
    """The step the arguments ask for (see :mod:`backprop_lab.explain.sources`)."""
    from backprop_lab.explain import sources as explain_sources

    if args.run is not None:
        from backprop_lab.explain.run import explain_run

        return explain_run(
            args.run,
            tracking_uri=args.tracking_uri,
            epoch=args.epoch,
            cell=args.cell,
            sample=args.sample,
        )
    if args.overrides:
        return explain_sources.from_config(
            args.overrides, sample=args.sample, learning_rate=args.learning_rate, cell=args.cell
        )
    if args.cell is not None:
        raise BackpropLabError("--cell needs a grid: a config with sweep.* or --run RUN_ID")
    return explain_sources.article(args.sample, args.learning_rate)


# --- the terminal ----------------------------------------------------------------------------


def render(
    explanation: StepExplanation,
    context: Context | None = None,
    *,
    decimals: int = 4,
    console=None,
) -> None:
    """Print the walk-through as rich tables with short sentences a student can follow."""
    from rich.console import Console
    from rich.text import Text

    from backprop_lab.explain.view import explanation_blocks
    from backprop_lab.report.blocks import Bullets, Heading, Table

    console = console or Console(highlight=False)
    previous = None
    for block in explanation_blocks(explanation, context, decimals=decimals):
        if isinstance(block, Table | Heading) and not isinstance(previous, Table | None):
            console.print()
        if isinstance(block, Table):
            console.print(_rich_table(block))
            console.print()
        elif isinstance(block, Heading):
            console.print(Text(block.text, style="bold"))
        elif isinstance(block, Bullets):
            for item in block.items:
                console.print(Text("  " + item))
        else:
            # Text, not markup: the formulas contain square brackets.
            console.print(Text(block.content))
        previous = block


def _rich_table(block):
    """A compact table: numbers are never cut short, so columns get their full width."""
    from rich import box
    from rich.table import Table as RichTable

    table = RichTable(
        title=block.caption,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for index, header in enumerate(block.headers):
        numeric = index in block.numeric
        widest = max((len(str(row[index])) for row in block.rows), default=0)
        table.add_column(
            header,
            justify="right" if numeric else "left",
            no_wrap=numeric or index == 0,
            min_width=widest if numeric or index == 0 else None,
        )
    for row in block.rows:
        table.add_row(*(_styled(cell) for cell in row))
    return table


def _styled(cell: str):
    from rich.text import Text

    style = {"✓": "green", "✗": "red"}.get(cell, "")
    return Text(cell, style=style)


# --- the command ------------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> int:
    """Run ``bplab-explain``; return the exit code (2 for bad input, 1 for a disagreement)."""
    from backprop_lab.explain import view as explain_view

    quiet_libraries()
    try:
        args = build_parser().parse_intermixed_args(argv)
        _check(args)
        if args.run is not None:
            from backprop_lab.tracking import start_importing_mlflow

            start_importing_mlflow()
        explanation, context = explained(args)
    except BackpropLabError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as exit_request:  # --help
        return int(exit_request.code or 0)

    if args.json:
        print(json.dumps(explain_view.json_payload(explanation, context), indent=2))
    elif args.markdown:
        print(explain_view.markdown(explanation, context, decimals=args.decimals), end="")
    else:
        render(explanation, context, decimals=args.decimals)
    if not explanation.agrees:
        wrong = ", ".join(step.name for step in explanation.backward if not step.agrees)
        print(f"{PROG}: error: chain rule and autodiff disagree for {wrong}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    exit_now(run())
