"""Drawing landscape results: plotly (default) or matplotlib; figures are returned, never shown.

Every function has the shape ``plot_x(result, *, backend="plotly", ax=None, **kw)`` (the drawing
kit :mod:`lossviz._plot`): axis titles on every figure, fixed colours per series, and a
matplotlib figure created here is returned closed (display it with ``IPython.display.display``);
with ``ax=`` it draws into the caller's axes and leaves the figure open. Each result has the
same picture as ``result.plot(backend=..., ax=..., **kw)``.

Axis convention: ``alpha`` (first direction) is horizontal, ``beta`` vertical. Results store
``loss[i, j]`` at ``(alphas[i], betas[j])``; plotly and matplotlib want rows = y, so the arrays
are transposed here and only here. Diverged (non-finite) cells are never drawn as NaN colours:
they are painted with the top colour and marked with an explicit "diverged" overlay. Log colour
scales are floored (:func:`lossviz._plot.log_floor`): values at or below the floor are drawn at
the floor, and a result with no positive value raises instead of drawing a flat picture.

>>> import torch
>>> from lossviz import landscape
>>> net = torch.nn.Linear(2, 1)
>>> res = landscape.line(net, torch.nn.functional.mse_loss, (torch.randn(8, 2), torch.randn(8, 1)), steps=5)
>>> fig = res.plot(backend="matplotlib")          # a closed matplotlib Figure
>>> fig.axes[0].get_xlabel()
'alpha (direction 1)'
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _plot
from .._validate import check_choice, check_float

__all__ = [
    "plot_plane",
    "plot_line",
    "plot_interpolation",
    "plot_trajectory",
    "plot_trainability",
    "plot_box_counting",
    "plot_weight_matching",
    "plot_local_entropy",
    "plot_lr_range_test",
    "display_values",
    "trainability_image",
]


def display_values(
    z: np.ndarray, *, log: bool = False, clip: float | None = None, name: str = "loss"
) -> tuple[np.ndarray, np.ndarray]:
    """Finite values for drawing and the mask of cells that were not finite.

    Non-finite cells (and, with ``clip``, cells above ``clip``) take the largest drawn value;
    ``log=True`` draws ``log10`` of the values floored by :func:`lossviz._plot.log_floor`
    (``1e-3`` x the smallest positive value; ``ValueError`` naming ``name`` if none is positive,
    a ``UserWarning`` counting the non-positive cells drawn at the floor otherwise). A ``clip``
    at or below the smallest finite value (every cell capped: a flat plot) is a ``ValueError``,
    as is a non-positive ``clip`` with ``log=True``.
    """
    if clip is not None:
        clip = check_float(clip, "clip")
    z = np.asarray(z, dtype=float)
    bad = ~np.isfinite(z)
    good = z[~bad]
    if good.size == 0:
        if log:
            raise ValueError(f"`{name}` has no finite value: nothing to draw on a log scale")
        return np.zeros_like(z), bad
    lo, hi = float(good.min()), float(good.max())
    if clip is not None:
        if log and clip <= 0:
            raise ValueError(f"`clip` must be > 0 with log=True, got {clip}")
        if clip <= lo and lo < hi:
            raise ValueError(
                f"`clip`={clip:g} is at or below the smallest {name} value ({lo:.4g}): every cell "
                f"would be capped and the plot flat; pass a clip between {lo:.4g} and {hi:.4g} or None"
            )
    top = hi if clip is None else min(hi, clip)
    out = np.where(bad, top, np.minimum(z, top))
    if log:
        nonpos = int((out[~bad] <= 0).sum())
        out, floor = _plot.log_floor(out, name=name)
        if nonpos:
            warnings.warn(
                f"log=True: {nonpos} of {good.size} `{name}` values are <= 0 and are drawn at the floor "
                f"{floor:.3g} (1e-3 x the smallest positive value); draw with log=False to see them",
                UserWarning,
                stacklevel=3,
            )
        out = np.log10(out)
    return out, bad


def _traj_xy(trajectory):
    if trajectory is None:
        return None
    c = getattr(trajectory, "coords", trajectory)
    c = np.asarray(c, dtype=float)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"`trajectory` must be a Trajectory or an array of shape (T, 2), got {c.shape}")
    return c[:, 0], c[:, 1]


_XLAB, _YLAB = "alpha (direction 1)", "beta (direction 2)"


def plot_plane(
    result,
    kind: str = "contour",
    *,
    backend: str = "plotly",
    ax=None,
    metric: str | None = None,
    log: bool = False,
    clip: float | None = None,
    levels: int = 30,
    trajectory=None,
    title: str | None = None,
):
    """Draw a :class:`~lossviz.landscape.Plane` as a contour, heatmap or 3-D surface.

    Parameters
    ----------
    kind : ``"contour"`` | ``"heatmap"`` | ``"surface"`` (surface: plotly only)
    backend : ``"plotly"`` | ``"matplotlib"``
    ax : matplotlib Axes to draw into (matplotlib only; the figure then stays open)
    metric : draw ``result.metrics[metric]`` instead of the loss
    log : draw ``log10`` of the values, floored (``ValueError`` if no value is positive)
    clip : cap values above this (e.g. ``5 * origin_loss``)
    trajectory : :class:`~lossviz.landscape.Trajectory` or (T, 2) coordinates to overlay
    """
    check_choice(kind, "kind", ("contour", "heatmap", "surface"))
    backend = _plot.check_backend(backend)
    if metric is None:
        z, name = result.loss, "loss"
    else:
        if metric not in result.metrics:
            raise ValueError(f"`metric` must be one of {sorted(result.metrics)}, got {metric!r}")
        z, name = result.metrics[metric], metric
    label = f"log10 {name}" if log else name
    zz, bad = display_values(z, log=log, clip=clip, name=name)
    a, b = np.asarray(result.alphas), np.asarray(result.betas)
    i0, j0 = result.origin_index
    txy = _traj_xy(trajectory)
    title = title or ("loss landscape" if metric is None else metric)
    if backend == "matplotlib":
        if kind == "surface":
            raise ValueError("`kind='surface'` needs backend='plotly'")
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 4))
        A, B = np.meshgrid(a, b, indexing="ij")
        if kind == "contour":
            cs = ax.contourf(A, B, zz, levels=levels, cmap="viridis")
            ax.contour(A, B, zz, levels=levels, colors="k", linewidths=0.3)
        else:
            cs = ax.pcolormesh(A, B, zz, shading="nearest", cmap="viridis")
        fig.colorbar(cs, ax=ax, label=label)
        if bad.any():
            ax.scatter(A[bad], B[bad], marker="x", color="red", s=12, label="diverged")
        ax.plot([a[i0]], [b[j0]], marker="*", color="white", markeredgecolor="k", ms=12, ls="", label="model")
        if txy is not None:
            ax.plot(*txy, "-o", color="orange", ms=3, lw=1.5, label="trajectory")
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=_XLAB, ylabel=_YLAB, legend=True)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    if kind == "surface":
        fig.add_trace(
            go.Surface(x=a, y=b, z=zz.T, colorscale="Viridis", colorbar={"title": label}, name=label)
        )
        fig.add_trace(
            go.Scatter3d(
                x=[a[i0]],
                y=[b[j0]],
                z=[zz[i0, j0]],
                mode="markers",
                name="model",
                marker={"size": 5, "color": "white", "line": {"color": "black", "width": 1}},
            )
        )
        if bad.any():
            A, B = np.meshgrid(a, b, indexing="ij")
            fig.add_trace(
                go.Scatter3d(
                    x=A[bad],
                    y=B[bad],
                    z=zz[bad],
                    mode="markers",
                    name="diverged",
                    marker={"size": 2, "color": "red"},
                )
            )
        if txy is not None:
            from scipy.interpolate import RegularGridInterpolator

            f = RegularGridInterpolator((a, b), zz, bounds_error=False, fill_value=None)
            tz = f(np.stack(txy, axis=1))
            fig.add_trace(
                go.Scatter3d(
                    x=txy[0],
                    y=txy[1],
                    z=tz,
                    mode="lines+markers",
                    name="trajectory",
                    marker={"size": 2, "color": "orange"},
                    line={"color": "orange"},
                )
            )
        fig.update_layout(scene={"xaxis_title": _XLAB, "yaxis_title": _YLAB, "zaxis_title": label})
    else:
        trace = go.Contour if kind == "contour" else go.Heatmap
        extra = {"ncontours": levels} if kind == "contour" else {}
        fig.add_trace(
            trace(x=a, y=b, z=zz.T, colorscale="Viridis", colorbar={"title": label}, name=label, **extra)
        )
        if bad.any():
            A, B = np.meshgrid(a, b, indexing="ij")
            fig.add_trace(
                go.Scatter(
                    x=A[bad],
                    y=B[bad],
                    mode="markers",
                    name="diverged",
                    marker={"symbol": "x", "color": "red", "size": 5},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[a[i0]],
                y=[b[j0]],
                mode="markers",
                name="model",
                marker={
                    "symbol": "star",
                    "size": 14,
                    "color": "white",
                    "line": {"color": "black", "width": 1},
                },
            )
        )
        if txy is not None:
            fig.add_trace(
                go.Scatter(
                    x=txy[0],
                    y=txy[1],
                    mode="lines+markers",
                    name="trajectory",
                    marker={"size": 4, "color": "orange"},
                    line={"color": "orange"},
                )
            )
    fig.update_layout(width=560, height=480, legend={"x": 0.01, "y": 0.99})
    return _plot.finish(fig, backend, title=title, xlabel=_XLAB, ylabel=_YLAB)


def plot_line(
    result,
    *,
    backend: str = "plotly",
    ax=None,
    metric: str | None = None,
    log: bool = False,
    title: str | None = None,
):
    """Draw a :class:`~lossviz.landscape.Line` (loss, or a metric, against alpha)."""
    backend = _plot.check_backend(backend)
    if metric is not None and metric not in result.metrics:
        raise ValueError(f"`metric` must be one of {sorted(result.metrics)}, got {metric!r}")
    name = metric or "loss"
    z = result.loss if metric is None else result.metrics[metric]
    zz, bad = display_values(z, log=log, name=name)
    a = np.asarray(result.alphas)
    label = f"log10 {name}" if log else name
    title = title or f"{name} along a line"
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 3.5))
        ax.plot(a, zz, "-", color=_plot.color(0), label=label)
        if bad.any():
            ax.plot(a[bad], zz[bad], "x", color="red", label="diverged")
        ax.axvline(0.0, color="gray", lw=0.8)
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=_XLAB, ylabel=label, legend=True)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    fig.add_trace(go.Scatter(x=a, y=zz, mode="lines", name=label, line={"color": _plot.color(0)}))
    if bad.any():
        fig.add_trace(
            go.Scatter(
                x=a[bad], y=zz[bad], mode="markers", name="diverged", marker={"symbol": "x", "color": "red"}
            )
        )
    fig.update_layout(width=560, height=380)
    return _plot.finish(fig, backend, title=title, xlabel=_XLAB, ylabel=label)


def plot_interpolation(
    results,
    labels=None,
    *,
    backend: str = "plotly",
    ax=None,
    metric: str | None = None,
    title: str | None = None,
):
    """Draw one or several :class:`~lossviz.landscape.Interpolation` curves (with their barrier).

    Curve ``k`` gets colour ``lossviz._plot.color(k)`` and a legend entry with its barrier.
    """
    backend = _plot.check_backend(backend)
    if not isinstance(results, (list, tuple)):
        results = [results]
    if labels is None:
        labels = [f"path {k}" for k in range(len(results))] if len(results) > 1 else ["interpolation"]
    if len(labels) != len(results):
        raise ValueError(f"`labels` has {len(labels)} entries for {len(results)} results")
    for r in results:
        if metric is not None and metric not in r.metrics:
            raise ValueError(f"`metric` must be one of {sorted(r.metrics)}, got {metric!r}")
    xlabel, ylabel = "alpha (0 = model A, 1 = model B)", metric or "loss"
    title = title or ("loss on the straight path" if metric is None else f"{metric} on the straight path")

    def series():
        for k, (r, lab) in enumerate(zip(results, labels)):
            zz, _ = display_values(r.loss if metric is None else r.metrics[metric], name=ylabel)
            yield k, r, zz, (f"{lab} (barrier {r.barrier:.3g})" if metric is None else lab)

    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 3.5))
        for k, r, zz, lab in series():
            ax.plot(r.alphas, zz, "-o", ms=3, color=_plot.color(k), label=lab)
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=xlabel, ylabel=ylabel, legend=True)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    for k, r, zz, lab in series():
        fig.add_trace(
            go.Scatter(x=r.alphas, y=zz, mode="lines+markers", name=lab, line={"color": _plot.color(k)})
        )
    fig.update_layout(width=600, height=400)
    return _plot.finish(fig, backend, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_trajectory(result, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Draw a :class:`~lossviz.landscape.Trajectory`: the path in its first two coordinates.

    The origin (the model the directions are centred on) is a star; the axis titles give each
    PCA direction's share of the path's variance. Overlay it on a plane with
    ``plot_plane(plane, trajectory=result)``.
    """
    backend = _plot.check_backend(backend)
    x, y = _traj_xy(result)
    ev = np.asarray(result.explained_variance, dtype=float)
    labs = []
    for k in range(2):
        share = f" ({100 * ev[k]:.1f}% of the variance)" if k < len(ev) and np.isfinite(ev[k]) else ""
        labs.append(f"direction {k + 1}{share}")
    steps = np.asarray(result.steps)
    title = title or "trajectory in the plane of its directions"
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 4))
        ax.plot(x, y, "-o", color=_plot.color(1), ms=3, label="path")
        ax.plot([0.0], [0.0], marker="*", color="white", markeredgecolor="k", ms=12, ls="", label="origin")
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=labs[0], ylabel=labs[1], legend=True)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    text = [f"step {s}" for s in steps] if len(steps) == len(x) else None
    fig.add_trace(
        go.Scatter(x=x, y=y, mode="lines+markers", name="path", text=text, line={"color": _plot.color(1)})
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0],
            y=[0.0],
            mode="markers",
            name="origin",
            marker={"symbol": "star", "size": 14, "color": "white", "line": {"color": "black", "width": 1}},
        )
    )
    fig.update_layout(width=560, height=460)
    return _plot.finish(fig, backend, title=title, xlabel=labs[0], ylabel=labs[1])


def trainability_image(result) -> np.ndarray:
    """Signed colour values in [-1, 1]: converged cells negative (darker = faster), diverged positive.

    Converged: ``-(1 - s)`` with ``s`` = mean loss / L0 rescaled to [0, 1] (fast convergence -> -1);
    diverged: ``+(1 - k / steps)`` with ``k`` the step of divergence (fast divergence -> +1);
    cells neither converged nor diverged: 0.
    """
    conv, div = result.converged, result.diverged
    img = np.zeros(conv.shape)
    score = np.asarray(result.score, dtype=float)
    if conv.any():
        s = np.clip(score[conv], 0.0, 1.0)
        img[conv] = -(0.15 + 0.85 * (1.0 - s))
    if div.any():
        img[div] = 0.15 + 0.85 * np.clip(score[div], 0.0, 1.0)
    return img


def plot_trainability(result, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Draw a :class:`~lossviz.landscape.Trainability` map: blue = trains, red = diverges.

    x = ``log10 lr_out`` (the second hyperparameter), y = ``log10 lr_in``; colour intensity = speed
    (of convergence or of divergence). There are no NaN colours: every cell is classified.
    """
    backend = _plot.check_backend(backend)
    img = trainability_image(result)
    x, y = np.asarray(result.y_values), np.asarray(result.x_values)
    xl, yl = result.y_label, result.x_label
    title = title or "trainability (blue: converges, red: diverges)"
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 4.5))
        ax.imshow(
            img,
            origin="lower",
            cmap="RdBu_r",
            vmin=-1,
            vmax=1,
            aspect="auto",
            extent=(x[0], x[-1], y[0], y[-1]),
            interpolation="nearest",
        )
        ax.title.set_fontsize(10)
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=xl, ylabel=yl, legend=False)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    fig.add_trace(go.Heatmap(x=x, y=y, z=img, colorscale="RdBu_r", zmin=-1, zmax=1, showscale=False))
    fig.update_layout(width=520, height=480)
    return _plot.finish(fig, backend, title=title, xlabel=xl, ylabel=yl)


def plot_box_counting(results, labels=None, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Draw one or several :class:`~lossviz.landscape.BoxCounting` results: ``N(s)`` against ``s``.

    Log-log axes; each result's fitted slope is in its legend entry (the dimension is minus the
    slope of ``log N`` against ``log s``) and the fitted line is drawn dashed in the same colour.
    """
    backend = _plot.check_backend(backend)
    if not isinstance(results, (list, tuple)):
        results = [results]
    if labels is None:
        labels = [f"image {k}" for k in range(len(results))] if len(results) > 1 else ["boundary"]
    if len(labels) != len(results):
        raise ValueError(f"`labels` has {len(labels)} entries for {len(results)} results")
    xlabel, ylabel = "box size s (pixels)", "boxes touching the boundary N(s)"
    title = title or "box counting"
    rows = []
    for k, (r, lab) in enumerate(zip(results, labels)):
        s = np.asarray(r.sizes, dtype=float)
        n = np.asarray(r.counts, dtype=float)
        n, _ = _plot.log_floor(n, floor=0.5, name="counts")  # an empty box count (0) sits below 1
        fit = None
        if np.isfinite(r.dimension):
            c = np.polyfit(np.log(1.0 / s), np.log(np.asarray(r.counts, dtype=float)), 1)[1]
            fit = np.exp(c) * s ** (-r.dimension)
        rows.append((k, s, n, fit, f"{lab}: dimension {r.dimension:.3f}"))
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 3.8))
        for k, s, n, fit, lab in rows:
            ax.plot(s, n, "o-", color=_plot.color(k), label=lab)
            if fit is not None:
                ax.plot(s, fit, "--", color=_plot.color(k), lw=0.8)
        out = _plot.finish(
            fig, backend, ax=ax, title=title, xlabel=xlabel, ylabel=ylabel, xlog=True, ylog=True, legend=True
        )
        # label the box sizes themselves (log-axis minor labels 2x10^0, 3x10^0, ... overlap)
        import matplotlib.ticker as mticker

        sizes = sorted({float(v) for _, s, *_ in rows for v in s})
        ax.xaxis.set_major_locator(mticker.FixedLocator(sizes))
        ax.xaxis.set_major_formatter(mticker.FixedFormatter([f"{v:g}" for v in sizes]))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        return out
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    for k, s, n, fit, lab in rows:
        fig.add_trace(go.Scatter(x=s, y=n, mode="lines+markers", name=lab, line={"color": _plot.color(k)}))
        if fit is not None:
            fig.add_trace(
                go.Scatter(
                    x=s,
                    y=fit,
                    mode="lines",
                    showlegend=False,
                    line={"color": _plot.color(k), "dash": "dash", "width": 1},
                )
            )
    fig.update_layout(width=560, height=420)
    return _plot.finish(fig, backend, title=title, xlabel=xlabel, ylabel=ylabel, xlog=True, ylog=True)


def plot_weight_matching(result, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Draw a :class:`~lossviz.landscape.WeightMatching`: the alignment objective after each sweep.

    Sweep 0 is the identity permutation; the curve rises and ends flat when a sweep changes
    nothing (``converged``).
    """
    backend = _plot.check_backend(backend)
    obj = np.asarray(result.objective, dtype=float)
    sweeps = np.arange(len(obj))
    xlabel, ylabel = "coordinate-descent sweep (0 = identity)", "sum of <W_A, P W_B P^T>"
    state = "converged" if result.converged else "not converged"
    title = title or f"weight matching ({state} after {result.sweeps} sweeps)"
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(5, 3.5))
        ax.plot(sweeps, obj, "o-", color=_plot.color(0), label="objective")
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel=xlabel, ylabel=ylabel, legend=False)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    fig.add_trace(
        go.Scatter(x=sweeps, y=obj, mode="lines+markers", name="objective", line={"color": _plot.color(0)})
    )
    fig.update_layout(width=520, height=360)
    return _plot.finish(fig, backend, title=title, xlabel=xlabel, ylabel=ylabel)


def plot_local_entropy(result, *, backend: str = "plotly", ax=None, title: str | None = None):
    """Draw a 1-D :class:`~lossviz.landscape.LocalEntropy`: ``f`` and ``f_{gamma,T}`` with both argmins."""
    backend = _plot.check_backend(backend)
    if len(result.grid) != 1:
        raise ValueError(
            "`result` must be a 1-D LocalEntropy (draw 2-D energies with plot_plane-style contours)"
        )
    x = np.asarray(result.grid[0])
    lab = f"f_(gamma={result.gamma:g}, T={result.temperature:g})"
    title = title or f"local entropy: gamma = {result.gamma:g}, T = {result.temperature:g}"
    xm, xf = float(result.argmin[0]), float(result.argmin_f[0])
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(6, 3.5))
        ax.plot(x, result.f, color=_plot.color(0), label="f")
        ax.plot(x, result.energy, color=_plot.color(1), label=lab)
        ax.axvline(xf, color=_plot.color(0), ls=":", lw=1, label=f"argmin f = {xf:.2f}")
        ax.axvline(xm, color=_plot.color(1), ls="--", lw=1, label=f"argmin smoothed = {xm:.2f}")
        return _plot.finish(fig, backend, ax=ax, title=title, xlabel="x", ylabel="energy", legend=True)
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    fig.add_trace(go.Scatter(x=x, y=result.f, mode="lines", name="f", line={"color": _plot.color(0)}))
    fig.add_trace(go.Scatter(x=x, y=result.energy, mode="lines", name=lab, line={"color": _plot.color(1)}))
    lo = float(min(np.min(result.f), np.min(result.energy)))
    hi = float(max(np.max(result.f), np.max(result.energy)))
    for i, (v, name) in enumerate(((xf, "argmin f"), (xm, "argmin smoothed"))):
        fig.add_trace(
            go.Scatter(
                x=[v, v],
                y=[lo, hi],
                mode="lines",
                name=f"{name} = {v:.2f}",
                line={"color": _plot.color(i), "dash": "dot" if i == 0 else "dash"},
            )
        )
    fig.update_layout(width=620, height=380)
    return _plot.finish(fig, backend, title=title, xlabel="x", ylabel="energy")


def plot_lr_range_test(
    result, *, backend: str = "plotly", ax=None, title: str | None = None, ylabel: str = "metric"
):
    """Draw a :class:`~lossviz.landscape.LRRangeTest`: the recorded metric (markers), its moving
    average (line) and the picked learning rate (dashed vertical line) against the learning rate.

    ``ylabel`` names the metric (the result does not know what it measured).
    """
    backend = _plot.check_backend(backend)
    for name in ("lrs", "values", "smoothed", "best_lr", "mode"):
        if not hasattr(result, name):
            raise TypeError(f"`result` must be an LRRangeTest, got {type(result).__name__}")
    lrs = np.asarray(result.lrs, dtype=float)
    values = np.asarray(result.values, dtype=float)
    smoothed = np.asarray(result.smoothed, dtype=float)
    best = float(result.best_lr)
    pick = "max" if result.mode == "max" else "min"
    title = title or f"LR range test: {pick} of the smoothed {ylabel} at lr = {best:.3g}" + (
        " (diverged before lr_max)" if result.diverged else ""
    )
    fin = np.isfinite(values)
    if backend == "matplotlib":
        fig, ax = _plot.new_figure(backend, ax, figsize=(6, 3.5))
        ax.plot(lrs[fin], values[fin], "o", ms=3, color=_plot.color(0), alpha=0.6, label="recorded")
        ax.plot(lrs, smoothed, color=_plot.color(0), label="moving average")
        ax.axvline(best, color=_plot.color(1), ls="--", lw=1, label=f"pick: lr = {best:.3g}")
        owned = getattr(fig, "_lossviz_owned", False)
        fig = _plot.finish(
            fig, backend, ax=ax, title=title, xlabel="learning rate", ylabel=ylabel, legend=True
        )
        if owned:
            fig.tight_layout()  # after the labels, so none is cut off
        return fig
    import plotly.graph_objects as go

    fig, _ = _plot.new_figure(backend, ax)
    fig.add_trace(
        go.Scatter(
            x=lrs[fin],
            y=values[fin],
            mode="markers",
            name="recorded",
            marker={"color": _plot.color(0), "size": 5},
        )
    )
    fig.add_trace(
        go.Scatter(x=lrs, y=smoothed, mode="lines", name="moving average", line={"color": _plot.color(0)})
    )
    finite = np.concatenate([values[fin], smoothed[np.isfinite(smoothed)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig.add_trace(
        go.Scatter(
            x=[best, best],
            y=[lo, hi],
            mode="lines",
            name=f"pick: lr = {best:.3g}",
            line={"color": _plot.color(1), "dash": "dash"},
        )
    )
    fig.update_layout(width=620, height=380)
    return _plot.finish(fig, backend, title=title, xlabel="learning rate", ylabel=ylabel)
