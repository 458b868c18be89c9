"""Runs inside Pyodide, under Node (hooks/pyodide_bundle.mjs), never in the build's own CPython: compiles calc/
and the standard library modules it needs to bytecode for the browser's CPython.

Imports calc.web and computes a view of every calculator (valid and invalid inputs, both languages), so every
module the browser will import is imported here; then notes each stdlib module that was, and writes
- /tmp/calc.out: calc's sources and data (from /tmp/calc.zip), plus __pycache__/<module>.<cache_tag>.pyc for
  each module;
- /tmp/stdlib.out: Pyodide's python_stdlib.zip (from /tmp/stdlib.zip) with those modules as bytecode (.pyc
  only) and every other module left as source (still importable, compiled only if something imports it).
Unchecked hash-based pycs (PEP 552) are used as they are; fixed timestamps make the output reproducible.
"""

import importlib.util
import json
import marshal
import posixpath
import sys
import zipfile

import calc.web as web
from calc import api

for command in api.COMMANDS:
    for lang in ("zh", "en"):
        web.view_json(json.dumps({"command": command, "params": {}, "lang": lang}))
        web.view_json(json.dumps({"command": command, "params": {"batch": "-1", "config": "{"}, "lang": lang}))
web.view("memory", {"config": json.dumps({"model_type": "llama"})}, "en")
zip_prefix = next(p for p in sys.path if p.endswith(".zip")) + "/"  # /lib/python3XX.zip
used = set()
for module in list(sys.modules.values()):
    origin = getattr(getattr(module, "__spec__", None), "origin", None) or ""
    if origin.startswith(zip_prefix) and origin.endswith(".py"):
        used.add(origin[len(zip_prefix):])


def pyc(data, name):
    code = compile(data, name, "exec", dont_inherit=True)
    return (importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(data)
            + marshal.dumps(code))


def entry(name, info):
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.external_attr = info.external_attr
    return zi


with zipfile.ZipFile("/tmp/stdlib.zip") as src, \
        zipfile.ZipFile("/tmp/stdlib.out", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
    for info in src.infolist():
        data, name = src.read(info), info.filename
        if name in used:
            out.writestr(entry(name[:-3] + ".pyc", info), pyc(data, name))
        else:
            out.writestr(entry(name, info), data)
with zipfile.ZipFile("/tmp/calc.zip") as src, \
        zipfile.ZipFile("/tmp/calc.out", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
    for info in src.infolist():
        data, name = src.read(info), info.filename
        out.writestr(entry(name, info), data)
        if name.endswith(".py"):
            head, tail = posixpath.split(name)
            cached = posixpath.join(head, "__pycache__", f"{tail[:-3]}.{sys.implementation.cache_tag}.pyc")
            out.writestr(entry(cached, info), pyc(data, name))
