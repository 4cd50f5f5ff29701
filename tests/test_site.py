"""`make site` (scripts/build_site.py) on tiny synthetic notebooks: fast, no real notebook runs.

One site is built once per module from a notebook with a title cell, math, a plotly figure with
frames and a slider, a warning and a live widget; the tests read that site. The failure test and
the cache test execute notebooks without rendering them.
"""

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
sys.modules["build_site"] = build_site  # dataclasses look their module up
spec.loader.exec_module(build_site)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("myst_nb") is None or importlib.util.find_spec("sphinx_book_theme") is None,
    reason="the site tools are not installed: pip install -e '.[site]'",
)

TITLE = """# D01 · A demo notebook for the site

**Paper.** A. Author, *A paper about demos*, 2026, arXiv:0000.00000.

**The claim.** Demos converge when $\\eta < 2/\\lambda_{\\max}$.

**Runtime (quick mode):** about 1 s on a CPU.
"""
FRAMES = """import plotly.graph_objects as go
from lossviz import widgets
sw = widgets.sweep(lambda a: a, [1.0, 2.0, 3.0], progress=False)
widgets.frames_figure(sw, lambda v, r: [go.Scatter(x=[0, 1], y=[0, r])], label="slope").show()"""
WIDGET = "import ipywidgets as W\nW.IntSlider(3)"
WARN = "import warnings\nwarnings.warn('this is a demo warning', UserWarning)\nprint('visible output')"


def _nb(path, *sources, markdown=()):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    from lossviz._nblint import fix_notebook

    nb = _nb(tmp / "D01_demo.ipynb", FRAMES, WIDGET, WARN, markdown=[TITLE, "Math: $$x^2 + y^2$$"])
    assert fix_notebook(nb)  # the launch badges (remote images) and the set-up cell, as in notebooks/
    out = tmp / "site"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = build_site.main(
            [str(nb), "--out", str(out), "--jobs", "1", "--no-api", "--cache", str(tmp / "c")]
        )
    assert rc == 0, buf.getvalue()
    return out, buf.getvalue()


def test_plotly_interactive_with_one_shared_plotly_js(built):
    out, _ = built
    page = (out / "D01_demo.html").read_text()
    assert "Plotly.newPlot" in page, "plotly figure must stay interactive (plotly.js call in the HTML)"
    assert "addFrames" in page and '"sliders"' in page, "a kernel-free slider must keep its frames and slider"
    assert (out / "_static" / "plotly.min.js").exists()
    assert re.search(r'<script src="_static/plotly\.min\.js[^"]*"></script>', page), "no shared plotly.js"
    copies = [
        p
        for p in out.rglob("*")
        if p.is_file() and p.name != "plotly.min.js" and "plotly.js v" in p.read_text(errors="ignore")
    ]
    assert copies == [], f"plotly.js embedded again in {copies}"
    index = (out / "index.html").read_text()
    assert "plotly.min.js" not in index, "pages without a plotly figure must not load plotly.js"


def test_no_resource_from_another_host_and_math_bundled(built):
    out, _ = built
    assert build_site.external_resources(out) == []
    page = (out / "D01_demo.html").read_text()
    assert "_static/mathjax/tex-mml-chtml.js" in page
    assert (out / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for p in out.rglob("*.html"):
        text = p.read_text()
        assert not re.search(r"cdn\.jsdelivr|cdnjs|unpkg\.com|cdn\.plot\.ly|googleapis", text), p


def test_notebook_badges_and_set_up_cell_left_out_of_pages(built):
    out, _ = built
    page = (out / "D01_demo.html").read_text()
    assert "colab-badge.svg" not in page and "badge_logo.svg" not in page
    assert "enable_custom_widget_manager" not in page and "D01 · A demo notebook" in page


def test_warnings_removed_from_pages_and_reported(built):
    out, log = built
    page = (out / "D01_demo.html").read_text()
    assert page.count("this is a demo warning") == 1, "the warning text must appear only in the code"
    assert "output stderr" not in page
    assert "visible output" in page
    assert re.search(r"D01_demo\.ipynb: cell 4: .*UserWarning: this is a demo warning", log), log


def test_live_widget_replaced_by_a_note(built):
    out, _ = built
    page = (out / "D01_demo.html").read_text()
    assert "lossviz-widget-note" in page and "IntSlider(" not in page


def test_students_index_sidebar_search_and_launch_buttons(built):
    out, _ = built
    index = (out / "index.html").read_text()
    assert 'href="D01_demo.html"' in index
    for text in ("What it teaches", "Prerequisites", "Time.", "about 1 s", "A paper about demos"):
        assert text in index, text
    assert "Demos converge" in index
    page = (out / "D01_demo.html").read_text()
    assert "bd-sidebar-primary" in page and "Start here" in page  # the sidebar caption
    assert (out / "searchindex.js").exists() and "demo" in (out / "searchindex.js").read_text()
    assert "mybinder.org/v2/gh/lossviz/lossviz/main" in page
    assert "colab.research.google.com/github/lossviz/lossviz/blob/main/notebooks/D01_demo.ipynb" in page
    assert "_sources/D01_demo.ipynb" in page
    src = nbformat.read(out / "_sources" / "D01_demo.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in src.cells if c.cell_type == "code"), "download = clean notebook"
    assert build_site.site_size(out) < 50 * 2**20


def test_site_failure_names_notebook_and_cell(tmp_path, capsys):
    nb = _nb(tmp_path / "broken.ipynb", "x = 1", "raise ValueError('claim does not hold')")
    args = [str(nb), "--out", str(tmp_path / "site"), "--jobs", "1", "--cache", str(tmp_path / "c")]
    assert build_site.main(args) == 1
    err = capsys.readouterr().err
    assert "broken.ipynb: cell 1 failed" in err and "claim does not hold" in err
    assert not (tmp_path / "site" / "index.html").exists()


def test_unchanged_notebook_is_not_re_executed(tmp_path):
    nb = _nb(tmp_path / "n.ipynb", "import random\nprint(random.random())")
    cache, lib = str(tmp_path / "c"), "lib-a"
    first, ran = build_site.execute_cached(str(nb), cache, 60, lib)
    assert ran is None
    out1 = nbformat.read(first, as_version=4).cells[0].outputs
    again, ran = build_site.execute_cached(str(nb), cache, 60, "lib-b")
    assert ran == "lib-a", "an unchanged notebook must come from the cache (noting the old lossviz)"
    assert nbformat.read(again, as_version=4).cells[0].outputs == out1
    book = nbformat.read(nb, as_version=4)
    book.cells[0].source += "\nprint('changed')"
    nbformat.write(book, nb)
    _, ran = build_site.execute_cached(str(nb), cache, 60, lib)
    assert ran is None, "a changed notebook must be executed again"


def test_students_index_entry_derived_from_title_cell_and_map(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(TITLE + "\nSee L03 for the sharpness."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("widgets.check_prediction(PREDICTION, answer=1)"),
    ]
    rel = Path("landscape/D01_demo.ipynb")
    e = build_site.describe(
        nb, rel, {"00", "L03", "D01"}, {"D01": {"id": "D01", "claim": "short claim", "quick runtime": "~5 s"}}
    )
    assert (e.id, e.title, e.track) == ("D01", "A demo notebook for the site", "landscape")
    assert e.teaches == "short claim" and e.runtime == "5 s"
    assert e.prerequisites == ["00", "L03"]
    assert e.paper.startswith("A. Author")
    assert e.minutes % 5 == 0 and e.minutes >= 10  # two code cells, one exercise
    e2 = build_site.describe(nb, rel, {"00"}, {})
    assert e2.teaches.startswith("Demos converge") and e2.runtime.startswith("about 1 s")
    rows = build_site.read_map()
    assert "00" in rows and "claim" in rows["00"], "the notebook map must keep its id and claim columns"
