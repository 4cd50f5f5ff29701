"""`make lab` opens JupyterLab on the start notebook: start the same server, request the notebook."""

import json
import urllib.request
from pathlib import Path

from ._jupyter import running_lab

ROOT = Path(__file__).resolve().parents[1]


def test_jupyterlab_serves_start_notebook(tmp_path):
    # the same arguments as `make lab`: the start notebook as the file to open
    with running_lab(ROOT, tmp_path, ["notebooks/00_start_here.ipynb"]) as lab:
        base, token = lab["base"], lab["token"]
        with urllib.request.urlopen(
            f"{base}/api/contents/00_start_here.ipynb?token={token}&content=0", timeout=10
        ) as r:
            info = json.load(r)
        assert info["type"] == "notebook" and info["name"] == "00_start_here.ipynb"
        with urllib.request.urlopen(f"{base}/lab/tree/00_start_here.ipynb?token={token}", timeout=10) as r:
            assert r.status == 200 and "JupyterLab" in r.read().decode()
