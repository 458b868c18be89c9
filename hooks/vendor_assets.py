"""Copy the browser libraries the site serves itself from node_modules into the built site.

The book makes no request to any other host at run time, so KaTeX, Mermaid and Pyodide are served from
`site/assets/vendor/`. They come from the npm packages pinned in package.json (`npm ci`), and are copied
after each build rather than committed. With mkdocs-static-i18n the English pages are built into the same
site_dir (under en/) and load assets from the root, so one copy serves both languages.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError

log = logging.getLogger("mkdocs.hooks.vendor_assets")

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"

# (source under node_modules, destination under site/assets/vendor). Directories are copied whole.
VENDOR_FILES = [
    ("katex/dist/katex.min.js", "katex/katex.min.js"),
    ("katex/dist/katex.min.css", "katex/katex.min.css"),
    ("katex/dist/contrib/auto-render.min.js", "katex/contrib/auto-render.min.js"),
    ("katex/dist/fonts", "katex/fonts"),
    ("mermaid/dist/mermaid.min.js", "mermaid/mermaid.min.js"),
    # Pyodide core: the loader, the WebAssembly module and the standard library. calc/ needs no other package.
    ("pyodide/pyodide.mjs", "pyodide/pyodide.mjs"),
    ("pyodide/pyodide.asm.mjs", "pyodide/pyodide.asm.mjs"),
    ("pyodide/pyodide.asm.wasm", "pyodide/pyodide.asm.wasm"),
    ("pyodide/python_stdlib.zip", "pyodide/python_stdlib.zip"),
    ("pyodide/pyodide-lock.json", "pyodide/pyodide-lock.json"),
    ("pyodide/package.json", "pyodide/package.json"),
]


def _copy_if_changed(src: Path, dst: Path) -> None:
    if src.is_dir():
        for child in src.iterdir():
            _copy_if_changed(child, dst / child.name)
        return
    if dst.exists() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
        return  # unchanged: `mkdocs serve` rebuilds often, and the Pyodide files are large
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def on_post_build(config, **kwargs):
    vendor_dir = Path(config["site_dir"]) / "assets" / "vendor"
    missing = [src for src, _ in VENDOR_FILES if not (NODE_MODULES / src).exists()]
    if missing:
        raise PluginError(
            "Browser assets are missing from node_modules (" + ", ".join(missing) + "). Run `npm ci` first."
        )
    for src, dst in VENDOR_FILES:
        _copy_if_changed(NODE_MODULES / src, vendor_dir / dst)
