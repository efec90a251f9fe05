"""The one exception type users see.

Every problem with user input (a config value, a data file, a run id) raises
:class:`BackpropLabError` with a one-line message that says what was wrong and how to fix it.
The console commands print that line without a traceback and exit non-zero.
"""

from __future__ import annotations

from typing import Any


class BackpropLabError(ValueError):
    """A problem with user input, described in one line for people."""


def invalid(key: str, value: Any, allowed: str) -> BackpropLabError:
    """``key=value is invalid: allowed``, with a long text value shortened."""
    shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    return BackpropLabError(f"{key}={shown!r} is invalid: {allowed}")
