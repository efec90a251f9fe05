"""Headless Chromium for the browser tests: the system's ``chromium`` driven by Playwright.

Playwright's own browser downloads do not work offline, so the tests launch the Debian package
instead, and skip (naming what is missing) where it or the ``playwright`` package is absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


@contextmanager
def launched_chromium() -> Iterator:
    """A Playwright ``Browser`` on the system's chromium; skips the test without one."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("needs chromium (Debian package `chromium`: apt-get install -y chromium)")
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (the dev extra)"
    )
    with playwright_api.sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (containers), where the sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
