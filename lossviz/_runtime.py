"""Runtime helpers: device choice, seeding, notebook parameters and version reports."""

from __future__ import annotations

import os
import platform
import random
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata

import numpy as np
import torch

from ._validate import check_int

__all__ = ["device", "seed_everything", "notebook_params", "NotebookParams", "show_versions"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device(prefer: str | None = None) -> torch.device:
    """Return the device lossviz computes on: cuda > mps > cpu.

    The environment variable ``LOSSVIZ_DEVICE`` (e.g. ``"cpu"``, ``"cuda:1"``) overrides the
    automatic choice; ``prefer`` overrides both. An unknown or unavailable device string raises
    ``ValueError`` naming where it came from.

    Library functions never call this to move a user's tensors: they infer device and dtype from
    the model and data they are given. Notebooks call it once to place the data they create.

    >>> import lossviz
    >>> lossviz.device("cpu")
    device(type='cpu')
    """
    source = "prefer"
    choice = prefer
    if choice is None:
        choice = os.environ.get("LOSSVIZ_DEVICE") or None
        source = "LOSSVIZ_DEVICE"
    if choice is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(choice, str):
        raise TypeError(f"`{source}` must be a device string like 'cpu' or 'cuda:0', got {choice!r}")
    try:
        dev = torch.device(choice.strip())
    except RuntimeError:
        raise ValueError(
            f"`{source}`={choice!r} is not a device string; expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`{source}`={choice!r} asks for CUDA, which is not available here")
    if dev.type == "mps" and not _mps_available():
        raise ValueError(f"`{source}`={choice!r} asks for MPS, which is not available here")
    if dev.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"`{source}`={choice!r}: lossviz supports cpu, cuda and mps devices")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global state and torch (CPU and all GPUs).

    Returns a fresh ``torch.Generator`` seeded with ``seed`` for code that wants explicit
    randomness (lossviz functions themselves take ``seed``/``generator`` arguments and never
    rely on global state).
    """
    seed = check_int(seed, "seed", minimum=0, maximum=2**63 - 1)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class NotebookParams:
    """The parameters a notebook runs with after environment overrides were applied."""

    seed: int
    quick: bool
    device: torch.device

    def __iter__(self):  # allows ``SEED, QUICK, DEVICE = lossviz.notebook_params(...)``
        return iter((self.seed, self.quick, self.device))


def _env_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={value!r} must be one of 1/0/true/false/yes/no")


def notebook_params(
    seed: int = 0, quick: bool = True, *, threads: int | None = 1, verbose: bool = True
) -> NotebookParams:
    """Apply ``LOSSVIZ_SEED`` / ``LOSSVIZ_QUICK`` to a notebook's ``parameters`` cell and seed.

    Call it right after the papermill-style ``parameters`` cell::

        SEED, QUICK, DEVICE = lossviz.notebook_params(SEED, QUICK)

    Environment variables win over the cell's values, so the test-suite and ``make site`` can run
    every notebook in quick mode with other seeds without editing it. All random generators are
    seeded with the resulting seed.

    On the CPU, torch's intra-op threads are set to ``threads`` (default 1): the notebooks' toy
    models are small, and several intra-op threads spin on tiny operations (on a loaded 2-core
    machine a step can take 10x longer). ``threads=None`` leaves torch's setting alone; on a GPU
    nothing is changed. Create data and models on the returned ``DEVICE``.
    """
    seed = check_int(seed, "seed", minimum=0)
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"`quick` must be a bool, got {quick!r}")
    env_seed = os.environ.get("LOSSVIZ_SEED")
    if env_seed not in (None, ""):
        try:
            seed = int(env_seed)
        except ValueError:
            raise ValueError(f"environment variable LOSSVIZ_SEED={env_seed!r} is not an integer") from None
        seed = check_int(seed, "LOSSVIZ_SEED", minimum=0)
    env_quick = os.environ.get("LOSSVIZ_QUICK")
    if env_quick is not None:
        quick = _env_bool("LOSSVIZ_QUICK", env_quick)
    if threads is not None:
        threads = check_int(threads, "threads", minimum=1)
    seed_everything(seed)
    dev = device()
    if dev.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    params = NotebookParams(seed=seed, quick=bool(quick), device=dev)
    if verbose:
        print(f"lossviz: seed={seed} quick={bool(quick)} device={dev}")
    return params


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


# ipywidgets kernel package -> the JupyterLab front-end package it needs (same major version).
_WIDGET_PAIRS = [
    ("ipywidgets", "jupyterlab_widgets", {"8": "3", "7": "1"}),
    ("ipywidgets", "widgetsnbextension", {"8": "4", "7": "3"}),
]


def widget_mismatches(versions: dict[str, str | None]) -> list[str]:
    """Return human-readable problems where widget kernel and front-end packages do not match."""
    problems = []
    ipw = versions.get("ipywidgets")
    if ipw is None:
        return ["ipywidgets is not installed: widgets will not display"]
    major = ipw.split(".")[0]
    for kernel_pkg, front_pkg, table in _WIDGET_PAIRS:
        front = versions.get(front_pkg)
        want = table.get(major)
        if front is None:
            if front_pkg == "jupyterlab_widgets":
                problems.append(f"{front_pkg} is missing: JupyterLab cannot display ipywidgets {ipw}")
            continue
        if want is not None and front.split(".")[0] != want:
            problems.append(
                f"{kernel_pkg} {ipw} needs {front_pkg} {want}.x, found {front}: "
                "expect 'Error displaying widget' / 'model not found'"
            )
    plotly = versions.get("plotly")
    if plotly and int(plotly.split(".")[0]) >= 6 and versions.get("anywidget") is None:
        problems.append(f"plotly {plotly} FigureWidget needs anywidget, which is not installed")
    return problems


def show_versions(*, file=None) -> dict[str, str | None]:
    """Print (and return) the versions that matter for running lossviz notebooks.

    Warns when the widget kernel package (ipywidgets) and the front-end packages
    (jupyterlab_widgets, widgetsnbextension) do not match, or plotly's FigureWidget lacks
    anywidget: the usual causes of "Error displaying widget".
    """
    import lossviz

    versions: dict[str, str | None] = {
        "lossviz": lossviz.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": str(device()),
    }
    for pkg in (
        "numpy",
        "scipy",
        "matplotlib",
        "plotly",
        "ipywidgets",
        "jupyterlab_widgets",
        "widgetsnbextension",
        "anywidget",
        "jupyterlab",
        "ipykernel",
        "sympy",
    ):
        versions[pkg] = _version(pkg)
    width = max(len(k) for k in versions)
    for k, v in versions.items():
        print(f"{k:>{width}}: {v if v is not None else 'not installed'}", file=file)
    for problem in widget_mismatches(versions):
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    return versions
