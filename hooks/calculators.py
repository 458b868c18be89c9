"""The calculators: expand `{{ calculator … }}` lines into a form prerendered by calc/ in CPython, and ship calc/
to the browser, where a module Web Worker runs the same code under the site's own Pyodide.

    {{ calculator vram }}                                             the full calculator (a calculator page)
    {{ calculator vram full }}                                        the same, explicitly
    {{ calculator vram compact model=llama-3.1-70b weights=fp8 }}     a compact one in a chapter (the default
                                                                      mode when parameters are given)

The first word names the calculator (vram, performance, cost, roi, planner: the pages under calculators/); the
parameters are the CLI's flag names without dashes, and become the form's defaults. Each widget shows the
result for its defaults at once (computed here, at build time, by calc.web.view — the very function the
browser calls), then goes live when Python is ready. A full calculator keeps its inputs in the URL query.

Build outputs (site/assets/calc/): calc and Pyodide's standard library compiled for the browser, and an empty
package index, all made by hooks/pyodide_bundle.py; this hook writes them into the site and names them in
every page with a calculator. The widget's words come from calc/strings.py.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import directives  # hooks/directives.py (MkDocs loads hooks with their folder on sys.path)
import hook_support
import pyodide_bundle  # hooks/pyodide_bundle.py: calc for the browser
from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parent.parent

WORKER_JS = ROOT / "docs" / "assets" / "js" / "calculators" / "worker.js"
ASSET_DIR = "assets/calc"  # under site_dir

SLOT = '<div data-calc-slot="{n}"></div>'
SLOT_RE = re.compile(r'(?:<p>)?<div data-calc-slot="(\d+)"></div>(?:</p>)?')

# Inputs shown under "more inputs" (collapsed): engine and efficiency assumptions.
ADVANCED = {"overhead-gib", "gpu-memory-utilization", "block-size", "max-model-len", "max-num-batched-tokens",
            "mem-efficiency", "compute-efficiency", "request-latency-ms", "engine", "max-num-seqs", "chunked-prefill",
            "reserve-full-prompt", "requests", "seed", "accept-rate", "draft-cost"}

_state: dict = {}


# ---------------------------------------------------------------------------------------------------------
# MkDocs events


def on_config(config):
    # Fresh on every build: `mkdocs serve` rebuilds in the same process.
    api, web = hook_support.fresh_calc_modules("api", "web")
    names = pyodide_bundle.compile_for_pyodide(pyodide_bundle.calc_archive())
    names["lock"], lock = pyodide_bundle.package_lock()
    worker_v = pyodide_bundle.digest(WORKER_JS.read_bytes(), *(n.encode() for n in sorted(names.values())))[:8]
    _state.update(
        api=api, web=web,
        archive_name=names["calc"],
        stdlib_name=names["stdlib"],
        lock_name=names["lock"], lock=lock,
        worker=f"assets/js/calculators/worker.js?v={worker_v}",
    )
    return config


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
    slots = []

    def slot(body: str) -> str:
        slots.append(parse_snippet(body, page.file.src_uri))
        return "\n" + SLOT.format(n=len(slots) - 1) + "\n"

    markdown = directives.expand(markdown, "calculator", slot, page.file.src_uri, alone=True)
    page.calc_slots = slots
    return markdown


def on_page_content(content, page, config, files):
    slots = getattr(page, "calc_slots", None)
    if not slots:
        return content
    lang = hook_support.page_lang(page)

    def expand(m: re.Match) -> str:
        n = int(m.group(1))
        return render_widget(slots[n], lang, n, page)

    return SLOT_RE.sub(expand, content)


def on_post_build(config):
    out = Path(config["site_dir"]) / ASSET_DIR
    out.mkdir(parents=True, exist_ok=True)
    written = _state.setdefault("written", set())
    for name in (_state["archive_name"], _state["stdlib_name"]):
        if not (out / name).exists():
            shutil.copyfile(pyodide_bundle.CACHE_DIR / name, out / name)
        written.add(name)
    (out / _state["lock_name"]).write_bytes(_state["lock"])
    written.add(_state["lock_name"])
    # Archives from earlier runs (a reused site_dir) go; those this process wrote stay, since each language is
    # a build of its own and calc may have changed in between (every page names the archive it was built with).
    for old in out.iterdir():
        if old.name not in written:
            old.unlink()


# ---------------------------------------------------------------------------------------------------------
# The widget

# Starts the calculators' worker once per tab, while the page is still being parsed: from <head> on a page
# with a calculator (see on_post_page), and from each widget, since Material's instant navigation re-runs the
# scripts in the content (not those in <head>) on every page it shows; hence the guard. d: the asset paths
# (relative to the site root, __md_scope). Chromium starts a worker only once the page's main thread is free
# for a moment, and the site's large scripts at the end of <body> keep it busy for about a second on a slow
# machine: started from <head>, the worker is running before they are.
BOOT = ("(function(c,d){if(c.worker||typeof Worker==='undefined'||!window.__md_scope)return;"
        "c.created=(c.created||0)+1;c.startedAt=performance.now();"
        "c.worker=new Worker(new URL(d.worker,__md_scope),{type:'module'});"
        "c.worker.postMessage({type:'init',archive:new URL(d.archive,__md_scope).href,"
        "stdlib:new URL(d.stdlib,__md_scope).href,lock:new URL(d.lock,__md_scope).href})})")


def _assets() -> dict:
    return {
        "worker": _state["worker"],
        "archive": f"{ASSET_DIR}/{_state['archive_name']}",
        "stdlib": f"{ASSET_DIR}/{_state['stdlib_name']}",
        "lock": f"{ASSET_DIR}/{_state['lock_name']}",
    }


def on_post_page(output, page, config):
    if not getattr(page, "calc_slots", None) or "</head>" not in output:
        return output
    boot = f"<script>{BOOT}(window.__calc=window.__calc||{{}},{json.dumps(_assets())})</script>"
    return output.replace("</head>", boot + "</head>", 1)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _field_html(field: dict, value: str, lang: str, uid: str, web) -> str:
    name = field["name"]
    fid = f"{uid}-{name}"
    label = field["label"][lang]
    unit = field.get("unit")
    if unit == "tokens":
        unit = web.UI["tokens"][lang]  # Chinese text writes "token", with no plural
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
            placeholder = f' placeholder="{_e(field.get("empty", web.UI["auto"])[lang])}"'
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
                   f'{_value_html(r)}</td><td class="calc__alt">{_e(r["alt"])}</td></tr>')
    return "".join(out)


def _value_html(row: dict) -> str:
    if row.get("href"):  # a registry source: a link that opens the page the number came from
        return f'<a href="{_e(row["href"])}" rel="noopener" target="_blank">{_e(row["display"])}</a>'
    return _e(row["display"])


def _no_alt(rows: list[dict]) -> str:
    """The class of a table whose third column (GiB and other alternative units) would be empty."""
    return "" if any(r["alt"] for r in rows) else " calc__results--no-alt"


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
    ui = {key: words[lang] for key, words in web.UI.items()}  # calc/strings.py: every word the widget shows
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
        f'<p class="calc__status" data-testid="status" data-state="static" aria-live="polite">{_e(ui["static"])}</p>'
        f'<ul class="calc__warnings" data-testid="warnings"{"" if warnings else " hidden"}>{warnings}</ul>'
        f'<table class="calc__results{_no_alt(view["rows"])}" data-testid="results">'
        f'<caption elementtiming="calc-result">{_e(ui["results"])}</caption>'
        f'<thead><tr><th scope="col">{_e(ui["quantity"])}</th><th scope="col">{_e(ui["value"])}</th>'
        f'<th scope="col">{_e(ui["binary"])}</th></tr></thead><tbody>{rows_html(view["rows"])}</tbody></table>'
        f'<details class="calc__details"><summary>{_e(ui["details"])}</summary>'
        f'<table class="calc__results{_no_alt(view["details"])}" data-testid="details"><tbody>{rows_html(view["details"])}</tbody></table></details>'
        "</div>"
    )
    chart = ""
    if mode == "full":
        chart = f'<figure class="calc__chart" data-testid="chart-figure">{web.charts.svg_markup(view["chart"])}</figure>'
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
        "text": json.dumps(web.page_script_text(lang), ensure_ascii=False, separators=(",", ":")),
        **_assets(),
    }
    attrs = " ".join(f'data-{k}="{_e(v)}"' for k, v in data.items())
    url_sync = " data-url-sync" if mode == "full" else ""
    boot = f"<script>{BOOT}(window.__calc=window.__calc||{{}},document.currentScript.parentElement.dataset)</script>"
    return (f'<div class="calc calc--{mode}" {attrs}{url_sync} data-testid="calculator">'
            f'<noscript><p class="calc__status">{_e(ui["noscript"])}</p></noscript>'
            + "".join(form) + results + chart + link + boot + "</div>")
