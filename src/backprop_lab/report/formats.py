"""Number and time formats: fixed, so the same runs give the same text."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def fmt_number(value: float | None, decimals: int = 4) -> str:
    """A float with fixed decimals; scientific notation for very small or large magnitudes."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    value = float(value)
    # With no decimals (epoch counts) nothing is too small to show: 9 stays 9, not 9e+00.
    tiny = decimals > 0 and abs(value) < 10 ** -(decimals - 1)
    if value != 0 and (tiny or abs(value) >= 1e5):
        return f"{value:.{max(decimals - 2, 1)}e}"
    text = f"{value:.{decimals}f}"
    # "-0.0000" reads as a sign error: show 0.
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_value(value: float) -> str:
    """A value taken from a config or a data set (0.01, 1.2, -0.5): shortest exact form."""
    return f"{float(value):g}"


def fmt_rate(rate: float) -> str:
    """A learning rate, as the run names and figures print it."""
    return f"{float(rate):.3g}"


def fmt_percent(fraction: float | None, decimals: int = 0) -> str:
    if fraction is None or not math.isfinite(float(fraction)):
        return "—"
    return f"{100 * float(fraction):.{decimals}f}%"


def fmt_time(milliseconds: int | None) -> str:
    if not milliseconds:
        return "—"
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_int(value: float) -> str:
    """A count or an epoch logged as a float metric (``37.0`` → ``37``)."""
    return str(int(value)) if math.isfinite(value) else "—"
