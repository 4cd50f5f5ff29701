"""scripts/test_seeds.py: seeds parse, a notebook failing at one seed is reported as failing."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test_seeds.py"


def _load():
    spec = importlib.util.spec_from_file_location("test_seeds_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parse_seeds():
    mod = _load()
    assert mod.parse_seeds("0-3") == [0, 1, 2, 3]
    assert mod.parse_seeds("0 5,7") == [0, 5, 7]
    with pytest.raises(SystemExit):
        mod.parse_seeds("")


@pytest.mark.slow
def test_a_seed_dependent_failure_is_found(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nSEED = int(os.environ['LOSSVIZ_SEED'])"),
        nbformat.v4.new_code_cell("assert SEED != 1, 'fails at seed 1'"),
    ]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--seeds", "0-1", "--workers", "2", "--out", str(out), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    res = {r["seed"]: r for r in json.loads((out / "seeds.json").read_text())["results"]}
    assert res[0]["passed"] and not res[1]["passed"] and "fails at seed 1" in res[1]["error"]
    assert "1/2" in (out / "seeds.md").read_text()
