"""The book in a real browser: chapter 3 in both languages, the language switcher, mermaid (search: test_search.py).

Every test runs through the `page` fixture (tests/conftest.py), which fails the test if the page requests
any other host, gets an HTTP error from the local server, or logs a console error.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import reader

pytestmark = pytest.mark.browser


def _open(page, path: str) -> None:
    page.goto(page.base + path)
    page.wait_for_load_state("networkidle")


def _click_link(page, href_suffix: str) -> None:
    """Click the first visible in-site link whose href ends with href_suffix (tabs, sidebar or content)."""
    reader.click(page, page.locator(f"a[href$='{href_suffix}']:visible").first)


def _switch_language(page, lang: str) -> None:
    page.hover(".md-header__option .md-select")
    page.click(f".md-select__link[hreflang={lang}]")
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize(
    "path, lang, title",
    [("/ch03/", "zh", "LLM 推理原理"), ("/en/ch03/", "en", "How LLM Inference Works")],
)
def test_chapter3_renders(page, path, lang, title):
    _open(page, path)
    assert page.get_attribute("html", "lang") == lang
    h1 = page.locator("article h1").first.inner_text()
    assert title in h1
    # The chapter's sections 3.1–3.6 are all there, with their ids.
    ids = page.eval_on_selector_all("article h2[id]", "els => els.map(e => e.id)")
    assert len(ids) >= 6, ids
    # Math is typeset by the local KaTeX.
    if page.locator(".arithmatex").count():
        page.wait_for_selector(".arithmatex .katex", timeout=10_000)


def test_mermaid_diagram_renders_to_svg(page):
    # Material draws each diagram into a closed shadow root; open it for the test so the SVG can be inspected.
    page.add_init_script(
        "const attach = Element.prototype.attachShadow;"
        "Element.prototype.attachShadow = function (init) { return attach.call(this, {...init, mode: 'open'}); };"
    )
    _open(page, "/ch03/")
    page.wait_for_selector(".mermaid svg", timeout=15_000)
    svg = page.locator(".mermaid svg").first
    assert svg.bounding_box()["height"] > 50
    text = svg.text_content()
    assert "Syntax error" not in text
    assert "预填充" in text or "prefill" in text.lower(), text[:300]  # the flow's own labels, not an error box


@pytest.mark.parametrize(
    "path, label",
    [("/ch02/", "观察到的症状"), ("/en/ch02/", "Observed symptom")],
)
def test_chapter2_decision_tree_renders_in_both_languages(page, path, label):
    # Figure 2-2 is a larger flowchart than chapter 3's, with Chinese labels on the Chinese page.
    page.add_init_script(
        "const attach = Element.prototype.attachShadow;"
        "Element.prototype.attachShadow = function (init) { return attach.call(this, {...init, mode: 'open'}); };"
    )
    _open(page, path)
    page.wait_for_selector(".mermaid svg", timeout=15_000)
    svg = page.locator(".mermaid svg").first
    assert svg.bounding_box()["height"] > 200
    text = svg.text_content()
    assert "Syntax error" not in text
    assert label in text, text[:300]


@pytest.mark.parametrize("path, lang", [("/ch02/", "zh"), ("/en/ch02/", "en")])
def test_chapter2_prefill_figure_loads_in_its_language(page, path, lang):
    # Figure 2-1 (measured vs calc prefill) is an SVG from docs/assets/figures, in the page's language, with its
    # provenance line linking the data file underneath.
    _open(page, path)
    img = page.locator(f"article img[src*='ch02-prefill-reference_{lang}.svg']")
    assert img.count() == 1
    img.scroll_into_view_if_needed()
    page.wait_for_function(
        "src => { const i = document.querySelector(`article img[src*='${src}']`); return i && i.complete && i.naturalWidth > 0; }",
        arg=f"ch02-prefill-reference_{lang}.svg", timeout=10_000)
    assert img.bounding_box()["width"] > 300
    assert page.locator("p.provenance a[href*='ch02-prefill-reference.json']").count() == 1


def test_mermaid_loads_only_where_a_diagram_is_and_after_instant_navigation(page):
    requested = []
    page.on("request", lambda r: "mermaid.min.js" in r.url and requested.append(r.url))
    _open(page, "/")
    assert requested == []  # no diagram, no 3 MB of mermaid
    page.evaluate("window.__sameDocument = true")
    _click_link(page, "ch02/")  # instant navigation, from the contents table, to chapter 2's decision tree
    page.wait_for_url(re.compile(r"/ch02/$"))
    page.wait_for_function("document.querySelector('.mermaid') && document.querySelector('.mermaid').getBoundingClientRect().height > 50")
    assert page.evaluate("window.__sameDocument === true")
    assert len(requested) == 1 and requested[0].startswith(page.base)


def test_switcher_keeps_the_page_after_in_site_navigation(page):
    _open(page, "/")
    page.evaluate("window.__sameDocument = true")
    # Instant navigation: the header is not re-rendered, so this is the case that used to break.
    _click_link(page, "ch03/")
    page.wait_for_url(re.compile(r"/ch03/$"))
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.__sameDocument === true"), "the click reloaded the page: no instant navigation"
    _switch_language(page, "en")
    assert page.url == page.base + "/en/ch03/"
    assert page.get_attribute("html", "lang") == "en"
    # And back, again after an in-site navigation in English.
    _click_link(page, "glossary/")
    page.wait_for_url(re.compile(r"/en/glossary/$"))
    _switch_language(page, "zh")
    assert page.url == page.base + "/glossary/"
    assert page.get_attribute("html", "lang") == "zh"


def test_a_link_clicked_while_scrolling_opens_the_next_page_at_its_top(page):
    # Material saves the scroll offset 100 ms after the last scroll (debounced). A click sooner, with a next
    # page slower than that to arrive, used to open the next page at the old page's offset
    # (docs/assets/js/instant-scroll.js). The glossary is held back 400 ms to make the timing certain.
    def slow(route):
        time.sleep(0.4)
        route.continue_()

    _open(page, "/ch03/")
    page.evaluate("window.__sameDocument = true")
    page.route(re.compile(r"/glossary/$"), slow)
    page.evaluate("""() => { window.scrollTo(0, 3000);
                             document.querySelector("a[href$='glossary/']").click(); }""")
    page.wait_for_url(re.compile(r"/glossary/$"))
    page.wait_for_function("document.querySelector('article h1') && location.pathname.endsWith('/glossary/')"
                           " && document.title.length > 0")
    page.wait_for_timeout(300)  # past Material's 100 ms debounce and its scroll restoration
    assert page.evaluate("window.__sameDocument === true")  # instant navigation, not a reload
    assert page.evaluate("window.scrollY") == 0


def test_back_returns_to_where_the_reader_was(page):
    # The other half of Material's scroll restoration, which docs/assets/js/instant-scroll.js must leave alone.
    _open(page, "/ch03/")
    page.evaluate("window.__sameDocument = true")
    page.evaluate("window.scrollTo(0, 3000)")
    page.wait_for_function(reader.RECORDED)
    page.evaluate("""() => document.querySelector("a[href$='glossary/']").click()""")
    page.wait_for_url(re.compile(r"/glossary/$"))
    page.wait_for_function("window.scrollY === 0")
    page.go_back()
    page.wait_for_url(re.compile(r"/ch03/$"))
    # Material scrolls back to the saved 3000 px; the diagram above, rendered again, may then push the text down.
    page.wait_for_function("window.scrollY >= 2990 && window.scrollY < 3600")
    assert page.evaluate("window.__sameDocument === true")


def test_switcher_keeps_the_section(page):
    _open(page, "/ch03/")
    section = page.eval_on_selector_all("article h2[id]", "els => els.map(e => e.id)")[2]
    _click_link(page, f"#{section}")
    page.wait_for_function(f"location.hash === '#{section}'")
    _switch_language(page, "en")
    assert page.url == page.base + f"/en/ch03/#{section}"


@pytest.mark.parametrize("path", ["/ch03/practice/", "/en/ch03/practice/"])
def test_notebook_page_renders_with_its_outputs(page, path):
    # mkdocs-jupyter output, rendered in both languages (hooks/notebooks.py) with its saved CPU outputs.
    _open(page, path)
    assert page.locator(".jp-CodeCell").count() >= 3
    assert page.locator(".jp-OutputArea-output").count() >= 3
    assert "{" not in page.locator("article h1").first.inner_text()  # a page, not the raw .ipynb JSON
