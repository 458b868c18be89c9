"""Join soft line breaks between Chinese characters in the Chinese pages.

Markdown turns a line break inside a paragraph into a space. Between two Chinese characters that space is a
visible gap ("形状： 预填充"), since Chinese does not separate words with spaces. Authors wrap long lines in
the source, so on pages under docs/zh/ a line break whose both sides are Chinese characters or full-width
punctuation is removed before Markdown runs. Code blocks, tables and the start of a new block (a list item,
heading, admonition, HTML, math) are left alone.
"""

from __future__ import annotations

import re

import directives  # hooks/directives.py (MkDocs loads hooks with their folder on sys.path)

CJK = r"\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef"
ENDS_CJK = re.compile(rf"[{CJK}]$")
STARTS_CJK = re.compile(rf"^[{CJK}]")
NEW_BLOCK = re.compile(r"^(?:[-*+]\s|\d+[.)]\s|\||#|>|!!!|\?\?\?|<|\$\$|\{\{|:)")


def join_cjk_lines(markdown: str) -> str:
    out: list[str] = []
    lines = markdown.split("\n")
    for line, code in zip(lines, directives.fenced(lines), strict=True):
        if code:
            out.append(line)
            continue
        stripped = line.lstrip()
        prev = out[-1].rstrip() if out else ""
        if (out and stripped and prev and not prev.lstrip().startswith(("|", "#"))
                and ENDS_CJK.search(prev) and STARTS_CJK.match(stripped) and not NEW_BLOCK.match(stripped)):
            out[-1] = prev + stripped
            continue
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith("zh/") or getattr(page.file, "locale", None) == "zh":
        return join_cjk_lines(markdown)
    return markdown
