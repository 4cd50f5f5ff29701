"""The three dependency lists (pyproject, environment.yml, binder/) agree; binder is valid."""

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": {"pytorch", "pytorch-cpu", "pytorch-gpu"}}


def _req(spec: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", spec)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _conda(path: Path) -> tuple[dict[str, str], list]:
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge"], f"{path}: use conda-forge only"
    deps, pip = {}, []
    for d in env["dependencies"]:
        if isinstance(d, dict):
            pip = d.get("pip", [])
            continue
        name, bound = _req(d)
        deps[name] = bound
    return deps, pip


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = dict(_req(s) for s in data["dependencies"])
    test = dict(_req(s) for s in data["optional-dependencies"]["test"])
    return data, runtime, test


def _lookup(conda: dict, name: str):
    for alias in CONDA_NAMES.get(name, {name}):
        if alias in conda:
            return conda[alias]
    return None


@pytest.mark.parametrize("env_file", ["environment.yml", "binder/environment.yml"])
def test_runtime_dependencies_agree(env_file):
    _, runtime, _ = _pyproject()
    conda, _ = _conda(ROOT / env_file)
    for name, bound in runtime.items():
        got = _lookup(conda, name)
        assert got is not None, f"{env_file} lacks {name} (pyproject: {bound})"
        assert got == bound, f"{env_file}: {name}{got} but pyproject.toml says {name}{bound}"
    known = set(runtime) | {"python", "pip"} | set().union(*CONDA_NAMES.values())
    if env_file == "environment.yml":
        known |= set(_pyproject()[2])
    extra = set(conda) - known
    assert not extra, f"{env_file} has dependencies pyproject.toml does not: {extra}"


def test_test_extras_in_local_environment():
    _, _, test = _pyproject()
    conda, pip = _conda(ROOT / "environment.yml")
    for name, bound in test.items():
        assert conda.get(name) == bound, f"environment.yml: {name} should be {bound}"
    assert "-e ." in pip


def test_lower_bounds_only():
    data, runtime, test = _pyproject()
    for name, bound in {**runtime, **test}.items():
        assert bound.startswith(">="), f"{name}: use lower bounds only, got {bound!r}"
    for name in (
        "torch",
        "numpy",
        "scipy",
        "matplotlib",
        "plotly",
        "ipywidgets",
        "anywidget",
        "jupyterlab",
        "sympy",
        "tqdm",
    ):
        assert name in runtime
    for name in ("pytest", "nbval", "pytest-xdist", "hypothesis"):
        assert name in test


def test_binder_is_valid_repo2docker_config():
    binder = ROOT / "binder"
    assert (binder / "environment.yml").is_file()
    post = binder / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "postBuild must be executable"
    text = post.read_text()
    assert text.startswith("#!"), "postBuild needs a shebang"
    assert re.search(r"^set -e", text, re.M), "postBuild must stop on the first error (set -e)"
    assert "pip install --no-deps ." in text
    # repo2docker uses binder/ exclusively when it exists: no competing config files in it
    assert not (binder / "requirements.txt").exists() and not (binder / "Dockerfile").exists()


def test_readme_commands_and_binder_link():
    readme = (ROOT / "README.md").read_text()
    for needle in ("make lab", "make test", "conda env create -f environment.yml", "mybinder.org"):
        assert needle in readme, f"README lacks {needle!r}"
    m = re.search(r"mybinder\.org/v2/gh/[^)\s]+", readme)
    assert m and "urlpath=lab/tree/notebooks/00_start_here.ipynb" in m.group(0).replace("%2F", "/")
    for img in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme):
        if not img.startswith("http"):
            assert (ROOT / img).is_file(), f"README image {img} is missing"
