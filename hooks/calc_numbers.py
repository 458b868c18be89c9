"""Evaluate calc expressions written in the Markdown, so numbers in the text come from calc/.

    {{ calc memory.weights_bytes model=llama-3.1-8b weights=bf16 | GB:2 }}   ->  16.06 GB
    {{ calc perf.tpot_s model=llama-3.1-8b gpu=h100-sxm | ms:1 }}           ->  5.1 ms
    {{ calc gpu.h100-sxm.memory_bandwidth_bytes_per_s | TB/s:2 }}          ->  3.35 TB/s

Before the `|`: either `<command>.<json field>` and the parameters the CLI takes (flag names without dashes),
evaluated with calc.api.run(); or a registry path `gpu.<key>.<field>` / `model.<key>.<field>`, read with
calc.registry.lookup(). After it: `unit:digits` (see FORMATS). An expression that calc rejects fails the
build with the page and the expression named. Fenced code blocks are left alone, so the syntax can be shown.
"""

from __future__ import annotations

import re
from functools import cache

import hook_support  # hooks/hook_support.py: MkDocs loads hooks with their folder on sys.path
from mkdocs.exceptions import PluginError

EXPRESSION = re.compile(r"\{\{\s*calc\s+(?P<body>[^|{}]+?)\s*\|\s*(?P<format>[^\s{}|]+)\s*\}\}")
LEFTOVER = re.compile(r"\{\{\s*calc\s")
FENCE = re.compile(r"^\s*(```|~~~)")
COMMANDS = ("memory", "perf", "cost", "roi")

# unit -> (divisor, suffix). Decimal units are powers of 1000, binary ones of 1024: never mixed.
FORMATS = {
    "B": (1, " B"), "KB": (1e3, " KB"), "MB": (1e6, " MB"), "GB": (1e9, " GB"), "TB": (1e12, " TB"),
    "KiB": (2**10, " KiB"), "MiB": (2**20, " MiB"), "GiB": (2**30, " GiB"), "TiB": (2**40, " TiB"),
    "GB/s": (1e9, " GB/s"), "TB/s": (1e12, " TB/s"),
    "TFLOPS": (1e12, " TFLOPS"), "PFLOPS": (1e15, " PFLOPS"),
    "s": (1, " s"), "ms": (1e-3, " ms"), "us": (1e-6, " µs"),
    "tok/s": (1, " tok/s"), "req/s": (1, " req/s"),
    "params": (1e9, "B"),  # parameter counts: 8.03B
    "%": (0.01, "%"),
    "x": (1, "×"),
    "usd": (1, ""), "raw": (1, ""), "int": (1, ""),
}


@cache
def _run(command: str, params: tuple[tuple[str, str], ...]) -> dict:
    api, _ = hook_support.calc_modules("api", "registry")
    return api.run(command, dict(params))


def evaluate(body: str) -> object:
    """The raw value an expression names (a number, bool or string)."""
    target, *args = body.split()
    params = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"parameter '{arg}' is not name=value")
        params.append((name, value))
    head, _, rest = target.partition(".")
    if head in COMMANDS:
        if not rest:
            raise ValueError(f"'{target}' names no output field")
        result = _run(head, tuple(params))
        if rest not in result:
            raise ValueError(f"calc {head} has no field '{rest}' (it has: {', '.join(sorted(result))})")
        return result[rest]
    if params:
        raise ValueError(f"registry path '{target}' takes no parameters")
    _, registry = hook_support.calc_modules("api", "registry")
    return registry.lookup(target)


def format_value(value: object, fmt: str) -> str:
    unit, _, digits_text = fmt.partition(":")
    if unit not in FORMATS:
        raise ValueError(f"unknown format '{unit}' (known: {', '.join(FORMATS)})")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"value {value!r} is not a number")
    digits = int(digits_text) if digits_text else (0 if unit == "int" else 2)
    divisor, suffix = FORMATS[unit]
    number = value / divisor
    if unit == "int":
        return f"{round(number):,}"
    if unit == "usd":
        return f"${number:,.{digits}f}"
    return f"{number:,.{digits}f}{suffix}" if unit != "raw" else f"{number:.{digits}f}"


def render(markdown: str, where: str = "") -> str:
    out, in_fence = [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and "{{" in line:
            def substitute(m: re.Match) -> str:
                try:
                    return format_value(evaluate(m.group("body")), m.group("format"))
                except Exception as exc:  # calc's ValueError/KeyError, or a malformed expression
                    raise PluginError(f"{where}: cannot evaluate '{m.group(0)}': {exc}") from exc

            line = EXPRESSION.sub(substitute, line)
            if LEFTOVER.search(line):
                raise PluginError(f"{where}: malformed calc expression (no '| unit:digits'?) in: {line.strip()}")
        out.append(line)
    return "\n".join(out)


def on_config(config):
    # `mkdocs serve` rebuilds in one process and re-imports calc each build (hooks/calculators.py): results
    # cached in an earlier build would keep numbers from before an edit to calc/ or its data.
    _run.cache_clear()
    return config


def on_page_markdown(markdown, page, config, files):
    return render(markdown, page.file.src_uri)
