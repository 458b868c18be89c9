"""Teach jieba the book's Chinese terms, so search finds them as words.

Material's search segments Chinese text with jieba at build time, while the reader's query is split only at
spaces and punctuation. jieba's general dictionary cuts 预填充 into 预填 + 充, so a search for 预填充 would
miss the chapter that defines it. The glossary (docs/zh/glossary.md) is the one list of the book's terms;
each Chinese term in its first column becomes a jieba word before any page is indexed.
"""

from __future__ import annotations

import re
from pathlib import Path

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "zh" / "glossary.md"
CJK = re.compile(r"[\u3400-\u9fff]")


def glossary_terms(markdown: str) -> list[str]:
    """The Chinese terms of the glossary table's first column, e.g. '多头注意力（MHA）' -> ['多头注意力']."""
    terms = []
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        is_header = i + 1 < len(lines) and re.match(r"^\|\s*:?-", lines[i + 1])
        if not line.startswith("|") or re.match(r"^\|\s*:?-", line) or is_header:
            continue
        cell = re.sub(r"<[^>]+>", "", line.split("|")[1]).strip()
        for part in re.split(r"[（）()、，,/]", cell):
            part = part.strip()
            if CJK.search(part) and " " not in part:
                terms.append(part)
    return terms


def on_config(config):
    import jieba

    for term in glossary_terms(GLOSSARY.read_text(encoding="utf-8")):
        jieba.add_word(term, freq=100_000)  # high enough that jieba keeps the term in one piece
    return config
