"""Figures of the NTK family: kernels, kernel slices, spectra, snapshots over training, ridge paths.

Every function has the lossviz drawing shape: ``plot_x(result, *, backend="plotly", ax=None,
**kw)`` returns a figure without displaying it (plotly by default; matplotlib figures created here
are returned closed, a caller's ``ax`` is drawn into and left open), with axis titles on every
panel and fixed colours per series (:data:`lossviz._plot.PALETTE`).

``plot_kernel_spectrum`` was called ``plot_spectrum`` before 0.2 (the name it shared with
:func:`lossviz.curvature.plot_density`, then ``plot_spectrum``); the old name still works with a ``DeprecationWarning``.

>>> import torch
>>> from lossviz import ntk
>>> k = ntk.empirical(torch.nn.Linear(3, 2), torch.randn(5, 3))
>>> fig = ntk.plotting.plot_kernel(k)
>>> fig.layout.xaxis.title.text
'input j'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .. import _plot
from ._analytic import AnalyticNTK
from ._empirical import EmpiricalNTK
from ._kernels import KernelSpectrum, eigh
from ._random_features import RidgePath
from ._self_distillation import SelfDistillation
from ._snapshots import SnapshotResult

__all__ = [
    "plot_kernel",
    "plot_kernel_slice",
    "plot_kernel_spectrum",
    "plot_snapshots",
    "plot_ridge_path",
    "plot_self_distillation",
]


def _as_numpy_kernel(kernel):
    if isinstance(kernel, (EmpiricalNTK, AnalyticNTK)):
        kernel = kernel.kernel
    if isinstance(kernel, torch.Tensor):
        kernel = kernel.detach().cpu().numpy()
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 4:
        n1, n2, o1, o2 = k.shape
        k = k.transpose(0, 2, 1, 3).reshape(n1 * o1, n2 * o2)
    if k.ndim == 3:
        k = k.sum(-1)
    if k.ndim != 2:
        raise ValueError(f"`kernel` must be 2-D (or (n, n, o[, o])) to be drawn, got shape {k.shape}")
    return k


def plot_kernel(
    kernel,
    *,
    backend: str = "plotly",
    ax=None,
    title: str = "kernel",
    colorscale: str = "Viridis",
):
    """Heatmap of a kernel matrix (tensor, array, :class:`EmpiricalNTK` or :class:`AnalyticNTK`).

    The colour bar carries the kernel value; rows are inputs ``i``, columns inputs ``j``.
    """
    backend = _plot.check_backend(backend)
    k = _as_numpy_kernel(kernel)
    fig, ax_ = _plot.new_figure(backend, ax, figsize=(4.6, 3.8))
    if backend == "matplotlib":
        im = ax_.imshow(k, cmap="viridis")
        ax_.figure.colorbar(im, ax=ax_, label="kernel value")
    else:
        import plotly.graph_objects as go

        fig.add_trace(go.Heatmap(z=k, colorscale=colorscale, colorbar={"title": "kernel value"}))
        fig.update_layout(yaxis={"autorange": "reversed"}, width=480, height=420)
    return _plot.finish(fig, backend, ax=ax_, title=title, xlabel="input j", ylabel="input i")


def plot_kernel_slice(
    curves: Mapping[str, Any],
    grid,
    *,
    backend: str = "plotly",
    ax=None,
    xlabel: str = "angle",
    ylabel: str = "Theta(x0, x)",
    title: str = "Theta(x0, x)",
    colors: Mapping[str, str] | None = None,
    mean_label: str = "mean",
):
    """Lines ``Theta(x0, x(s))`` along a 1-D family of inputs ``x(s)``, one series per entry of ``curves``.

    ``curves``: ``{label: values}`` with values of shape ``(len(grid),)`` (one line, drawn thick) or
    ``(k, len(grid))`` (an ensemble of ``k`` networks: every member drawn thin, their mean thick,
    in the same colour; the legend reads ``"<label> (mean of k)"``). Series ``i`` gets
    ``lossviz._plot.color(i)`` unless ``colors[label]`` is given.
    """
    backend = _plot.check_backend(backend)
    s = np.asarray(grid, dtype=np.float64)
    fig, ax_ = _plot.new_figure(backend, ax, figsize=(6.4, 3.8))
    if backend == "plotly":
        import plotly.graph_objects as go
    for i, (label, v) in enumerate(curves.items()):
        v = np.atleast_2d(np.asarray(v, dtype=np.float64))
        if v.shape[1] != s.shape[0]:
            raise ValueError(f"`curves[{label!r}]` has {v.shape[1]} points but `grid` has {s.shape[0]}")
        color = (colors or {}).get(label, _plot.color(i))
        name = f"{label} ({mean_label} of {v.shape[0]})" if v.shape[0] > 1 else label
        if backend == "matplotlib":
            if v.shape[0] > 1:
                for row in v:
                    ax_.plot(s, row, color=color, alpha=0.3, lw=0.7)
            ax_.plot(s, v.mean(0), color=color, lw=2, label=name)
            continue
        if v.shape[0] > 1:
            for j, row in enumerate(v):
                fig.add_trace(
                    go.Scatter(
                        x=s,
                        y=row,
                        mode="lines",
                        line={"color": color, "width": 0.7},
                        opacity=0.35,
                        name=f"{label}, each network",
                        legendgroup=label,
                        showlegend=j == 0,
                        hoverinfo="skip",
                    )
                )
        fig.add_trace(
            go.Scatter(
                x=s,
                y=v.mean(0),
                mode="lines",
                name=name,
                legendgroup=label,
                line={"color": color, "width": 2.5},
            )
        )
    if backend == "plotly":
        fig.update_layout(width=720, height=420)
    return _plot.finish(fig, backend, ax=ax_, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_kernel_spectrum(
    spectra,
    *,
    backend: str = "plotly",
    ax=None,
    labels: Sequence[str] | None = None,
    title: str = "kernel spectrum",
    floor: float | None = None,
):
    """Eigenvalues (descending, log axis) of one or several kernels / :class:`KernelSpectrum`.

    Eigenvalues at or below ``floor`` (default: 1e-3 x the smallest positive one) are drawn at the
    floor (:func:`lossviz._plot.log_floor`), so clipped zeros do not run the axis down to 1e-300.
    """
    backend = _plot.check_backend(backend)
    if isinstance(spectra, (KernelSpectrum, EmpiricalNTK, AnalyticNTK, torch.Tensor, np.ndarray)):
        spectra = [spectra]
    vals = []
    for s in spectra:
        if not isinstance(s, KernelSpectrum):
            s = eigh(s)
        vals.append(s.eigenvalues.cpu().numpy())
    labels = list(labels) if labels is not None else [f"kernel {i}" for i in range(len(vals))]
    if len(labels) != len(vals):
        raise ValueError(f"`labels` has {len(labels)} entries for {len(vals)} spectra")
    if floor is None:
        _, floor = _plot.log_floor(np.concatenate(vals), name="eigenvalues")
    fig, ax_ = _plot.new_figure(backend, ax, figsize=(5.4, 3.8))
    for i, (v, lab) in enumerate(zip(vals, labels)):
        y, _ = _plot.log_floor(v, floor=floor, name="eigenvalues")
        idx = np.arange(1, len(v) + 1)
        if backend == "matplotlib":
            ax_.plot(idx, y, marker=".", color=_plot.color(i), label=lab)
        else:
            import plotly.graph_objects as go

            fig.add_trace(
                go.Scatter(x=idx, y=y, mode="lines+markers", name=lab, line={"color": _plot.color(i)})
            )
    if backend == "plotly":
        fig.update_layout(width=620, height=400)
    return _plot.finish(fig, backend, ax=ax_, title=title, xlabel="index", ylabel="eigenvalue", ylog=True)


def plot_snapshots(
    results: SnapshotResult | Mapping[str, SnapshotResult],
    *,
    backend: str = "plotly",
    ax=None,
    title: str = "NTK over training",
):
    """Kernel change (relative to the first snapshot) and kernel-target alignment over training.

    Two panels; with ``backend="matplotlib"`` an ``ax`` must be a pair of Axes.
    """
    backend = _plot.check_backend(backend)
    if isinstance(results, SnapshotResult):
        results = {"run": results}
    panels = ("||K_t - K_0|| / ||K_0||", "kernel-target alignment")
    if backend == "matplotlib":
        if ax is None:
            fig, axes = _plot.new_figure(backend, figsize=(9.5, 3.6), ncols=2)
        else:
            axes = list(np.ravel(ax)) if not hasattr(ax, "plot") else None
            if axes is None or len(axes) != 2:
                raise ValueError("`ax` must be a pair of matplotlib Axes (two panels)")
            fig = axes[0].figure
        for i, (lab, r) in enumerate(results.items()):
            axes[0].plot(r.steps, r.relative_change, marker=".", color=_plot.color(i), label=lab)
            if r.alignment is not None:
                axes[1].plot(r.steps, r.alignment, marker=".", color=_plot.color(i), label=lab)
        for a, ylabel in zip(axes, panels):
            a.set_title(ylabel)
            a.set_xlabel("step")
            a.set_ylabel(ylabel)
        axes[1].legend(fontsize=8)
        fig.suptitle(title)
        return _plot.finish(fig, backend, ax=axes[0], legend=True)
    if ax is not None:
        raise ValueError("`ax` is a matplotlib Axes and needs backend='matplotlib'")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=panels)
    for i, (lab, r) in enumerate(results.items()):
        color = _plot.color(i)
        fig.add_trace(
            go.Scatter(x=r.steps, y=r.relative_change, name=lab, legendgroup=lab, line={"color": color}), 1, 1
        )
        if r.alignment is not None:
            fig.add_trace(
                go.Scatter(
                    x=r.steps,
                    y=r.alignment,
                    name=lab,
                    legendgroup=lab,
                    line={"color": color},
                    showlegend=False,
                ),
                1,
                2,
            )
    fig.update_yaxes(title_text=panels[0], row=1, col=1)
    fig.update_yaxes(title_text=panels[1], row=1, col=2)
    fig.update_layout(width=920, height=380)
    return _plot.finish(fig, backend, title=title, xlabel="step")


def plot_ridge_path(path: RidgePath, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Train and test risk against the ridge (log-log); ridge 0 is drawn at the axis floor."""
    backend = _plot.check_backend(backend)
    if not isinstance(path, RidgePath):
        raise TypeError(f"`path` must be a RidgePath, got {type(path).__name__}")
    r, _ = _plot.log_floor(path.ridges, name="ridges")
    series = {"train risk": path.train_risk}
    if path.test_risk is not None:
        series["test risk"] = path.test_risk
    fig, ax_ = _plot.new_figure(backend, ax, figsize=(5.4, 3.8))
    for i, (lab, v) in enumerate(series.items()):
        y, _ = _plot.log_floor(v, name=lab)
        _plot.line(fig, ax_, backend, r, y, name=lab, index=i)
    title = title or f"F = {path.num_features}, n = {path.num_samples}"
    return _plot.finish(
        fig,
        backend,
        ax=ax_,
        title=title,
        xlabel="ridge (0 drawn at the floor)",
        ylabel="risk (MSE)",
        xlog=True,
        ylog=True,
    )


def plot_self_distillation(
    result: SelfDistillation, *, backend: str = "plotly", ax=None, title: str | None = None
):
    """The shrinkage ``g_t`` of every eigen-direction of the training Gram matrix against its
    eigenvalue, one line per distillation step (log x; eigenvalues <= 0 drawn at the floor).

    Round ``t`` multiplies the component of the targets along an eigenvector with eigenvalue
    ``d`` by ``g_t(d)``: small-eigenvalue directions are shrunk more with every round.
    """
    backend = _plot.check_backend(backend)
    if not isinstance(result, SelfDistillation):
        raise TypeError(f"`result` must be a SelfDistillation, got {type(result).__name__}")
    d = result.eigenvalues.detach().to(torch.float64).cpu().numpy()
    order = np.argsort(d)
    x, _ = _plot.log_floor(d[order], name="eigenvalues")
    gains = result.gains.detach().to(torch.float64).cpu().numpy()[:, order]
    fig, ax_ = _plot.new_figure(backend, ax, figsize=(5.4, 3.8))
    for i, (t, g) in enumerate(zip(result.steps, gains)):
        _plot.line(fig, ax_, backend, x, g, name="t = inf" if np.isinf(t) else f"t = {int(t)}", index=i)
    title = title or f"self-distillation gains (ridge {result.ridge:.3g}, alpha {result.alpha:.3g})"
    out = _plot.finish(
        fig,
        backend,
        ax=ax_,
        title=title,
        xlabel="eigenvalue of the training Gram matrix",
        ylabel="gain g_t (shrinkage)",
        xlog=True,
        legend=True,
    )
    if backend == "matplotlib" and getattr(fig, "_lossviz_owned", False):
        fig.tight_layout()  # after the labels: the x label fits the small figure
    return out
