"""The environment is the lock: every package ``make install`` put in ``.venv`` is the version
``uv.lock`` pins, and nothing else is there.

The expected set is computed here from ``uv.lock`` alone (a walk from the project through the
extras the Makefile installs, with each dependency's environment marker evaluated on this
machine), not asked of uv, so the test is independent of the tool that installed it.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = "backprop-lab"


def makefile_extras() -> list[str]:
    """The extras ``make install`` syncs (``EXTRAS := --extra dev ...``)."""
    line = re.search(r"^EXTRAS\s*:=(.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    return re.findall(r"--extra\s+(\S+)", line.group(1))


def _applies(dependency: dict) -> bool:
    marker = dependency.get("marker")
    return marker is None or Marker(marker).evaluate()


def locked_environment(lock: dict, extras: list[str]) -> dict[str, str]:
    """``{name: version}`` of every package the lock installs here for the project + extras."""
    packages: dict[str, list[dict]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)

    def pick(dependency: dict) -> dict:
        candidates = packages[dependency["name"]]
        if "version" in dependency:  # a package locked at several versions (by marker)
            candidates = [c for c in candidates if c["version"] == dependency["version"]]
        (package,) = candidates
        return package

    wanted: dict[str, str] = {}
    pending = [({"name": PROJECT}, tuple(extras))]
    seen: set[tuple[str, tuple[str, ...]]] = set()
    while pending:
        dependency, chosen = pending.pop()
        package = pick(dependency)
        key = (package["name"], chosen)
        if key in seen:
            continue
        seen.add(key)
        wanted[package["name"]] = package["version"]
        edges = list(package.get("dependencies", []))
        for extra in chosen:
            edges += package.get("optional-dependencies", {}).get(extra, [])
        pending += [(edge, tuple(edge.get("extra", ()))) for edge in edges if _applies(edge)]
    return wanted


def installed_environment() -> dict[str, str]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
    }


def test_the_makefile_installs_the_extras_the_project_needs():
    assert {"dev", "launchers", "server"} <= set(makefile_extras())


def test_the_lock_walk_finds_the_pins_of_the_main_dependencies():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    wanted = locked_environment(lock, makefile_extras())
    # jax 0.11+ needs Python 3.12; MLflow 3.18's skinny package is not served (PITFALLS).
    assert wanted["jax"].startswith("0.10.") and wanted["jaxlib"] == wanted["jax"]
    assert wanted["mlflow"].startswith("3.") and int(wanted["mlflow"].split(".")[1]) < 18
    assert {"playwright", "hypothesis", "pytest", "uv", "psycopg2-binary"} <= set(wanted)
    assert "torch" not in wanted and not any(name.startswith("nvidia-") for name in wanted)


def test_installed_versions_equal_the_lock():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    wanted = locked_environment(lock, makefile_extras())
    installed = installed_environment()
    wrong = {
        name: f"{installed.get(name, 'missing')} instead of {version}"
        for name, version in wanted.items()
        if installed.get(name) != version
    }
    extra = sorted(set(installed) - set(wanted))
    assert not wrong and not extra, (
        f"the environment differs from uv.lock: {wrong or ''} {extra or ''}; run `make install` "
        "(or `rm -rf .venv && make install`)"
    )


@pytest.mark.skipif(
    shutil.which("uv", path=str(Path(sys.executable).parent)) is None, reason="no uv"
)
def test_the_lock_is_up_to_date_with_pyproject():
    """``uv sync --locked`` refuses a stale lock; this says so before any install does."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    checked = subprocess.run(
        [uv, "lock", "--check", "--offline"], cwd=REPO, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
