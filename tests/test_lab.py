"""`make lab` opens JupyterLab on the start notebook: start the same server, request the notebook."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_serves_start_notebook(tmp_path):
    port, token = _free_port(), "lossviz-test-token"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--port={port}",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        "notebooks/00_start_here.ipynb",
    ]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(
                    f"{base}/api/contents/00_start_here.ipynb?token={token}&content=0", timeout=5
                ) as r:
                    info = json.load(r)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError(
                        "JupyterLab did not start: "
                        + (proc.stderr.read() if proc.poll() is not None else "timeout")
                    ) from None
                time.sleep(0.5)
        assert info["type"] == "notebook" and info["name"] == "00_start_here.ipynb"
        with urllib.request.urlopen(f"{base}/lab/tree/00_start_here.ipynb?token={token}", timeout=10) as r:
            assert r.status == 200 and "JupyterLab" in r.read().decode()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
