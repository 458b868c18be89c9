"""Evaluate calc expressions written in the Markdown, so numbers in the text come from calc/.

    {{ calc memory.weights_bytes model=llama-3.1-8b weights=bf16 | GB:2 }}   ->  16.06 GB
    {{ calc perf.tpot_s model=llama-3.1-8b gpu=h100-sxm | ms:1 }}           ->  5.1 ms
    {{ calc gpu.h100-sxm.memory_bandwidth_bytes_per_s | TB/s:2 }}          ->  3.35 TB/s

Before the `|`: either `<command>.<json field>` and the parameters the CLI takes (flag names without dashes),
evaluated with calc.api.run(); or a registry path `gpu.<key>.<field>` / `model.<key>.<field>`, read with
calc.registry.lookup(). After it: `unit:digits`, formatted by calc/units.py, calc's one number formatter (its
_UNITS lists the units). An expression that calc rejects fails the build with the page and the expression named. Fenced code blocks are left alone, so the syntax can be shown.
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
    """A number as the text shows it, by calc's one formatter (calc/units.py): e.g. "GB:2" -> "16.06 GB"."""
    (units,) = hook_support.calc_modules("units")
    return units.format_number(value, fmt)


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
