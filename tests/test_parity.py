"""Chinese and English pages stay in step: every page exists in both languages with the same heading
structure (levels and ids), the same figures, the same calc expressions and the same numbers in tables and
formulas. Notebooks carry the same code and the same outputs.

The checker itself is tested on small synthetic pairs first, so a drifting translation is known to fail.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
ZH, EN = DOCS / "zh", DOCS / "en"
sys.path.insert(0, str(DOCS.parent / "hooks"))
import directives  # noqa: E402  hooks/directives.py: what the build counts as code

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
HEADING_ID = re.compile(r"\{[^}]*#([\w-]+)[^}]*\}\s*$")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*([^)\s]+)[^)]*\)|<img[^>]*\ssrc=\"([^\"]+)\"")
CALC_EXPR = re.compile(r"\{\{\s*calc\s+(.*?)\s*\}\}")
MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$", re.S)
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
LINK_TARGET = re.compile(r"\]\([^)]*\)|\{[^}]*#[\w-]+[^}]*\}|<[^>]+>")


def _strip_code(markdown: str) -> list[str]:
    """Lines outside fenced code blocks (mermaid labels are language, code is identical by construction)."""
    lines = markdown.splitlines()
    return [line for line, code in zip(lines, directives.fenced(lines), strict=True) if not code]


def _numbers(text: str) -> list[str]:
    text = CALC_EXPR.sub(" ", LINK_TARGET.sub(" ", text))
    return [n.replace(",", "") for n in NUMBER.findall(text)]


def skeleton(markdown: str) -> dict:
    """What must be identical between the two languages of one page."""
    lines = _strip_code(markdown)
    body = "\n".join(lines)
    headings = []
    for line in lines:
        m = HEADING.match(line)
        if m:
            id_match = HEADING_ID.search(m.group(2))
            headings.append((len(m.group(1)), id_match.group(1) if id_match else None))
    figures = [re.sub(r"_(zh|en)(\.\w+)$", r"_LANG\2", a or b) for a, b in IMAGE.findall(body)]
    table_numbers = Counter(n for line in lines if line.lstrip().startswith("|") for n in _numbers(line))
    math_numbers = Counter(n for groups in MATH.findall(CALC_EXPR.sub(" ", body)) for g in groups if g for n in _numbers(g))
    return {
        "headings": headings,
        "figures": figures,
        "calc expressions": Counter(CALC_EXPR.findall(markdown)),
        "numbers in tables": table_numbers,
        "numbers in formulas": math_numbers,
    }


def missing_heading_ids(markdown: str) -> list[str]:
    return [
        line.strip()
        for line in _strip_code(markdown)
        if (m := HEADING.match(line)) and len(m.group(1)) in (2, 3) and not HEADING_ID.search(m.group(2))
    ]


def notebook_skeleton(path: Path) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [("".join(c["source"]), json.dumps(c.get("outputs", []), sort_keys=True)) for c in nb["cells"] if c["cell_type"] == "code"]
    markdown = "\n\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return {"cell types": [c["cell_type"] for c in nb["cells"]], "code and outputs": code, **skeleton(markdown)}


def _pages(lang_dir: Path) -> set[str]:
    return {p.relative_to(lang_dir).as_posix() for p in lang_dir.rglob("*") if p.suffix in (".md", ".ipynb")}


# --- the checker catches drift -------------------------------------------------------------------------

ZH_SAMPLE = """# 第 3 章
## 3.1 指标 {#metrics}
| 指标 | 值 |
|---|---|
| TTFT | 120 ms |
$$ t = \\frac{16}{3.35} $$
![图](../assets/labs/x/figures/split_zh.svg)
{{ calc perf.tpot_s model=llama-3.1-8b | ms:1 }}
"""
EN_SAMPLE = """# Chapter 3
## 3.1 Metrics {#metrics}
| Metric | Value |
|---|---|
| TTFT | 120 ms |
$$ t = \\frac{16}{3.35} $$
![Figure](../assets/labs/x/figures/split_en.svg)
{{ calc perf.tpot_s model=llama-3.1-8b | ms:1 }}
"""


def test_checker_accepts_a_faithful_pair():
    assert skeleton(ZH_SAMPLE) == skeleton(EN_SAMPLE)


@pytest.mark.parametrize(
    "drift",
    [
        ("| TTFT | 120 ms |", "| TTFT | 125 ms |"),  # a number in a table
        ("\\frac{16}{3.35}", "\\frac{16}{3.3}"),  # a number in a formula
        ("{#metrics}", "{#metric}"),  # a heading id
        ("## 3.1 Metrics", "### 3.1 Metrics"),  # a heading level
        ("split_en.svg", "other_en.svg"),  # a figure
        ("model=llama-3.1-8b", "model=llama-3.1-70b"),  # a calc expression
    ],
)
def test_checker_catches_drift(drift):
    old, new = drift
    assert old in EN_SAMPLE
    assert skeleton(ZH_SAMPLE) != skeleton(EN_SAMPLE.replace(old, new))


def test_checker_catches_missing_section():
    assert skeleton(ZH_SAMPLE + "\n## 3.2 小结 {#summary}\n") != skeleton(EN_SAMPLE)


# --- the real pages ------------------------------------------------------------------------------------


def test_every_page_exists_in_both_languages():
    zh, en = _pages(ZH), _pages(EN)
    assert zh, "no Chinese pages found"
    assert not zh - en, f"Chinese pages without an English twin: {sorted(zh - en)}"
    assert not en - zh, f"English pages without a Chinese twin: {sorted(en - zh)}"


@pytest.mark.parametrize("rel", sorted(_pages(ZH) & _pages(EN)))
def test_page_pair_in_step(rel):
    if rel.endswith(".ipynb"):
        zh, en = notebook_skeleton(ZH / rel), notebook_skeleton(EN / rel)
    else:
        zh, en = skeleton((ZH / rel).read_text(encoding="utf-8")), skeleton((EN / rel).read_text(encoding="utf-8"))
    for key in zh:
        assert zh[key] == en[key], f"{rel}: {key} differ\n zh: {zh[key]}\n en: {en[key]}"


@pytest.mark.parametrize("rel", sorted(p for p in _pages(ZH) | _pages(EN) if p.endswith(".md")))
def test_section_headings_have_explicit_ids(rel):
    # Same ids in both languages keep anchors and the language switcher on the reader's section.
    for lang_dir in (ZH, EN):
        path = lang_dir / rel
        if path.exists():
            missing = missing_heading_ids(path.read_text(encoding="utf-8"))
            assert not missing, f"{path.relative_to(DOCS)}: headings without {{#id}}: {missing}"
