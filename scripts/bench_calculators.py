#!/usr/bin/env python3
"""How fast the calculators are in a real browser (Debian's /usr/bin/chromium through Playwright).

    .venv/bin/python scripts/bench_calculators.py                 # build the site into a temp dir, 5 runs
    .venv/bin/python scripts/bench_calculators.py --site site --runs 3 --ablation

Measures, on /calculators/vram/ (targets from issue 4):
- result visible: navigation start -> the prerendered result table painted in the viewport   (<= 0.5 s)
- live, cold cache: navigation start -> the first result computed by Python in the browser   (<= 5 s)
- live, warm cache: the same page opened again in the same browser profile (HTTP cache, compiled code)
- recompute: an input event -> the new result on screen, while live                          (<= 50 ms)
- bytes transferred (cold), all and the calculators' own (Pyodide, stdlib, calc)
- instant navigation to another calculator: click -> live (the worker is reused)
With --ablation it also runs the start-up variants the hook replaced (served by rerouting requests, so the
same build is measured): Pyodide's stdlib as sources, calc without bytecode, Pyodide's full package index,
and the worker started later: by the widget's boot script only (not from <head>), or by the module script.

This is a script, not a test: the numbers depend on the machine (report them with its CPU count).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
PAGE = "/calculators/vram/"
SITE_URL = "http://127.0.0.1:8000/"  # mkdocs.yml site_url: Material's sitemap names pages under it
TARGETS = {"result_visible_ms": 500, "live_cold_ms": 5000, "recompute_ms": 50}
CALC_ASSETS = ("pyodide", "python_stdlib", "calc-", "worker.js", "calculators.js")


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
                      ".zip": "application/zip", ".svg": "image/svg+xml"}

    def log_message(self, format, *args):
        pass


# Runs in the page before any of its scripts: when was the prerendered result table painted? The hook marks
# the table's caption with elementtiming="calc-result" (Element Timing API: the time of the paint itself).
FIRST_RESULT = """
new PerformanceObserver(list => {
  for (const e of list.getEntries())
    if (e.identifier === 'calc-result' && window.__resultVisibleAt === undefined)
      window.__resultVisibleAt = e.renderTime || e.loadTime;
}).observe({type: 'element', buffered: true});
"""


def _build_site() -> Path:
    out = Path(tempfile.mkdtemp(prefix="bench-site-"))
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--site-dir", str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return out


def _serve(site: Path) -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _variant_routes(context, site: Path, base: str, variant: set[str]) -> None:
    def sitemap(route):  # instant navigation needs the sitemap to name this server (see tests/browser)
        response = route.fetch()
        route.fulfill(response=response, body=response.text().replace(SITE_URL, base + "/"))

    context.route("**/sitemap.xml", sitemap)
    vendor = site / "assets" / "vendor" / "pyodide"
    if "source-stdlib" in variant:
        body = (vendor / "python_stdlib.zip").read_bytes()
        context.route(re.compile(r".*/python_stdlib-[0-9a-f]+\.zip$"),
                      lambda route: route.fulfill(body=body, content_type="application/zip"))
    if "source-calc" in variant:
        sys.path.insert(0, str(ROOT / "hooks"))
        import pyodide_bundle  # hooks/pyodide_bundle.py

        body_calc = pyodide_bundle.calc_archive()
        context.route(re.compile(r".*/calc-[0-9a-f]+\.zip$"),
                      lambda route: route.fulfill(body=body_calc, content_type="application/zip"))
    if "full-lock" in variant:
        lock = (vendor / "pyodide-lock.json").read_bytes()
        context.route(re.compile(r".*/pyodide-lock-[0-9a-f]+\.json$"),
                      lambda route: route.fulfill(body=lock, content_type="application/json"))
    if variant & {"late-worker", "no-mermaid"}:
        def rewrite_page(route):
            response = route.fetch()
            body = response.text()
            boot = r"<script>\(function\(c,d\)\{if\(c\.worker.*?</script>"
            if "late-worker" in variant:  # neither boot script: calculators.js starts the worker on mount
                body = re.sub(boot, "", body, flags=re.S)
            if "widget-boot" in variant:  # only the widget's boot script, not the one in <head>
                head, sep, rest = body.partition("</head>")
                body = re.sub(boot, "", head, flags=re.S) + sep + rest
            if "no-mermaid" in variant:  # not a change of ours: how much the site's other scripts cost
                body = re.sub(r'<script src="[^"]*mermaid\.min\.js"></script>', "", body)
            route.fulfill(response=response, body=body)

        context.route(re.compile(r".*/calculators/[a-z]*/?(\?.*)?$"), rewrite_page)


def _timings(page) -> dict:
    t = page.evaluate("""() => {
      const c = window.__calc, w = c.timings || {}, o = (w.origin || performance.timeOrigin) - performance.timeOrigin;
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      return {result_visible_ms: window.__resultVisibleAt, fcp_ms: fcp && fcp.startTime, worker_start_ms: c.startedAt,
              wasm_ms: w.wasm + o, python_ms: w.python + o, calc_imported_ms: w.imported + o, live_ms: c.readyAt,
              dom_content_loaded_ms: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd};
    }""")
    return {k: (round(v) if isinstance(v, (int, float)) else v) for k, v in t.items()}


def _load(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_selector(".calc form[data-state=ready]", timeout=120_000)
    page.wait_for_function("window.__resultVisibleAt !== undefined && document.querySelector('.calc').dataset.busy === 'false'")
    return _timings(page)


def _recompute(page, n: int) -> list[float]:
    out = []
    for i in range(n):
        before = int(page.get_attribute(".calc", "data-renders") or 0)
        page.fill(".calc [data-testid=batch]", str(1 + (i % 2) * 7 + i))
        page.wait_for_function(
            f"Number(document.querySelector('.calc').dataset.renders) > {before}"
            " && document.querySelector('.calc').dataset.busy === 'false'")
        out.append(page.evaluate("window.__calc.lastRecomputeMs"))
    return out


def _instant_nav(page) -> float:
    page.evaluate("window.__navStart = performance.now()")
    page.locator("a[href$='calculators/performance/']:visible").first.click()
    page.wait_for_url(re.compile(r"/calculators/performance/$"))
    page.wait_for_selector(".calc[data-calc=performance] form[data-state=ready]")
    page.wait_for_function("document.querySelector('.calc').dataset.busy === 'false'")
    assert page.evaluate("window.__calc.created") == 1, "the worker was not reused"
    return page.evaluate("performance.now() - window.__navStart")


def _one_round(pw, site: Path, base: str, variant: set[str], extras: int, acc: dict) -> None:
    """One cold load in a new browser profile, then a warm one in the same profile; with extras > 0 also the
    recompute latency (extras input changes), instant navigation, and which stdlib modules were compiled.
    A real profile on disk, not an incognito context: Chromium keeps no compiled code (V8's code cache, which
    holds compiled WebAssembly too) for incognito profiles, so "warm" would only mean the HTTP cache."""
    profile = tempfile.TemporaryDirectory(prefix="bench-profile-")
    context = pw.chromium.launch_persistent_context(
        profile.name, executable_path=CHROMIUM, viewport={"width": 1280, "height": 900},
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])
    _variant_routes(context, site, base, variant)
    context.add_init_script(FIRST_RESULT)
    sizes: list[tuple[str, int]] = []

    def finished(request):
        response = request.response()
        n = request.sizes()["responseBodySize"]
        if n <= 0 and response is not None:
            n = int(response.headers.get("content-length") or 0)
        sizes.append((request.url, max(n, 0)))

    context.on("requestfinished", finished)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    acc["cold"].append(_load(page, base + PAGE))
    acc["bytes_all"].append(sum(n for _, n in sizes))
    acc["bytes_calc"].append(sum(n for u, n in sizes if any(a in u for a in CALC_ASSETS)))
    if extras:
        acc["modules"] = page.evaluate("""() => new Promise(resolve => {
          const w = window.__calc.worker;
          w.addEventListener('message', e => { if (e.data.type === 'modules') resolve(e.data.fromSource); });
          w.postMessage({type: 'modules', id: 'bench'}); })""")
        acc["recompute"] += _recompute(page, extras)
        acc["nav"].append(_instant_nav(page))
    page.close()
    page = context.new_page()  # same profile: HTTP cache and compiled code warm
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    acc["warm"].append(_load(page, base + PAGE))
    context.close()
    profile.cleanup()
    if errors:
        raise SystemExit(f"console errors: {errors}")


def run(site: Path, runs: int, variants: list[set[str]], recomputes: int) -> list[dict]:
    """Rounds of one cold + one warm load per variant, the variants interleaved (A B C A B C ...) so that
    other load on the machine affects them alike."""
    from playwright.sync_api import sync_playwright

    base = _serve(site)
    accs = [{"cold": [], "warm": [], "recompute": [], "nav": [], "modules": None, "bytes_all": [], "bytes_calc": []}
            for _ in variants]
    with sync_playwright() as pw:
        for i in range(runs):
            for j, (variant, acc) in enumerate(zip(variants, accs, strict=True)):
                print(f"  round {i + 1}/{runs}: {', '.join(sorted(variant)) or 'as built'}", file=sys.stderr, flush=True)
                _one_round(pw, site, base, variant, recomputes if i == 0 and j == 0 else 0, acc)

    def med(values):
        values = [v for v in values if isinstance(v, (int, float))]
        return round(statistics.median(values)) if values else None

    results = []
    for variant, acc in zip(variants, accs, strict=True):
        rows, warm, recompute, nav = acc["cold"], acc["warm"], acc["recompute"], acc["nav"]
        keys = rows[0].keys()
        results.append({
            "variant": sorted(variant) or ["as built"],
            "runs": runs,
            "cold": {k: med([r[k] for r in rows]) for k in keys},
            "cold_runs_live_ms": [r["live_ms"] for r in rows],
            "warm": {k: med([r[k] for r in warm]) for k in keys},
            "recompute_ms": {"median": round(statistics.median(recompute), 1) if recompute else None,
                             "p95": round(sorted(recompute)[int(0.95 * (len(recompute) - 1))], 1) if recompute else None,
                             "n": len(recompute)},
            "instant_nav_to_live_ms": round(nav[0]) if nav else None,
            "bytes_cold": {"all": med(acc["bytes_all"]), "calculators": med(acc["bytes_calc"])},
            "stdlib_modules_compiled_in_browser": acc["modules"],
        })
    return results


def _report(results: list[dict], load: tuple = ()) -> str:
    lines = [f"machine: {os.cpu_count()} CPUs; page {PAGE}; medians of {results[0]['runs']} runs"
             + (f" (variants interleaved); load average {load[0]:.2f} before, {load[1]:.2f} after" if load else "")]
    for r in results:
        c, w = r["cold"], r["warm"]
        lines.append(f"\n== {', '.join(r['variant'])}")
        lines.append(f"  result visible (cold)   {c['result_visible_ms']} ms   (target <= {TARGETS['result_visible_ms']} ms: "
                     f"{'met' if c['result_visible_ms'] <= TARGETS['result_visible_ms'] else 'NOT met'}); FCP {c['fcp_ms']} ms")
        lines.append(f"  live, cold cache        {c['live_ms']} ms   (target <= {TARGETS['live_cold_ms']} ms: "
                     f"{'met' if c['live_ms'] <= TARGETS['live_cold_ms'] else 'NOT met'}); runs: {r['cold_runs_live_ms']}")
        lines.append(f"    worker started {c['worker_start_ms']}, wasm ready {c['wasm_ms']}, Python ready {c['python_ms']}, "
                     f"calc imported {c['calc_imported_ms']} ms (DOMContentLoaded {c['dom_content_loaded_ms']} ms)")
        lines.append(f"  live, warm cache        {w['live_ms']} ms   (result visible {w['result_visible_ms']} ms)")
        if r["recompute_ms"]["n"]:
            ok = r["recompute_ms"]["median"] <= TARGETS["recompute_ms"]
            lines.append(f"  recompute               median {r['recompute_ms']['median']} ms, p95 {r['recompute_ms']['p95']} ms "
                         f"over {r['recompute_ms']['n']}   (target <= {TARGETS['recompute_ms']} ms: {'met' if ok else 'NOT met'})")
        if r["instant_nav_to_live_ms"] is not None:
            lines.append(f"  instant nav -> live     {r['instant_nav_to_live_ms']} ms (worker reused)")
        b = r["bytes_cold"]
        lines.append(f"  bytes (cold)            {b['all'] / 1e6:.2f} MB in all, {b['calculators'] / 1e6:.2f} MB for the calculators")
        if r["stdlib_modules_compiled_in_browser"]:
            lines.append(f"  stdlib modules compiled in the browser: {len(r['stdlib_modules_compiled_in_browser'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, help="a built site (default: build one into a temp dir)")
    parser.add_argument("--runs", type=int, default=5, help="cold loads per variant (each followed by a warm one)")
    parser.add_argument("--recomputes", type=int, default=30, help="input changes timed in the first run")
    parser.add_argument("--ablation", action="store_true", help="also measure the start-up variants the hook replaced")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME",
                        help="measure only this variant (repeatable, combined): late-worker, widget-boot, full-lock, source-calc, "
                             "source-stdlib, no-mermaid (the site without Mermaid, for comparison)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing")
    site = args.site or _build_site()
    variants = [set(args.variant)]
    if args.ablation:
        variants += [{"widget-boot"}, {"late-worker"}, {"full-lock"}, {"source-calc"}, {"source-stdlib"},
                     {"source-stdlib", "source-calc", "full-lock", "late-worker"}]
    load_before = os.getloadavg()
    results = run(site, args.runs, variants, args.recomputes)
    load = (load_before[0], os.getloadavg()[0])
    print(json.dumps({"load_average": load, "results": results}, indent=1) if args.json else _report(results, load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
