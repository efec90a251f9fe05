"""The console scripts find conf/ from a built wheel, not only from the source checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_a_built_wheel_carries_conf_and_trains_from_it(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(wheels)],
        check=True,
        capture_output=True,
        text=True,
    )
    # pip shows what the build backend warns as BuildBackendWarning: setuptools must warn
    # nothing (conf/'s group folders are package data, the license an SPDX string).
    for warning in ("BuildBackendWarning", "SetuptoolsDeprecationWarning", "SetuptoolsWarning"):
        assert warning not in built.stderr, built.stderr
    (wheel,) = wheels.glob("backprop_lab-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "backprop_lab" / "conf" / "experiment" / "seed_example.yaml").is_file()

    # The wheel's package shadows the editable checkout, so it must find its own conf/.
    env = dict(os.environ, PYTHONPATH=str(target))
    probe = (
        "import json, backprop_lab.paths as c; print(json.dumps([c.__file__, str(c.conf_dir())]))"
    )
    module_file, conf = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert module_file.startswith(str(target)) and conf == str(target / "backprop_lab" / "conf")

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        [str(target / "bin" / "bplab-train"), "experiment=seed_example", f"tracking.uri={store}"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed_example" in done.stdout
