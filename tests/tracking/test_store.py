"""The store checks: fail fast, in one line, before any training; create a fresh store once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from backprop_lab.errors import BackpropLabError
from backprop_lab.paths import safe_name
from backprop_lab.tracking.store import artifact_location, check_store


def test_only_usable_tracking_stores_are_accepted(tmp_path):
    with pytest.raises(BackpropLabError, match="not a store backprop-lab can use"):
        check_store("file:///tmp/mlruns")
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(BackpropLabError, match="cannot create folder"):
        check_store(f"sqlite:///{missing / 'mlflow.db'}")
    assert not (tmp_path / "no").exists()
    check_store(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")  # one new folder is fine
    assert (tmp_path / "store").is_dir()


def test_a_file_that_is_not_sqlite_is_refused_at_once(tmp_path):
    fake = tmp_path / "mlflow.db"
    fake.write_text("name,value\nnot,a database\n")
    with pytest.raises(BackpropLabError, match="is not an SQLite database"):
        check_store(f"sqlite:///{fake}")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    with pytest.raises(BackpropLabError, match="is a folder"):
        check_store(f"sqlite:///{folder}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a read-only file")
def test_a_read_only_store_is_refused_within_two_seconds(tmp_path):  # pragma: no cover
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("create table t (x)").connection.close()
    database.chmod(0o444)
    started = time.perf_counter()
    with pytest.raises(BackpropLabError, match="cannot be written"):
        check_store(f"sqlite:///{database}")
    assert time.perf_counter() - started < 2


def test_a_locked_store_is_refused_within_two_seconds(tmp_path):
    """Another process holds a write lock for good: the check gives up in under 2 s."""
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).execute("create table t (x)").connection.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sqlite3, time
                connection = sqlite3.connect({str(database)!r}, isolation_level=None)
                connection.execute("BEGIN EXCLUSIVE")
                print("locked", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        with pytest.raises(BackpropLabError, match="cannot be written"):
            check_store(f"sqlite:///{database}")
        assert time.perf_counter() - started < 2
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("name", ["..", ".", "../../escape", "a/b", "x" * 300, "", "ünï cødé"])
def test_artifact_folders_stay_inside_mlartifacts(tmp_path, name):
    location = artifact_location(f"sqlite:///{tmp_path / 'mlflow.db'}", name)
    folder = location[len("file://") :]
    root = tmp_path / "mlartifacts"
    assert os.path.dirname(folder) == str(root)
    assert os.path.basename(folder) == safe_name(name)
    assert len(safe_name(name)) <= 100 and not safe_name(name).startswith(".")
