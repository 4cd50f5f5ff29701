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


def _extra(data, name: str, include: bool = False) -> dict[str, str]:
    """An extra's requirements, without the self-references (``lossviz[lab]``), or with the
    requirements of the extras they name (``include``; ``lab`` is checked as runtime)."""
    reqs = data["optional-dependencies"][name]
    out = dict(_req(s) for s in reqs if not s.startswith("lossviz["))
    if include:
        for s in reqs:
            if s.startswith("lossviz["):
                for other in s[len("lossviz[") : -1].split(","):
                    if other.strip() != "lab":
                        out |= _extra(data, other.strip(), include=True)
    return out


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = dict(_req(s) for s in data["dependencies"])
    # conda environments carry the notebook extra too: they are for running the notebooks
    runtime |= _extra(data, "lab")
    test = _extra(data, "test", include=True)
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
    """environment.yml carries the test extra: conda packages, or pip entries for what
    conda-forge does not have."""
    _, _, test = _pyproject()
    conda, pip = _conda(ROOT / "environment.yml")
    pip_reqs = dict(_req(p) for p in pip if not p.startswith("-"))
    for name, bound in test.items():
        got = conda.get(name, pip_reqs.get(name))
        assert got == bound, f"environment.yml: {name} should be {bound}, got {got}"
    assert "-e ." in pip


def test_conda_pip_step_accepts_the_pip_section(tmp_path):
    """Reproduce conda's pip step: conda writes the `pip:` entries to a requirements file beside
    environment.yml and runs `pip install -U -r` on it; an option pip does not take in a
    requirements file (the old `--no-deps`) fails it. A dry run, without dependencies or network."""
    import subprocess
    import sys

    _, pip = _conda(ROOT / "environment.yml")
    req = tmp_path / "condaenv.requirements.txt"
    req.write_text(
        "\n".join(p for p in pip if _req(p)[0] not in {"jupyter-repo2docker", "curvlinops-for-pytorch"})
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-build-isolation",
            "-U",
            "-r",
            str(req),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # and the check can fail: the line the old file had is rejected
    req.write_text("--no-deps\n-e .\n")
    bad = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "-r", str(req)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0


def test_repo2docker_picks_python_311(tmp_path):
    """`repo2docker --no-build --debug` on the repository (no Docker needed) must say 3.11."""
    import shutil
    import subprocess
    import sys

    beside = Path(sys.executable).parent / "repo2docker"
    exe = str(beside) if beside.exists() else shutil.which("repo2docker")
    if exe is None:
        pytest.skip("jupyter-repo2docker is not installed (it is in the test extra)")
    r = subprocess.run(
        [exe, "--no-build", "--no-run", "--debug", str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-2000:]
    assert "python=3.11" in log, log[-2000:]


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
        "sympy",
        "tqdm",
    ):
        assert name in data["dependencies"][0] or any(d.startswith(name) for d in data["dependencies"])
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


def test_core_is_light_and_extras_reference_each_other():
    """A researcher's `pip install lossviz` gets the helpers, not JupyterLab (REVIEW D)."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_req(s)[0] for s in data["dependencies"]}
    assert "jupyterlab" not in core
    extras = data["optional-dependencies"]
    assert "jupyterlab" not in core and "anywidget" not in core
    assert {"jupyterlab", "anywidget"} <= {_req(s)[0] for s in extras["lab"]}
    for name in ("test", "site"):
        assert "lossviz[lab]" in extras[name], f"the {name} extra must pull the notebook extra"
    assert "kaleido" in {_req(s)[0] for s in extras["export"]}


def test_version_has_one_source():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in data["project"] and "version" in data["project"]["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lossviz.__version__"}
    import lossviz

    cff = (ROOT / "CITATION.cff").read_text()
    assert re.search(rf"^version: \"?{re.escape(lossviz.__version__)}\"?$", cff, re.M), (
        "CITATION.cff version differs from lossviz.__version__"
    )


def test_license_and_citation_files():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2") and cff["license"] == "MIT"
    assert cff["title"] and cff["authors"] and cff["message"]


def test_conda_routes_are_valid():
    """REVIEW D: `--no-deps` in environment.yml's pip section makes conda's pip step fail, and
    repo2docker only reads an exact `python=X.Y` (a range gave a Python 3.10 base)."""
    for path in ("environment.yml", "binder/environment.yml"):
        env = yaml.safe_load((ROOT / path).read_text())
        pythons = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
        assert pythons and all(re.fullmatch(r"python=3\.\d+", p) for p in pythons), (path, pythons)
        for d in env["dependencies"]:
            if isinstance(d, dict):
                assert all(not str(x).startswith("--") for x in d.get("pip", [])), (
                    f"{path}: pip options in a conda pip section break `conda env create`"
                )


def test_wheel_metadata(tmp_path):
    """The wheel carries the single version, the license file and a light core."""
    import subprocess
    import sys
    import zipfile

    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("needs setuptools>=77 in the test environment to build without isolation")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    import lossviz

    (wheel,) = tmp_path.glob("lossviz-*.whl")
    assert wheel.name.startswith(f"lossviz-{lossviz.__version__}-")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith("licenses/LICENSE") for n in names), names[-8:]
    assert "conftest" not in " ".join(names) and not any(n.startswith("tests/") for n in names)
    requires = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert not any("jupyterlab" in r for r in core), core
    assert any("jupyterlab" in r and 'extra == "lab"' in r for r in requires)
    assert "License-Expression: MIT" in meta


def test_changelog_has_the_current_and_a_dated_release_section():
    import lossviz

    text = (ROOT / "CHANGELOG.md").read_text()
    heads = re.findall(r"^## (.+)$", text, re.M)
    base = re.match(r"\d+\.\d+\.\d+", lossviz.__version__).group(0)
    assert heads and base.rsplit(".", 1)[0] in heads[0], (
        f"first section {heads[0]!r} is not {lossviz.__version__}"
    )
    assert any(re.fullmatch(r"0\.1\.0 - \d{4}-\d{2}-\d{2}", h) for h in heads), heads
