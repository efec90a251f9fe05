"""Fixtures of the report tests: one shared store and its reports, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_store import build_reports, make_store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("report_store"))


@pytest.fixture(scope="session")
def built(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    assert build_reports(store.uri, out) == 0
    return out
