"""What the command line may ask Hydra to instantiate: the launchers and sweepers that
backprop-lab ships, and its own callback. Nothing else.

Hydra instantiates ``hydra.callbacks``, the launcher and the sweeper from their ``_target_``,
and Python's logging config instantiates any ``()`` factory, before a job starts. An override
such as ``+hydra.callbacks.x._target_=builtins.open`` would therefore run an arbitrary
callable with arguments from the command line. :func:`check_override_keys` refuses such keys
as they are typed, and :func:`check_hydra_config` checks the composed ``hydra`` node (which a
preset or a ``--config-dir`` could also set) against the allow-lists below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backprop_lab.errors import BackpropLabError

LAUNCHERS = {
    "basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
}
SWEEPERS = {"basic": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}
CALLBACKS = {
    "tracking": "backprop_lab.tracking.multirun.MultirunTrackingCallback",
    "slurm_jobs": "backprop_lab.cluster.SlurmJobsCallback",
}


def _refuse(what: str) -> None:
    raise BackpropLabError(
        f"{what}: backprop-lab runs only its own launchers ({', '.join(LAUNCHERS)}), "
        f"sweepers ({', '.join(SWEEPERS)}) and callbacks"
    )


def check_override_keys(keys: Iterable[str]) -> None:
    """Refuse overrides that name a ``_target_``, a callback or a logging factory."""
    for key in keys:
        parts = key.lstrip("+~").replace("/", ".").split(".")
        parts += [""] * (2 - len(parts))
        if "_target_" in parts or any(
            part.startswith("_") and part.endswith("_") for part in parts
        ):
            _refuse(f"{key!r} would choose what Hydra instantiates")
        if parts[:2] == ["hydra", "callbacks"]:
            _refuse(f"{key!r} would add a Hydra callback")
        logging_key = parts[0] == "hydra" and parts[1] in ("job_logging", "hydra_logging")
        if "()" in key or (logging_key and len(parts) > 2 and "/" not in key):
            raise BackpropLabError(
                f"{key!r}: Hydra's logging is set by choosing a group "
                "(hydra/job_logging=disabled), not key by key"
            )


def _factories(node: Any, path: str) -> Iterable[str]:
    """Paths of every ``()`` or ``_target_`` key below ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key in ("()", "_target_"):
                yield here
            yield from _factories(value, here)
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _factories(value, f"{path}[{index}]")


def check_hydra_config(hydra: Mapping) -> None:
    """The composed ``hydra`` node instantiates only what backprop-lab ships."""
    launcher = (hydra.get("launcher") or {}).get("_target_")
    if launcher not in LAUNCHERS.values():
        _refuse(f"hydra.launcher._target_={launcher!r} is not allowed")
    sweeper = (hydra.get("sweeper") or {}).get("_target_")
    if sweeper not in SWEEPERS.values():
        _refuse(f"hydra.sweeper._target_={sweeper!r} is not allowed")
    callbacks = hydra.get("callbacks") or {}
    for name, callback in callbacks.items():
        if CALLBACKS.get(name) != (callback or {}).get("_target_"):
            _refuse(f"hydra.callbacks.{name} is not allowed")
    for section in ("job_logging", "hydra_logging"):
        for found in _factories(hydra.get(section) or {}, f"hydra.{section}"):
            _refuse(f"{found} is not allowed")
