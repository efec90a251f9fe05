"""``bplab-train``: a Hydra app; any override, and ``-m`` multiruns.

Every job of the command line is composed and validated before Hydra launches any, so a bad
input gives one line, exit 2 and no run.
"""

from __future__ import annotations

import signal
import sys

from backprop_lab.cli.common import exit_now, fail, quiet_libraries
from backprop_lab.cli.common import one_line as _one_line

PROG = "bplab-train"


def _register_resolvers() -> None:
    """``${bplab_unique:}``: a token unique to this process, cached like Hydra's ``${now:}``.

    Output folders are named ``<time>-<token>``, so processes started in the same second
    never share (and overwrite) a folder.
    """
    import os
    import secrets

    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver(
        "bplab_unique",
        lambda: f"{os.getpid()}-{secrets.token_hex(2)}",
        use_cache=True,
        replace=True,
    )


_register_resolvers()

# The worst outcome of the jobs this process ran: the command's exit status.
_exit_status = 0


def _train_task(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    from backprop_lab.errors import BackpropLabError
    from backprop_lab.pipeline import execute, format_summary
    from backprop_lab.tracking import ui_command
    from backprop_lab.tracking.multirun import read_parent_run

    global _exit_status
    quiet_libraries()
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    parent_run_id = tracking_uri = None
    multirun = str(hydra_config.mode) == "RunMode.MULTIRUN"
    if multirun:
        parent = read_parent_run(hydra_config.sweep.dir)
        if parent:
            parent_run_id, tracking_uri = parent["run_id"], parent["tracking_uri"]
    try:
        summary = execute(
            cfg,
            output_dir=hydra_config.runtime.output_dir,
            overrides=overrides,
            parent_run_id=parent_run_id,
            tracking_uri=tracking_uri,
            console=console,
        )
    except BackpropLabError as error:
        fail(PROG, str(error))
    prefix = f"[{hydra_config.job.num}] " if multirun else ""
    console.print(prefix + format_summary(summary))
    if not multirun:
        console.print(f"MLflow UI: {ui_command(summary.tracking_uri)}")
    _exit_status = max(_exit_status, summary.exit_status)
    if summary.status == "KILLED":
        # Ctrl-C or SIGTERM: the user (or the cluster) wants the whole command to stop.
        exit_now(summary.exit_status)
    return summary.final_loss


_MAX_JOBS_CHECKED = 256


def check_before_launch(argv: list[str]) -> None:
    """Compose and validate every job of the command line before Hydra launches any.

    Hydra would report a bad override on many lines, a bad value only inside the job, and an
    unreachable tracking server only as a warning; here each becomes one line and nothing
    runs. Sweeps on the command line and in a preset's ``hydra.sweeper.params`` are expanded
    as Hydra's basic sweeper does.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from backprop_lab import tracking
    from backprop_lab.config import validate
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.paths import conf_dir

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return
    overrides = list(args.overrides or [])
    parser = OverridesParser.create()
    try:
        with initialize_config_dir(
            version_base="1.3", config_dir=str(conf_dir()), job_name="bplab-train"
        ):
            parsed = parser.parse_overrides(overrides)
            if args.multirun:
                first = [item.input_line for item in parsed if not item.is_sweep_override()]
                base = compose("train", overrides=first, return_hydra_config=True)
                preset_sweeps = [
                    f"{key}={value}"
                    for key, value in (base.hydra.sweeper.get("params") or {}).items()
                ]
                given = {item.get_key_element() for item in parsed}
                preset = [
                    item
                    for item in parser.parse_overrides(preset_sweeps)
                    if item.get_key_element() not in given
                ]
                jobs = [
                    job
                    for batch in BasicSweeper.split_arguments(preset + parsed, None)
                    for job in batch
                ]
            else:
                if any(item.is_sweep_override() for item in parsed):
                    raise BackpropLabError(
                        "a sweep (a,b,c or range(...)) needs -m: bplab-train -m "
                        + " ".join(overrides)
                    )
                jobs = [overrides]
            checked_uris = set()
            # Composing takes ~20 ms a job: a huge sweep has its first jobs checked here and
            # the rest checked by their own jobs, which fail the same way.
            for job in jobs[:_MAX_JOBS_CHECKED]:
                cfg = compose("train", overrides=job)
                validate(cfg)
                uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
                if uri not in checked_uris:
                    tracking.check_store(uri)
                    checked_uris.add(uri)
    except BackpropLabError as error:
        fail(PROG, str(error))
    except Exception as error:  # Hydra's and OmegaConf's composition errors
        fail(PROG, _one_line(error))


def _start_importing_plots() -> None:
    """matplotlib takes most of a second to import: do it while Hydra and JAX start."""
    import threading

    def load() -> None:
        import contextlib

        with contextlib.suppress(Exception):
            import backprop_lab.plots  # noqa: F401

    threading.Thread(target=load, name="bplab-plots-import", daemon=True).start()


def main() -> None:
    """``bplab-train``: a Hydra app; any override, and ``-m`` multiruns."""
    import hydra

    from backprop_lab.config import register_configs
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.paths import conf_dir
    from backprop_lab.tracking import start_importing_mlflow

    start_importing_mlflow()
    _start_importing_plots()
    try:
        config_path = str(conf_dir())
    except BackpropLabError as error:
        fail(PROG, str(error))
    register_configs()
    quiet_libraries()
    check_before_launch(sys.argv[1:])
    app = hydra.main(version_base="1.3", config_path=config_path, config_name="train")(_train_task)
    # Outside training, SIGTERM ends the command like Ctrl-C, so exit handlers still close
    # what is open (a multirun's parent run); during training the pipeline handles it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app()
    except BackpropLabError as error:  # raised by the multirun callback before jobs start
        fail(PROG, str(error))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        exit_now(130)
    exit_now(_exit_status)
