"""Install routes checked from scratch (run by `.ci/run`; too slow for `make test`).

1. A wheel and an sdist are built from the repository; the sdist holds what its tests need.
2. The wheel goes into a clean venv (no JupyterLab, no Jupyter server): its resolved
   dependencies contain no Jupyter server package, and the helpers run (`landscape.plane`,
   `curvature.top_eigenvalues`) with the version and licence it claims.

Usage: ``python scripts/check_install.py [--torch-spec torch==2.13.0] [--keep DIR]``.
Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_SERVER = {"jupyterlab", "jupyter-server", "notebook", "jupyterlab-server", "jupyter-lsp", "nbclassic"}
SMOKE = """
import importlib.metadata as md, torch, lossviz
from lossviz import curvature, landscape, models
assert lossviz.__version__ == md.version("lossviz"), (lossviz.__version__, md.version("lossviz"))
files = [str(f) for f in md.files("lossviz")]
assert any(f.endswith("licenses/LICENSE") for f in files), "LICENSE missing from the installed wheel"
model = models.MLP(2, [8], 2, seed=0)
x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0)); y = (x[:, 0] > 0).long()
loss = torch.nn.functional.cross_entropy
p = landscape.plane(model, loss, (x, y), steps=5, seed=0)
top = curvature.top_eigenvalues(model, loss, (x, y), k=1)
assert p.loss.shape == (5, 5) and float(top.eigenvalues[0]) > 0
for name in ("jupyterlab", "jupyter_server", "notebook"):
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{name} is importable in the helpers-only venv")
print("helpers ran:", lossviz.__version__, "top eigenvalue", float(top.eigenvalues[0]))
"""


def run(cmd, **kw):
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-spec", default="", help="install this torch first (e.g. torch==2.13.0)")
    ap.add_argument("--keep", default=None, help="work in this directory and keep it")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="lossviz-install-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dist = work / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT])
    # the sdist through the build backend itself (what `python -m build --sdist` calls)
    run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(dist)!r})"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    (wheel,) = dist.glob("lossviz-*.whl")
    (sdist,) = dist.glob("lossviz-*.tar.gz")
    with tarfile.open(sdist) as t:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in t.getnames()}
    for need in (
        "LICENSE",
        "CITATION.cff",
        "README.md",
        "CHANGELOG.md",
        "pyproject.toml",
        "tests/conftest.py",
    ):
        if need not in names:
            raise SystemExit(f"sdist {sdist.name} lacks {need}")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    if args.torch_spec:
        run([py, "-m", "pip", "install", "-q", args.torch_spec])
    report = work / "report.json"
    run([py, "-m", "pip", "install", "-q", "--report", report, wheel])
    installed = {
        i["metadata"]["name"].lower().replace("_", "-") for i in json.loads(report.read_text())["install"]
    }
    bad = installed & JUPYTER_SERVER
    if bad:
        raise SystemExit(f"the core wheel pulled Jupyter server packages: {sorted(bad)}")
    run([py, "-c", SMOKE], cwd=work)
    print(
        f"install routes: wheel + sdist + clean venv OK ({len(installed)} packages, {time.perf_counter() - t0:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
