"""Number formats: fixed, so the same runs give the same text."""

from __future__ import annotations

from backprop_lab.report.formats import fmt_int, fmt_number, fmt_percent, fmt_rate, fmt_value


def test_number_formats_are_fixed():
    assert fmt_number(0.39411) == "0.3941"
    assert fmt_number(-0.00001) == "-1.00e-05"
    assert fmt_number(-0.00004, 4) == "-4.00e-05"
    assert fmt_number(float("nan")) == "—"
    assert fmt_number(-1e-12 * 0) == "0.0000"
    # Whole epochs (no decimals): a single digit prints as itself.
    assert fmt_number(9.0, 0) == "9"
    assert fmt_number(12.5, 0) == "12"
    assert fmt_rate(0.0031622776) == "0.00316"
    assert fmt_percent(0.66) == "66%"
    assert fmt_value(0.01) == "0.01"


def test_counts_logged_as_floats_print_as_integers_or_a_dash():
    assert fmt_int(37.0) == "37"
    assert fmt_int(float("nan")) == "—"
    assert fmt_int(float("inf")) == "—"
