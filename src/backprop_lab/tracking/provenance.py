"""What a run needs to be reproduced: commit, library versions, device, and a config hash."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping
from typing import Any

from backprop_lab.paths import project_root

TAG_PREFIX = "backprop_lab."

# Config keys that do not change a run's results, so they stay out of its hash.
_NOT_HASHED = ("tracking", "resume", "description", "report")
_VERSIONED = ("jax", "jaxlib", "optax", "mlflow", "hydra-core", "numpy", "backprop-lab")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance_tags(precision: str, seed: int) -> dict[str, str]:
    """Git commit and dirtiness, library versions, JAX backend and device, precision, seed."""
    from importlib.metadata import PackageNotFoundError, version

    import jax

    tags: dict[str, str] = {}
    commit = _git("rev-parse", "HEAD")
    tags["mlflow.source.git.commit"] = commit or "unknown"
    tags[TAG_PREFIX + "git_commit"] = commit or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no")
    tags[TAG_PREFIX + "git_dirty"] = "unknown" if status is None else str(bool(status)).lower()
    for package in _VERSIONED:
        try:
            tags[f"{TAG_PREFIX}version.{package}"] = version(package)
        except PackageNotFoundError:
            tags[f"{TAG_PREFIX}version.{package}"] = "not installed"
    device = jax.devices()[0]
    tags[TAG_PREFIX + "jax_backend"] = jax.default_backend()
    tags[TAG_PREFIX + "jax_device"] = f"{device.platform}:{getattr(device, 'device_kind', device)}"
    tags[TAG_PREFIX + "jax_device_count"] = str(jax.device_count())
    tags[TAG_PREFIX + "python"] = platform.python_version()
    tags[TAG_PREFIX + "precision"] = precision
    tags[TAG_PREFIX + "seed"] = str(seed)
    return tags


def config_hash(container: Mapping[str, Any]) -> str:
    """A stable hash of the parts of a config that change results (not tracking settings)."""
    relevant = {key: value for key, value in container.items() if key not in _NOT_HASHED}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
