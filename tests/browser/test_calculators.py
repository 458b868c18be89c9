"""The calculators in a real browser: prerendered, then live under the site's own Pyodide, checked against the CLI.

Every test runs through the `page` fixture (tests/conftest.py): it fails if a page requests another host, gets an
HTTP error from the local server, or logs a console error. Pyodide takes seconds to start on a small machine, so
each test starts it once and then walks through several pages and inputs with Material's instant navigation,
which keeps the same worker.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from calc import api, registry, web
from tests.browser import reader

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
LIVE_TIMEOUT = 120_000  # ms: Pyodide's first start, two browsers sharing two cores under xdist


@cache
def cli(command: str, params: tuple = ()) -> dict:
    """What `python -m calc <command> --<flag> <value> … --json` prints (config: the JSON text, via a file)."""
    args = [sys.executable, "-m", "calc", command]
    with tempfile.TemporaryDirectory() as tmp:
        for name, value in params:
            if name == "config":
                path = Path(tmp) / "config.json"
                path.write_text(value, encoding="utf-8")
                value = str(path)
            args += [f"--{name}", value]
        proc = subprocess.run([*args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def same(shown: str, expected) -> bool:
    """A data-value against the CLI's value; numbers as numbers (JavaScript prints 1e15 as "1000000000000000")."""
    return shown == expected if isinstance(expected, str) else json.loads(shown) == expected


def _path(lang: str, rest: str) -> str:
    return ("/en/" if lang == "en" else "/") + rest


def _open(page, path: str) -> None:
    """Open a page and note what the calculator showed before any script ran, and before Python was ready."""
    page.add_init_script(
        "document.addEventListener('readystatechange', () => { if (document.readyState === 'interactive') {"
        " const s = document.querySelector('.calc [data-testid=status]');"
        " window.__firstStatus = s && s.dataset.state;"
        " window.__firstOutputs = Object.fromEntries([...document.querySelectorAll('.calc td[data-testid][data-value]')]"
        "   .map(e => [e.dataset.testid, e.dataset.value])); } });"
        # every state the status line goes through
        "window.__statusHistory = [];"
        "new MutationObserver(ms => { for (const m of ms) if (m.target.dataset.testid === 'status')"
        " window.__statusHistory.push(m.target.dataset.state); })"
        ".observe(document, {subtree: true, attributes: true, attributeFilter: ['data-state']});")
    page.goto(page.base + path, wait_until="domcontentloaded")


def _outputs(page) -> dict:
    return page.eval_on_selector_all(
        ".calc td[data-testid][data-value]", "els => Object.fromEntries(els.map(e => [e.dataset.testid, e.dataset.value]))")


def _assert_matches_cli(page, command: str, params: dict, shown: dict | None = None) -> dict:
    expected = cli(command, tuple(sorted(params.items())))
    shown = _outputs(page) if shown is None else shown
    assert set(shown) == {k for k, v in expected.items() if not isinstance(v, list) and k not in web.NOT_ROWS}
    wrong = {k: (v, expected[k]) for k, v in shown.items() if not same(v, expected[k])}
    assert not wrong, f"{command} {params}: page != CLI for {wrong}"
    return expected


def _wait_live(page) -> None:
    page.wait_for_selector(".calc form[data-state=ready]", timeout=LIVE_TIMEOUT)
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")


def _set_inputs(page, changes: dict) -> None:
    """Type or pick each value the way a reader does, then wait for the recomputed result."""
    before = int(page.get_attribute(".calc", "data-renders") or 0)
    for name, value in changes.items():
        target = f".calc [data-testid='{name}']"
        if page.locator(target).evaluate("el => el.closest('details') && !el.closest('details').open"):
            page.locator(target).evaluate("el => { el.closest('details').open = true }")
        if page.locator(target).evaluate("el => el.tagName") == "SELECT":
            page.select_option(target, value)
        else:
            page.fill(target, value)
    page.wait_for_function(
        f"(() => {{ const w = document.querySelector('.calc');"
        f" return w.dataset.busy === 'false' && Number(w.dataset.renders || 0) > {before}; }})()")


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def _go(page, name: str) -> None:
    """In-site navigation to another calculator (Material's instant navigation: no reload)."""
    reader.click(page, page.locator(f"a[href$='calculators/{name}/']:visible").first)
    page.wait_for_url(re.compile(rf"/calculators/{name}/$"))
    page.wait_for_selector(f".calc[data-calc='{name}'] form[data-state=ready]", timeout=LIVE_TIMEOUT)
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")


def _no_bad_numbers(page) -> None:
    text = page.inner_text("article")
    assert not re.search(r"\bNaN\b|Infinity|Traceback|undefined", text), text[:2000]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_calculators_go_live_and_match_the_cli(page, lang):
    _open(page, _path(lang, "calculators/vram/"))
    page.evaluate("window.__sameDocument = true")
    # Prerendered: the defaults' result is on the page before Python runs, in view next to the form.
    assert page.evaluate("window.__firstStatus") == "static"
    _assert_matches_cli(page, "memory", {}, shown=page.evaluate("window.__firstOutputs"))
    assert page.locator(".calc [data-testid=results]").bounding_box()["y"] < 900
    assert page.locator(".calc svg[data-testid=chart]").count() == 1

    _wait_live(page)
    assert page.evaluate("window.__statusHistory")[0] == "live"  # straight from the prerender to live
    _assert_matches_cli(page, "memory", {})  # the live result for the defaults is the same
    changes = {"model": "llama-3.1-70b", "weights": "fp8", "tp": "2", "batch": "8", "prompt-len": "8192"}
    _set_inputs(page, changes)
    result = _assert_matches_cli(page, "memory", changes)
    assert _query(page) == changes
    cells = page.eval_on_selector_all(".calc svg [data-series]", "els => els.map(e => [e.dataset.series, e.dataset.value])")
    assert dict(cells)["weights"] == str(result["weights_bytes_per_gpu"])
    assert dict(cells)["kv"] == str(result["kv_cache_bytes_per_gpu"])
    gb = page.inner_text(".calc [data-testid=total_bytes]")
    gib = page.inner_text(".calc tr[data-field=total_bytes] .calc__alt")
    assert gb == f"{result['total_bytes'] / 1e9:,.2f} GB" and gib == f"{result['total_bytes'] / 2**30:,.2f} GiB"

    links = {"vram": page.url}
    _check_bad_input(page, lang, "memory", changes, "tp", "3")  # 3 does not divide Llama-70B's 64 heads

    _go(page, "performance")
    changes = {"model": "qwen3-8b", "batch": "64", "gpu": "a100-80gb", "output-len": "512", "engine": "trt-llm"}
    _set_inputs(page, changes)
    result = _assert_matches_cli(page, "perf", changes)
    assert _query(page) == changes
    current = page.get_attribute(".calc svg [data-series=tpot-current]", "data-value")
    assert float(current) == result["tpot_s"]
    warnings = page.eval_on_selector_all(".calc [data-testid=warnings] li", "els => els.map(e => e.textContent)")
    assert warnings == [w[lang] for w in result["warnings"]]
    links["performance"] = page.url
    _check_bad_input(page, lang, "perf", changes, "batch", "0")

    _go(page, "cost")
    # The registry's price source is a link, live as in the prerender (the default GPU has a dated price).
    source = registry.get_gpu(api.run("cost", {})["gpu"]).price_source
    assert page.get_attribute(".calc [data-testid=gpu_price_source] a", "href") == source
    changes = {"api": "openai-gpt-4o", "requests-per-s": "5", "gpu-price": "2.5", "batch": "32"}
    _set_inputs(page, changes)
    _assert_matches_cli(page, "cost", changes)
    assert _query(page) == changes
    links["cost"] = page.url
    assert page.locator(".calc [data-testid=gpu_price_source] a").count() == 0  # the reader's own price: no link
    _check_bad_input(page, lang, "cost", changes, "gpu-price", "-2")

    _go(page, "roi")
    changes = {"api": "openai-gpt-4o", "batch": "32", "engineering-cost": "50000", "hardware-cost": "10000"}
    _set_inputs(page, changes)
    result = _assert_matches_cli(page, "roi", changes)
    assert _query(page) == changes
    assert result["payback_months"] is not None
    assert page.get_attribute(".calc svg [data-series=payback]", "data-value") == str(result["payback_months"])
    links["roi"] = page.url
    _check_bad_input(page, lang, "roi", changes, "engineering-cost", "lots")

    # Each copied link brings back its inputs and result (opened in the site; a full load: see the URL test).
    for name in ("vram", "performance", "cost", "roi"):
        _follow(page, links[name])
        params = _query(page)
        for field, value in params.items():
            assert page.input_value(f".calc [data-testid='{field}']") == value
        _assert_matches_cli(page, web.PAGES[name], params)

    # One worker for the whole walk, and never a full reload.
    assert page.evaluate("window.__calc.created") == 1
    assert page.evaluate("window.__sameDocument") is True
    _no_bad_numbers(page)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_planner_goes_live_and_matches_the_cli(page, lang):
    """The capacity planner: prerendered defaults, then live under Pyodide with the CLI's numbers, the curve's
    target lines, its inputs in the URL, a clear message for a bad rate; a recompute stays within seconds."""
    _open(page, _path(lang, "calculators/planner/"))
    assert page.evaluate("window.__firstStatus") == "static"
    _assert_matches_cli(page, "plan", {}, shown=page.evaluate("window.__firstOutputs"))
    assert page.locator(".calc svg[data-testid=chart]").count() == 1
    _wait_live(page)
    _assert_matches_cli(page, "plan", {})
    changes = {"model": "llama-3.1-70b", "rate": "4", "ttft-p90": "2", "tpot-p90": "0.06", "workload": "azure-conv"}
    started = page.evaluate("performance.now()")
    _set_inputs(page, changes)
    page.evaluate("window.__planMs = performance.now()")
    result = _assert_matches_cli(page, "plan", changes)
    assert page.evaluate("window.__planMs") - started < 60_000  # the worker answers a full plan in seconds
    assert _query(page) == changes
    assert result["fits"] and result["gpus"] >= 2
    slo = page.get_attribute(".calc svg [data-series=ttft-slo]", "data-value")
    assert float(slo) == 2.0
    dots = page.eval_on_selector_all(".calc svg circle[data-series=tpot]", "els => els.map(e => Number(e.dataset.value))")
    assert dots == [p["tpot_p90_s"] for p in result["load_curve"]]
    link = page.url
    _check_bad_input(page, lang, "plan", changes, "rate", "0")
    _follow(page, link)
    _assert_matches_cli(page, "plan", _query(page))
    _no_bad_numbers(page)


def test_pipeline_and_expert_parallel_inputs(page):
    """pp and ep: on the form next to tp, in the URL, the same numbers as the CLI, one chart bar per stage,
    calc's own message for a layout that cannot run."""
    _open(page, _path("en", "calculators/vram/"))
    _wait_live(page)
    changes = {"model": "llama-3.1-405b", "weights": "fp8", "tp": "8", "pp": "2"}
    _set_inputs(page, changes)
    result = _assert_matches_cli(page, "memory", changes)
    assert _query(page) == changes
    cells = dict(page.eval_on_selector_all(".calc svg [data-series]",
                                           "els => els.map(e => [e.dataset.series, e.dataset.value])"))
    for row in result["per_gpu_table"]:
        assert cells[f"weights-stage{row['stage']}"] == str(row["weights_bytes"])
    _check_bad_input(page, "en", "memory", changes, "pp", "4")  # 126 layers: 4 stages would be uneven

    _go(page, "performance")
    changes = {"model": "deepseek-v3", "gpu": "h200", "weights": "fp8", "ep": "8", "batch": "64"}  # tp: the default 1
    _set_inputs(page, changes)
    result = _assert_matches_cli(page, "perf", changes)
    assert result["all_to_all_s_per_step"] > 0 and _query(page) == changes
    _check_bad_input(page, "en", "perf", changes, "ep", "512")  # DeepSeek-V3 has 256 routed experts


def _check_bad_input(page, lang: str, command: str, changes: dict, name: str, value: str) -> None:
    """A bad value: calc's message, in the page's language, next to the field; no result shown. Then back."""
    _set_inputs(page, {name: value})
    with pytest.raises(api.InputError) as err:
        api.run(command, {**changes, name: value})
    assert page.inner_text(f".calc [data-testid=error-{name}]") == err.value.errors[name][lang]
    assert page.get_attribute(f".calc [data-testid='{name}']", "aria-invalid") == "true"
    assert not page.is_visible(".calc [data-testid=results]")
    _no_bad_numbers(page)
    _set_inputs(page, {name: changes.get(name, "")})
    assert page.is_hidden(f".calc [data-testid=error-{name}]")
    _assert_matches_cli(page, command, changes)


def _follow(page, url: str) -> None:
    """Follow a link to url from the current page, as a reader would (instant navigation)."""
    page.evaluate("""url => { const a = Object.assign(document.createElement('a'), {href: url, id: '__follow'});
                              a.textContent = 'follow'; document.querySelector('article').append(a); }""", url)
    reader.click(page, page.locator("#__follow"))
    # Instant navigation swaps the article, link included. Wait for that: the URL may already be the link's (the
    # planner follows its own share link), and the old page, scrolled to the link, would pass the checks below.
    page.wait_for_selector("#__follow", state="detached")
    page.wait_for_url(url)
    name = re.search(r"/calculators/(\w+)/", url).group(1)
    page.wait_for_selector(f".calc[data-calc={name}] form[data-state=ready]", timeout=LIVE_TIMEOUT)
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")
    # The address bar is the share link: nothing (such as Material's anchor tracking) may add to it.
    assert page.url == url
    # Material scrolls to the top once the new page is in; give it that moment, then insist.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function("window.scrollY === 0", timeout=10_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the followed link left the page scrolled to {page.evaluate('window.scrollY')}px") from None


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_bad_inputs_and_pasted_configs(page, lang):
    _open(page, _path(lang, "calculators/vram/"))
    _wait_live(page)
    bad = {"batch": "-1", "prompt-len": "abc", "tp": "3"}
    # tp=3 only fails once batch and prompt-len are valid (calc reports the field checks first)
    for name, value in bad.items():
        _set_inputs(page, {name: value})
        with pytest.raises(api.InputError) as err:
            api.run("memory", {name: value})
        message = page.inner_text(f".calc [data-testid=error-{name}]")
        assert message == err.value.errors[name][lang]
        assert page.get_attribute(f".calc [data-testid='{name}']", "aria-invalid") == "true"
        assert not page.is_visible(".calc [data-testid=results]")
        assert page.get_attribute(".calc [data-testid=status]", "data-state") == "invalid"
        _no_bad_numbers(page)
        _set_inputs(page, {name: ""})  # empty: back to the default
    assert page.is_hidden(".calc [data-testid=error-tp]")
    _assert_matches_cli(page, "memory", {})

    # A malformed config.json: a message next to the field, nothing evaluated.
    page.click(".calc [data-testid=config-details] summary")
    _set_inputs(page, {"config": '{"model_type": "llama", "hidden_size": 4096,'})
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"config": '{"model_type": "llama", "hidden_size": 4096,'})
    assert page.inner_text(".calc [data-testid=error-config]") == err.value.errors["config"][lang]
    _set_inputs(page, {"config": '{"model_type": "gpt2"}'})
    assert "model_type" in page.inner_text(".calc [data-testid=error-config]")

    # A valid one (Llama-3.2-1B's published config under another name) computes like the CLI's --config.
    config = registry.hf_config("llama-3.2-1b")
    config["_name_or_path"] = "<b>my-1b</b>"
    text = json.dumps(config, indent=1)
    _set_inputs(page, {"config": text, "batch": "4"})
    _assert_matches_cli(page, "memory", {"config": text, "batch": "4"})
    assert page.locator(".calc b").count() == 0  # the name is text, not markup
    assert json.loads(_query(page)["config"]) == config


def test_url_round_trip_and_language_switch(page):
    params = {"model": "qwen3-8b", "batch": "16", "weights": "fp8", "engine": "hf"}
    _open(page, "/calculators/performance/?" + "&".join(f"{k}={v}" for k, v in params.items()))
    for name, value in params.items():
        assert page.input_value(f".calc [data-testid='{name}']") == value
    # The prerendered numbers are for the defaults: marked as such until Python has computed the link's inputs.
    _wait_live(page)
    assert page.evaluate("window.__firstStatus") == "static"
    assert page.evaluate("window.__statusHistory")[:2] == ["stale", "live"]
    _assert_matches_cli(page, "perf", params)

    _set_inputs(page, {"output-len": "512"})
    params["output-len"] = "512"
    assert _query(page) == params
    _assert_matches_cli(page, "perf", params)

    page.reload()
    for name, value in params.items():
        assert page.input_value(f".calc [data-testid='{name}']") == value
    _wait_live(page)
    _assert_matches_cli(page, "perf", params)

    page.hover(".md-header__option .md-select")
    page.click(".md-select__link[hreflang=en]")
    page.wait_for_url(re.compile(r"/en/calculators/performance/\?"))
    assert _query(page) == params
    page.wait_for_selector(".calc[data-lang=en] form[data-state=ready]", timeout=LIVE_TIMEOUT)
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")
    _assert_matches_cli(page, "perf", params)
    assert "Live" in page.inner_text(".calc [data-testid=status]")


def test_url_values_are_text_never_markup(page):
    evil = '<img src=x onerror="window.__pwned=1">'
    _open(page, "/en/calculators/vram/?model=" + evil.replace(" ", "%20") + "&batch=%3Cb%3E2%3C/b%3E")
    _wait_live(page)
    assert page.locator(".calc img, .calc b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.input_value(".calc [data-testid=model]") == evil
    assert evil in page.inner_text(".calc [data-testid=error-model]")
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"batch": "<b>2</b>"})
    assert page.inner_text(".calc [data-testid=error-batch]") == err.value.errors["batch"]["en"]
    _no_bad_numbers(page)


def test_compact_calculator_embedded_in_a_page(page):
    params = {"model": "llama-3.1-70b", "weights": "fp8", "prompt-len": "8192"}
    _open(page, "/calculators/")
    assert page.get_attribute(".calc", "data-mode") == "compact"
    _assert_matches_cli(page, "memory", params, shown=page.evaluate("window.__firstOutputs"))
    _wait_live(page)
    _set_inputs(page, {"batch": "4"})
    _assert_matches_cli(page, "memory", {**params, "batch": "4"})
    assert urlsplit(page.url).query == ""  # a compact calculator leaves the URL alone

    reader.click(page, page.locator(".calc [data-testid=open-full]"))
    page.wait_for_url(re.compile(r"/calculators/vram/\?"))
    page.wait_for_selector(".calc[data-mode=full] form[data-state=ready]", timeout=LIVE_TIMEOUT)
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")
    for name, value in params.items():
        assert page.input_value(f".calc [data-testid='{name}']") == value
    _assert_matches_cli(page, "memory", params)
    assert page.evaluate("window.__calc.created") == 1
