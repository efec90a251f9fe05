"""``make install`` on a fresh copy of the repository: the locked versions, installed quietly.

The copy holds what a clone of this work tree would (git's tracked and not-ignored files), and
no ``.venv``. uv's download cache is shared with the machine, as it is on a user's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# What setuptools printed through pip before: a screen per conf/ group folder, and the
# deprecated license table.
NOISE = re.compile(
    r"BuildBackendWarning|SetuptoolsDeprecationWarning|SetuptoolsWarning|warning", re.I
)


def fresh_copy(destination: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in files)):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def user_environment() -> dict[str, str]:
    """The caller's environment without this test run's virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


@pytest.mark.skipif(
    shutil.which("git") is None or shutil.which("make") is None, reason="no git/make"
)
def test_make_install_on_a_fresh_copy_installs_the_lock_quietly(tmp_path):
    clone = fresh_copy(tmp_path / "clone")
    env = user_environment()
    installed = subprocess.run(
        ["make", "install"], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    log = installed.stdout + installed.stderr
    assert installed.returncode == 0, log[-3000:]
    assert not NOISE.search(log), log
    assert "uv sync --locked" in log

    # The new environment is the lock, checked by the lock test run in it.
    checked = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_lock.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "4 passed" in checked.stdout

    # A second `make install` has nothing to do.
    again = subprocess.run(["make", "install"], cwd=clone, env=env, capture_output=True, text=True)
    assert "Nothing to be done" in again.stdout
