"""Widgets proven in a real browser: JupyterLab + headless Chromium driven by Playwright.

For each of the notebooks (all of them): start JupyterLab on a free local port with a token, open
the notebook, run all cells, move the first control of the first widget panel (a slider with the
keyboard, mouse drag as a fallback; toggle buttons by a click; a dropdown), and check that the
figure next to it changed, that no "Error displaying widget" / "model not found" text appears and
that no traceback was printed. Screenshots of every step go to ``test-artifacts/browser/``.

Needs Debian's ``chromium`` (``apt-get install chromium``) and ``pip install playwright``
(the Playwright browser download is not needed: we pass Chromium's executable path). Without
them the test is skipped with that hint, never passed. Run alone with ``make test-browser``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from ._jupyter import running_lab

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "browser"
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
]

# Every notebook: the tour and one per paper. LOSSVIZ_BROWSER_NOTEBOOKS="L01 T03" narrows it.
NOTEBOOKS = sorted(
    str(p.relative_to(ROOT / "notebooks"))
    for p in (ROOT / "notebooks").rglob("*.ipynb")
    if ".ipynb_checkpoints" not in p.parts
)
if os.environ.get("LOSSVIZ_BROWSER_NOTEBOOKS"):
    _want = os.environ["LOSSVIZ_BROWSER_NOTEBOOKS"].split()
    NOTEBOOKS = [n for n in NOTEBOOKS if any(Path(n).name.startswith(w) for w in _want)]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BAD_TEXT = ("Error displaying widget", "model not found")
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the visible notebook


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free port with a token, serving a COPY of notebooks/.

    A copy, because JupyterLab autosaves: running the notebooks must not write outputs into the
    repository's (output-free) notebooks.
    """
    tmp = tmp_path_factory.mktemp("lab")
    served = tmp / "served"
    shutil.copytree(
        ROOT / "notebooks", served / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints")
    )
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    env = {"LOSSVIZ_QUICK": "1", "OMP_NUM_THREADS": "1", "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings")}
    with running_lab(served, tmp, [f"--ServerApp.root_dir={served}"], env) as lab:
        yield lab


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shutdown_kernels(lab) -> None:
    """Shut down every kernel the notebook started: 22 idle kernels would hold gigabytes."""
    import json
    import urllib.request

    url = f"{lab['base']}/api/kernels?token={lab['token']}"
    with urllib.request.urlopen(url, timeout=30) as r:
        kernels = json.loads(r.read())
    for k in kernels:
        req = urllib.request.Request(
            f"{lab['base']}/api/kernels/{k['id']}?token={lab['token']}", method="DELETE"
        )
        urllib.request.urlopen(req, timeout=30).close()


# jupyter_server logs this when a kernel still sends messages over a websocket the closed page
# has just dropped (tornado's write_message on a closed stream); it is teardown noise, not a
# failure of the notebook. Only this exact shape is dropped: every frame must be tornado's.
_TEARDOWN_NOISE = re.compile(
    r"Task exception was never retrieved\n"
    r"future: <Task finished name='[^'\n]*' coro=<WebSocketProtocol13\.write_message\.<locals>\.wrapper\(\)[^\n]*\n"
    r"(?:(?:Traceback \(most recent call last\):"
    r"|  File \"[^\"\n]*/tornado/[^\"\n]*\", line \d+, in \w+"
    r"|    [^\n]*"
    r"|tornado\.iostream\.StreamClosedError: Stream is closed"
    r"|During handling of the above exception, another exception occurred:"
    r"|)\n)*?"
    r"tornado\.websocket\.WebSocketClosedError\n"
)


def _server_tracebacks(log: str) -> str:
    """The server log with tornado's closed-websocket teardown noise removed."""
    return _TEARDOWN_NOISE.sub("", log)


def test_teardown_noise_filter_keeps_real_tracebacks():
    noise = (
        "Task exception was never retrieved\n"
        "future: <Task finished name='Task-1' coro=<WebSocketProtocol13.write_message.<locals>.wrapper() "
        "done, defined at /v/tornado/websocket.py:1138> exception=WebSocketClosedError()>\n"
        "Traceback (most recent call last):\n"
        '  File "/v/site-packages/tornado/websocket.py", line 1140, in wrapper\n'
        "    await fut\n"
        "tornado.iostream.StreamClosedError: Stream is closed\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/v/site-packages/tornado/websocket.py", line 1142, in wrapper\n'
        "    raise WebSocketClosedError()\n"
        "tornado.websocket.WebSocketClosedError\n"
    )
    real = 'Traceback (most recent call last):\n  File "/v/lossviz/x.py", line 3, in f\n    1/0\nZeroDivisionError\n'
    assert "Traceback" not in _server_tracebacks("[I] a\n" + noise + "[I] b\n")
    assert "ZeroDivisionError" in _server_tracebacks(noise + real)
    # a real traceback inside the noise's shape (a frame outside tornado) is kept
    mixed = noise.replace('/v/site-packages/tornado/websocket.py", line 1142', '/v/lossviz/x.py", line 1142')
    assert "Traceback" in _server_tracebacks(mixed)


def _shot(page, name: str, step: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name.replace('/', '_').removesuffix('.ipynb')}-{step}.png"
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path.relative_to(ROOT)}")
    return path


def _kernel_status(page) -> str:
    return page.evaluate(
        """() => { const e = [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                      .map(x => x.textContent).find(t => t.includes('|'));
                   return e || ''; }"""
    )


def _wait_kernel_idle(page, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if _kernel_status(page).strip().endswith("Idle"):
            return
        time.sleep(0.5)
    raise AssertionError(f"kernel not idle after {timeout_s:.0f} s: status bar says {_kernel_status(page)!r}")


def _wait_idle(page, timeout_s: float) -> None:
    """Wait until no cell shows the busy prompt [*] and the kernel is idle."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        busy = page.evaluate(
            """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputArea-prompt')]
                    .some(e => e.textContent.includes('*'))"""
        )
        if not busy and _kernel_status(page).strip().endswith("Idle"):
            return
        time.sleep(1.0)
    raise AssertionError(f"notebook still running after {timeout_s:.0f} s")


# the first control of the first widget panel: a slider handle, else toggle buttons, else a dropdown
CONTROL = (
    f"{PANEL} .widget-slider .noUi-handle, "
    f"{PANEL} .widget-toggle-buttons button, "
    f"{PANEL} .widget-dropdown select"
)

_STATE_JS = """(slider) => {
  // the output area that holds the slider, and the figure(s) inside it
  const area = slider.closest('.jp-OutputArea') || document.body;
  const plots = [...area.querySelectorAll('.js-plotly-plot')];
  const data = plots.map(p => JSON.stringify((p.data || []).map(t => [t.x, t.y, t.z])));
  const imgs = [...area.querySelectorAll('img')].map(i => i.src.slice(-200));
  const box = slider.closest('.widget-slider, .widget-toggle-buttons, .widget-dropdown') || slider;
  const pressed = [...box.querySelectorAll('button.mod-active')].map(b => b.textContent).join('|');
  const sel = box.querySelector('select');
  const readout = box.textContent + '|' + pressed + '|' + (sel ? sel.value : '');
  return {plots: data, imgs: imgs, readout: readout, nplots: plots.length};
}"""


def _wait_changed(page, control, before, timeout_s: float = 20.0) -> dict:
    """The state after a move, once the figure beside the control has changed (the kernel redraws
    it; on a loaded machine that can take seconds) or after ``timeout_s``."""
    deadline = time.time() + timeout_s
    time.sleep(1.0)
    while True:
        after = page.evaluate(_STATE_JS, control)
        changed = (before["plots"], before["imgs"]) != (after["plots"], after["imgs"])
        if changed or time.time() > deadline:
            return after
        time.sleep(0.5)


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_widgets_work_in_jupyterlab(lab, browser, notebook):
    try:
        _check_notebook(lab, browser, notebook)
    finally:
        _shutdown_kernels(lab)


def _check_notebook(lab, browser, notebook):
    lab["log"].flush()
    lab["log"].seek(0, os.SEEK_END)
    log_start = lab["log"].tell()  # judge only what the server logged while this notebook ran
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    name = Path(notebook).name
    # a fresh, reset workspace per notebook, so only this notebook is open
    workspace = "w" + hashlib.sha1(notebook.encode()).hexdigest()[:8]
    page.goto(
        f"{lab['base']}/lab/workspaces/{workspace}/tree/notebooks/{notebook}?reset&token={lab['token']}",
        timeout=120_000,
    )
    page.wait_for_selector(f"{PANEL} .jp-Cell", state="visible", timeout=120_000)
    _wait_kernel_idle(page, timeout_s=120)
    no_news = page.locator(".jp-Notification-Toast button", has_text="No")
    if no_news.count():
        no_news.first.click()
    _shot(page, notebook, "1-opened")

    page.locator(f"{PANEL} .jp-Cell").first.click()
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.wait_for_selector("li.lm-Menu-item[data-command='runmenu:run-all']", state="visible", timeout=30_000)
    page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()
    time.sleep(3.0)
    _wait_idle(page, timeout_s=240)
    page.wait_for_selector(CONTROL, timeout=60_000)
    _shot(page, notebook, "2-ran-all")

    prompts = page.evaluate(
        "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim())"
    )
    assert prompts and all(p not in ("[ ]:", "[*]:", "") for p in prompts), f"not every cell ran: {prompts}"

    handle = page.locator(CONTROL).first
    handle.scroll_into_view_if_needed()
    slider_el = handle.element_handle()
    kind = slider_el.evaluate(
        "e => e.tagName === 'SELECT' ? 'dropdown' : e.tagName === 'BUTTON' ? 'buttons' : 'slider'"
    )
    before = page.evaluate(_STATE_JS, slider_el)
    if kind == "dropdown":
        values = slider_el.evaluate("e => [...e.options].map(o => o.value)")
        current = slider_el.evaluate("e => e.value")
        slider_el.select_option(next(v for v in values if v != current))
    elif kind == "buttons":
        # press a button that is not the active one
        group = page.locator(f"{PANEL} .widget-toggle-buttons").first
        group.locator("button:not(.mod-active)").first.click()
    else:
        handle.focus()
        for key in ("ArrowRight", "ArrowLeft"):  # a slider at its right end moves only left
            for _ in range(8):
                page.keyboard.press(key)
                time.sleep(0.15)
            if page.evaluate(_STATE_JS, slider_el)["readout"] != before["readout"]:
                break
    after = _wait_changed(page, slider_el, before)
    moved = after["readout"] != before["readout"]
    if not moved and kind == "slider":  # keyboard did not move it: drag with the mouse
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + 80, box["y"] + box["height"] / 2, steps=8)
        page.mouse.up()
        after = _wait_changed(page, slider_el, before)
        moved = after["readout"] != before["readout"]
    plot = page.locator(f"{PANEL} .jp-OutputArea .js-plotly-plot").first
    if plot.count():
        plot.scroll_into_view_if_needed()
    _shot(page, notebook, "3-slider-moved")
    assert moved, f"the {kind} did not move (readout {before['readout']!r})"
    assert (before["plots"], before["imgs"]) != (after["plots"], after["imgs"]), (
        f"moving the slider did not change the figure next to it ({before['nplots']} plotly figures found)"
    )

    text = page.evaluate(
        "() => [...document.querySelectorAll('.jp-OutputArea')].map(e => e.innerText).join('\\n')"
    )
    for bad in BAD_TEXT:
        assert bad not in text, f"{name}: the page shows {bad!r}"
    tracebacks = page.evaluate(
        """() => [...document.querySelectorAll('.jp-OutputArea-output')]
                .map(e => e.innerText).filter(t => t.includes('Traceback'))"""
    )
    assert not tracebacks, f"{name}: a cell printed a traceback:\n" + tracebacks[0][:2000]
    lab["log"].flush()
    lab["log"].seek(log_start)
    server_log = _server_tracebacks(lab["log"].read())
    assert "Traceback" not in server_log, (
        "the Jupyter server/kernel logged a traceback:\n" + server_log[-3000:]
    )
    assert not errors, f"JavaScript errors on the page: {errors[:3]}"
    # the error Output of a panel is hidden until it has an error (no empty bordered box)
    empty_visible = page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .lossviz-error')]
                .filter(e => e.offsetParent !== null && !e.innerText.trim()).length"""
    )
    assert empty_visible == 0, f"{name}: {empty_visible} empty error Output(s) are visible"
    digest = hashlib.sha1(str(after).encode()).hexdigest()[:8]
    print(f"{notebook}: slider {before['readout']!r} -> {after['readout']!r}, figure state {digest}")
    page.close()
