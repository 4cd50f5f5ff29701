"""Every committed notebook follows CONTRIBUTING.md; the lint and the budget can fail."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lossviz._nblint import (
    PENDING_MIGRATION,
    SETUP_CELL,
    SETUP_TAG,
    badges,
    check_notebook,
    notebook_id,
    notebooks,
    split_pending,
)

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
README = (NB_DIR / "README.md").read_text()


@pytest.mark.parametrize("path", notebooks(NB_DIR), ids=lambda p: str(p.relative_to(NB_DIR)))
def test_notebook_follows_conventions(path):
    failing, pending = split_pending(path, check_notebook(path, README))
    assert not failing, f"{path.name}: " + "; ".join(failing)
    if notebook_id(path) in PENDING_MIGRATION:
        assert pending, f"{path.name} is migrated: remove {notebook_id(path)} from _nblint.PENDING_MIGRATION"


def test_start_here_exists_and_every_track_folder_exists():
    assert (NB_DIR / "00_start_here.ipynb").is_file()
    for track in ("landscape", "collapse", "ntk", "temperature"):
        assert (NB_DIR / track).is_dir()


def test_done_rows_link_existing_notebooks():
    for line in README.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 6 and cells[4] == "done":
            link = cells[1]
            target = link[link.find("(") + 1 : link.find(")")]
            assert (NB_DIR / target).is_file(), f"README row {cells[0]} links a missing notebook {target}"


def _good_notebook():
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("SEED = 0\nQUICK = True")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Paper\narXiv:1234.5678\nThe claim: x."),
        p,
        nbformat.v4.new_code_cell(
            "import lossviz\nSEED, QUICK, DEVICE = lossviz.notebook_params(SEED, QUICK)\nx = make(device=DEVICE)"
        ),
        nbformat.v4.new_markdown_cell("## Claim check\n1. the claim holds\n2. **Control:** not without it"),
        nbformat.v4.new_code_cell("assert 1 + 1 == 2, 'claim'"),
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_code_cell("PREDICTION = None\nwidgets.check_prediction(PREDICTION, answer=1.0)"),
    ]
    # the launch badges and the guarded set-up cell (kept last here so the indices above hold)
    nb.cells[0].source += "\n\n" + badges("notebooks/landscape/L99_example.ipynb")
    setup = nbformat.v4.new_code_cell(SETUP_CELL)
    setup.metadata["tags"] = [SETUP_TAG]
    nb.cells.append(setup)
    return nb


@pytest.mark.parametrize(
    "mutate,problem",
    [
        (lambda nb: nb.cells[1].metadata.update(tags=[]), "parameters"),
        (lambda nb: nb.cells[2].update(source="import lossviz"), "notebook_params"),
        (lambda nb: nb.cells[4].update(outputs=[nbformat.v4.new_output("stream", text="x")]), "outputs"),
        (lambda nb: nb.cells[4].update(execution_count=3), "execution counts"),
        (lambda nb: nb.cells[4].update(source="print(1)"), "assert"),
        (lambda nb: nb.cells[3].update(source="## Results"), "Claim check"),
        (lambda nb: nb.cells[0].update(source="# Paper\nThe claim"), "arXiv"),
        (lambda nb: nb.cells[2].update(source=nb.cells[2].source + "\n!pip install foo"), "installs"),
        (lambda nb: nb.cells[2].update(source=nb.cells[2].source + "\nx = t.cuda()"), "cuda"),
        (
            lambda nb: nb.cells[2].update(source=nb.cells[2].source + "\nopen('/home/me/data.csv')"),
            "absolute",
        ),
        (lambda nb: nb.cells.pop(5), "Exercises"),
        (lambda nb: nb.cells[3].update(source="## Claim check\n1. the claim holds"), "negative control"),
        (lambda nb: nb.cells[6].update(source="print(answer)"), "check_prediction"),
        (
            lambda nb: nb.cells[2].update(
                source="import lossviz\nSEED, QUICK, DEVICE = lossviz.notebook_params(SEED, QUICK)"
            ),
            "DEVICE",
        ),
        (lambda nb: nb.cells[2].update(source=nb.cells[2].source + "\ntorch.set_num_threads(1)"), "threads"),
        (
            lambda nb: nb.cells[2].update(source=nb.cells[2].source + "\np = widgets.Panel(c, f, fig)"),
            "check_responds",
        ),
        (lambda nb: nb.cells.pop(7), "set-up cell"),
        (lambda nb: nb.cells[7].update(source=nb.cells[7].source + "\nimport os"), "set-up cell"),
        (lambda nb: nb.cells[0].update(source="# Paper\narXiv:1234.5678\nThe claim: x."), "badges"),
    ],
)
def test_lint_catches_problems(tmp_path, mutate, problem):
    track = tmp_path / "landscape"
    track.mkdir()
    good = track / "L99_example.ipynb"
    nb = _good_notebook()
    nbformat.write(nb, good)
    assert check_notebook(good, "L99") == []
    mutate(nb)
    nbformat.write(nb, good)
    problems = check_notebook(good, "L99")
    assert any(problem.lower() in p.lower() for p in problems), problems


def test_lint_wants_readme_row_and_file_name(tmp_path):
    track = tmp_path / "collapse"
    track.mkdir()
    nbformat.write(_good_notebook(), track / "N98_example.ipynb")
    assert any("README" in p for p in check_notebook(track / "N98_example.ipynb", "nothing"))
    nbformat.write(_good_notebook(), track / "Example.ipynb")
    assert any("file name" in p for p in check_notebook(track / "Example.ipynb", "nothing"))


def test_runtime_budget_fails_slow_notebook(tmp_path):
    """The nbval timing plugin in the root conftest.py turns an over-budget notebook red."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import time\ntime.sleep(0.6)"), nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "slow.ipynb")
    (tmp_path / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--nbval-lax",
        "--nbval-current-env",
        "-o",
        "addopts=",
        "--rootdir",
        str(tmp_path),
        str(tmp_path / "slow.ipynb"),
    ]
    env = {**__import__("os").environ, "LOSSVIZ_NOTEBOOK_BUDGET": "0.3"}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert res.returncode != 0 and "exceeds the budget" in res.stdout, res.stdout[-2000:]
    env["LOSSVIZ_NOTEBOOK_BUDGET"] = "120"
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:]
    times = json.loads((tmp_path / "test-artifacts" / "notebook_times.json").read_text())
    assert 0.6 <= times["times_s"]["slow.ipynb"] < 120
