"""Every CPU core for a grid: the host's cores shown to XLA as separate devices.

XLA runs one program on one CPU core, whatever the machine has: a grid's ``vmap`` over cells
is vectorised, not threaded. Shown ``N`` CPU devices (XLA's
``--xla_force_host_platform_device_count``), ``core.sweep.train_grid`` splits the cells into
``N`` shards that train side by side, one per core. This has to be set before JAX is imported,
so the commands call :func:`use_cpu_cores` first thing. It changes nothing for a single run, nor
on a GPU or TPU, whose devices JAX uses instead.

A grid's bits depend on how its cells were split (XLA compiles a program per shard shape), so a
run records its shard count and ``bplab-rerun`` splits the grid the same way.
"""

from __future__ import annotations

import os
import re
import sys

from backprop_lab.errors import BackpropLabError

# Cores are shown as devices up to this many: past it the gain is gone for the grids people run
# on one machine, and each device costs a thread.
MAX_CPU_DEVICES = 64
_FLAG = "--xla_force_host_platform_device_count"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity: a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_device_count() -> int:
    """How many CPU devices to show XLA: ``BPLAB_CPU_DEVICES`` when set, else one per core."""
    setting = os.environ.get("BPLAB_CPU_DEVICES", "").strip()
    if not setting:
        return max(1, min(available_cores(), MAX_CPU_DEVICES))
    if not setting.isdigit() or not 1 <= int(setting) <= MAX_CPU_DEVICES:
        raise BackpropLabError(
            f"BPLAB_CPU_DEVICES={setting!r} must be a whole number from 1 to {MAX_CPU_DEVICES}"
        )
    return int(setting)


def use_cpu_cores(at_least: int = 0) -> bool:
    """Show XLA ``max(cpu_device_count(), at_least)`` CPU devices; True when it took effect.

    A no-op once JAX is imported (its devices are fixed then), and when ``XLA_FLAGS`` already
    names a device count that the user chose. ``at_least`` raises a count this module set
    earlier: ``bplab-rerun`` needs as many devices as the run it reproduces had shards.
    """
    if "jax" in sys.modules:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    ours = os.environ.get("_BPLAB_SET_CPU_DEVICES") == "1"
    if _FLAG in flags and not ours:
        return False
    count = max(cpu_device_count(), at_least)
    flags = re.sub(rf"\s*{_FLAG}=\S*", "", flags).strip()
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={count}".strip()
    # Child processes (launcher workers, reruns) inherit the flag and may still raise it.
    os.environ["_BPLAB_SET_CPU_DEVICES"] = "1"
    return True
