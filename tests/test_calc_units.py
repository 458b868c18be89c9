"""calc/units.py: the one number formatter, used by the chapter text ({{ calc }}), the registry tables and the
calculators' result tables."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from calc import units, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))
import calc_numbers  # noqa: E402


@pytest.mark.parametrize(
    "value, spec, expected",
    [
        (16.06e9, "GB:2", "16.06 GB"),
        (2**30, "GiB:0", "1 GiB"),
        (131072, "KB:0", "131 KB"),
        (3.35e12, "TB/s:2", "3.35 TB/s"),
        (989.5e12, "TFLOPS:1", "989.5 TFLOPS"),
        (1.5e15, "PFLOP:2", "1.50 PFLOP"),
        (295.2, "FLOP/B:1", "295.2 FLOP/B"),
        (0.0051262, "ms:1", "5.1 ms"),
        (0.0000425, "us:1", "42.5 µs"),
        (1234.5, "tok/s:0", "1,234 tok/s"),
        (0.25, "req/s:3", "0.250 req/s"),
        (8_030_261_248, "params:2", "8.03B"),
        (1234567, "int", "1,234,567"),
        (1234.5, "int", "1,234"),  # half to even, as Python rounds
        (2**60 + 1, "int", "1,152,921,504,606,846,977"),  # exact
        (0.2034, "usd:3", "$0.203"),
        (-12.5, "usd:2", "-$12.50"),
        (1234.5, "usd", "$1,234.50"),
        (0.883, "%:1", "88.3%"),
        (2.5, "x:1", "2.5×"),
        (31415.9265, "raw:3", "31415.927"),  # no thousands separator: it goes into math
        (7, "raw", "7.00"),
        (1234567.891, "num:1", "1,234,567.9"),
        (6.590457e-07, "sci:1", "6.6e-7"),  # KL divergences spanning orders of magnitude
        (0.001138, "sci:2", "1.14e-3"),
    ],
)
def test_format_number(value, spec, expected):
    assert units.format_number(value, spec) == expected


@pytest.mark.parametrize("value", [None, True, "16 GB", [1]])
def test_only_numbers_are_formatted(value):
    with pytest.raises(ValueError, match="not a number"):
        units.format_number(value, "GB:2")


def test_unknown_units_and_bad_digits_are_errors():
    with pytest.raises(ValueError, match="unknown format 'furlongs'"):
        units.format_number(1, "furlongs:2")
    with pytest.raises(ValueError, match="digits"):
        units.format_number(1, "GB:two")
    with pytest.raises(ValueError, match="unknown format"):
        units.format_value(None, "furlongs")


def test_format_value_takes_any_report_value():
    assert units.format_value(None, "GB:2") == "—"
    assert units.format_value(False, "raw") == "no"
    assert units.format_value("llama", "raw") == "llama"
    assert units.format_value(16.06e9, "GB:2") == units.format_number(16.06e9, "GB:2")


def test_sub_units_multiply():
    # ms is value × 1000, never value ÷ 0.001 (which is not exact in binary floating point)
    for value in (0.0051262, 0.0125, 1e-7, 3.0):
        assert units.format_number(value, "ms:6") == f"{value * 1e3:,.6f} ms"
        assert units.format_number(value, "%:3") == f"{value * 100:,.3f}%"


def test_the_text_hook_formats_with_units():
    for spec in ("GB:2", "int", "params:2", "req/s:1", "raw:4", "usd:2", "ms:1", "%:0"):
        assert calc_numbers.format_value(123456.789, spec) == units.format_number(123456.789, spec)


def test_every_format_the_pages_use_is_known():
    used = set()
    for page in (ROOT / "docs").rglob("*.md"):
        for m in re.finditer(r"\{\{\s*calc\s[^|{}]*\|\s*([^\s:{}|]+)", page.read_text(encoding="utf-8")):
            used.add(m.group(1))
    assert used and used <= set(units.UNITS), sorted(used - set(units.UNITS))


def test_calculator_tables_format_with_units():
    # the result tables show what the same unit prints in the text, e.g. 16.06 GB (14.96 GiB)
    n = 16_060_522_496
    assert web.format_value("weights_bytes", n, "en") == (units.format_number(n, "GB:2"), units.format_number(n, "GiB:2"))
    assert web.format_value("tpot_s", 0.0051262, "en")[0] == units.format_number(0.0051262, "ms:2")
    assert web.format_value("requests_per_s", 0.25, "en")[0] == units.format_number(0.25, "req/s:3")
    assert web.format_value("params_total", 8_030_261_248, "en")[0] == units.format_number(8_030_261_248, "params:2")
    assert web.format_value("usd_per_request", -12.5, "en")[0] == units.format_number(-12.5, "usd:2")
