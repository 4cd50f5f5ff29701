"""The built course site in a real browser, offline: headless Chromium driven by Playwright.

Builds a small site (three real notebooks, quick mode; the build cache makes a re-run fast) or
reuses the one in ``$LOSSVIZ_SITE`` (e.g. ``LOSSVIZ_SITE=site`` after ``make site``), serves it
from a local HTTP server on 127.0.0.1 and, with every request to another host blocked (and
recorded), checks: the sidebar and prev/next links resolve, the search page finds "neural
collapse", moving a kernel-free slider changes the plot's data, math is typeset by the bundled
MathJax, no page raises a JavaScript error, and no request to another host was attempted.
Screenshots go to ``test-artifacts/site-browser/``.

Needs Debian's ``chromium`` (``apt-get install chromium``) and ``pip install playwright``
(Playwright drives the system Chromium through ``executable_path``: no browser download).
Without them the test is skipped with that hint.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "site-browser"
CHROMIUM = os.environ.get("LOSSVIZ_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
HINT = "install with `apt-get install chromium` and `pip install playwright` (or `make test-browser`)"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason=f"Playwright is not installed: {HINT}"),
    pytest.mark.skipif(CHROMIUM is None, reason=f"Chromium is not installed: {HINT}"),
    pytest.mark.skipif(
        importlib.util.find_spec("myst_nb") is None or importlib.util.find_spec("sphinx_book_theme") is None,
        reason="the site tools are not installed: pip install -e '.[site]'",
    ),
]

# The tour, a neural-collapse notebook (search target, math) and one with kernel-free sliders.
NOTEBOOKS = [
    "00_start_here.ipynb",
    "collapse/N01_ufm_geometry.ipynb",
    "landscape/L06_saddle_free_newton.ipynb",
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


def _build_site(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    build_site = importlib.util.module_from_spec(spec)
    sys.modules["build_site"] = build_site  # dataclasses look their module up
    spec.loader.exec_module(build_site)
    paths = [str(ROOT / "notebooks" / nb) for nb in NOTEBOOKS]
    rc = build_site.main([*paths, "--out", str(out), "--jobs", "1"])
    assert rc == 0, "the small site did not build (see the output above)"
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    given = os.environ.get("LOSSVIZ_SITE")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").exists(), f"LOSSVIZ_SITE={given} has no index.html"
        return path
    return _build_site(tmp_path_factory.mktemp("site") / "html")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def browser_page(server):
    """A page whose every request to a host other than our server is aborted and recorded."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    local = urlparse(server).netloc
    state = {"blocked": [], "errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, service_workers="block")

        def route(r):
            url = r.request.url
            if urlparse(url).netloc == local or url.startswith(("data:", "blob:", "about:")):
                r.continue_()
            else:
                state["blocked"].append(url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("pageerror", lambda exc: state["errors"].append(f"{page.url}: {exc}"))
        try:
            yield page, server, state
        finally:
            context.close()
            browser.close()


def _goto(page, url):
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url} answered {response and response.status}"
    return response


def _nav_links(page, selector):
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('href'))")


def test_sidebar_and_prev_next_links_resolve(browser_page):
    page, base, state = browser_page
    _goto(page, base + "index.html")
    page.screenshot(path=str(SHOTS / "index.png"), full_page=True)
    sidebar = [h for h in _nav_links(page, ".bd-sidebar-primary nav a.reference.internal") if h]
    names = [Path(nb).with_suffix(".html").as_posix() for nb in NOTEBOOKS]
    assert sidebar, "the sidebar has no links"
    for name in names:
        assert any(h.split("#")[0].endswith(name) for h in sidebar), (
            f"{name} is not in the sidebar: {sidebar}"
        )
    captions = page.eval_on_selector_all(".bd-sidebar-primary p.caption", "els => els.map(e => e.innerText)")
    assert any("Neural collapse" in c for c in captions) and any("Loss landscapes" in c for c in captions), (
        f"the sidebar is not grouped by track: captions {captions}"
    )
    # Follow "next" from the home page through every page, then "previous" back: all resolve and
    # the chain visits every page of the sidebar once.
    visited, url = [], base + "index.html"
    for _ in range(len(sidebar) + 5):
        _goto(page, url)
        visited.append(urlparse(page.url).path)
        nxt = _nav_links(page, "a.right-next")
        if not nxt:
            break
        url = urljoin(page.url, nxt[0])
    for name in names:
        assert any(v.endswith(name) for v in visited), f"'next' never reached {name}: {visited}"
    for _ in range(len(visited) - 1):
        prev = _nav_links(page, "a.left-prev")
        assert prev, f"{page.url} has no 'previous' link"
        _goto(page, urljoin(page.url, prev[0]))
    assert urlparse(page.url).path.endswith("index.html") or urlparse(page.url).path.endswith("/")
    # every sidebar link on a notebook page resolves too (relative links from a sub-folder)
    _goto(page, base + names[-1])
    for href in _nav_links(page, ".bd-sidebar-primary nav a.reference.internal"):
        _goto(page, urljoin(base + names[-1], href))
    assert state["errors"] == [], state["errors"]


def test_search_finds_neural_collapse_offline(browser_page):
    page, base, state = browser_page
    _goto(page, base + "search.html?q=neural+collapse")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    results = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)
    assert any("collapse/N01" in r for r in results), f"no neural-collapse notebook among {results}"
    assert state["errors"] == [], state["errors"]


def _slider_figure_state(page):
    return page.evaluate(
        """() => {
        const figs = [...document.querySelectorAll('.plotly-graph-div')].filter(
            g => g.layout && g.layout.sliders && g.layout.sliders.length &&
                 g._transitionData && g._transitionData._frames && g._transitionData._frames.length > 1);
        if (!figs.length) return null;
        const g = figs[0];
        g.scrollIntoView();
        const flat = g.data.map(t => JSON.stringify([t.x, t.y, t.z]));
        return {index: [...document.querySelectorAll('.plotly-graph-div')].indexOf(g),
                data: flat.join('|'), active: g.layout.sliders[0].active || 0,
                steps: g.layout.sliders[0].steps.length};
    }"""
    )


def test_kernel_free_slider_moves_the_figure(browser_page):
    page, base, state = browser_page
    _goto(page, base + Path(NOTEBOOKS[-1]).with_suffix(".html").as_posix())
    page.wait_for_function("() => window.Plotly !== undefined", timeout=30_000)
    before = _slider_figure_state(page)
    assert before is not None, "no plotly figure with frames and a slider on the page"
    fig = page.locator(".plotly-graph-div").nth(before["index"])
    rail = fig.locator("rect.slider-rail-touch-rect").first
    box = rail.bounding_box()
    assert box is not None, "the slider rail is not visible"
    page.screenshot(path=str(SHOTS / "slider-before.png"), full_page=False)
    # click the far end of the rail (the slider starts elsewhere: the data must change)
    x = box["x"] + (0.97 if before["active"] < before["steps"] - 1 else 0.03) * box["width"]
    page.mouse.click(x, box["y"] + box["height"] / 2)
    page.wait_for_timeout(1500)  # the frame transition
    after = _slider_figure_state(page)
    page.screenshot(path=str(SHOTS / "slider-after.png"), full_page=False)
    assert after["active"] != before["active"], "the slider did not move"
    assert after["data"] != before["data"], "moving the slider did not change the plot's data"
    assert state["errors"] == [], state["errors"]


def test_math_is_rendered_by_bundled_mathjax(browser_page):
    page, base, state = browser_page
    _goto(page, base + Path(NOTEBOOKS[1]).with_suffix(".html").as_posix())
    page.wait_for_function(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000
    )
    page.evaluate("() => MathJax.startup.promise")
    n = page.locator("mjx-container").count()
    page.screenshot(path=str(SHOTS / "math.png"), full_page=False)
    assert n >= 5, f"only {n} typeset formulas (MathJax output elements) on the page"
    raw = page.evaluate("() => document.querySelectorAll('.math:not(:has(mjx-container))').length")
    assert raw == 0, f"{raw} formulas left untypeset"
    assert state["errors"] == [], state["errors"]


def test_api_reference_and_no_request_left_the_machine(browser_page, site):
    page, base, state = browser_page
    if (site / "api" / "index.html").exists():
        _goto(page, base + "api/index.html")
        links = _nav_links(page, "article a.reference.internal")
        assert any("lossviz" in (h or "") for h in links), "the API reference lists no lossviz module"
        _goto(page, urljoin(base + "api/index.html", links[0]))
        assert page.locator("dl.py").count() > 0, "the API page documents no object"
    assert state["blocked"] == [], f"the site tried to reach other hosts: {state['blocked'][:10]}"
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20
    assert size <= 50, f"the site is {size:.1f} MB (budget 50 MB)"
