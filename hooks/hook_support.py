"""What several hooks need: the repo's calc/ and the language of a page. Not a hook itself.

MkDocs puts this folder on sys.path while it loads a hook, so a hook imports this module at its top.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)


def calc_modules(*names: str) -> tuple:
    """calc's submodules by name, e.g. calc_modules("api", "registry"), from this repo (also without
    `pip install -e`). Called at build time, not at load time: MkDocs restores sys.path after loading hooks."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return tuple(importlib.import_module(f"calc.{name}") for name in names)


def fresh_calc_modules(*names: str) -> tuple:
    """The same, re-imported from disk: `mkdocs serve` rebuilds in one process, and an edit to calc/ or its
    data must show in the next build."""
    for name in [m for m in sys.modules if m == "calc" or m.startswith("calc.")]:
        del sys.modules[name]
    return calc_modules(*names)


def page_lang(page) -> str:
    """"zh" or "en": mkdocs-static-i18n's locale of the page, else its folder (docs/en/ is English)."""
    locale = getattr(page.file, "locale", None)
    if locale in ("zh", "en"):
        return locale
    return "en" if page.file.src_uri.startswith("en/") else "zh"
