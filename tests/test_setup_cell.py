"""The guarded set-up cell every notebook opens with: a no-op here, an install only where lossviz is missing."""

from __future__ import annotations

import importlib.util
import sys
import types

from IPython.core.inputtransformer2 import TransformerManager

from lossviz._nblint import SETUP_CELL, badges


class _Shell:
    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def _run(monkeypatch, *, missing: bool, colab: bool):
    shell = _Shell()
    code = TransformerManager().transform_cell(SETUP_CELL)  # as IPython runs it (%pip -> a magic call)
    real = importlib.util.find_spec
    if missing:
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a: None if name == "lossviz" else real(name, *a)
        )
    enabled = []
    if colab:
        output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
        fake = types.ModuleType("google.colab")
        fake.output = output
        monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
        monkeypatch.setitem(sys.modules, "google.colab", fake)
        sys.modules["google"].colab = fake
    exec(code, {"get_ipython": lambda: shell})
    return shell.magics, enabled


def test_setup_cell_is_a_no_op_in_our_environment(monkeypatch):
    magics, enabled = _run(monkeypatch, missing=False, colab=False)
    assert magics == [] and enabled == []


def test_setup_cell_installs_only_when_lossviz_is_missing(monkeypatch):
    magics, _ = _run(monkeypatch, missing=True, colab=False)
    assert len(magics) == 1 and magics[0][0] == "pip"
    assert "lossviz[lab] @ git+https://github.com/lossviz/lossviz" in magics[0][1]


def test_setup_cell_enables_colabs_widget_manager(monkeypatch):
    magics, enabled = _run(monkeypatch, missing=True, colab=True)
    assert enabled == [True] and len(magics) == 1


def test_badges_point_at_the_notebook():
    b = badges("notebooks/ntk/K04_more_is_better.ipynb")
    assert (
        "colab.research.google.com/github/lossviz/lossviz/blob/main/notebooks/ntk/K04_more_is_better.ipynb"
        in b
    )
    assert (
        "mybinder.org/v2/gh/lossviz/lossviz/main?urlpath=lab/tree/notebooks/ntk/K04_more_is_better.ipynb" in b
    )


def test_fix_writes_the_cell_and_badges_once(tmp_path):
    import nbformat

    from lossviz._nblint import SETUP_TAG, fix_notebook

    path = tmp_path / "notebooks" / "landscape" / "L99_x.ipynb"
    path.parent.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# L99 title\n\nThe claim."),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    nbformat.write(nb, path)
    assert fix_notebook(path) is True
    assert fix_notebook(path) is False  # idempotent
    out = nbformat.read(path, as_version=4)
    assert out.cells[1].metadata["tags"] == [SETUP_TAG] and out.cells[1].source == SETUP_CELL
    assert badges("notebooks/landscape/L99_x.ipynb") in out.cells[0].source
    assert out.cells[2].source == "x = 1"
