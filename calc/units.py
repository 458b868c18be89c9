"""Units and number formatting: the one formatter behind every number calc shows.

GB = 10^9 bytes and GiB = 2^30 bytes. Both are shown side by side and never mixed in one comparison.

``format_number(x, "GB:2")`` turns a number into text by a ``unit:digits`` spec; it is what the chapter text's
``{{ calc … | GB:2 }}`` expressions (hooks/calc_numbers.py), the registry tables (hooks/registry_tables.py) and
the calculators' result tables (calc/web.py, in CPython at build time and in the browser) all call.
``format_value`` does the same for any value a report may hold (None, yes/no, text), for tables, and
``format_usd`` prints money with the digits its size needs.
"""

from __future__ import annotations

GB = 1e9
GiB = 2**30

# unit -> (multiply by, divide by, suffix printed after the number). Units below the base unit multiply
# (ms: × 1000, exact where ÷ 0.001 is not); the others divide. Decimal units are powers of 1000 and binary ones
# powers of 1024: never mixed.
_UNITS = {
    # bytes
    "B": (1, 1, " B"),
    "KB": (1, 1e3, " KB"), "MB": (1, 1e6, " MB"), "GB": (1, 1e9, " GB"), "TB": (1, 1e12, " TB"),
    "KiB": (1, 2**10, " KiB"), "MiB": (1, 2**20, " MiB"), "GiB": (1, 2**30, " GiB"), "TiB": (1, 2**40, " TiB"),
    # bandwidth
    "GB/s": (1, 1e9, " GB/s"), "TB/s": (1, 1e12, " TB/s"),
    # work (a count of floating-point operations), peak rates, arithmetic intensity
    "MFLOP": (1, 1e6, " MFLOP"), "GFLOP": (1, 1e9, " GFLOP"), "TFLOP": (1, 1e12, " TFLOP"),
    "PFLOP": (1, 1e15, " PFLOP"),
    "TFLOPS": (1, 1e12, " TFLOPS"), "PFLOPS": (1, 1e15, " PFLOPS"), "TOPS": (1, 1e12, " TOPS"),
    "FLOP/B": (1, 1, " FLOP/B"),
    # time
    "s": (1, 1, " s"), "ms": (1e3, 1, " ms"), "us": (1e6, 1, " µs"), "min": (1, 60, " min"), "h": (1, 3600, " h"),
    # throughput
    "tok/s": (1, 1, " tok/s"), "req/s": (1, 1, " req/s"),
    # counts
    "params": (1, 1e9, "B"),  # parameter counts: 8.03B
    "num": (1, 1, ""),  # a plain number with thousands separators
    "int": (1, 1, ""),  # the same, rounded to a whole number (digits default to 0)
    # money, ratios
    "usd": (1, 1, ""),  # $1,234.50; a negative amount is -$12.50
    "%": (100, 1, "%"),  # a fraction: 0.42 -> 42.0%
    "x": (1, 1, "×"),
    # the bare number, without thousands separators: for use inside math
    "raw": (1, 1, ""),
    # scientific notation for quantities spanning orders of magnitude: sci:1 -> 6.6e-7
    "sci": (1, 1, ""),
}
UNITS = tuple(_UNITS)


def _spec(spec: str) -> tuple[str, int]:
    unit, _, digits = spec.partition(":")
    if unit not in _UNITS:
        raise ValueError(f"unknown format '{unit}' (known: {', '.join(UNITS)})")
    if not digits:
        return unit, 0 if unit == "int" else 2
    try:
        return unit, int(digits)
    except ValueError:
        raise ValueError(f"digits must be an integer in '{spec}'") from None


def format_number(value: float, spec: str = "raw:2") -> str:
    """``value`` by a ``unit:digits`` spec, e.g. ``format_number(16.06e9, "GB:2") == "16.06 GB"``.

    Thousands are separated with commas, except by ``raw``. ``usd`` puts the dollar sign in front. Anything that
    is not a number (None, a bool, text) raises ValueError, as does an unknown unit."""
    unit, digits = _spec(spec)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"value {value!r} is not a number")
    multiply, divide, suffix = _UNITS[unit]
    if unit == "int" and isinstance(value, int):
        return f"{value:,}"  # exact, however large
    number = value * multiply / divide
    if unit == "raw":
        return f"{number:.{digits}f}"
    if unit == "sci":
        mantissa, exponent = f"{number:.{digits}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if unit == "usd":
        return ("-$" if number < 0 else "$") + f"{abs(number):,.{digits}f}"
    return f"{number:,.{digits}f}{suffix}"


def format_usd(value: float) -> str:
    """Money with the digits its size needs: $1,234.50, $0.0123, $0.000045."""
    digits = 2 if abs(value) >= 1 or value == 0 else (4 if abs(value) >= 0.01 else 6)
    return format_number(value, f"usd:{digits}")


def format_value(value, spec: str = "raw:2") -> str:
    """Like format_number, for any value in a report: None prints as an em dash, a bool as yes/no, text as is."""
    _spec(spec)  # an unknown unit is an error whatever the value
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    return format_number(value, spec)


def bytes_both(n: float, digits: int = 2) -> str:
    """``"16.06 GB (14.96 GiB)"``: decimal first, binary in brackets, the way the CLI tables print bytes."""
    return f"{format_number(n, f'GB:{digits}')} ({format_number(n, f'GiB:{digits}')})"
