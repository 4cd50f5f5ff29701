"""Figures for neural collapse: metrics over training, class-mean frames, Gram/cosine heatmaps,
imbalanced-frame norms and minority-collapse angles.

Every function takes a result (or the vectors it draws), has the shape
``plot_x(result, *, backend="plotly", ax=None, **kw)``, sets axis titles, and returns the figure
without displaying it; a matplotlib figure created here is returned closed (see
:mod:`lossviz._plot`), one drawn into a caller's ``ax`` is left to the caller. Colour carries a
number only in the heatmaps, and they have a colour bar with its title.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .. import _plot
from .._validate import check_choice, check_int, check_tensor
from ._checks import F64
from ._frames import ImbalancedFrame, MinorityCollapse, cosines, orthogonal_frame, simplex_etf

__all__ = ["plot_metrics", "plot_frame", "plot_gram", "plot_imbalanced_frame", "plot_angles"]

_NOT_PLOTTED = ("accuracy", "ncc_accuracy")


def plot_metrics(
    steps,
    metrics: Mapping[str, Sequence[float]] | None = None,
    *,
    names: Sequence[str] | None = None,
    log_x: bool = False,
    backend: str = "plotly",
    ax=None,
    title: str = "Neural-collapse metrics",
):
    """Metrics over training on a log y-axis: a :class:`CollapseRecorder`, or ``(steps, dict)``.

    Values ``<= 0`` (an NCC mismatch of exactly 0, say) are drawn at a common log floor, 1e-3 times
    the smallest positive value (:func:`lossviz._plot.log_floor`); ``None`` entries are not drawn.
    Accuracies are left out unless named in ``names``.
    """
    backend = _plot.check_backend(backend)
    if hasattr(steps, "steps") and hasattr(steps, "history"):  # a CollapseRecorder
        steps, metrics = steps.steps, steps.history
    if metrics is None:
        raise TypeError("`metrics` (a dict name -> values) is required unless a CollapseRecorder is given")
    names = list(names) if names is not None else [k for k in metrics if k not in _NOT_PLOTTED]
    for nm in names:
        if nm not in metrics:
            raise ValueError(f"no metric {nm!r}; available: {sorted(metrics)}")
    xs = np.asarray(list(steps), dtype=float)
    raw = {nm: np.asarray([np.nan if v is None else v for v in metrics[nm]], dtype=float) for nm in names}
    for nm, v in raw.items():
        if v.shape != xs.shape:
            raise ValueError(f"metric {nm!r} has {v.size} values for {xs.size} steps")
    _, floor = _plot.log_floor(np.concatenate([v for v in raw.values()] or [np.ones(1)]), name="metrics")
    vals = {nm: _plot.log_floor(v, floor=floor, name=nm)[0] for nm, v in raw.items()}
    fig, ax = _plot.new_figure(backend, ax)
    for i, nm in enumerate(names):
        if backend == "matplotlib":
            ax.plot(xs, vals[nm], marker="o", ms=3, color=_plot.color(i), label=nm)
        else:
            import plotly.graph_objects as go

            fig.add_trace(
                go.Scatter(x=xs, y=vals[nm], mode="lines+markers", name=nm, line=dict(color=_plot.color(i)))
            )
    if backend == "matplotlib" and log_x:
        ax.set_xscale("symlog")
        log_x = False
    if backend == "plotly":
        fig.update_layout(height=380)
    return _plot.finish(
        fig, backend, ax=ax, title=title, xlabel="step", ylabel="metric (log scale)", xlog=log_x, ylog=True
    )


def _aligned_target(c: torch.Tensor, target: str) -> torch.Tensor:
    """The target frame rotated (orthogonal Procrustes) onto the centred means ``c`` and scaled."""
    from scipy.linalg import orthogonal_procrustes

    k, d = c.shape
    if target == "etf":
        if d < k - 1:
            raise ValueError(f"a simplex ETF of {k} classes needs width >= {k - 1}, `means` have {d}")
        t = simplex_etf(k, d)
    else:
        if d < k:
            raise ValueError(f"an orthogonal frame of {k} classes needs width >= {k}, `means` have {d}")
        t = orthogonal_frame(k, d)
    r, _ = orthogonal_procrustes(t.numpy(), c.numpy())
    scale = float(c.norm(dim=1).mean())
    return torch.from_numpy(t.numpy() @ r) * scale


def plot_frame(
    means: torch.Tensor,
    classifier: torch.Tensor | None = None,
    *,
    target: str | None = "etf",
    center: bool = True,
    dims: int = 2,
    class_names: Sequence[str] | None = None,
    backend: str = "plotly",
    ax=None,
    title: str = "Class means and classifier",
):
    """Class means (and classifier rows) as arrows in 2-D/3-D, with the target frame drawn.

    Wider vectors are projected on their top principal directions (PCA of the stacked centred
    means, classifier rows and target), so the axes are "principal direction 1, 2 (, 3)". The
    target (``"etf"``, ``"orthogonal"`` or ``None``) is rotated onto the means by orthogonal
    Procrustes and scaled to their mean norm; classifier rows are rescaled to the same mean norm.
    Class ``k`` always has colour ``k``; means are solid, classifier rows dashed, the target dotted.
    """
    backend = _plot.check_backend(backend)
    dims = check_int(dims, "dims", minimum=2, maximum=3)
    if target is not None:
        check_choice(target, "target", ("etf", "orthogonal"))
    c = check_tensor(means, "means", ndim=2, floating=True).detach().to(F64).cpu()
    if center:
        c = c - c.mean(0)
    k, d = c.shape
    groups = {"means": c}
    if classifier is not None:
        w = check_tensor(classifier, "classifier", ndim=2, floating=True).detach().to(F64).cpu()
        if tuple(w.shape) != (k, d):
            raise ValueError(f"`classifier` must have shape {(k, d)} like `means`, got {tuple(w.shape)}")
        wn = float(w.norm(dim=1).mean())
        groups["classifier"] = w * (float(c.norm(dim=1).mean()) / wn if wn > 0 else 1.0)
    if target is not None:
        groups["target"] = _aligned_target(c, target)
    stacked = torch.cat(list(groups.values()))
    if d > dims:
        _, _, vh = torch.linalg.svd(stacked, full_matrices=False)
        basis = vh[:dims].T
        labels = [f"principal direction {i + 1}" for i in range(dims)]
    else:
        basis = torch.eye(d, dims, dtype=F64, device="cpu")
        labels = [f"feature {i + 1}" for i in range(dims)]
    proj = {g: (v @ basis).numpy() for g, v in groups.items()}
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"`class_names` must have {k} entries, got {len(names)}")
    styles = {"means": ("solid", 4), "classifier": ("dash", 2), "target": ("dot", 2)}
    if backend == "matplotlib":
        if ax is None:
            kw = {"subplot_kw": {"projection": "3d"}} if dims == 3 else {}
            fig, ax = _plot.new_figure(backend, figsize=(5, 5), **kw)
        else:
            fig, ax = _plot.new_figure(backend, ax)
        for g, pts in proj.items():
            ls = {"solid": "-", "dash": "--", "dot": ":"}[styles[g][0]]
            for i in range(k):
                seg = np.stack([np.zeros(dims), pts[i]])
                ax.plot(*seg.T, ls, color=_plot.color(i), lw=styles[g][1] / 1.5, label=g if i == 0 else None)
        if dims == 3:
            ax.set_zlabel(labels[2])
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=labels[0], ylabel=labels[1])
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    for g, pts in proj.items():
        dash, width = styles[g]
        for i in range(k):
            xs = [0.0, float(pts[i, 0])]
            ys = [0.0, float(pts[i, 1])]
            common = dict(
                mode="lines+markers",
                name=f"{g} {names[i]}",
                legendgroup=g,
                line=dict(color=_plot.color(i), dash=dash, width=width),
                marker=dict(size=[0, 6]),
            )
            if dims == 3:
                fig.add_trace(go.Scatter3d(x=xs, y=ys, z=[0.0, float(pts[i, 2])], **common))
            else:
                fig.add_trace(go.Scatter(x=xs, y=ys, **common))
    if dims == 2:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
        fig.update_layout(height=450, width=520)
        return _plot.finish(fig, backend, title=title, xlabel=labels[0], ylabel=labels[1])
    fig.update_layout(
        height=450,
        width=520,
        scene=dict(xaxis_title=labels[0], yaxis_title=labels[1], zaxis_title=labels[2]),
    )
    return _plot.finish(fig, backend, title=title)


def _heatmap(g, names, *, zmin, zmax, colorbar, title, xlabel, ylabel, backend, ax, cmap="RdBu_r"):
    backend = _plot.check_backend(backend)
    fig, ax = _plot.new_figure(backend, ax, figsize=(4.8, 4))
    if backend == "matplotlib":
        im = ax.imshow(g, cmap=cmap, vmin=zmin, vmax=zmax)
        cb = fig.colorbar(im, ax=ax)
        cb.set_label(colorbar)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=xlabel, ylabel=ylabel, legend=False)
    import plotly.graph_objects as go

    fig.add_trace(
        go.Heatmap(
            z=g,
            x=names,
            y=names,
            colorscale="RdBu" if cmap == "RdBu_r" else "Viridis",
            reversescale=cmap == "RdBu_r",
            zmin=zmin,
            zmax=zmax,
            colorbar=dict(title=dict(text=colorbar)),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=400, width=470)
    return _plot.finish(fig, backend, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_gram(
    vectors: torch.Tensor,
    *,
    normalize: bool = True,
    center: bool = False,
    class_names: Sequence[str] | None = None,
    backend: str = "plotly",
    ax=None,
    title: str = "Gram matrix",
):
    """Heatmap of the Gram (cosine when ``normalize``) matrix of ``K`` vectors (rows).

    ``center=True`` subtracts the mean row first (the unweighted global mean, for class means).
    The numbers themselves are :func:`lossviz.stats.cosine_matrix` / :func:`lossviz.stats.gram_matrix`
    (use those, not the figure's data, in computations).
    """
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(F64).cpu()
    if center:
        v = v - v.mean(0)
    g = (cosines(v) if normalize else v @ v.T).numpy()
    names = list(class_names) if class_names is not None else [str(i) for i in range(v.shape[0])]
    if len(names) != v.shape[0]:
        raise ValueError(f"`class_names` must have {v.shape[0]} entries, got {len(names)}")
    return _heatmap(
        g,
        names,
        zmin=-1.0 if normalize else None,
        zmax=1.0 if normalize else None,
        colorbar="cosine" if normalize else "inner product",
        title=title,
        xlabel="class",
        ylabel="class",
        backend=backend,
        ax=ax,
    )


def plot_angles(result: MinorityCollapse, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Heatmap of the pairwise angles (degrees) of a :class:`MinorityCollapse`, minority marked."""
    if not isinstance(result, MinorityCollapse):
        raise TypeError(f"`result` must be a MinorityCollapse, got {type(result).__name__}")
    k = result.angles.shape[0]
    names = [f"{i}*" if i in result.minority else str(i) for i in range(k)]
    title = title or f"Angles between class vectors (* minority; smallest {result.min_angle:.1f} deg)"
    return _heatmap(
        result.angles,
        names,
        zmin=0.0,
        zmax=180.0,
        colorbar="angle (degrees)",
        title=title,
        xlabel="class",
        ylabel="class",
        backend=backend,
        ax=ax,
        cmap="viridis",
    )


def plot_imbalanced_frame(
    frame: ImbalancedFrame,
    *,
    feature_norms: Sequence[float] | None = None,
    classifier_norms: Sequence[float] | None = None,
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    """Closed-form norms :math:`\\|h_k\\|`, :math:`\\|w_k\\|` of an :class:`ImbalancedFrame` against
    the class size (lines), with measured norms (markers, e.g. from :func:`fit_ufm`) if given."""
    if not isinstance(frame, ImbalancedFrame):
        raise TypeError(f"`frame` must be an ImbalancedFrame, got {type(frame).__name__}")
    n = np.asarray(frame.counts, dtype=float)
    order = np.argsort(n)
    series = [
        ("||h_k|| closed form", frame.feature_norms, 0, None),
        ("||w_k|| closed form", frame.classifier_norms, 1, None),
    ]
    for label, vals, i in (("||h_k|| measured", feature_norms, 0), ("||w_k|| measured", classifier_norms, 1)):
        if vals is not None:
            vals = np.asarray(vals, dtype=float)
            if vals.shape != n.shape:
                raise ValueError(
                    f"measured norms must have {n.size} entries (one per class), got {vals.size}"
                )
            series.append((label, vals, i, "markers"))
    title = title or f"Imbalanced MSE frame (lambda_W={frame.lambda_W:g}, lambda_H={frame.lambda_H:g})"
    backend = _plot.check_backend(backend)
    fig, ax = _plot.new_figure(backend, ax)
    for label, vals, i, mode in series:
        if backend == "matplotlib":
            style = "o" if mode else "-"
            ax.plot(n[order], np.asarray(vals)[order], style, color=_plot.color(i), label=label)
        else:
            import plotly.graph_objects as go

            fig.add_trace(
                go.Scatter(
                    x=n[order],
                    y=np.asarray(vals)[order],
                    mode=mode or "lines",
                    name=label,
                    line=dict(color=_plot.color(i)),
                    marker=dict(color=_plot.color(i), size=9, symbol="circle-open"),
                )
            )
    return _plot.finish(fig, backend, ax=ax, title=title, xlabel="class size n_k", ylabel="norm")
