"""The built site: strict build, every internal link and anchor resolves, nothing is loaded from another host."""

from __future__ import annotations

import html as html_module
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

# Vendored libraries (KaTeX, Mermaid, Pyodide) are checked for presence, not crawled.
SKIP_DIRS = ("assets/vendor/",)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag/attr, url)
        self.resources: list[tuple[str, str]] = []  # things the browser loads by itself

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.ids.add(a[key])
        if tag == "a" and a.get("href"):
            self.links.append(("a", a["href"]))
        if tag in ("img", "script", "iframe", "source", "audio", "video") and a.get("src"):
            self.resources.append((tag, a["src"]))
            self.links.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            rel = (a.get("rel") or "").lower()
            if any(r in rel for r in ("stylesheet", "icon", "preload", "modulepreload", "manifest")):
                self.resources.append(("link", a["href"]))
            if rel not in ("canonical", "alternate"):
                self.links.append(("link", a["href"]))
        if tag == "object" and a.get("data"):
            self.resources.append(("object", a["data"]))


def _pages(site: Path):
    for html in sorted(site.rglob("*.html")):
        rel = html.relative_to(site).as_posix()
        if not rel.startswith(SKIP_DIRS):
            yield rel, html


def _parse(html: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(html.read_text(encoding="utf-8"))
    return parser


def _page_url(rel: str) -> str:
    # site/ch03/index.html is served at /ch03/
    return "/" + (rel[: -len("index.html")] if rel.endswith("index.html") else rel)


def _target_file(site: Path, path: str) -> Path | None:
    candidate = site / unquote(path).lstrip("/")
    if candidate.is_dir():
        candidate = candidate / "index.html"
    return candidate if candidate.exists() else None


def test_strict_build_passes(site_build):
    assert site_build.returncode == 0, site_build.log[-4000:]
    assert "WARNING" not in site_build.log, site_build.log


def test_both_languages_built(site_dir):
    assert (site_dir / "index.html").exists()
    assert (site_dir / "en" / "index.html").exists()
    zh = (site_dir / "index.html").read_text(encoding="utf-8")
    en = (site_dir / "en" / "index.html").read_text(encoding="utf-8")
    assert '<html lang="zh"' in zh
    assert '<html lang="en"' in en


def test_internal_links_and_anchors_resolve(site_dir):
    parsed = {rel: _parse(path) for rel, path in _pages(site_dir)}
    ids_by_file = {(site_dir / rel).resolve(): p.ids for rel, p in parsed.items()}
    broken = []
    for rel, parser in parsed.items():
        base = "http://site" + _page_url(rel)
        for tag, link in parser.links:
            url = urlsplit(urljoin(base, link))
            if url.scheme not in ("http", "https") or url.netloc != "site":
                continue  # an external link (allowed as a link, never as a resource) or mailto:
            target = _target_file(site_dir, url.path)
            if target is None:
                broken.append(f"{rel}: {tag} -> {link} (no such file)")
                continue
            fragment = unquote(url.fragment)
            if fragment and target.suffix == ".html":
                ids = ids_by_file.get(target.resolve())
                if ids is None:
                    ids = _parse(target).ids
                if fragment not in ids:
                    broken.append(f"{rel}: {tag} -> {link} (no id '{fragment}' in {target.relative_to(site_dir)})")
    assert not broken, "\n".join(broken[:50])


def test_no_resource_from_another_host(site_dir):
    offenders = []
    for rel, path in _pages(site_dir):
        for tag, src in _parse(path).resources:
            if urlsplit(src).scheme in ("http", "https") or src.startswith("//"):
                offenders.append(f"{rel}: <{tag}> {src}")
    assert not offenders, "\n".join(offenders[:50])


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)


def test_no_inline_script_names_another_host(site_dir):
    # e.g. nbconvert's template imports mermaid from cdnjs at run time (removed by hooks/notebooks.py).
    offenders = []
    for rel, path in _pages(site_dir):
        for script in INLINE_SCRIPT.findall(path.read_text(encoding="utf-8")):
            offenders += [f"{rel}: {url}" for url in re.findall(r"https?://[^\s\"'`)]+", script)]
    assert not offenders, "\n".join(offenders[:50])


@pytest.mark.parametrize(
    "vendored",
    [
        "assets/vendor/katex/katex.min.js",
        "assets/vendor/katex/katex.min.css",
        "assets/vendor/mermaid/mermaid.min.js",
        "assets/vendor/pyodide/pyodide.mjs",
        "assets/vendor/pyodide/pyodide.asm.wasm",
        "assets/vendor/pyodide/python_stdlib.zip",
    ],
)
def test_vendored_assets_are_served_locally(site_dir, vendored):
    assert (site_dir / vendored).stat().st_size > 0


def test_no_css_font_from_another_host(site_dir):
    # Material's Google Fonts are off (theme.font: false); KaTeX's fonts are relative to its CSS.
    for css in site_dir.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, css
        for chunk in text.split("url(")[1:]:
            url = chunk.split(")", 1)[0].strip("'\" ")
            assert not url.startswith(("http://", "https://", "//")), f"{css}: {url}"


def test_no_markdown_emphasis_left_unrendered(site_dir):
    """A `**` that reaches the reader is a bold that did not render: in Chinese, a closing `**` after punctuation
    (`**标题。**正文`) is not right-flanking, so CommonMark leaves both markers as text. Code, maths and scripts aside."""
    left = []
    for rel, path in _pages(site_dir):
        html = re.sub(r"<(code|pre|script|style|math)\b.*?</\1>", "", path.read_text(encoding="utf-8"), flags=re.S)
        html = re.sub(r'<div class="clipboard-copy-txt".*?</div>', "", html, flags=re.S)  # a notebook cell's copy text
        text = re.sub(r"<[^>]+>", "", html)
        left += [f"{rel}: …{m.group()}…" for m in re.finditer(r".{0,20}\*\*.{0,20}", text)]
    assert not left, "\n".join(left[:20])


def test_no_fraction_glyph(site_dir):
    """pymdownx.smartsymbols would turn "1/2", "1/3", "2/3" … into ½, ⅓, ⅔ (&frac12; …) wherever they stand: "cut to
    1/2.6" reached readers as "½.6", "EAGLE-1/2/3" as "EAGLE-½/3", "Gemma 2/3" as "Gemma ⅔". mkdocs.yml turns
    that off; no page may carry a vulgar-fraction glyph, from that extension or typed."""
    glyphs = "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒↉"
    found = []
    for rel, path in _pages(site_dir):
        text = html_module.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))
        found += [f"{rel}: …{m.group()}…" for m in re.finditer(rf".{{0,20}}[{glyphs}].{{0,20}}", text)]
    assert not found, "\n".join(found[:20])
