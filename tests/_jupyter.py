"""Start a JupyterLab server for tests: free local port, token, private config, clean shutdown."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_lab(
    cwd: Path, tmp: Path, args: Sequence[str] = (), env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[dict]:
    """Run ``python -m jupyterlab`` in ``cwd`` until the block ends; yield base URL, token and log.

    The server's output goes to ``tmp / "server.log"`` (the yielded ``log`` file, open for reading).
    Fails the test with the log's tail if the server does not answer ``/api/status`` in time.
    """
    import pytest

    port, token = free_port(), "lossviz-test-token"
    cmd = [sys.executable, "-m", "jupyterlab", f"--port={port}", "--no-browser", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", *args]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    full_env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
        "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
        **(env or {}),
    }
    log = open(tmp / "server.log", "w+")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    log.seek(0)
                    pytest.fail("JupyterLab did not start:\n" + log.read()[-3000:])
                time.sleep(0.5)
        yield {"base": base, "token": token, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
