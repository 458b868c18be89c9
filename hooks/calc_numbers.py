"""Evaluate calc expressions written in the Markdown, so numbers in the text come from calc/.

    {{ calc memory.weights_bytes model=llama-3.1-8b weights=bf16 | GB:2 }}   ->  16.06 GB
    {{ calc perf.tpot_s model=llama-3.1-8b gpu=h100-sxm | ms:1 }}           ->  5.1 ms
    {{ calc gpu.h100-sxm.memory_bandwidth_bytes_per_s | TB/s:2 }}          ->  3.35 TB/s
    {{ calc plan.gpus rate=40 ttft-p90=0.5 tpot-p90=0.05 | int }}          ->  the capacity planner's GPU count
    {{ calc perf.allreduce_s_per_step model=llama-3.1-70b tp=8 / perf.tpot_s model=llama-3.1-70b tp=8 | %:0 }}
                                                                           ->  one calc value over another (a share)

Before the `|`: either `<command>.<json field>` and the parameters the CLI takes (flag names without dashes),
evaluated with calc.api.run(); or a registry path (`gpu.<key>.<field>`, `model.<key>.<field>`,
`engine.<key>.<field>` …), read with calc.registry.lookup(); or two of those separated by " / ", their ratio (so a
share or a ratio in the text is calc's too, not a quotient of rounded numbers typed by hand). After it:
`unit:digits`, formatted by calc/units.py, calc's one number formatter (its _UNITS lists the units). An expression
that calc rejects fails the build with the page and the expression named. Fenced code blocks are left alone, so the
syntax can be shown.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

import directives  # hooks/directives.py (MkDocs loads hooks with their folder on sys.path)
import hook_support

EXPRESSION = re.compile(r"(?P<body>[^|]+?)\s*\|\s*(?P<format>[^\s|]+)")
COMMANDS = ("memory", "perf", "cost", "roi", "plan")  # plan: the capacity planner (a simulation, about 1 s)

@cache
def _run(command: str, params: tuple[tuple[str, str], ...]) -> dict:
    api, _ = hook_support.calc_modules("api", "registry")
    return api.run(command, dict(params))


def evaluate(body: str) -> object:
    """The raw value an expression names (a number, bool or string), or the ratio of two ("A / B")."""
    parts = body.split(" / ")
    if len(parts) == 2:
        num, den = (evaluate(part.strip()) for part in parts)
        for side, value in (("numerator", num), ("denominator", den)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"the ratio's {side} is not a number: {value!r}")
        if den == 0:
            raise ValueError("the ratio's denominator is 0")
        return num / den
    if len(parts) > 2:
        raise ValueError("a ratio takes two expressions, 'A / B'")
    target, *args = body.split()
    if "/" in target or any("/" in arg.split("=", 1)[0] for arg in args):
        raise ValueError("a ratio is written 'A / B', with a space on each side of the slash")
    params = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"parameter '{arg}' is not name=value")
        if any(name == seen for seen, _ in params):  # e.g. a ratio typed without " / ": the second half would win
            raise ValueError(f"parameter '{name}' is given twice")
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


def expression(text: str) -> str:
    """The text of one `{{ calc <text> }}`, e.g. "gpu.h100-sxm.memory_bandwidth_bytes_per_s | TB/s:2" -> "3.35 TB/s"."""
    m = EXPRESSION.fullmatch(text)
    if not m:
        raise ValueError("malformed calc expression (no '| unit:digits'?)")
    return format_value(evaluate(m.group("body")), m.group("format"))


def render(markdown: str, where: str = "") -> str:
    return directives.expand(markdown, "calc", expression, where)


CALC_DIR = Path(hook_support.ROOT) / "calc"


def _calc_fingerprint() -> tuple:
    """calc/ as it is on disk (code and data): each file's path and a hash of its bytes (about 1 MB: milliseconds),
    so an edit counts even where a copy keeps the size and the modification time."""
    return tuple(sorted((str(p), hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest())
                        for p in CALC_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts))


_fingerprint: tuple | None = None


def on_config(config):
    # `mkdocs serve` rebuilds in one process and re-imports calc each build (hooks/calculators.py): results
    # cached in an earlier build would keep numbers from before an edit to calc/ or its data. The two languages'
    # passes of one build (mkdocs-static-i18n calls on_config for each) and rebuilds without such an edit keep them:
    # the capacity planner's placeholders run a simulation each
    global _fingerprint
    now = _calc_fingerprint()
    if now != _fingerprint:
        _run.cache_clear()
        _fingerprint = now
    return config


def on_page_markdown(markdown, page, config, files):
    return render(markdown, page.file.src_uri)
