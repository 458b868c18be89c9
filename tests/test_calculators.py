"""The calculators without a browser: calc/web.py (the presentation both the prerender and the browser use),
the `{{ calculator … }}` hook, and the built pages and archives.

The browser side (the same pages live under Pyodide) is tested in tests/browser/test_calculators.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys
import zipfile
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calc import api, charts, registry, web

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("zh", "en")
PAGES = {"vram": "memory", "performance": "perf", "cost": "cost", "roi": "roi", "planner": "plan"}


def _load_hook():
    if str(ROOT / "hooks") not in sys.path:  # as MkDocs loads a hook: its folder on sys.path (hook_support.py)
        sys.path.insert(0, str(ROOT / "hooks"))
    spec = importlib.util.spec_from_file_location("calculators_hook", ROOT / "hooks" / "calculators.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._state.update(api=api, web=web)
    return module


@cache
def cli(command: str, params: tuple = ()) -> dict:
    """What `python -m calc <command> --<flag> <value> … --json` prints."""
    args = [sys.executable, "-m", "calc", command]
    for name, value in params:
        args += [f"--{name}", value]
    proc = subprocess.run([*args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def same(shown: str, expected) -> bool:
    """A data-value (JSON; strings bare) against the CLI's value. Numbers compare as numbers: the prerender
    writes Python's repr (1e15 -> "1000000000000000.0"), the browser JavaScript's String() ("1000000000000000")."""
    return shown == expected if isinstance(expected, str) else json.loads(shown) == expected


def scalar_outputs(result: dict) -> set[str]:
    return {k for k, v in result.items() if not isinstance(v, list) and k not in web.NOT_ROWS}


# --- calc/web.py ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", api.COMMANDS)
@pytest.mark.parametrize("lang", LANGS)
def test_view_shows_every_output_of_the_cli(command, lang):
    view = web.view(command, {}, lang)
    assert view["ok"]
    assert view["result"] == cli(command)  # the very dict the CLI prints
    shown = {r["field"]: r for r in view["rows"] + view["details"]}
    assert set(shown) == scalar_outputs(view["result"])
    assert [r["field"] for r in view["rows"]] == [f for f in web.MAIN_ROWS[command] if f in view["result"]]
    for field, row in shown.items():
        assert row["value"] == view["result"][field]
        assert row["display"].strip(), field


@pytest.mark.parametrize("command", api.COMMANDS)
def test_every_output_has_a_label_in_both_languages(command):
    result = cli(command)
    missing = sorted(k for k in scalar_outputs(result) if k not in web.LABELS)
    assert not missing, f"calc/web.py LABELS lacks {missing}"
    assert all(web.LABELS[k]["zh"] and web.LABELS[k]["en"] for k in scalar_outputs(result))


def test_bytes_show_gb_and_gib():
    row = {r["field"]: r for r in web.view("memory", {}, "zh")["rows"]}["weights_bytes"]
    n = row["value"]
    assert row["display"] == f"{n / 1e9:,.2f} GB"
    assert row["alt"] == f"{n / 2**30:,.2f} GiB"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), None])
def test_non_numbers_never_show(value):
    for field in ("weights_bytes", "tpot_s", "usd_per_request", "roi_12m", "decode_tok_per_s"):
        text, alt = web.format_value(field, value, "en")
        assert not re.search(r"nan|inf", text, re.I)
        assert alt == ""


def test_negative_sizes_never_show():
    assert web.format_value("total_bytes", -5, "en")[0] == "—"
    assert web.format_value("kv_bytes_per_token", -1, "zh")[0] == "—"
    assert web.format_value("monthly_savings_usd", -12.5, "en")[0] == "-$12.50"  # money can be negative


def test_errors_come_from_calc_in_the_page_language():
    params = {"batch": "-1", "prompt-len": "abc", "model": "no-such-model"}
    with pytest.raises(api.InputError) as err:
        api.run("memory", params)
    for lang in LANGS:
        view = web.view("memory", params, lang)
        assert not view["ok"]
        assert view["errors"] == {k: v[lang] for k, v in err.value.errors.items()}


def test_view_json_round_trip_is_what_the_worker_gets():
    reply = json.loads(web.view_json(json.dumps({"command": "perf", "params": {"batch": 8}, "lang": "en"})))
    assert reply["ok"] and reply["result"] == cli("perf", (("batch", "8"),))


def test_chart_is_plain_svg_data():
    allowed_tags = {"svg", "title", "rect", "line", "polyline", "circle", "text", "g", "path"}

    def walk(node):
        assert node["tag"] in allowed_tags
        assert all(isinstance(v, str) for v in node["attrs"].values())
        assert not any(k.lower().startswith("on") or k in ("href", "xlink:href", "style") for k in node["attrs"])
        for child in node.get("children", []):
            walk(child)

    for command in api.COMMANDS:
        walk(web.view(command, {}, "en")["chart"])


def test_chart_markup_escapes_text():
    config = registry.hf_config("llama-3.2-1b")
    config["_name_or_path"] = '<img src=x onerror="alert(1)">'
    view = web.view("cost", {"config": json.dumps(config)}, "en")
    markup = charts.svg_markup(view["chart"])
    assert "<img" not in markup


def test_chart_series_follow_the_result():
    mem = web.view("memory", {"model": "llama-3.1-70b", "tp": "2"}, "en")
    parts = {n["attrs"]["data-series"]: n["attrs"]["data-value"] for n in mem["chart"]["children"]
             if "data-series" in n["attrs"]}
    r = mem["result"]
    assert parts["weights"] == str(r["weights_bytes_per_gpu"])
    assert parts["kv"] == str(r["kv_cache_bytes_per_gpu"])
    assert parts["capacity"] == str(r["gpu_memory_bytes"])
    perf = web.view("perf", {"batch": "16"}, "en")
    current = [n for n in perf["chart"]["children"] if n["attrs"].get("data-series") == "tpot-current"]
    assert current and float(current[0]["attrs"]["data-value"]) == perf["result"]["tpot_s"]
    roi = web.view("roi", {"api": "openai-gpt-4o", "batch": "32"}, "en")
    s = charts.roi_series(roi["result"])
    assert s["cumulative"][12] == pytest.approx(12 * roi["result"]["monthly_savings_usd"])
    assert roi["result"]["payback_months"] is not None and roi["result"]["payback_months"] <= s["months"]


def _field_values(field):
    junk = st.text(max_size=12)
    if field["kind"] == "choice":
        return st.one_of(st.sampled_from([c["value"] for c in field["choices"]]), junk)
    if field["kind"] == "json":
        return st.one_of(st.just(""), junk, st.just("{}"), st.just("[1]"))
    lo, hi = field.get("min", 0), field.get("max", 1e6)
    if field["kind"] == "int":
        number = st.integers(int(lo) - 2, min(int(hi) + 2, 10**7)).map(str)
    else:
        number = st.one_of(st.floats(lo - 1, hi + 1), st.floats()).map(repr)
    return st.one_of(number, junk, st.sampled_from(["", "nan", "inf", "-0", "1e400", "1_000"]))


@st.composite
def _requests(draw):
    command = draw(st.sampled_from(api.COMMANDS))
    fields = api.fields(command)
    chosen = draw(st.lists(st.sampled_from(fields), unique_by=lambda f: f["name"], max_size=5))
    return command, {f["name"]: draw(_field_values(f)) for f in chosen}, draw(st.sampled_from(LANGS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_any_input_gives_a_result_or_messages_never_a_crash(request):
    command, params, lang = request
    view = web.view(command, params, lang)
    json.dumps(view, allow_nan=False)  # what the worker sends: plain JSON
    if view["ok"]:
        for row in view["rows"] + view["details"]:
            assert not re.search(r"\bnan\b|\binf|Infinity|Traceback", row["display"] + row["alt"], re.I), row
            if "bytes" in row["field"] and isinstance(row["value"], (int, float)):
                assert row["value"] >= 0, row
    else:
        known = {f["name"] for f in api.fields(command)}
        assert view["errors"] and set(view["errors"]) <= known
        assert all(isinstance(m, str) and m for m in view["errors"].values())


_config_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 4096), st.floats(-1e4, 1e4), st.text(max_size=5),
                           st.lists(st.integers(-2, 64), max_size=4))
_CONFIG_KEYS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                "intermediate_size", "vocab_size", "sliding_window", "num_local_experts", "num_experts_per_tok",
                "kv_lora_rank", "max_position_embeddings", "tie_word_embeddings"]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["llama-3.1-8b", "qwen3-8b", "mixtral-8x7b", "deepseek-v3", "gemma-2-9b"]),
       st.dictionaries(st.sampled_from(_CONFIG_KEYS), _config_values, max_size=3))
def test_a_pasted_config_gives_a_result_or_a_message(preset, changes):
    from calc import registry

    config = registry.hf_config(preset)
    config.update(changes)
    view = web.view("memory", {"config": json.dumps(config)}, "en")
    json.dumps(view, allow_nan=False)
    if not view["ok"]:
        assert set(view["errors"]) <= {f["name"] for f in api.fields("memory")}


# Found by the test above with wider values: in the browser these showed "internal error" (TypeError), or hung /
# exhausted the worker's memory (a tuple per layer), until calc/model.py bounded every integer.
@pytest.mark.parametrize("changes", [
    {"model_type": [1, 2]},
    {"num_hidden_layers": 9.223372036854776e18},
    {"num_hidden_layers": 10**12},
    {"num_hidden_layers": float("inf")},  # json.dumps writes Infinity, and json.loads reads it back
    {"hidden_size": 10**15},
])
def test_absurd_configs_give_a_message(changes):
    from calc import registry

    config = registry.hf_config("llama-3.1-8b")
    config.update(changes)
    view = web.view("memory", {"config": json.dumps(config)}, "en")
    assert not view["ok"] and "config" in view["errors"]


# --- the hook ---------------------------------------------------------------------------------------------


class _Page:
    class file:
        src_uri = "zh/ch04/index.md"
        locale = "zh"

    url = "ch04/"


def test_snippet_is_expanded_outside_code_only():
    hook = _load_hook()
    page = _Page()
    md = "intro\n\n{{ calculator vram model=llama-3.1-70b weights=fp8 }}\n\n```\n{{ calculator vram }}\n```\n"
    out = hook.on_page_markdown(md, page, None, None)
    assert out.count("data-calc-slot") == 1
    assert "```\n{{ calculator vram }}\n```" in out
    assert page.calc_slots == [{"kind": "vram", "command": "memory", "mode": "compact",
                                "params": {"model": "llama-3.1-70b", "weights": "fp8"}}]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{{ calculator nope }}", "first word"),
        ("{{ calculator vram gpu-price=3 }}", "no parameter 'gpu-price'"),
        ("{{ calculator cost batch }}", "not name=value"),
        ("text {{ calculator vram }} inline", "stand alone"),
    ],
)
def test_bad_snippets_fail_the_build(line, message):
    from mkdocs.exceptions import PluginError

    hook = _load_hook()
    with pytest.raises(PluginError, match=message):
        hook.on_page_markdown(f"# t\n\n{line}\n", _Page(), None, None)


def test_snippet_with_input_calc_rejects_fails_the_build():
    from mkdocs.exceptions import PluginError

    hook = _load_hook()
    hook._state.update(worker="w.js", archive_name="a.zip", stdlib_name="s.zip")
    spec = hook.parse_snippet("vram batch=0", "x.md")
    with pytest.raises(PluginError, match="batch"):
        hook.render_widget(spec, "en", 0, _Page())


def _browser_modules() -> set[str]:
    """calc's modules the worker imports: calc.web and all it imports, in a fresh interpreter."""
    code = "import sys, calc.web; print(' '.join(m for m in sys.modules if m == 'calc' or m.startswith('calc.')))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_calc_archive_is_reproducible_and_complete():
    _load_hook()  # puts hooks/ on sys.path, as MkDocs does
    import pyodide_bundle

    a, b = pyodide_bundle.calc_archive(), pyodide_bundle.calc_archive()
    assert a == b
    names = zipfile.ZipFile(io.BytesIO(a)).namelist()
    assert "calc/web.py" in names and "calc/api.py" in names and "calc/data/gpus.json" in names
    assert any(n.startswith("calc/data/models/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # every module the browser imports is in it (the archive takes every .py under calc/, new ones included)
    modules = _browser_modules()
    assert {"calc.web", "calc.api", "calc.charts", "calc.strings", "calc.units"} <= modules
    for module in modules:
        path = module.replace(".", "/")
        assert f"{path}.py" in names or f"{path}/__init__.py" in names, module


# --- the built site ---------------------------------------------------------------------------------------


class _Widgets(HTMLParser):
    """data-value of every output cell, per widget; the widgets' data-* attributes; scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.widgets: list[dict] = []
        self.inputs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "calc" in (a.get("class") or "").split() and "data-command" in a:
            self.widgets.append({"attrs": a, "values": {}, "testids": [], "scripts": []})
        elif self.widgets and tag == "td" and "data-value" in a:
            self.widgets[-1]["values"][a["data-testid"]] = a["data-value"]
        elif self.widgets and tag in ("input", "select", "textarea") and "data-testid" in a:
            self.widgets[-1]["testids"].append(a["data-testid"])
        if tag == "script" and self.widgets and not self.widgets[-1].get("closed"):
            self.widgets[-1]["scripts"].append(a)


def _parse(path: Path) -> _Widgets:
    parser = _Widgets()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _page_file(site_dir: Path, lang: str, name: str) -> Path:
    return site_dir / ("en/" if lang == "en" else "") / "calculators" / name / "index.html"


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", sorted(PAGES))
def test_prerendered_page_equals_the_cli(site_dir, lang, name):
    page = _parse(_page_file(site_dir, lang, name))
    assert len(page.widgets) == 1
    widget = page.widgets[0]
    command = PAGES[name]
    assert widget["attrs"]["data-command"] == command and widget["attrs"]["data-lang"] == lang
    assert "data-url-sync" in widget["attrs"]
    expected = cli(command)
    assert set(widget["values"]) == scalar_outputs(expected)
    wrong = {f: (v, expected[f]) for f, v in widget["values"].items() if not same(v, expected[f])}
    assert not wrong
    # inputs are named like the CLI's flags
    assert set(widget["testids"]) == {f["name"] for f in api.fields(command)}
    # Material re-runs the inline <script>s of the content after instant navigation (as plain scripts): the
    # widget's one script is the worker's boot, and no data hides in a <script type=...>
    assert widget["scripts"][:1] == [{}]
    # the same boot, with the same assets, runs from <head> too (the worker starts before the page's scripts)
    head = _page_file(site_dir, lang, name).read_text(encoding="utf-8").split("</head>")[0]
    assets = json.loads(re.search(r"<script>\(function\(c,d\).*\}\)\(window\.__calc=window\.__calc\|\|\{\},(\{.*?\})\)</script>", head).group(1))
    assert assets == {k: widget["attrs"][f"data-{k}"] for k in ("worker", "archive", "stdlib", "lock")}


def test_embedded_example_equals_the_cli(site_dir):
    for lang in LANGS:
        page = _parse(site_dir / ("en/" if lang == "en" else "") / "calculators" / "index.html")
        (widget,) = page.widgets
        assert widget["attrs"]["data-mode"] == "compact" and "data-url-sync" not in widget["attrs"]
        expected = cli("memory", (("model", "llama-3.1-70b"), ("weights", "fp8"), ("prompt-len", "8192")))
        assert set(widget["values"]) == scalar_outputs(expected)
        assert all(same(v, expected[f]) for f, v in widget["values"].items())


def test_archives_are_built_and_named_by_content(site_dir):
    html = _page_file(site_dir, "zh", "vram").read_text(encoding="utf-8")
    archive = re.search(r'data-archive="(assets/calc/calc-[0-9a-f]{12}\.zip)"', html).group(1)
    stdlib = re.search(r'data-stdlib="(assets/calc/python_stdlib-[0-9a-f]{12}\.zip)"', html).group(1)
    worker = re.search(r'data-worker="(assets/js/calculators/worker\.js\?v=[0-9a-f]{8})"', html).group(1)
    assert (site_dir / worker.split("?")[0]).exists()
    with zipfile.ZipFile(site_dir / archive) as zf:
        names = zf.namelist()
        assert "calc/web.py" in names and "calc/data/prices.json" in names
        assert "calc/__pycache__/web.cpython-314.pyc" in names  # compiled for Pyodide's CPython 3.14
        for module in _browser_modules() - {"calc"}:  # each module the worker imports, compiled
            assert f"calc/__pycache__/{module.split('.')[1]}.cpython-314.pyc" in names, module
        assert zf.read("calc/web.py") == (ROOT / "calc" / "web.py").read_bytes()
    with zipfile.ZipFile(site_dir / stdlib) as zf, zipfile.ZipFile(ROOT / "node_modules/pyodide/python_stdlib.zip") as up:
        names = set(zf.namelist())
        # what start-up and calc import is bytecode, the rest stays source: every module is still there
        assert {"json/__init__.pyc", "json/decoder.pyc", "_pyodide/__init__.pyc", "zipfile/__init__.pyc"} <= names
        assert "antigravity.py" in names and "json/__init__.py" not in names
        assert {n[:-1] if n.endswith(".pyc") else n for n in names} == set(up.namelist())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_price_source_is_a_link_to_the_registry_source(lang):
    result = api.run("cost", {"gpu": "b200"})
    row = next(r for r in web.rows("cost", result, lang)[1] if r["field"] == "gpu_price_source")
    source = registry.get_gpu("b200").price_source
    assert row["value"] == row["href"] == source and source.startswith("https://")
    assert row["display"] == source.split("/")[2].removeprefix("www.")
    own = api.run("cost", {"gpu": "b200", "gpu-price": "3"})
    row = next(r for r in web.rows("cost", own, lang)[1] if r["field"] == "gpu_price_source")
    assert row["href"] == "" and row["display"] == {"zh": "你输入的价格", "en": "your input"}[lang]


def test_only_https_sources_become_links():
    assert web._link("gpu_price_source", "javascript:alert(1)") == ""
    assert web._link("gpu_price_source", "http://example.com/") == ""
    assert web._link("usd_per_hour", "https://example.com/") == ""  # only *_source outputs are links


def test_units_next_to_the_inputs_are_in_the_page_language(site_dir):
    zh = (site_dir / "calculators" / "vram" / "index.html").read_text(encoding="utf-8")
    en = (site_dir / "en" / "calculators" / "vram" / "index.html").read_text(encoding="utf-8")
    assert 'calc__unit">token<' in zh and 'calc__unit">tokens<' not in zh
    assert 'calc__unit">tokens<' in en
