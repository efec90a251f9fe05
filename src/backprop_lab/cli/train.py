"""``bplab-train``: a Hydra app; any override, and ``-m`` multiruns.

Every job of the command line is composed and validated before Hydra launches any, so a bad
input gives one line, exit 2 and no run.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from backprop_lab.cli.common import enable_compilation_cache, exit_now, fail, quiet_libraries
from backprop_lab.cli.common import one_line as _one_line
from backprop_lab.config.hydra_guard import check_hydra_config, check_override_keys
from backprop_lab.errors import BackpropLabError
from backprop_lab.interrupt import stop_sweep_on_signals, sweep_stop

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
    import contextlib

    from backprop_lab import cluster
    from backprop_lab.interrupt import hold_stop_signals

    # SLURM can signal a job while it still starts up: the signal is kept for its run.
    with hold_stop_signals() if cluster.in_slurm_job() else contextlib.nullcontext():
        return _train_job(cfg)


def _train_job(cfg) -> float | None:
    from hydra.core.hydra_config import HydraConfig
    from rich.console import Console

    from backprop_lab import cluster
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.pipeline import execute, format_summary
    from backprop_lab.tracking import find_experiment_id, ui_command
    from backprop_lab.tracking.records import read_parent_run

    global _exit_status
    quiet_libraries()
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    parent_run_id = tracking_uri = None
    multirun = str(hydra_config.mode) == "RunMode.MULTIRUN"
    if sweep_stop():
        console.print(f"[{hydra_config.job.num}] not started: {sweep_stop.reason}")
        return None
    if multirun:
        parent = read_parent_run(hydra_config.sweep.dir)
        if parent:
            parent_run_id, tracking_uri = parent["run_id"], parent["tracking_uri"]
    try:
        summary = execute(
            cfg,
            output_dir=cluster.attempt_dir(hydra_config.runtime.output_dir),
            overrides=overrides,
            parent_run_id=parent_run_id,
            tracking_uri=tracking_uri,
        )
    except BackpropLabError as error:
        if not multirun:
            _remove_unused_output_dir(Path(hydra_config.runtime.output_dir))
        fail(PROG, str(error))
    slurm_job = cluster.in_slurm_job()
    prefix = f"[{hydra_config.job.num}] " if multirun else ""
    suffix = f" | slurm job {cluster.slurm_job_id()}" if slurm_job else ""
    console.print(prefix + format_summary(summary) + suffix)
    if not multirun:
        # A store that could not be reached (PENDING) is not asked again.
        experiment_id = summary.status != "PENDING" and find_experiment_id(
            summary.tracking_uri, summary.experiment_name
        )
        console.print(f"MLflow UI: {ui_command(summary.tracking_uri, experiment_id or None)}")
    _exit_status = max(_exit_status, summary.exit_status)
    # A single run stopped by a signal ends the command. In a multirun the job returns, so the
    # launcher collects and reports it with the rest, and later jobs of this process see
    # sweep_stop and do not start; but a SLURM job that will be requeued leaves no result, so
    # submitit waits for its next attempt.
    if summary.status == "KILLED" and (not multirun or (slurm_job and cluster.will_run_again())):
        exit_now(summary.exit_status)
    return summary.final_loss


def _remove_unused_output_dir(folder: Path) -> None:
    """A run refused before it started leaves no folder behind: Hydra made this one with only
    its own files (``.hydra/``, the log), and this process's name in it is unique."""
    import shutil

    if not folder.is_dir() or not all(
        entry.name == ".hydra" or (entry.is_file() and entry.suffix == ".log")
        for entry in folder.iterdir()
    ):
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (folder.parent, folder.parent.parent):  # outputs/<name>/, outputs/
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


_MAX_JOBS_CHECKED = 256


def check_before_launch(argv: list[str]) -> None:
    """Compose and validate every job of the command line before Hydra launches any.

    Hydra would report a bad override on many lines, a bad value only inside the job, and an
    unreachable tracking server only as a warning; here each becomes one line and nothing
    runs. Sweeps on the command line and in a preset's ``hydra.sweeper.params`` are expanded
    as Hydra's basic sweeper does.
    """
    from hydra import initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from omegaconf import OmegaConf

    from backprop_lab.paths import conf_dir

    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return
    overrides = list(args.overrides or [])
    if args.config_dir:
        # Compose exactly what Hydra will: the user's config folder comes first.
        search = Path(args.config_dir).resolve().as_uri()
        overrides = [f"hydra.searchpath=[{search}]", *overrides]
    try:
        with initialize_config_dir(
            version_base="1.3", config_dir=str(conf_dir()), job_name="bplab-train"
        ):
            jobs, base = _jobs_of(overrides, args.multirun)
            check_hydra_config(OmegaConf.to_container(base.hydra, resolve=False))
            # A single job is the composed base: not composed a second time.
            _check_jobs(jobs, None if args.multirun else _without_hydra(base))
        # Checked as Hydra will run them only with the project's own primary config: another
        # one (--config-name, --config-path) is Hydra's to compose and check.
        ours = args.config_name is None and args.config_path is None
        if args.multirun and ours and len(jobs) <= _MAX_JOBS_CHECKED:
            _skip_sweepers_second_check(base.hydra.sweeper.get("_target_"))
    except BackpropLabError as error:
        fail(PROG, str(error))
    except Exception as error:  # Hydra's and OmegaConf's composition errors
        fail(PROG, _one_line(error))


_BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _skip_sweepers_second_check(sweeper: str | None) -> None:
    """Every job of the multirun has been composed and validated above, as the basic sweeper
    expands them; it would compose each once more before launching it (about a tenth of a
    second a job, a tenth of a small job's time). Its launcher still composes each job it
    runs. Hydra has scanned its plugins by now (a scan loads their modules again)."""
    if sweeper != _BASIC_SWEEPER:
        return
    module = sys.modules.get(_BASIC_SWEEPER.rsplit(".", 1)[0])
    if module is not None:
        module.BasicSweeper.validate_batch_is_legal = _already_checked


def _already_checked(sweeper, batch) -> None:
    """The jobs of ``batch`` were checked by :func:`check_before_launch`."""


def _jobs_of(overrides: list[str], multirun: bool):
    """Every job's overrides, expanded as Hydra's basic sweeper does, and the composed config
    of the first job with its ``hydra`` node."""
    from hydra import compose
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    check_override_keys(item.get_key_element() for item in parsed)
    fixed = [item.input_line for item in parsed if not item.is_sweep_override()]
    base = compose("train", overrides=fixed, return_hydra_config=True)
    if not multirun:
        if any(item.is_sweep_override() for item in parsed):
            raise BackpropLabError(
                "a sweep (a,b,c or range(...)) needs -m: bplab-train -m " + " ".join(overrides)
            )
        return [overrides], base
    preset_sweeps = [
        f"{key}={value}" for key, value in (base.hydra.sweeper.get("params") or {}).items()
    ]
    given = {item.get_key_element() for item in parsed}
    preset = [
        item
        for item in parser.parse_overrides(preset_sweeps)
        if item.get_key_element() not in given
    ]
    batches = BasicSweeper.split_arguments(preset + parsed, None)
    return [job for batch in batches for job in batch], base


def _without_hydra(config):
    """A copy of a config composed with ``return_hydra_config=True``, without its ``hydra``
    node: what ``compose`` gives without it."""
    import copy

    from omegaconf import open_dict

    config = copy.deepcopy(config)
    with open_dict(config):
        del config["hydra"]
    return config


def _check_jobs(jobs: list[list[str]], first=None) -> None:
    """Validate each job's config and check its store (once per store); ``first`` is the
    first job's config when it is already composed."""
    from hydra import compose

    from backprop_lab import tracking
    from backprop_lab.config import validate
    from backprop_lab.config.validate import check_explicit_overrides

    checked_uris = set()
    # Composing takes ~20 ms a job: a huge sweep has its first jobs checked here and the rest
    # checked by their own jobs, which fail the same way.
    for index, job in enumerate(jobs[:_MAX_JOBS_CHECKED]):
        cfg = first if index == 0 and first is not None else compose("train", overrides=job)
        validate(cfg)
        explicit = {item.split("=", 1)[0].lstrip("+~") for item in job if "=" in item}
        check_explicit_overrides(cfg, explicit)
        uri = tracking.resolve_tracking_uri(cfg.tracking.uri)
        if uri not in checked_uris:
            tracking.check_store(uri)
            checked_uris.add(uri)


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

    from backprop_lab import cluster
    from backprop_lab.config import register_configs
    from backprop_lab.errors import BackpropLabError
    from backprop_lab.paths import conf_dir

    _start_importing_plots()
    try:
        config_path = str(conf_dir())
    except BackpropLabError as error:
        fail(PROG, str(error))
    register_configs()
    quiet_libraries()
    check_before_launch(sys.argv[1:])
    enable_compilation_cache()
    app = hydra.main(version_base="1.3", config_path=config_path, config_name="train")(_train_task)
    if "-m" in sys.argv[1:] or "--multirun" in sys.argv[1:]:
        stop_sweep_on_signals(lambda message: print(f"{PROG}: {message}", file=sys.stderr))
    else:
        # Outside training, SIGTERM ends the command like Ctrl-C, so exit handlers still run;
        # during training the pipeline handles it.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        app()
    except BackpropLabError as error:  # raised by the multirun callback before jobs start
        fail(PROG, str(error))
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        exit_now(130)
    stopped = sweep_stop.exit_status if sweep_stop() else 0
    exit_now(max(_exit_status, cluster.multirun_exit_status, stopped))
