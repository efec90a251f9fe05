"""The store checks: fail fast, in one line, before any training; create a fresh store once."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from backprop_lab.errors import BackpropLabError
from backprop_lab.paths import safe_name
from backprop_lab.tracking.store import artifact_location, check_store, check_store_exists
from backprop_lab.tracking.store_schema import installed_revisions


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


def _sqlite_file(path, *tables, revision=None):
    connection = sqlite3.connect(path)
    for table in tables:
        connection.execute(f"CREATE TABLE {table} (x)")
    if revision is not None:
        connection.execute("CREATE TABLE alembic_version (version_num)")
        connection.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    connection.commit()
    connection.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("http://[::1", "is not a valid address"),
        ("sqlite://", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
        (
            "mysql://u:p@127.0.0.1:1/db",
            "driver 'mysqldb' (Python module 'MySQLdb') is not installed",
        ),
        ("postgresql+pg8000://u:p@127.0.0.1:1/db", "driver 'pg8000'"),
        ("sqlite:////dev/null", "/dev/null is not a regular file"),
    ],
)
def test_unusable_store_uris_are_refused_in_one_line(uri, fragment):
    with pytest.raises(BackpropLabError, match=re.escape(fragment)) as caught:
        check_store(uri)
    assert "\n" not in str(caught.value)


def test_a_folder_or_device_as_an_existing_store_is_named_what_it_is(tmp_path):
    with pytest.raises(BackpropLabError, match="is a folder"):
        check_store_exists(f"sqlite:///{tmp_path}")
    with pytest.raises(BackpropLabError, match="is not a regular file"):
        check_store_exists("sqlite:////dev/null")
    with pytest.raises(BackpropLabError, match="does not exist"):
        check_store_exists(f"sqlite:///{tmp_path / 'missing.db'}")


def test_an_sqlite_database_that_is_not_an_mlflow_store_is_left_alone(tmp_path):
    uri = _sqlite_file(tmp_path / "mine.db", "foo")
    with pytest.raises(BackpropLabError, match="is an SQLite database but not an MLflow store"):
        check_store(uri)
    connection = sqlite3.connect(tmp_path / "mine.db")
    tables = connection.execute("SELECT name FROM sqlite_master").fetchall()
    connection.close()
    assert tables == [("foo",)]


def test_a_store_without_its_experiments_table_is_called_damaged(tmp_path):
    head, _ = installed_revisions()
    uri = _sqlite_file(tmp_path / "mlflow.db", "runs", "metrics", revision=head)
    with pytest.raises(BackpropLabError, match=r"damaged MLflow store \(experiments missing\)"):
        check_store(uri)


def test_a_store_of_another_mlflow_version_is_refused_with_the_upgrade_command(tmp_path):
    head, known = installed_revisions()
    assert head in known
    older = sorted(known - {head})[0]
    uri = _sqlite_file(tmp_path / "old.db", "experiments", "runs", revision=older)
    with pytest.raises(BackpropLabError, match=re.escape(f"mlflow db upgrade {uri}")):
        check_store(uri)
    uri = _sqlite_file(tmp_path / "new.db", "experiments", "runs", revision="ffffffffffff")
    with pytest.raises(BackpropLabError, match="newer MLflow"):
        check_store(uri)
    check_store(_sqlite_file(tmp_path / "ok.db", "experiments", "runs", revision=head))
