"""Shared fixtures: one strict build of the site per test session, a local HTTP server for it, and a
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) that records every request leaving
the local host and every console error.

Under pytest-xdist each worker is a separate process; the site is built once, by whichever worker gets the
lock first, into a folder shared by all workers.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass
class SiteBuild:
    returncode: int
    log: str
    site_dir: Path


def _shared_dir(tmp_path_factory) -> Path:
    # With xdist the base temp dir is per worker; its parent is shared by all workers of the session.
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def site_build(tmp_path_factory) -> SiteBuild:
    shared = _shared_dir(tmp_path_factory)
    site_dir = shared / "site"
    log_file = shared / "mkdocs-build.log"
    rc_file = shared / "mkdocs-build.rc"
    with open(shared / "site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not rc_file.exists():
            env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
            env.pop("SITE_URL", None)  # the server below rewrites the default site_url's sitemap
            proc = subprocess.run(
                [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site_dir)],
                cwd=ROOT, env=env, capture_output=True, text=True,
            )
            log_file.write_text(proc.stdout + proc.stderr)
            rc_file.write_text(str(proc.returncode))
    return SiteBuild(int(rc_file.read_text()), log_file.read_text(), site_dir)


@pytest.fixture(scope="session")
def site_dir(site_build) -> Path:
    if site_build.returncode != 0:
        pytest.fail("mkdocs build --strict failed:\n" + site_build.log[-4000:])
    return site_build.site_dir


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    # Module workers and WebAssembly need the right MIME types; Python's table lacks some of them.
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".svg": "image/svg+xml",
        ".zip": "application/zip",
    }

    # The site is built for site_url (mkdocs.yml). Material's instant navigation only intercepts links listed in
    # sitemap.xml, and keeps the sitemap's port: serve the sitemaps as a deployment at this server's origin would.
    built_for = "http://127.0.0.1:8000/"

    def do_GET(self):
        if not self.path.split("?")[0].endswith("sitemap.xml"):
            return super().do_GET()
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            return super().do_GET()
        host, port = self.server.server_address[:2]
        body = path.read_bytes().replace(self.built_for.encode(), f"http://{host}:{port}/".encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # keep test output readable
        pass


@pytest.fixture(scope="session")
def site_url(site_dir) -> str:
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@dataclass
class Watch:
    """What a page did that a test must not allow: requests to other hosts, console errors."""

    external_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        assert not self.external_requests, f"requests left the local host: {self.external_requests}"
        assert not self.failed_responses, f"local requests failed: {self.failed_responses}"
        assert not self.console_errors, f"console errors: {self.console_errors}"


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return parts.hostname in LOCAL_HOSTS


@pytest.fixture
def page(browser, site_url):
    """A fresh page whose external requests are blocked and recorded; the test fails at teardown if the
    page requested another host, got an HTTP error from the local server, or logged a console error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)  # two browsers (xdist) share two cores; Pyodide's start is CPU-bound
    watch = Watch()

    def route(route):
        if _is_local(route.request.url):
            route.continue_()
        else:
            watch.external_requests.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda msg: msg.type == "error" and watch.console_errors.append(msg.text))
    pg.on("pageerror", lambda exc: watch.console_errors.append(f"pageerror: {exc}"))
    pg.on("response", lambda r: r.status >= 400 and watch.failed_responses.append(f"{r.status} {r.url}"))
    pg.watch = watch
    pg.base = site_url
    yield pg
    context.close()
    watch.assert_clean()
