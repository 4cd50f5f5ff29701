"""lossviz: notebooks and helpers for the geometry of deep learning.

Top level: runtime helpers (:func:`device`, :func:`seed_everything`, :func:`notebook_params`,
:func:`show_versions`). Submodules are imported on first use::

    import lossviz
    lossviz.data.two_moons(200)          # seeded synthetic data
    lossviz.landscape.plane(...)         # loss landscapes       (track L)
    lossviz.collapse.nc_metrics(...)     # neural collapse       (track N)
    lossviz.ntk.empirical(...)           # neural tangent kernels (track K)
    lossviz.losses.ldr_kl(...)           # loss families with temperature (track T)
    lossviz.papers.n03_mixup             # one module per notebook's toy set-up

``ARCHITECTURE.md`` says which package owns what and where new code goes.
"""

from __future__ import annotations

import importlib

from ._runtime import NotebookParams, device, notebook_params, seed_everything, show_versions

__version__ = "0.2.0.dev0"

_SUBMODULES = {
    "data",
    "models",
    "train",
    "optim",
    "testing",
    "widgets",
    "stats",
    "papers",
    "landscape",
    "curvature",
    "collapse",
    "ntk",
    "losses",
    "derivations",
}

__all__ = [
    "__version__",
    "device",
    "seed_everything",
    "notebook_params",
    "NotebookParams",
    "show_versions",
    *sorted(_SUBMODULES),
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lossviz' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
