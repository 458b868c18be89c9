"""Units and number formatting, shared by the CLI tables and the chapter build hook.

GB = 10^9 bytes and GiB = 2^30 bytes. Both are shown side by side and never mixed in one comparison.
``format_value(x, "GB:2")`` is the formatter behind ``{{ calc ... | GB:2 }}`` in the chapter text.
"""

from __future__ import annotations

GB = 1e9
GiB = 2**30

# unit name -> (divisor, suffix printed after the number)
_UNITS = {
    "B": (1, " B"),
    "KB": (1e3, " KB"), "MB": (1e6, " MB"), "GB": (1e9, " GB"), "TB": (1e12, " TB"),
    "KiB": (2**10, " KiB"), "MiB": (2**20, " MiB"), "GiB": (2**30, " GiB"), "TiB": (2**40, " TiB"),
    "GB/s": (1e9, " GB/s"), "TB/s": (1e12, " TB/s"),
    "TFLOPS": (1e12, " TFLOPS"), "PFLOPS": (1e15, " PFLOPS"), "TOPS": (1e12, " TOPS"),
    "s": (1, " s"), "ms": (1e-3, " ms"), "us": (1e-6, " µs"), "min": (60, " min"), "h": (3600, " h"),
    "K": (1e3, "K"), "M": (1e6, "M"), "B_params": (1e9, "B"), "T_params": (1e12, "T"),  # counts: 8.03B params
    "tok/s": (1, " tok/s"), "USD": (1, ""), "$": (1, ""), "x": (1, "×"),
    "%": (0.01, "%"),  # a fraction 0.42 -> "42.0%"
    "raw": (1, ""),
}
UNITS = tuple(_UNITS)


def format_value(value, spec: str = "raw:2") -> str:
    """Format ``value`` by a ``unit:digits`` spec, e.g. ``format_value(16.06e9, "GB:2") == "16.06 GB"``.

    ``$`` / ``USD`` put a dollar sign in front; ``raw`` prints the bare number (for use inside math).
    Thousands are separated with commas. ``None`` prints as an em dash.
    """
    unit, _, digits = spec.partition(":")
    if unit not in _UNITS:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}")
    try:
        n = int(digits) if digits else 2
    except ValueError:
        raise ValueError(f"digits must be an integer in {spec!r}") from None
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    divisor, suffix = _UNITS[unit]
    text = f"{value / divisor:,.{n}f}"
    if unit in ("$", "USD"):
        return ("-$" + text[1:]) if text.startswith("-") else "$" + text
    return text + suffix


def bytes_both(n: float, digits: int = 2) -> str:
    """``"16.06 GB (14.96 GiB)"``: decimal first, binary in brackets, the way the CLI tables print bytes."""
    return f"{format_value(n, f'GB:{digits}')} ({format_value(n, f'GiB:{digits}')})"
