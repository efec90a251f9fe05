"""One XLA device per CPU core: grids split across them, and reruns split the same way.

Each case is a real process, because JAX fixes its devices when it is imported.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.faults import command, environment

# A grid whose bits depend on how it is split: Adam's normalised steps carry a last-bit
# difference between programs compiled for different numbers of cells into the weights.
GRID_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    from backprop_lab.devices import use_cpu_cores
    use_cpu_cores()
    import jax, numpy as np
    from backprop_lab.core.data import make_dataset
    from backprop_lab.core.model import Architecture, init_params
    from backprop_lab.core.sweep import train_grid
    from backprop_lab.core.train import TrainSpec, to_device_data
    arch = Architecture((2, 4, 1))
    spec = TrainSpec(arch, optimizer="adam", epochs=200, batching="shuffled", chunk_epochs=50)
    init = lambda key: init_params(key, arch)
    data = to_device_data(make_dataset("xor"))
    # "all": one shard per device (this grid is too small for bplab-train to split by itself).
    shards = jax.device_count() if sys.argv[1] == "all" else int(sys.argv[1])
    grid = train_grid(spec, init, [0.01, 0.1, 0.5, 1.0, 3.0], list(range(7)), data, shards=shards)
    weights = np.concatenate([np.ravel(leaf) for layer in grid.result.params for leaf in layer])
    print(json.dumps({
        "devices": jax.device_count(),
        "shards": grid.shards,
        "digest": hashlib.sha256(weights.tobytes()).hexdigest(),
        "loss": grid.result.history.loss[..., -1].tolist(),
    }))
    """
)


def _grid(shards: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", GRID_SCRIPT, shards],
        env=environment(JAX_PLATFORMS="cpu", **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_grid_uses_one_device_per_core_and_its_shard_count_fixes_its_bits():
    on_two = _grid("all", BPLAB_CPU_DEVICES="2")
    assert (on_two["devices"], on_two["shards"]) == (2, 2)
    # Two shards give the same bits whatever the number of devices the machine shows.
    on_four = _grid("2", BPLAB_CPU_DEVICES="4")
    assert (on_four["devices"], on_four["shards"]) == (4, 2)
    assert on_four["digest"] == on_two["digest"]
    # One shard is a different program: the same training, not the same last bits.
    single = _grid("1", BPLAB_CPU_DEVICES="4")
    assert single["shards"] == 1
    assert single["digest"] != on_two["digest"]
    import numpy as np

    np.testing.assert_allclose(single["loss"], on_two["loss"], rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_a_user_chosen_device_count_is_kept():
    result = _grid("all", XLA_FLAGS="--xla_force_host_platform_device_count=3")
    assert (result["devices"], result["shards"]) == (3, 3)


def test_more_shards_than_devices_is_a_one_line_error():
    done = subprocess.run(
        [sys.executable, "-c", GRID_SCRIPT, "3"],
        env=environment(JAX_PLATFORMS="cpu", BPLAB_CPU_DEVICES="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "split into 3 shards, but JAX sees 2 device(s)" in done.stderr


@pytest.mark.parametrize("value", ["0", "x", "65", "-1"])
def test_a_bad_device_count_setting_is_one_line(tmp_path, value):
    done = subprocess.run(
        [command("bplab-train"), "experiment=xor_mlp", f"tracking.uri=sqlite:///{tmp_path}/m.db"],
        cwd=tmp_path,
        env=environment(BPLAB_CPU_DEVICES=value),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"bplab: error: BPLAB_CPU_DEVICES={value!r} must be a whole number from 1 to 64"
    ]
    assert not (tmp_path / "m.db").exists()


@pytest.mark.slow
def test_rerun_splits_a_grid_as_it_was_recorded_whatever_the_cores(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train = subprocess.run(
        [
            command("bplab-train"),
            "experiment=xor_mlp",
            "data=moons",
            "model.hidden_sizes=[8]",
            "optimizer=adam",
            # About a second of training by the engine's estimate: enough to split the grid.
            "training.epochs=12000",
            "sweep.learning_rates=[0.05,0.5,2.0]",
            "sweep.seeds=3",
            f"tracking.uri={store}",
        ],
        cwd=tmp_path,
        env=environment(BPLAB_CPU_DEVICES="3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert train.returncode == 0, train.stderr
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        (run_id,) = db.execute(
            "SELECT s.run_uuid FROM tags s JOIN tags k ON s.run_uuid = k.run_uuid "
            "WHERE s.key='backprop_lab.grid_shards' AND s.value='3' "
            "AND k.key='backprop_lab.kind' AND k.value='grid'"
        ).fetchone()
    for cores in ("1", "2", "4"):
        rerun = subprocess.run(
            [command("bplab-rerun"), run_id, "--tracking-uri", store],
            env=environment(BPLAB_CPU_DEVICES=cores),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert rerun.returncode == 0, (cores, rerun.stdout, rerun.stderr)
        assert "bitwise identical" in rerun.stdout
    # Without the shard tag (a run recorded before it), the machine's device count stands in.
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute(
            "DELETE FROM tags WHERE key='backprop_lab.grid_shards' AND run_uuid=?", (run_id,)
        )
    rerun = subprocess.run(
        [command("bplab-rerun"), run_id, "--tracking-uri", store],
        env=environment(BPLAB_CPU_DEVICES="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "bitwise identical" in rerun.stdout, rerun.stderr
    # A wrong split is caught: the tag says 1 shard, but the grid was trained on 3.
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        db.execute(
            "INSERT INTO tags (key, value, run_uuid) VALUES ('backprop_lab.grid_shards', '1', ?)",
            (run_id,),
        )
    rerun = subprocess.run(
        [command("bplab-rerun"), run_id, "--tracking-uri", store],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 1 and "DIFFER" in rerun.stdout, rerun.stdout + rerun.stderr
