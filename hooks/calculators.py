"""The calculators: expand `{{ calculator … }}` lines into a form prerendered by calc/ in CPython, and ship calc/
to the browser, where a module Web Worker runs the same code under the site's own Pyodide.

    {{ calculator vram }}                                             the full calculator (a calculator page)
    {{ calculator vram full }}                                        the same, explicitly
    {{ calculator vram compact model=llama-3.1-70b weights=fp8 }}     a compact one in a chapter (the default
                                                                      mode when parameters are given)

The first word names the calculator (vram, performance, cost, roi: the pages under calculators/); the
parameters are the CLI's flag names without dashes, and become the form's defaults. Each widget shows the
result for its defaults at once (computed here, at build time, by calc.web.view — the very function the
browser calls), then goes live when Python is ready. A full calculator keeps its inputs in the URL query.

Build outputs (site/assets/calc/):
- calc-<hash>.zip: the calc package (sources, data, and bytecode in __pycache__), which the worker unpacks
  into site-packages;
- python_stdlib-<hash>.zip: Pyodide's standard library as bytecode. Pyodide ships the stdlib as .py
  sources, so every start-up would compile ~200 modules in WebAssembly; compiled once here instead (by
  Pyodide itself under Node, so the bytecode is exactly its CPython's), Python starts in about half the time.
Both are compiled in the background while the pages build, and cached in node_modules/.cache/calculators/
(the stdlib once per Pyodide version, calc whenever it changes).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parent.parent

log = logging.getLogger("mkdocs.hooks.calculators")

CALC_DIR = ROOT / "calc"
PYODIDE_DIR = ROOT / "node_modules" / "pyodide"
CACHE_DIR = ROOT / "node_modules" / ".cache" / "calculators"
WORKER_JS = ROOT / "docs" / "assets" / "js" / "calculators" / "worker.js"
ASSET_DIR = "assets/calc"  # under site_dir

SNIPPET = re.compile(r"^(?P<indent>[ \t]{0,3})\{\{\s*calculator\s+(?P<body>[^{}]*?)\s*\}\}\s*$")
LEFTOVER = re.compile(r"\{\{\s*calculator\b")
FENCE = re.compile(r"^\s*(```|~~~)")
SLOT = '<div data-calc-slot="{n}"></div>'
SLOT_RE = re.compile(r'(?:<p>)?<div data-calc-slot="(\d+)"></div>(?:</p>)?')

# Inputs shown under "more inputs" (collapsed): engine and efficiency assumptions.
ADVANCED = {"overhead-gib", "gpu-memory-utilization", "block-size", "max-model-len", "max-num-batched-tokens",
            "mem-efficiency", "compute-efficiency"}

UI = {
    "zh": {
        "more": "更多参数（引擎与效率假设）",
        "config": "或粘贴 config.json（填写后优先于模型预设）",
        "results": "结果",
        "quantity": "项目", "value": "数值", "binary": "二进制单位",
        "details": "全部输出",
        "loading": "显示的是构建时算好的默认结果。正在浏览器中载入 Python，就绪后修改输入即可实时重算……",
        "open": "在完整计算器中打开",
        "chart": "图",
        "noscript": "启用 JavaScript 后可修改输入并实时计算；下面是默认输入的结果。",
    },
    "en": {
        "more": "More inputs (engine and efficiency assumptions)",
        "config": "Or paste a config.json (overrides the model preset)",
        "results": "Results",
        "quantity": "Quantity", "value": "Value", "binary": "Binary units",
        "details": "All outputs",
        "loading": "Showing the result for the default inputs, computed at build time. "
                   "Loading Python in your browser; then any change recomputes live…",
        "open": "Open in the full calculator",
        "chart": "Chart",
        "noscript": "Enable JavaScript to change the inputs; below is the result for the default inputs.",
    },
}

_state: dict = {}


# ---------------------------------------------------------------------------------------------------------
# calc, fresh on every build (mkdocs serve rebuilds in the same process), from the repo (also without `pip -e`)


def _calc():
    for name in [m for m in sys.modules if m == "calc" or m.startswith("calc.")]:
        del sys.modules[name]
    if str(ROOT) not in sys.path:  # MkDocs restores sys.path after loading the hooks
        sys.path.insert(0, str(ROOT))
    from calc import api, web

    return api, web


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


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:12]


# Compiles Python sources to bytecode inside Pyodide under Node, so the magic number and the bytecode are
# exactly those of the browser's CPython. Unchecked hash-based pycs (PEP 552) are used as they are. Each job:
# [source zip, output zip, mode]; "stdlib": every .py becomes a sourceless .pyc (what zipimport loads);
# "package": the sources stay and __pycache__/<name>.<cache_tag>.pyc is added next to them. Deterministic.
NODE_COMPILE = r"""
import { loadPyodide } from "%(pyodide_mjs)s";
import fs from "node:fs";
const jobs = JSON.parse(process.argv[2]);
const py = await loadPyodide({ indexURL: "%(index_url)s", stdout: () => {}, stderr: (s) => console.error(s) });
for (const [src, out, mode] of jobs) {
  py.FS.writeFile("/tmp/in.zip", fs.readFileSync(src));
  py.globals.set("mode", mode);
  py.runPython(`
import importlib.util, marshal, posixpath, sys, zipfile
def pyc(data, name):
    code = compile(data, name, "exec", dont_inherit=True)
    return importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(data) + marshal.dumps(code)
def entry(name, info):
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.external_attr = info.external_attr
    return zi
src = zipfile.ZipFile("/tmp/in.zip")
with zipfile.ZipFile("/tmp/out.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
    for info in src.infolist():
        data, name = src.read(info), info.filename
        if name.endswith(".py") and mode == "stdlib":
            out.writestr(entry(name[:-3] + ".pyc", info), pyc(data, name))
            continue
        out.writestr(entry(name, info), data)
        if name.endswith(".py"):
            head, tail = posixpath.split(name)
            cached = posixpath.join(head, "__pycache__", f"{tail[:-3]}.{sys.implementation.cache_tag}.pyc")
            out.writestr(entry(cached, info), pyc(data, name))
`);
  fs.writeFileSync(out, py.FS.readFile("/tmp/out.zip"));
}
"""


def _pyodide_key() -> bytes:
    stdlib = PYODIDE_DIR / "python_stdlib.zip"
    if not stdlib.exists():
        raise PluginError("node_modules/pyodide is missing: run `npm ci` first.")
    return _digest(stdlib.read_bytes(), (PYODIDE_DIR / "package.json").read_bytes(), NODE_COMPILE.encode()).encode()


class Compiler:
    """Runs NODE_COMPILE for the zips not in the cache yet, in the background while the pages build."""

    def __init__(self, jobs: list[tuple[bytes | Path, Path, str]]):
        self.jobs = [(src, target, mode) for src, target, mode in jobs if not target.exists()]
        self.proc = None
        self.tmp = None
        if not self.jobs:
            return
        node = shutil.which("node")
        if node is None:
            raise PluginError("hooks/calculators.py needs Node.js (the one `npm ci` used) to compile Python for Pyodide")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.TemporaryDirectory()
        tmp = Path(self.tmp.name)
        script = tmp / "compile.mjs"
        script.write_text(NODE_COMPILE % {"pyodide_mjs": (PYODIDE_DIR / "pyodide.mjs").as_posix(),
                                          "index_url": PYODIDE_DIR.as_posix() + "/"})
        args = []
        for i, (src, _target, mode) in enumerate(self.jobs):
            if isinstance(src, bytes):
                (tmp / f"in{i}.zip").write_bytes(src)
                src = tmp / f"in{i}.zip"
            args.append([str(src), str(tmp / f"out{i}.zip"), mode])
        self.proc = subprocess.Popen([node, str(script), json.dumps(args)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def wait(self) -> None:
        if self.proc is None:
            return
        try:
            _, err = self.proc.communicate(timeout=600)
            tmp = Path(self.tmp.name)
            for i, (_, target, _) in enumerate(self.jobs):
                out = tmp / f"out{i}.zip"
                if self.proc.returncode != 0 or not out.exists():
                    raise PluginError(f"compiling Python for Pyodide failed:\n{err[-2000:]}")
                shutil.move(str(out), target)
                log.info("calculators: compiled %s", target.relative_to(ROOT))
        finally:
            self.proc = None
            self.tmp.cleanup()
        # keep the cache small: the stdlib of the current Pyodide and the last few calc archives
        for pattern, keep in (("python_stdlib-*.zip", 1), ("calc-*.zip", 4)):
            old = sorted(CACHE_DIR.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]
            for path in old:
                path.unlink()


# ---------------------------------------------------------------------------------------------------------
# MkDocs events


def on_config(config):
    api, web = _calc()
    source = calc_archive()
    pyodide_key = _pyodide_key()
    calc_name = f"calc-{_digest(source, pyodide_key)}.zip"
    stdlib_name = f"python_stdlib-{_digest(pyodide_key)}.zip"
    worker_v = _digest(WORKER_JS.read_bytes(), calc_name.encode(), stdlib_name.encode())[:8]
    previous = _state.get("compiler")
    if previous is not None:
        previous.wait()
    _state.update(
        api=api, web=web,
        archive_name=calc_name,
        stdlib_name=stdlib_name,
        worker=f"assets/js/calculators/worker.js?v={worker_v}",
        compiler=Compiler([
            (PYODIDE_DIR / "python_stdlib.zip", CACHE_DIR / stdlib_name, "stdlib"),
            (source, CACHE_DIR / calc_name, "package"),
        ]),
    )
    return config


def _lang(page) -> str:
    locale = getattr(page.file, "locale", None)
    if locale in ("zh", "en"):
        return locale
    return "en" if page.file.src_uri.startswith("en/") else "zh"


def parse_snippet(body: str, where: str) -> dict:
    words = body.split()
    api, web = _state["api"], _state["web"]
    if not words or words[0] not in web.PAGES:
        raise PluginError(f"{where}: '{{{{ calculator {body} }}}}': the first word must be one of "
                          f"{', '.join(web.PAGES)}")
    kind, mode, params = words[0], None, {}
    command = web.PAGES[kind]
    known = {f["name"] for f in api.fields(command)}
    for word in words[1:]:
        if word in ("full", "compact"):
            mode = word
            continue
        name, sep, value = word.partition("=")
        if not sep or not name or not value:
            raise PluginError(f"{where}: calculator parameter '{word}' is not name=value (or full/compact)")
        if name not in known:
            raise PluginError(f"{where}: the {kind} calculator has no parameter '{name}' "
                              f"(it has: {', '.join(sorted(known))})")
        params[name] = value
    if mode is None:
        mode = "compact" if params else "full"
    return {"kind": kind, "command": command, "mode": mode, "params": params}


def on_page_markdown(markdown, page, config, files):
    slots, out, in_fence = [], [], False
    for line in markdown.split("\n"):
        if FENCE.match(line):
            in_fence = not in_fence
        if not in_fence and "{{" in line:
            m = SNIPPET.match(line)
            if m:
                spec = parse_snippet(m.group("body"), page.file.src_uri)
                out.append("")
                out.append(SLOT.format(n=len(slots)))
                out.append("")
                slots.append(spec)
                continue
            if LEFTOVER.search(line):
                raise PluginError(f"{page.file.src_uri}: a calculator snippet must stand alone on its line: "
                                  f"{line.strip()}")
        out.append(line)
    page.calc_slots = slots
    return "\n".join(out)


def on_page_content(content, page, config, files):
    slots = getattr(page, "calc_slots", None)
    if not slots:
        return content
    lang = _lang(page)

    def expand(m: re.Match) -> str:
        n = int(m.group(1))
        return render_widget(slots[n], lang, n, page)

    return SLOT_RE.sub(expand, content)


def on_post_build(config):
    _state["compiler"].wait()
    out = Path(config["site_dir"]) / ASSET_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = _state.setdefault("written", set())
    for name in (_state["archive_name"], _state["stdlib_name"]):
        if not (out / name).exists():
            shutil.copyfile(CACHE_DIR / name, out / name)
        written.add(name)
    # Archives from earlier runs (a reused site_dir) go; those this process wrote stay, since each language is
    # a build of its own and calc may have changed in between (every page names the archive it was built with).
    for old in out.iterdir():
        if old.name not in written:
            old.unlink()


# ---------------------------------------------------------------------------------------------------------
# The widget


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _field_html(field: dict, value: str, lang: str, uid: str, web) -> str:
    name = field["name"]
    fid = f"{uid}-{name}"
    label = field["label"][lang]
    unit = field.get("unit")
    help_text = field["help"][lang]
    attrs = f'id="{fid}" name="{_e(name)}" data-testid="{_e(name)}" aria-describedby="{fid}-help {fid}-error"'
    if field["kind"] == "choice":
        options = "".join(
            f'<option value="{_e(c["value"])}"{" selected" if c["value"] == value else ""}>{_e(c["label"])}</option>'
            for c in field["choices"])
        control = f"<select {attrs}>{options}</select>"
    elif field["kind"] == "json":
        control = (f'<textarea {attrs} rows="6" spellcheck="false" autocomplete="off" '
                   f'placeholder="{{&quot;model_type&quot;: &quot;llama&quot;, …}}">{_e(value)}</textarea>')
    else:
        mode = "numeric" if field["kind"] == "int" else "decimal"
        placeholder = ""
        if field.get("default") is None:
            placeholder = f' placeholder="{_e("自动" if lang == "zh" else "auto")}"'
        control = (f'<input type="text" inputmode="{mode}" autocomplete="off" {attrs} '
                   f'value="{_e(value)}"{placeholder}>')
    unit_html = f'<span class="calc__unit">{_e(unit)}</span>' if unit else ""
    return (f'<div class="calc__field calc__field--{field["kind"]}" data-field="{_e(name)}">'
            f'<label for="{fid}">{_e(label)}</label>'
            f'<div class="calc__control">{control}{unit_html}</div>'
            f'<p class="calc__help" id="{fid}-help">{_e(help_text)}</p>'
            f'<p class="calc__error" id="{fid}-error" data-testid="error-{_e(name)}" role="alert" hidden></p>'
            "</div>")


def rows_html(rows: list[dict]) -> str:
    out = []
    for r in rows:
        out.append(f'<tr data-field="{_e(r["field"])}"><th scope="row">{_e(r["label"])}</th>'
                   f'<td class="calc__value" data-testid="{_e(r["field"])}" data-value="{_e(_raw(r["value"]))}">'
                   f'{_e(r["display"])}</td><td class="calc__alt">{_e(r["alt"])}</td></tr>')
    return "".join(out)


def _raw(value) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if not isinstance(value, str) else value


def render_widget(spec: dict, lang: str, n: int, page) -> str:
    api, web = _state["api"], _state["web"]
    command, mode = spec["command"], spec["mode"]
    where = page.file.src_uri
    fields = api.fields(command)
    defaults = {f["name"]: web.default_text(f) for f in fields}
    defaults.update(spec["params"])
    params = {k: v for k, v in defaults.items() if v != ""}
    view = web.view(command, params, lang)
    if not view["ok"]:
        raise PluginError(f"{where}: calculator {spec['kind']} {spec['params']}: {view['errors']}")
    ui = UI[lang]
    uid = f"calc{n}"

    main_fields, more_fields, config_field = [], [], None
    for f in fields:
        if f["kind"] == "json":
            config_field = f
        elif f["name"] in ADVANCED or (mode == "compact" and f["name"] not in spec["params"]
                                         and f["name"] not in ("model", "gpu")):
            more_fields.append(f)
        else:
            main_fields.append(f)
    form = ['<form class="calc__form" data-testid="form" data-state="loading" novalidate autocomplete="off">']
    form.append('<div class="calc__grid">')
    form += [_field_html(f, defaults[f["name"]], lang, uid, web) for f in main_fields]
    form.append("</div>")
    if config_field is not None:
        form.append(f'<details class="calc__config" data-testid="config-details"{" open" if defaults["config"] else ""}>'
                    f'<summary>{_e(ui["config"])}</summary>')
        form.append(_field_html(config_field, defaults["config"], lang, uid, web))
        form.append("</details>")
    if more_fields:
        form.append(f'<details class="calc__more" data-testid="more-inputs"><summary>{_e(ui["more"])}</summary>'
                    '<div class="calc__grid">')
        form += [_field_html(f, defaults[f["name"]], lang, uid, web) for f in more_fields]
        form.append("</div></details>")
    form.append('<p class="calc__error calc__error--form" data-testid="error-form" role="alert" hidden></p>')
    form.append("</form>")

    warnings = "".join(f"<li>{_e(w)}</li>" for w in view["warnings"])
    results = (
        '<div class="calc__output">'
        f'<p class="calc__status" data-testid="status" data-state="static" aria-live="polite">{_e(ui["loading"])}</p>'
        f'<ul class="calc__warnings" data-testid="warnings"{"" if warnings else " hidden"}>{warnings}</ul>'
        f'<table class="calc__results" data-testid="results"><caption>{_e(ui["results"])}</caption>'
        f'<thead><tr><th scope="col">{_e(ui["quantity"])}</th><th scope="col">{_e(ui["value"])}</th>'
        f'<th scope="col">{_e(ui["binary"])}</th></tr></thead><tbody>{rows_html(view["rows"])}</tbody></table>'
        f'<details class="calc__details"><summary>{_e(ui["details"])}</summary>'
        f'<table class="calc__results" data-testid="details"><tbody>{rows_html(view["details"])}</tbody></table></details>'
        "</div>"
    )
    chart = ""
    if mode == "full":
        chart = f'<figure class="calc__chart" data-testid="chart-figure">{web.svg_markup(view["chart"])}</figure>'
    link = ""
    if mode == "compact":
        prefix = "en/" if lang == "en" else ""
        target = get_relative_url(f"{prefix}calculators/{spec['kind']}/", page.url)
        query = "&".join(f"{_e(k)}={_e(v)}" for k, v in spec["params"].items())
        link = (f'<p class="calc__open"><a data-testid="open-full" href="{_e(target)}?{query}">'
                f'{_e(ui["open"])} →</a></p>')

    data = {
        "calc": spec["kind"], "command": command, "lang": lang, "mode": mode,
        "defaults": json.dumps(defaults, ensure_ascii=False, separators=(",", ":")),
        "worker": _state["worker"],
        "archive": f"{ASSET_DIR}/{_state['archive_name']}",
        "stdlib": f"{ASSET_DIR}/{_state['stdlib_name']}",
    }
    attrs = " ".join(f'data-{k}="{_e(v)}"' for k, v in data.items())
    url_sync = " data-url-sync" if mode == "full" else ""
    # Start the worker while the page is still being parsed (before the site's other scripts); Material's
    # instant navigation re-runs this on every page that holds a calculator, hence the guard.
    boot = ("<script>(function(c,d){if(c.worker||typeof Worker==='undefined'||!window.__md_scope)return;"
            "c.created=(c.created||0)+1;c.startedAt=performance.now();"
            "c.worker=new Worker(new URL(d.worker,__md_scope),{type:'module'});"
            "c.worker.postMessage({type:'init',archive:new URL(d.archive,__md_scope).href,"
            "stdlib:new URL(d.stdlib,__md_scope).href})"
            "})(window.__calc=window.__calc||{},document.currentScript.parentElement.dataset)</script>")
    return (f'<div class="calc calc--{mode}" {attrs}{url_sync} data-testid="calculator">'
            f'<noscript><p class="calc__status">{_e(ui["noscript"])}</p></noscript>'
            + "".join(form) + results + chart + link + boot + "</div>")
