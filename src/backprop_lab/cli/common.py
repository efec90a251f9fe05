"""What every command shares: one-line errors, quiet library logs, a fast exit."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from backprop_lab.errors import BackpropLabError

# Libraries whose start-up chatter (INFO lines) would bury a command's own output.
_NOISY_LOGGERS = (
    "jax",
    "jax._src.xla_bridge",
    "mlflow",
    "alembic",
    "matplotlib",
    "absl",
    "urllib3",
)


def enable_compilation_cache() -> None:
    """Keep compiled programs on disk, so a repeated command does not compile again.

    The cache is JAX's own (``$XDG_CACHE_HOME/backprop-lab/jax``, or ``BPLAB_JAX_CACHE``;
    ``BPLAB_JAX_CACHE=off`` turns it off). A program loaded from it is the same program, so
    runs stay bitwise reproducible.
    """
    from pathlib import Path

    where = os.environ.get("BPLAB_JAX_CACHE")
    if where == "off":
        return
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        where = str(Path(base) / "backprop-lab" / "jax")
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    # Every program, however quick to compile: a grid's compile is about a second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def fail(command: str, message: str, status: int = 2):
    """Print ``<command>: error: <message>`` on stderr and exit with ``status``."""
    print(f"{command}: error: {message}", file=sys.stderr)
    sys.exit(status)


def quiet_libraries() -> None:
    """Hydra sets the root logger to INFO; keep the libraries' start-up chatter out of it."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def unknown_key_message(text: str) -> str | None:
    """``unknown config key 'model.foo'; model accepts: ...`` for Hydra's override errors."""
    import dataclasses
    import re

    from backprop_lab.config import Config

    match = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Key '([^']+)' not in '", text
    )
    if not match:
        return None
    key = match.group(1)
    node, parts = Config, key.split(".")
    for part in parts[:-1]:
        fields = {item.name: item for item in dataclasses.fields(node)}
        if part not in fields or not dataclasses.is_dataclass(fields[part].default_factory):
            return f"unknown config key {key!r}"
        node = fields[part].default_factory
    where = ".".join(parts[:-1]) or "the config"
    allowed = ", ".join(item.name for item in dataclasses.fields(node))
    return f"unknown config key {key!r}; {where} accepts: {allowed}"


def one_line(error: BaseException) -> str:
    """Hydra's and OmegaConf's messages span lines; keep what a person needs, on one line."""
    unknown = unknown_key_message(str(error))
    if unknown:
        return unknown
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        for line in str(error).splitlines():
            line = line.strip()
            if line.startswith(
                (
                    "Config search path",
                    "Set the environment variable",
                    "object_type=",
                    "reference_type=",
                    "Value '$VALUE",
                )
            ):
                break
            if line and line not in parts:
                parts.append(line)
        error = error.__cause__ or error.__context__
    text = " ".join(parts).replace("Available options in", "; available options in")
    return text.replace(":; ", ": ").replace("; ;", ";")


STORE_HELP = (
    "the MLflow store (default: $MLFLOW_TRACKING_URI or sqlite:///<project root>/mlflow.db)"
)


def add_store_option(parser: argparse.ArgumentParser, help: str = STORE_HELP) -> None:
    """``--tracking-uri URI``, as every command that reads or writes a store takes it."""
    parser.add_argument("--tracking-uri", default=None, metavar="URI", help=help)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line instead of usage plus error."""

    def error(self, message: str):
        raise BackpropLabError(f"{message} (see {self.prog} --help)")


def exit_now(status: int) -> None:
    """Exit without tearing down every module: that alone takes about a second after JAX and
    MLflow are loaded. Worker pools are stopped, exit handlers run and every stream is flushed
    first."""
    import atexit

    stop_worker_pools()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def stop_worker_pools() -> None:
    """Shut down joblib's reusable loky executor, if a launcher started one.

    Loky stops its workers from a ``threading`` exit hook, which runs before ``atexit`` at a
    normal interpreter exit. :func:`exit_now` skips that phase, and multiprocessing's own
    ``atexit`` handler would then wait for the idle workers forever.
    """
    loky = sys.modules.get("joblib.externals.loky.reusable_executor")
    executor = getattr(loky, "_executor", None)
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)
