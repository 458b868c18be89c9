"""calc/ for the browser: the archives the calculators' Web Worker loads, compiled for Pyodide's CPython. Not a
hook itself: hooks/calculators.py calls it once per build (MkDocs puts this folder on sys.path while it loads a
hook).

- calc_archive(): calc/ as a zip, every .py and .json under it (sources and data; a new module is in it by
  being there), byte-for-byte reproducible;
- compile_for_pyodide(archive): runs Pyodide under Node (pyodide_bundle.mjs, which runs pyodide_compile.py
  inside Pyodide) to make
  - calc-<hash>.zip: the calc package (sources, data, and bytecode in __pycache__), which the worker unpacks
    into site-packages;
  - python_stdlib-<hash>.zip: Pyodide's standard library with the modules that start-up and calc import as
    bytecode. Pyodide ships the stdlib as .py sources, so each start would compile ~200 modules in
    WebAssembly; compiled once here instead (by Pyodide itself, so the bytecode is exactly its CPython's),
    Python starts in about half the time. Every other module stays a source file: still there.
  Both are named by their content and cached in node_modules/.cache/calculators/; Node runs (a few seconds)
  only when calc, Pyodide or these programs changed;
- package_lock(): Pyodide's package index with no packages (calc loads none), which spares the browser
  fetching and parsing the full one (120 kB).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
CALC_DIR = ROOT / "calc"
PYODIDE_DIR = ROOT / "node_modules" / "pyodide"
CACHE_DIR = ROOT / "node_modules" / ".cache" / "calculators"
NODE_PROGRAM = Path(__file__).resolve().parent / "pyodide_bundle.mjs"
PYODIDE_PROGRAM = Path(__file__).resolve().parent / "pyodide_compile.py"  # run by NODE_PROGRAM, inside Pyodide

log = logging.getLogger("mkdocs.hooks.calculators")


def calc_archive() -> bytes:
    """calc/ as a zip (sources and data, fixed timestamps: the same tree gives the same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(CALC_DIR.rglob("*")):
            rel = path.relative_to(CALC_DIR.parent).as_posix()
            if not path.is_file() or "__pycache__" in path.parts or path.suffix not in (".py", ".json"):
                continue
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def digest(*parts: bytes) -> str:
    """12 hex digits naming some content (file names, cache keys)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:12]


def compile_for_pyodide(source: bytes) -> dict:
    """{"calc": name, "stdlib": name} of the compiled archives in CACHE_DIR, each named by its content hash.
    Runs Node (a few seconds) only when calc, Pyodide or the compile programs changed since the last build."""
    stdlib = PYODIDE_DIR / "python_stdlib.zip"
    if not stdlib.exists():
        raise PluginError("node_modules/pyodide is missing: run `npm ci` first.")
    key = digest(source, stdlib.read_bytes(), (PYODIDE_DIR / "package.json").read_bytes(), NODE_PROGRAM.read_bytes(),
                 PYODIDE_PROGRAM.read_bytes())
    manifest = CACHE_DIR / f"build-{key}.json"
    if manifest.exists():
        names = json.loads(manifest.read_text())
        if all((CACHE_DIR / n).exists() for n in names.values()):
            os.utime(manifest)
            return names
    node = shutil.which("node")
    if node is None:
        raise PluginError("the calculators need Node.js (the one `npm ci` used) to compile Python for Pyodide")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "calc.zip").write_bytes(source)
        outs = {"stdlib": tmp / "stdlib.out", "calc": tmp / "calc.out"}
        proc = subprocess.run([node, str(NODE_PROGRAM), PYODIDE_DIR.as_posix(), str(stdlib), str(tmp / "calc.zip"),
                               str(outs["stdlib"]), str(outs["calc"])], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not all(p.exists() for p in outs.values()):
            raise PluginError(f"compiling Python for Pyodide failed:\n{proc.stderr[-3000:]}")
        names = {}
        for kind, prefix in (("calc", "calc"), ("stdlib", "python_stdlib")):
            data = outs[kind].read_bytes()
            names[kind] = f"{prefix}-{digest(data)}.zip"
            (CACHE_DIR / names[kind]).write_bytes(data)
    manifest.write_text(json.dumps(names))
    log.info("calculators: compiled calc and Pyodide's stdlib for the browser (%s, %s)", names["calc"], names["stdlib"])
    # keep the cache small: the newest few builds
    for old in sorted(CACHE_DIR.glob("build-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[4:]:
        old.unlink(missing_ok=True)
    keep = {n for m in CACHE_DIR.glob("build-*.json") for n in json.loads(m.read_text()).values()}
    for old in CACHE_DIR.glob("*.zip"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return names


def package_lock() -> tuple[str, bytes]:
    """(file name, bytes) of Pyodide's package index with no packages: calc loads none."""
    lock_file = json.loads((PYODIDE_DIR / "pyodide-lock.json").read_text(encoding="utf-8"))
    lock = json.dumps({"info": lock_file["info"], "packages": {}}, sort_keys=True).encode()
    return f"pyodide-lock-{digest(lock)}.json", lock
