"""What several hooks need: the repo's calc/ and labs/ modules, and the language of a page. Not a hook itself.

MkDocs puts this folder on sys.path while it loads a hook, so a hook imports this module at its top.
"""

from __future__ import annotations

import importlib
import importlib.util
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


def lab_module(name: str):
    """A module of labs/ that needs no torch (e.g. lab_module("describe")), read from disk on every call, so
    `mkdocs serve` shows an edit at once. Loaded by its path: labs/ is not a package, and not put on sys.path."""
    path = Path(ROOT) / "labs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_book_labs_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def page_lang(page) -> str:
    """"zh" or "en": mkdocs-static-i18n's locale of the page, else its folder (docs/en/ is English)."""
    locale = getattr(page.file, "locale", None)
    if locale in ("zh", "en"):
        return locale
    return "en" if page.file.src_uri.startswith("en/") else "zh"
