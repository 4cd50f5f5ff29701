r"""L02: the boundary between trainable and untrainable learning rates, zoomed and box-counted.

The set-up of ``notebooks/landscape/L02_fractal_trainability.ipynb``.

Paper: Jascha Sohl-Dickstein, "The boundary of neural network trainability is fractal", 2024,
arXiv:2402.06184.

The paper's mean-field network is trained for every pair (``lr_in``, ``lr_out``) of a grid at once
by :func:`lossviz.landscape.trainability`. :func:`zoom_views` computes a view and then successive
``factor``-times zooms, each centred on the boundary pixel nearest the centre of the previous view
(:meth:`lossviz.landscape.Trainability.zoom`); :func:`view_dimensions` gives the box-counting
dimension of the converge/diverge boundary of every view
(:func:`lossviz.landscape.box_counting_dimension`); :func:`fractal_claim` is the claim's test,
"strictly between ``lo`` and ``hi`` in every view". :func:`estimator_controls` are the two
images that calibrate the estimator (a disc, a random image) and :func:`claim_statistics` runs
everything the notebook's claim check asserts for one seed, including the in-domain control:
the same pipeline with a training horizon of a few steps, where the outcome is a smooth function
of the learning rates (a composition of a few smooth GD steps) and its boundary is a smooth curve.

>>> views = zoom_views(resolution=16, steps=20, zooms=1)
>>> [v.converged.shape for v in views]
[(16, 16), (16, 16)]
"""

from __future__ import annotations

import numpy as np

from .. import landscape
from .._validate import check_float, check_int

__all__ = [
    "VIEW",
    "zoom_views",
    "view_dimensions",
    "fractal_claim",
    "estimator_controls",
    "claim_statistics",
]

VIEW = ((0.0, 4.0), (0.5, 3.0))
"""The first view: ``log10 lr_in`` in [0, 4] x ``log10 lr_out`` in [0.5, 3] (the band around the
boundary; a wider view is mostly smooth)."""


def zoom_views(
    view=VIEW,
    *,
    zooms: int = 2,
    factor: float = 10.0,
    resolution: int = 128,
    steps: int = 100,
    tail: int = 20,
    seed: int = 0,
    device=None,
    workers: int | None = None,
    progress: bool = False,
) -> list[landscape.Trainability]:
    """A trainability map of ``view`` and ``zooms`` successive ``factor``-times zooms.

    Each zoom is centred on the boundary pixel nearest the centre of the previous view. ``tail``
    is capped at ``steps`` (a cell converged if the mean of its last ``min(tail, steps)`` losses is
    below the initial loss). Other arguments go to :func:`lossviz.landscape.trainability`.
    """
    zooms = check_int(zooms, "zooms", minimum=0)
    factor = check_float(factor, "factor", minimum=1.0)
    steps = check_int(steps, "steps", minimum=1)
    tail = min(check_int(tail, "tail", minimum=1), steps)
    from tqdm.auto import tqdm

    views, ranges = [], view
    for k in tqdm(range(zooms + 1), desc="views", disable=not progress):
        res = landscape.trainability(
            *ranges, resolution=resolution, steps=steps, tail=tail, seed=seed, device=device, workers=workers
        )
        views.append(res)
        if k < zooms:
            ranges = res.zoom(factor)
    return views


def view_dimensions(views, sizes=(1, 2, 4, 8)) -> list[landscape.BoxCounting]:
    """Box-counting dimension of the converge/diverge boundary of every view."""
    return [landscape.box_counting_dimension(v.converged, sizes=sizes) for v in views]


def fractal_claim(dimensions, *, lo: float = 1.1, hi: float = 1.9) -> bool:
    """The claim's test: every view's boundary dimension lies strictly between ``lo`` and ``hi``
    (above a smooth curve's 1, below a space-filling 2). Accepts floats or BoxCounting results."""
    d = np.asarray([getattr(x, "dimension", x) for x in dimensions], dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"`dimensions` must hold one dimension per view, got {d!r}")
    return bool(np.all((d > lo) & (d < hi)))


def estimator_controls(n: int = 128, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Two images that calibrate the estimator: a disc of radius ``0.3 n`` (a smooth boundary,
    dimension about 1) and i.i.d. fair coin flips (space-filling, about 2)."""
    n = check_int(n, "n", minimum=16)
    ii, jj = np.mgrid[:n, :n]
    disc = (ii - n / 2) ** 2 + (jj - n / 2) ** 2 < (0.3 * n) ** 2
    noise = np.random.default_rng(check_int(seed, "seed", minimum=0)).random((n, n)) < 0.5
    return {"disc": disc, "random": noise}


def claim_statistics(
    seed: int = 0,
    *,
    steps: int = 100,
    control_steps: int = 3,
    resolution: int = 128,
    zooms: int = 2,
    factor: float = 10.0,
    view=VIEW,
    device=None,
    workers: int | None = None,
) -> dict:
    """Everything the notebook's claim check measures for one seed.

    Returns ``views`` and ``dimensions`` (the experiment, ``steps`` GD steps), ``control_views``
    and ``control_dimensions`` (the same pipeline with ``control_steps`` steps, zooms centred on
    that run's own boundary) and ``disc``, ``random`` (the estimator controls' dimensions).
    """
    kw = dict(zooms=zooms, factor=factor, resolution=resolution, seed=seed, device=device, workers=workers)
    views = zoom_views(view, steps=steps, **kw)
    control = zoom_views(view, steps=control_steps, **kw)
    images = estimator_controls(resolution, seed=seed)
    return {
        "views": views,
        "dimensions": [d.dimension for d in view_dimensions(views)],
        "control_views": control,
        "control_dimensions": [d.dimension for d in view_dimensions(control)],
        "disc": landscape.box_counting_dimension(images["disc"]).dimension,
        "random": landscape.box_counting_dimension(images["random"]).dimension,
    }
