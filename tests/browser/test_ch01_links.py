"""Chapter 1's prefilled calculator links open the calculator with the link's inputs in the form.

(tests/test_ch01.py checks that calc accepts those inputs; test_calculators.py checks that a URL's inputs are
what the live calculator computes with.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

pytestmark = pytest.mark.browser

PAGE = Path(__file__).resolve().parents[2] / "docs" / "zh" / "ch01" / "index.md"
LINK = re.compile(r"\]\(\.\./calculators/(\w+)\.md\?([^)\s]+)\)")


def test_chapter_links_fill_the_form(page):
    links = sorted({(m.group(1), m.group(2)) for m in LINK.finditer(PAGE.read_text(encoding="utf-8"))})
    assert links
    for name, query in links:
        for lang_prefix in ("/", "/en/"):
            page.goto(f"{page.base}{lang_prefix}calculators/{name}/?{query}", wait_until="domcontentloaded")
            for field, value in parse_qsl(urlsplit("?" + query).query):
                assert page.input_value(f".calc [data-testid='{field}']") == value, (name, field)
