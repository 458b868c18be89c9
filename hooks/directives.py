"""Find the book's `{{ … }}` directives in a page's Markdown, outside code. Not a hook itself: the hooks that
expand a directive import it (MkDocs puts this folder on sys.path while it loads a hook).

    {{ calc <expression> | <unit:digits> }}      anywhere in a line      hooks/calc_numbers.py
    {{ registry <name> }}                        on a line of its own    hooks/registry_tables.py
    {{ provenance <lab>/data/<file>.json }}      on a line of its own    hooks/lab_provenance.py
    {{ lab <lab>/data/<file>.json k=v … <field> | <unit:digits> }}   anywhere    hooks/lab_provenance.py
    {{ calculator <kind> [name=value …] }}       on a line of its own    hooks/calculators.py

Code is left alone, so a page can show the syntax: fenced blocks (``` or ~~~, at any indent, closed by a
fence of the same character at least as long, as CommonMark has it) and inline code spans (`…`) on one line.
A directive a hook cannot read fails the build with the page named, never reaches the reader as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from mkdocs.exceptions import PluginError

FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
CODE_SPAN = re.compile(r"(?<!`)(?P<ticks>`+)(?!`)")


def fenced(lines: list[str]) -> list[bool]:
    """For each line: whether it belongs to a fenced code block (its fences included)."""
    out, fence = [], None
    for line in lines:
        m = FENCE.match(line)
        if fence is None:
            if m and not (m.group("fence")[0] == "`" and "`" in m.group("info")):
                fence = m.group("fence")
                out.append(True)
                continue
            out.append(False)
        else:
            out.append(True)
            if m and m.group("fence")[0] == fence[0] and len(m.group("fence")) >= len(fence) \
                    and not m.group("info").strip():
                fence = None
    return out


def lines_outside_code(markdown: str) -> Iterator[tuple[int, str]]:
    """(index, line) of every line of the page that is not in a fenced code block."""
    lines = markdown.split("\n")
    for i, (line, code) in enumerate(zip(lines, fenced(lines), strict=True)):
        if not code:
            yield i, line


def _code_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of the inline code spans in one line: a run of backticks up to the next run as long."""
    spans, pos = [], 0
    while (m := CODE_SPAN.search(line, pos)) is not None:
        ticks = m.group("ticks")
        close = re.compile(rf"(?<!`){ticks}(?!`)").search(line, m.end())
        if close is None:
            pos = m.end()
            continue
        spans.append((m.start(), close.end()))
        pos = close.end()
    return spans


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"\{{\{{\s*{re.escape(name)}(?:\s+(?P<body>[^{{}}]*?))?\s*\}}\}}")


def _opening(name: str) -> re.Pattern:
    return re.compile(rf"\{{\{{\s*{re.escape(name)}\b")


def _outside(spans: list[tuple[int, int]], start: int) -> bool:
    return not any(a <= start < b for a, b in spans)


def expand(markdown: str, name: str, replace: Callable[[str], str], where: str = "", *, alone: bool = False) -> str:
    """The page with every `{{ <name> <body> }}` outside code replaced by ``replace(body)``.

    ``alone``: the directive must stand on a line of its own; its replacement (any number of lines) keeps the
    line's indentation, so a directive inside an admonition or a list item stays there. ``replace`` may raise
    PluginError, or any other exception, which becomes a PluginError naming the page and the directive.
    A `{{ <name>` that does not form a directive (no closing braces, or text around one that must be alone)
    fails the build."""
    full, opening = _pattern(name), _opening(name)
    lines = markdown.split("\n")
    for i, line in lines_outside_code(markdown):
        if "{{" not in line:
            continue
        spans = _code_spans(line)

        def call(m: re.Match) -> str:
            try:
                return replace((m.group("body") or "").strip())
            except PluginError:
                raise
            except Exception as exc:  # the hook's ValueError/KeyError, or calc's
                raise PluginError(f"{where}: cannot expand '{m.group(0)}': {exc}") from exc

        if alone:
            stripped = line.strip()
            m = full.fullmatch(stripped)
            if m:
                indent = line[: len(line) - len(line.lstrip())]
                lines[i] = "\n".join(indent + part if part else part for part in call(m).split("\n"))
                continue
            if any(_outside(spans, o.start()) for o in opening.finditer(line)):
                raise PluginError(f"{where}: a {{{{ {name} … }}}} directive must stand alone on its line: {stripped}")
            continue
        out, pos, replaced = [], 0, []
        for m in full.finditer(line):
            if not _outside(spans, m.start()):
                continue
            out += [line[pos:m.start()], call(m)]
            pos = m.end()
            replaced.append((m.start(), m.end()))
        out.append(line[pos:])
        if any(_outside(spans + replaced, o.start()) for o in opening.finditer(line)):
            raise PluginError(f"{where}: malformed {{{{ {name} … }}}} directive (not closed with '}}}}'?) in: "
                              f"{line.strip()}")
        lines[i] = "".join(out)
    return "\n".join(lines)
