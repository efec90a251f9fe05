"""Console entry points. Each is a few lines: the logic lives in importable modules.

Bad input prints one line, ``<command>: error: <what was wrong>``, with no traceback, and exits
with status 2.
"""

from __future__ import annotations

import os
import sys

# Quieter start-up: no C++ logs. MLflow's usage telemetry is off unless the user turns it on:
# it cannot reach its server from closed lab networks and costs about a second at exit.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _fail(command: str, message: str, status: int = 2):
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(status)


def _quiet_libraries() -> None:
    """Hydra sets the root logger to INFO; keep the libraries' start-up chatter out of it."""
    import logging

    for name in ("jax", "jax._src.xla_bridge", "mlflow", "alembic", "matplotlib", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _train_task(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    from backprop_lab import tracking
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.pipeline import execute, format_summary, ui_command

    _quiet_libraries()
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    parent_run_id = tracking_uri = None
    multirun = str(hydra_config.mode) == "RunMode.MULTIRUN"
    if multirun:
        parent = tracking.read_parent_run(hydra_config.sweep.dir)
        if parent:
            parent_run_id, tracking_uri = parent["run_id"], parent["tracking_uri"]
    try:
        summary = execute(
            cfg, output_dir=hydra_config.runtime.output_dir, overrides=overrides,
            parent_run_id=parent_run_id, tracking_uri=tracking_uri, console=console,
        )
    except BackpropLabError as error:
        _fail("bplab-train", str(error))
    prefix = f"[{hydra_config.job.num}] " if multirun else ""
    console.print(prefix + format_summary(summary))
    if not multirun:
        console.print(f"MLflow UI: {ui_command(summary.tracking_uri)}")
    return summary.final_loss


def train_main() -> None:
    """``bplab-train``: a Hydra app; any override, and ``-m`` multiruns."""
    import hydra

    from backprop_lab.config import conf_dir, register_configs
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.tracking import start_importing_mlflow

    start_importing_mlflow()
    try:
        config_path = str(conf_dir())
    except BackpropLabError as error:
        _fail("bplab-train", str(error))
    register_configs()
    _quiet_libraries()
    app = hydra.main(version_base="1.3", config_path=config_path, config_name="train")(_train_task)
    try:
        app()
    except BackpropLabError as error:  # raised by the multirun callback before jobs start
        _fail("bplab-train", str(error))
    _exit_now(0)


def _exit_now(status: int) -> None:
    """Exit without tearing down every module: that alone takes about a second after JAX and
    MLflow are loaded. Exit handlers still run and every stream is flushed first."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def explain_main() -> None:
    """``bplab-explain``: one sample, one step of backprop, as tables."""
    from backprop_lab import explain

    sys.exit(explain.main())


def rerun_main() -> None:
    """``bplab-rerun RUN_ID``: train a logged run again and compare the weights bit for bit."""
    from backprop_lab import rerun

    sys.exit(rerun.main())


def report_main() -> None:
    """``bplab-report``: figures and tables regenerated from the MLflow store."""
    from backprop_lab import report

    sys.exit(report.main())


def sync_main() -> None:
    """``bplab-sync FOLDER...``: upload runs that were kept on disk while the server was away."""
    from backprop_lab import sync

    sys.exit(sync.main())
