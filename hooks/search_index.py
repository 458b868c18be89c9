"""One search index per language, and a glossary term's definition listed first when a reader searches for it.

Material's search plugin writes one index, search/search_index.json, and its page script always loads that file;
mkdocs-static-i18n merges both languages' pages into it (it cannot do otherwise: ultrabug/mkdocs-static-i18n#271).
One index for both languages meant English pages listed Chinese ones, and one lunr set-up for both: the English
stemmer ran over the index while Material's wildcard queries skip it, so "arithmetic" found nothing. This hook:

1. splits the merged index into one file per language, each with its own lunr settings (LANGUAGES):
   search/search_index.json holds the Chinese pages, en/search/search_index.json the English ones;
2. points every page's search worker at docs/assets/javascripts/workers/book-search.js with the page's
   language; that script runs Material's own worker on the language's index and handles the query side
   (English stems, Chinese words, the definitions below; see its header);
3. finds where each glossary term is defined: a section where the term is in bold, the book's mark of a
   definition, or whose heading begins with the term. A term that no chapter defines yet is defined by its
   glossary row. The worker lists that section first when the query is the term (config["definitions"]);
4. indexes the glossary table one row per term (its anchor is the row's id), so such a result opens the row.

The glossary is docs/<lang>/glossary.md: a table whose first two columns are the term in the page's language and
in the other one, with `<span id="…"></span>` before the first. hooks/search_terms.py teaches jieba its terms.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from pathlib import Path

from hook_support import page_lang
from mkdocs.plugins import event_priority

LANGS = ("zh", "en")
GLOSSARY_URL = "glossary/"

# lunr settings per language. The separator adds to Material's defaults the punctuation that otherwise sticks to
# a word ("（arithmetic" or "intensity," were indexed tokens): full-width and ASCII brackets, quotes, colons,
# commas, slashes, en and em dashes ("draft–verify" is two words), a full stop not followed by a digit (keeps
# "3.3.3" and "1.5"), HTML entities. Chinese text reaches the index already cut into words by jieba, with U+200B
# between them.
_SEPARATOR = r"[\s\u200b\u3000\-\u2013\u2014、。，．？！；：（）《》〈〉「」『』【】“”‘’,;:!?()\[\]{}\"/|=<>]+|\.(?!\d)|&(?:lt|gt|amp);"
LANGUAGES = {
    # Chinese words are indexed as jieba cut them (lunr's zh "stemmer" leaves a word as it is); the English words
    # in Chinese pages are terms ("prefill", "KV cache") that Material's prefix queries find.
    "zh": {"lang": ["zh"], "separator": _SEPARATOR, "pipeline": ["stemmer"]},
    # English words are indexed as their Porter stems; book-search.js turns each query word into the stems of the
    # index's words that begin with it.
    "en": {"lang": ["en"], "separator": _SEPARATOR, "pipeline": ["stemmer", "stopWordFilter"]},
}

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_SECTION_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*\s+)?(?:(?:the|an?)\s+)?", re.I)  # '3.3 The …' -> '…'
_HEADING = re.compile(r"<h([1-6])[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)
_STRONG = re.compile(r"<strong>(.*?)</strong>", re.S)
_ROW = re.compile(r"<tr>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*<td[^>]*>(.*?)</td>\s*</tr>", re.S)
_ROW_ID = re.compile(r"<span id=\"([^\"]+)\"></span>")
# A closing tag of a cell, a label or a block right before the next tag: Material's search plugin joins the texts
# on both sides ("Draft length</th><td>0.03955" was indexed as "length0.03955"). <pre> blocks are left alone.
_GLUED = re.compile(r"(</(?:td|th|tr|li|dt|dd|label|p|div|h[1-6]|figcaption|caption)>)(?=<)")
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.S)
_WORKER = re.compile(r"(\"search\":\s*\"[^\"]*?)(search\.[0-9a-f]+\.min\.js)\"")

# Gathered while pages render, used when the index is written (both languages' builds run in this process).
_defined_at: dict[str, dict[str, str]] = {lang: {} for lang in LANGS}  # row id -> first defining location
_glossary_rows: dict[str, list[dict]] = {}  # lang -> rows of the rendered glossary table
_nav_order: dict[str, int] = {}  # page URL -> position in its language's navigation
_glossary_md: dict[str, list[dict]] = {}  # lang -> the glossary's rows (id, names), read from its Markdown


def key(text: str) -> str:
    """A term as the worker compares it with a query: NFKC, lower case, letters and digits only.
    "首 token 时间" and "首token时间" give the same key, so do "KV cache" and "kv-cache". Keep in step with
    key() in book-search.js."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower() if ch.isalnum())


def _plain(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def term_names(cell: str) -> list[str]:
    """The names a glossary cell gives a term: the whole cell and its parts, e.g. '多头注意力（MHA）' ->
    ['多头注意力（MHA）', '多头注意力', 'MHA']; single letters and characters (Q, K, 值) are too ambiguous."""
    cell = _plain(cell)
    parts = [cell] + [p.strip() for p in re.split(r"[（）()、，,/]", cell)]
    return [p for p in dict.fromkeys(parts) if len(key(p)) > 1]


def glossary_table(markdown: str) -> list[dict]:
    """The glossary's rows from its Markdown: id and the first two cells (the term in both languages)."""
    rows = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        found = _ROW_ID.search(cells[0]) if line.startswith("|") and len(cells) >= 3 else None
        if found:
            rows.append({"id": found.group(1), "names": term_names(cells[0]) + term_names(cells[1])})
    return rows


def segment_chinese(text: str) -> str:
    """Cut runs of Chinese characters into jieba's words, with U+200B between them, as Material's search plugin
    does for the text it indexes (so a glossary row is indexed like any page text)."""
    import jieba

    def cut(match):
        return "\u200b" + "\u200b".join(jieba.cut(match.group(0))) + "\u200b"

    return _HAN.sub(cut, text).strip("\u200b")


def sections(page_html: str, url: str):
    """(location, heading text, section HTML) for the page's top and each heading with an id, the way Material's
    search plugin divides a page into index entries."""
    marks = list(_HEADING.finditer(page_html))
    starts = [(0, url, "")] + [(m.start(), f"{url}#{m.group(2)}", _plain(m.group(3))) for m in marks]
    # Material's first entry is the page itself, titled by the h1 whether or not the h1 has an id.
    if marks and marks[0].group(1) == "1":
        starts = [(0, url, _plain(marks[0].group(3)))] + starts[2:]
    ends = [s[0] for s in starts[1:]] + [len(page_html)]
    for (start, location, heading), end in zip(starts, ends, strict=True):
        yield location, heading, page_html[start:end]


def _loose(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", _plain(text)).lower().split())


def _begins_with(title: str, name: str) -> bool:
    if not name or not title.startswith(name):
        return False
    rest = title[len(name):]
    # a name that ends in a Latin letter or digit must end a word there ("prefill:" yes, "tokens" for "token" no)
    return not rest or not (name[-1].isascii() and name[-1].isalnum() and rest[0].isascii() and rest[0].isalnum())


def defined_terms(heading: str, body: str, rows: list[dict]) -> list[str]:
    """Ids of the glossary rows this section defines: the term is in bold in it, or its heading begins with the
    term (after the section number and an article: '3.3.1 预填充：…', '3.3 The autoregressive loop'; not
    'Tokens …' for 'token')."""
    bold = {key(_plain(s)) for s in _STRONG.findall(body)}
    title = _loose(_SECTION_NUMBER.sub("", _plain(heading)))
    found = []
    for row in rows:
        names = [_loose(n) for n in row["names"]]
        if any(_begins_with(title, n) for n in names) or bold & {key(n) for n in names}:
            found.append(row["id"])
    return found


def lang_of(location: str) -> str:
    """The language of an index entry: English pages live under en/."""
    return next((lang for lang in LANGS[1:] if location.startswith(f"{lang}/")), LANGS[0])


def _prefix(lang: str) -> str:
    return "" if lang == LANGS[0] else f"{lang}/"


def on_config(config):
    for lang in LANGS:
        path = Path(config["docs_dir"]) / lang / "glossary.md"
        _glossary_md[lang] = glossary_table(path.read_text(encoding="utf-8")) if path.exists() else []
    return config


def on_pre_build(config):
    # `mkdocs serve` rebuilds in this process: forget the last build's definitions for the language now built
    language = config.theme["language"]
    if language in LANGS:
        _defined_at[language] = {}
        _glossary_rows.pop(language, None)


def on_nav(nav, config, files):
    for i, page in enumerate(nav.pages):
        _nav_order[page.url] = i
    return nav


@event_priority(-100)  # after the hooks that write HTML (calculators), before Material's search plugin reads it
def on_page_content(content, page, config, files):
    """A space after a closing cell, label or block tag that the next tag follows directly, so that the search
    index sees separate words; whitespace between such tags does not change how the page renders."""
    parts = _PRE.split(content or "")
    return "".join(part if i % 2 else _GLUED.sub(r"\1 ", part) for i, part in enumerate(parts))


@event_priority(-50)  # after Material's search plugin has indexed the page
def on_page_context(context, page, config, nav):
    lang = page_lang(page)
    content = page.content or ""
    if page.url == _prefix(lang) + GLOSSARY_URL:
        _glossary_rows[lang] = [
            {"id": m.group(1), "term": _plain(first), "other": _plain(second), "definition": definition.strip()}
            for first, second, definition in _ROW.findall(content) if (m := _ROW_ID.search(first))
        ]
        return context
    rows = _glossary_md.get(lang, [])
    order = _nav_order.get(page.url, len(_nav_order))
    for location, heading, body in sections(content, page.url):
        for row_id in defined_terms(heading, body, rows):
            current = _defined_at[lang].get(row_id)
            # the first definition in reading order: navigation order, then order within the page
            if current is None or _nav_order.get(current.split("#")[0], 1 << 30) > order:
                _defined_at[lang][row_id] = location
    return context


def _point_worker(output: str, lang: str) -> str:
    """The page's search worker becomes book-search.js for its language, next to Material's worker."""
    return _WORKER.sub(lambda m: f'{m.group(1)}book-search.js?lang={lang}&worker={m.group(2)}"', output, count=1)


def on_post_page(output, page, config):
    return _point_worker(output, page_lang(page))


def on_post_template(output_content, template_name, config):
    # 404.html is a template, not a page: it takes the language of the build that renders it
    language = config.theme["language"]
    return _point_worker(output_content, language if language in LANGS else LANGS[0])


def _glossary_entries(lang: str, prefix: str) -> list[dict]:
    entries = []
    for row in _glossary_rows.get(lang, []):
        # As Material indexes text: HTML-escaped, and of the markup only <code> (result teasers render it).
        definition = re.sub(r"<(?!/?code\b)[^>]*>", "", row["definition"])
        entries.append({
            "location": f"{prefix}{GLOSSARY_URL}#{row['id']}",
            "title": segment_chinese(html.escape(row["term"], quote=False)),
            "text": segment_chinese(f"{html.escape(row['other'], quote=False)} · {definition}"),
        })
    return entries


def language_index(index: dict, lang: str) -> dict:
    """The merged index's entries for one language, with the glossary table one entry per row and the
    definitions map for book-search.js."""
    prefix = _prefix(lang)
    out = []
    for doc in index["docs"]:
        if lang_of(doc["location"]) != lang:
            continue
        if doc["location"] == f"{prefix}{GLOSSARY_URL}#terms" and _glossary_rows.get(lang):
            out.append({**doc, "text": ""})  # the table's rows follow as entries of their own
            out.extend(_glossary_entries(lang, prefix))
        else:
            out.append(doc)
    definitions = {}
    for row in _glossary_md.get(lang, []):
        location = _defined_at[lang].get(row["id"]) or f"{prefix}{GLOSSARY_URL}#{row['id']}"
        for name in row["names"]:
            definitions.setdefault(key(name), location)
    config = {**index["config"], **LANGUAGES[lang], "definitions": definitions}
    return {"config": config, "docs": out}


@event_priority(-200)  # after mkdocs-static-i18n (-100) has merged both languages' entries into the index
def on_post_build(config):
    site = Path(config["site_dir"])
    path = site / "search" / "search_index.json"
    if not path.exists():
        return
    index = json.loads(path.read_text(encoding="utf-8"))
    # mkdocs-static-i18n builds the English pages inside the Chinese build's post_build, so this runs twice: after
    # the English build (only English entries) and at the end (both). Each run writes what it has.
    for lang in LANGS:
        result = language_index(index, lang)
        if result["docs"]:
            target = site / _prefix(lang) / "search" / "search_index.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(result, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
