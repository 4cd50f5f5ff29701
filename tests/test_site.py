"""`make site` (scripts/build_site.py): executes notebooks, keeps plotly interactive, names failures."""

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)


def _nb(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_site_renders_interactive_plotly_and_index(tmp_path):
    nb = _nb(
        tmp_path / "demo.ipynb",
        "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=[1, 3, 2])).show()",
    )
    out = tmp_path / "site"
    assert build_site.main([str(nb), "--out", str(out), "--jobs", "1"]) == 0
    page = (out / "demo.html").read_text()
    assert "Plotly.newPlot" in page, "plotly figure must stay interactive (plotly.js call in the HTML)"
    assert "addFrames" in page and "animate" in page, (
        "a scrubbed sweep must be exported with its frames and slider"
    )
    index = (out / "index.html").read_text()
    assert "00_start_here.html" in index and ".ipynb)" not in index


def test_site_failure_names_notebook_and_cell(tmp_path, capsys):
    nb = _nb(tmp_path / "broken.ipynb", "x = 1", "raise ValueError('claim does not hold')")
    assert build_site.main([str(nb), "--out", str(tmp_path / "site"), "--jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "broken.ipynb: cell 1 failed" in err and "claim does not hold" in err
    assert not (tmp_path / "site" / "index.html").exists()
