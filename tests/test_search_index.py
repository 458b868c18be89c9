"""hooks/search_index.py: one search index per language, glossary rows as entries, and where each term is defined.

The browser side (docs/assets/javascripts/workers/book-search.js, and what a reader gets for real queries) is
tested in tests/browser/test_search.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))
import search_index  # noqa: E402


def test_key_ignores_case_spacing_and_punctuation():
    assert search_index.key("首 token 时间") == search_index.key("首token时间") == "首token时间"
    assert search_index.key("KV cache") == search_index.key("kv-cache") == "kvcache"
    assert search_index.key("多头注意力（MHA）") == search_index.key("多头注意力(mha)")


def test_term_names_are_the_cell_and_its_parts_without_single_letters():
    assert search_index.term_names('<span id="mha"></span>多头注意力（MHA）') == ["多头注意力（MHA）", "多头注意力", "MHA"]
    assert search_index.term_names("查询、键、值（Q、K、V）") == ["查询、键、值（Q、K、V）", "查询"]
    assert search_index.term_names("time to first token (TTFT)") == [
        "time to first token (TTFT)", "time to first token", "TTFT"]


def test_a_section_defines_a_term_in_bold_or_by_a_heading_that_begins_with_it():
    rows = [{"id": "prefill", "names": ["预填充", "prefill"]}, {"id": "token", "names": ["token"]},
            {"id": "autoregressive", "names": ["自回归", "autoregressive"]},
            {"id": "ttft", "names": ["首 token 时间（TTFT）", "首 token 时间", "TTFT"]}]
    defined = search_index.defined_terms
    assert defined("3.3.1 预填充：并行处理提示词", "<p>…</p>", rows) == ["prefill"]
    assert defined("3.3.1 Prefill: the prompt in parallel", "", rows) == ["prefill"]
    assert defined("3.3 The autoregressive loop", "", rows) == ["autoregressive"]
    assert defined("Tokens and words", "", rows) == []  # 'token' must end a word
    assert defined("实验：预填充与解码", "<p>预填充</p>", rows) == []  # mentioned, not defined
    assert defined("3.4.1 延迟", "<p><strong>TTFT</strong>（time to first token）</p>", rows) == ["ttft"]
    assert defined("3.4.1 Latency", "<p><strong>首token时间</strong></p>", rows) == ["ttft"]


def test_sections_follow_materials_entries():
    page = ('<h1 id="title">Chapter</h1><p>intro <strong>a</strong></p>'
            '<h2 id="one">3.1 One</h2><p>x</p><h3 id="two">3.1.1 Two</h3><p>y</p>')
    got = [(loc, heading) for loc, heading, _ in search_index.sections(page, "ch03/")]
    assert got == [("ch03/", "Chapter"), ("ch03/#one", "3.1 One"), ("ch03/#two", "3.1.1 Two")]


def test_the_glossaries_list_the_same_terms_by_id():
    tables = {lang: search_index.glossary_table((ROOT / "docs" / lang / "glossary.md").read_text(encoding="utf-8"))
              for lang in ("zh", "en")}
    assert len(tables["zh"]) >= 40
    assert [r["id"] for r in tables["zh"]] == [r["id"] for r in tables["en"]]
    assert all(row["names"] for row in tables["zh"] + tables["en"])


# The built site (one strict build per test session, tests/conftest.py).

def _index(site_dir: Path, lang: str) -> dict:
    prefix = "" if lang == "zh" else "en/"
    return json.loads((site_dir / prefix / "search" / "search_index.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_language_has_its_own_index(site_dir, lang):
    index = _index(site_dir, lang)
    locations = [d["location"] for d in index["docs"]]
    assert len(locations) > 50
    assert all(loc.startswith("en/") == (lang == "en") for loc in locations)
    assert index["config"]["lang"] == [lang]
    assert ("stemmer" in index["config"]["pipeline"]) and index["config"]["separator"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_glossary_term_has_a_definition_that_is_in_the_index(site_dir, lang):
    index = _index(site_dir, lang)
    prefix = "" if lang == "zh" else "en/"
    locations = {d["location"] for d in index["docs"]}
    definitions = index["config"]["definitions"]
    assert set(definitions.values()) <= locations
    for row in search_index.glossary_table((ROOT / "docs" / lang / "glossary.md").read_text(encoding="utf-8")):
        assert f"{prefix}glossary/#{row['id']}" in locations  # one entry per glossary row
        assert search_index.key(row["names"][0]) in definitions
    assert definitions[search_index.key("算术强度" if lang == "zh" else "arithmetic intensity")] == \
        f"{prefix}ch03/#why-decode-is-slow"


def test_every_page_runs_the_search_worker_of_its_language(site_dir):
    worker = re.compile(r'"search": "[^"]*assets/javascripts/workers/book-search\.js\?lang=(\w+)&worker=(search\.[0-9a-f]+\.min\.js)"')
    for html in site_dir.rglob("*.html"):
        rel = html.relative_to(site_dir).as_posix()
        if rel.startswith("assets/"):
            continue
        text = html.read_text(encoding="utf-8")
        found = worker.search(text)
        assert found, f"{rel}: no book-search worker in its config"
        assert found.group(1) == re.search(r'<html lang="(\w+)"', text).group(1), rel  # 404.html is a template
        assert (site_dir / "assets/javascripts/workers" / found.group(2)).exists()
    assert (site_dir / "assets/javascripts/workers/book-search.js").exists()


def _indexed_text(html_text: str) -> str:
    """The text Material's search plugin indexes for a fragment (its own parser)."""
    from material.plugins.search.plugin import Parser

    parser = Parser()
    parser.feed(html_text)
    parser.close()
    return " ".join("".join(s.text) for s in parser.data)


def _words(text: str, lang: str = "en") -> list[str]:
    separator = search_index.LANGUAGES[lang]["separator"]
    return [w for w in re.split(separator, re.sub(r"<[^>]+>", " ", text)) if w]


@pytest.mark.parametrize("lang", search_index.LANGS)
def test_en_and_em_dashes_separate_words(lang):
    assert _words("draft–verify—rejection, 2–3×", lang) == ["draft", "verify", "rejection", "2", "3×"]


def test_table_cells_and_form_labels_are_not_glued_together():
    row = '<table><tr><th scope="row">Draft length</th><td class="v">0.03955</td><td>engine</td></tr></table>'
    field = ('<div class="calc__field"><label for="x">Prompt length</label><div class="calc__control">'
             '<input type="text" id="x"><span class="calc__unit">tokens</span></div></div>')
    for fragment, words in ((row, ["length", "0.03955", "engine"]), (field, ["length", "tokens"])):
        spaced = search_index.on_page_content(fragment, None, {}, None)
        found = _words(_indexed_text(spaced))
        assert all(w in found for w in words), found
        assert not any(w.startswith("length") and w != "length" for w in found), found
    # the page still renders the same: only whitespace between tags is added
    assert re.sub(r">\s+<", "><", search_index.on_page_content(row, None, {}, None)) == row
    # text inside <pre> is left alone
    pre = "<pre><code><div>a</div><div>b</div></code></pre>"
    assert search_index.on_page_content(pre, None, {}, None) == pre
