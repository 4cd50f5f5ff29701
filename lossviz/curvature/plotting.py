r"""Drawing curvature results: spectral densities, tracked sharpness, extreme eigenvalues.

Every function takes a result and returns a figure without displaying it
(``backend="plotly"``, the default, or ``"matplotlib"``; with ``ax=`` a matplotlib figure is drawn
into the caller's axes and left open, otherwise it is returned closed, see :mod:`lossviz._plot`).
The results have the same pictures as ``.plot()``: :meth:`SpectralDensity.plot`,
:meth:`SharpnessHistory.plot`, :meth:`EigenResult.plot`.

Log axes have a floor (``floor=``, default: a tenth of the height that one single eigenvalue
would have), so the Gaussian tails of a smoothed density do not drag the axis down to 1e-300.

>>> import numpy as np
>>> from lossviz.curvature import SpectralDensity
>>> sd = SpectralDensity((np.array([0.0, 0.1, 5.0]),), (np.array([0.6, 0.3, 0.1]),), 3, 3, 100,
...                      0.0, 0, 0.0, 0.0, 0)
>>> fig = plot_density(sd, backend="matplotlib")
>>> ax = fig.axes[0]
>>> ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale(), bool(ax.get_ylim()[0] > 1e-6)
('eigenvalue', 'density', 'log', True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .. import _plot
from .._validate import check_float, check_int
from ._eigen import EigenResult
from ._sharpness import SharpnessHistory
from ._slq import SpectralDensity

__all__ = ["plot_density", "plot_sharpness", "plot_eigenvalues", "plot_batch_eigenvalues"]


def _eigenvalue_array(exact: Any) -> np.ndarray:
    if hasattr(exact, "eigenvalues") and not isinstance(exact, (np.ndarray, torch.Tensor)):
        exact = exact.eigenvalues  # an ExactHessian or EigenResult
    ev = np.asarray(torch.as_tensor(exact, device="cpu").detach().to(torch.float64)).reshape(-1)
    if ev.size == 0 or not np.all(np.isfinite(ev)):
        raise ValueError("`exact` must be a non-empty array of finite eigenvalues")
    return ev


def plot_density(
    density: SpectralDensity | None = None,
    exact: Any = None,
    *,
    sigma: float | None = None,
    bins: int = 80,
    log: bool = True,
    floor: float | None = None,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    r"""The SLQ spectral density and/or a histogram of exact eigenvalues, on a density scale.

    Parameters
    ----------
    density : SpectralDensity, optional
        Drawn as the Gaussian-smoothed curve ``density.density(sigma=sigma)``.
    exact : array of eigenvalues (or an ``ExactHessian``), optional
        Drawn as a histogram with ``bins`` bins normalised to integrate to 1.
    sigma : float, optional
        Smoothing width; default 1% of the range (of ``exact`` when given).
    log : bool
        Log density axis (default), with values below ``floor`` drawn at ``floor``.
    floor : float, optional
        Lower end of the log axis. Default: a tenth of the smallest non-empty histogram bar and of
        the peak height ``1 / (n sigma sqrt(2 pi))`` that a single one of the ``n`` eigenvalues
        has in the smoothed density, so that every eigenvalue stays visible and the Gaussian
        tails do not run down to 1e-300.
    backend, ax, title : see :mod:`lossviz._plot`.
    """
    backend = _plot.check_backend(backend)
    bins = check_int(bins, "bins", minimum=1)
    if density is None and exact is None:
        raise ValueError("give `density` (a SpectralDensity) and/or `exact` eigenvalues")
    if density is not None and not isinstance(density, SpectralDensity):
        raise TypeError(f"`density` must be a SpectralDensity, got {type(density).__name__}")
    ev = None if exact is None else _eigenvalue_array(exact)
    if floor is not None:
        floor = check_float(floor, "floor", positive=True)
    grid = dens = hist = edges = None
    floors = []
    if ev is not None:
        hist, edges = np.histogram(ev, bins=bins, density=True)
        if np.any(hist > 0):
            floors.append(0.1 * float(hist[hist > 0].min()))
    if density is not None:
        if ev is not None and sigma is None:
            sigma = 0.01 * max(float(ev.max() - ev.min()), 1e-12)
        if sigma is None:  # the default of SpectralDensity.density
            th = density.all_nodes
            sigma = 0.01 * max(float(th.max() - th.min()), 1e-12)
        grid, dens = density.density(sigma=sigma)
        n = ev.size if ev is not None else density.num_params
        floors.append(0.1 / (n * sigma * math.sqrt(2 * math.pi)))
    if log:
        if floor is None:
            floor = min(floors) if floors else None
        if dens is not None:
            dens, floor = _plot.log_floor(dens, floor=floor, name="density")
    fig, ax = _plot.new_figure(backend, ax, figsize=(6, 3.5))
    if backend == "matplotlib":
        if hist is not None:
            ax.stairs(
                np.maximum(hist, floor) if log else hist,
                edges,
                fill=True,
                alpha=0.5,
                color=_plot.color(0),
                baseline=floor if log else 0.0,
                label="exact eigenvalues",
            )
        if grid is not None:
            ax.plot(grid, dens, color=_plot.color(1), label="SLQ density")
        if log:
            ax.set_yscale("log")
            top = max(
                float(np.nanmax(dens)) if dens is not None else 0.0,
                float(hist.max()) if hist is not None else 0.0,
            )
            ax.set_ylim(floor, max(top, floor) * 2)
        if getattr(fig, "_lossviz_owned", False):
            fig.tight_layout()
        return _plot.finish(
            fig, backend, ax=ax, title=title, xlabel="eigenvalue", ylabel="density", legend=True
        )
    import plotly.graph_objects as go

    if hist is not None:
        centers = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(
            go.Bar(
                x=centers,
                y=np.where(hist > 0, hist, np.nan) if log else hist,
                width=np.diff(edges),
                name="exact eigenvalues",
                opacity=0.5,
                marker_color=_plot.color(0),
            )
        )
    if grid is not None:
        fig.add_trace(go.Scatter(x=grid, y=dens, mode="lines", name="SLQ density", line_color=_plot.color(1)))
    fig.update_layout(template="plotly_white", bargap=0)
    if log:
        top = max(
            float(np.nanmax(dens)) if dens is not None else 0.0,
            float(hist.max()) if hist is not None else 0.0,
        )
        fig.update_yaxes(type="log", range=[math.log10(floor), math.log10(max(top, floor) * 2)])
    return _plot.finish(fig, backend, title=title, xlabel="eigenvalue", ylabel="density", legend=True)


def plot_sharpness(
    history: SharpnessHistory,
    *,
    lr: float | None = None,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    """The tracked sharpness against the training step, with the ``2 / lr`` line if ``lr`` is given."""
    backend = _plot.check_backend(backend)
    if not isinstance(history, SharpnessHistory):
        raise TypeError(f"`history` must be a SharpnessHistory, got {type(history).__name__}")
    if lr is not None:
        lr = check_float(lr, "lr", positive=True)
    s = history.sharpness
    fig, ax = _plot.new_figure(backend, ax, figsize=(6, 3.5))
    if backend == "matplotlib":
        ax.plot(history.steps, s, color=_plot.color(0), label="sharpness")
        if lr is not None:
            ax.axhline(2 / lr, ls="--", color="k", label="2 / lr")
        if getattr(fig, "_lossviz_owned", False):
            fig.tight_layout()
        return _plot.finish(
            fig, backend, ax=ax, title=title, xlabel="step", ylabel="top Hessian eigenvalue", legend=True
        )
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=history.steps, y=s, mode="lines", name="sharpness", line_color=_plot.color(0)))
    if lr is not None:
        fig.add_hline(y=2 / lr, line_dash="dash", line_color="black", annotation_text="2 / lr")
    fig.update_layout(template="plotly_white")
    return _plot.finish(fig, backend, title=title, xlabel="step", ylabel="top Hessian eigenvalue")


def plot_eigenvalues(
    result: EigenResult,
    *,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    """The computed extreme eigenvalues by index, with their certified error bars (residual norms).

    Unconverged pairs are drawn hollow; NaN eigenvalues (not found) are not drawn.
    """
    backend = _plot.check_backend(backend)
    if not isinstance(result, EigenResult):
        raise TypeError(f"`result` must be an EigenResult, got {type(result).__name__}")
    idx = np.arange(1, len(result.eigenvalues) + 1)
    vals = np.asarray(result.eigenvalues, dtype=float)
    err = np.nan_to_num(np.asarray(result.residual_norms, dtype=float), nan=0.0, posinf=0.0)
    ok = np.asarray(result.converged, dtype=bool)
    fig, ax = _plot.new_figure(backend, ax, figsize=(5, 3.2))
    ylabel = (
        "eigenvalue" + {"LA": " (largest)", "SA": " (smallest)", "LM": " (largest magnitude)"}[result.which]
    )
    if backend == "matplotlib":
        for sel, face, lab in ((ok, _plot.color(0), "converged"), (~ok, "none", "not converged")):
            if sel.any():
                ax.errorbar(
                    idx[sel], vals[sel], yerr=err[sel], fmt="o", mfc=face, color=_plot.color(0), label=lab
                )
        if getattr(fig, "_lossviz_owned", False):
            fig.tight_layout()
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel="index", ylabel=ylabel)
    import plotly.graph_objects as go

    for sel, symbol, lab in ((ok, "circle", "converged"), (~ok, "circle-open", "not converged")):
        if sel.any():
            fig.add_trace(
                go.Scatter(
                    x=idx[sel],
                    y=vals[sel],
                    error_y={"type": "data", "array": err[sel]},
                    mode="markers",
                    marker={"symbol": symbol, "color": _plot.color(0)},
                    name=lab,
                )
            )
    fig.update_layout(template="plotly_white")
    return _plot.finish(fig, backend, title=title, xlabel="index", ylabel=ylabel)


def plot_batch_eigenvalues(
    results,
    *,
    full: float | None = None,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    r"""Mini-batch curvature eigenvalues against the batch size (log axis).

    Parameters
    ----------
    results : BatchEigenvalues or a sequence of them
        Each batch's eigenvalue is a light marker at its batch size ``B``; the mean over batches
        (the estimate of :math:`E\,\lambda(H_B)`) is joined by a line across batch sizes.
        Unconverged estimates are drawn hollow.
    full : float, optional
        The full-data eigenvalue, drawn as a dashed horizontal line.
    backend, ax, title : see :mod:`lossviz._plot`.
    """
    from ._batch import BatchEigenvalues

    backend = _plot.check_backend(backend)
    items = (
        [results]
        if isinstance(results, BatchEigenvalues)
        else list(results)
        if isinstance(results, (list, tuple))
        else None
    )
    if not items or not all(isinstance(r, BatchEigenvalues) for r in items):
        raise TypeError(
            "`results` must be a BatchEigenvalues or a non-empty list/tuple of them, got "
            f"{type(results).__name__}"
        )
    if len({(r.which, r.matrix) for r in items}) > 1:
        raise ValueError("`results` mix `which` or `matrix`: draw one kind of eigenvalue per figure")
    if full is not None:
        full = check_float(full, "full")
    items = sorted(items, key=lambda r: r.batch_size)
    sizes = np.array([r.batch_size for r in items], dtype=float)
    means = np.array([r.mean for r in items])
    which = {"LA": "largest", "SA": "smallest", "LM": "largest-magnitude"}[items[0].which]
    matrix = {"hessian": "Hessian", "ggn": "GGN", "fisher": "empirical Fisher"}.get(
        items[0].matrix, items[0].matrix
    )
    ylabel = f"{which} eigenvalue of the batch {matrix}"
    title = title or f"{which} eigenvalue vs batch size (N = {items[0].num_samples})"
    fig, ax = _plot.new_figure(backend, ax, figsize=(6, 3.5))
    if backend == "matplotlib":
        for i, r in enumerate(items):
            ok = np.asarray(r.converged, dtype=bool)
            xb = np.full(len(r.eigenvalues), float(r.batch_size))
            for sel, face, lab in (
                (ok, _plot.color(0), "one batch"),
                (~ok, "none", "one batch (not converged)"),
            ):
                if sel.any():
                    ax.scatter(
                        xb[sel],
                        np.asarray(r.eigenvalues)[sel],
                        s=10,
                        alpha=0.35,
                        facecolors=face,
                        edgecolors=_plot.color(0),
                        label=lab if i == 0 else None,
                    )
        ax.plot(sizes, means, "o-", color=_plot.color(1), label="mean over batches")
        if full is not None:
            ax.axhline(full, color=_plot.color(2), ls="--", lw=1, label=f"full data: {full:.4g}")
        owned = getattr(fig, "_lossviz_owned", False)
        fig = _plot.finish(
            fig, backend, ax=ax, title=title, xlabel="batch size B", ylabel=ylabel, xlog=True, legend=True
        )
        if owned:
            fig.tight_layout()  # after the labels, so none is cut off
        return fig
    import plotly.graph_objects as go

    xs, ys = [], []
    for r in items:
        xs.extend([float(r.batch_size)] * len(r.eigenvalues))
        ys.extend(np.asarray(r.eigenvalues, dtype=float).tolist())
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name="one batch",
            marker={"color": _plot.color(0), "size": 5, "opacity": 0.35},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=sizes, y=means, mode="lines+markers", name="mean over batches", line={"color": _plot.color(1)}
        )
    )
    if full is not None:
        fig.add_trace(
            go.Scatter(
                x=[sizes.min(), sizes.max()],
                y=[full, full],
                mode="lines",
                name=f"full data: {full:.4g}",
                line={"color": _plot.color(2), "dash": "dash"},
            )
        )
    fig.update_layout(width=620, height=380)
    return _plot.finish(fig, backend, title=title, xlabel="batch size B", ylabel=ylabel, xlog=True)
