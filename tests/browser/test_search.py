"""The site search in a real browser: each language searches its own pages, and the queries of
tests/browser/search_table.py list the expected page (and section) first.

Runs through the `page` fixture (tests/conftest.py): no request may leave the local host, no console error.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.search_table import SEARCHES

pytestmark = pytest.mark.browser

ROOTS = {"zh": "/", "en": "/en/"}
_PLACEHOLDER = "JSON.parse(document.getElementById('__config').textContent).translations['search.result.placeholder']"
_META = "document.querySelector('.md-search-result__meta').textContent"


def _open_search(page, lang: str) -> None:
    page.goto(page.base + ROOTS[lang])
    page.wait_for_load_state("networkidle")
    page.click("input.md-search__input")


def search(page, query: str) -> list[list[dict]]:
    """Type a query the way a reader does and return the result groups (one per page, in the order shown), each
    a list of its links: {"path", "hash", "score"}."""
    box = page.locator("input.md-search__input")
    # Start from an empty box, so the results read below are this query's and not the previous one's.
    box.fill("")
    page.keyboard.press("End")
    page.wait_for_function(f"() => {_META} === {_PLACEHOLDER} && !document.querySelector('.md-search-result__item')")
    box.fill(query)
    page.keyboard.press("End")  # a key event: Material's search listens for keyboard input
    page.wait_for_function(f"() => {_META} !== {_PLACEHOLDER}")
    groups = page.evaluate("""() => [...document.querySelectorAll('.md-search-result__item')].map(item =>
        [...item.querySelectorAll('a.md-search-result__link')].map(a => ({
            href: a.href, score: Number(a.querySelector('article').dataset.mdScore) })))""")
    return [[{"path": urlsplit(link["href"]).path, "hash": urlsplit(link["href"]).fragment, "score": link["score"]}
             for link in group] for group in groups]


def _leads(groups: list[list[dict]]) -> str:
    """Where the first result leads: its page, and the section of that page that ranks first."""
    if not groups:
        return "(no results)"
    best = max(groups[0], key=lambda link: link["score"])  # the article link comes first; ties keep it
    return best["path"] + (f"#{best['hash']}" if best["hash"] else "")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_search_lists_the_expected_page_first(page, lang):
    root = ROOTS[lang]
    _open_search(page, lang)
    wrong, other_language = [], {}
    for query, where in SEARCHES[lang]:
        groups = search(page, query)
        expected_path, _, expected_hash = (root + where).partition("#")
        leads = _leads(groups)
        got_path, _, got_hash = leads.partition("#")
        if got_path != expected_path or (expected_hash and got_hash != expected_hash):
            wrong.append(f"{query!r}: expected {root}{where}, got {leads}; then "
                         + ", ".join(g[0]["path"] for g in groups[1:4]))
        crossed = {g[0]["path"] for g in groups if (lang == "en") != g[0]["path"].startswith("/en/")}
        if crossed:
            other_language[query] = sorted(crossed)
    problems = [f"{len(wrong)} of {len(SEARCHES[lang])} queries lead elsewhere:", *wrong] if wrong else []
    problems += [f"{q!r} lists the other language's pages: {paths}" for q, paths in other_language.items()]
    assert not problems, "\n".join(problems)


def test_the_table_has_enough_queries_in_each_language():
    assert {lang: len(rows) >= 12 for lang, rows in SEARCHES.items()} == {"zh": True, "en": True}


def test_english_suggestions_and_highlights_use_the_words_of_the_text(page):
    # The index holds stems ("arithmet"); the reader sees words: the suggestion completes "arithm" to a word of
    # the text, and the result links highlight what was typed.
    _open_search(page, "en")
    groups = search(page, "arithm")
    assert groups, "no results while typing 'arithm'"
    page.wait_for_function("document.querySelector('.md-search__suggest').textContent.length > 0")
    assert page.inner_text(".md-search__suggest") == "arithmetic"
    search(page, "quantized")
    hrefs = page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.href)")
    assert any("h=quantized" in h for h in hrefs), hrefs[:3]
