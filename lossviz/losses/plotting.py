"""Drawing for :mod:`lossviz.losses`: loss surfaces, margin curves, penalty distributions,
comp-sum H-consistency bounds, and live widgets for them.

Every ``plot_*`` function takes a result and returns a figure **without showing it**: a plotly
``Figure`` by default, a matplotlib ``Figure`` with ``backend="matplotlib"`` (drawn into the
caller's ``ax=`` when given; otherwise created and returned closed, so Jupyter does not draw it
twice: show it with ``display(fig)``). Every figure has axis titles. The results have the same
as ``.plot(backend=..., ax=None, **kw)``.

The ``*_widget`` functions return a :class:`lossviz.widgets.Panel` whose log-scale slider updates
a plotly ``FigureWidget`` in place (a 61 x 61 surface re-renders in a few milliseconds).

>>> from lossviz import losses
>>> fig = losses.penalty_distribution([0.1, 1.0]).plot(backend="matplotlib")
>>> fig.axes[0].get_xlabel()
'similarity of the negative s_ij'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _plot
from .._validate import check_choice
from ._comp_sum import CompSumBound, comp_sum_bound
from ._contrastive import PenaltyDistribution, penalty_distribution
from ._views import LossFn, LossSurface, MarginCurves, logit_surface, margin_curves

__all__ = [
    "plot_loss_surface",
    "plot_margin_curves",
    "plot_penalty_distribution",
    "plot_comp_sum_bounds",
    "surface_widget",
    "margin_widget",
    "penalty_widget",
]

_SURFACE_AXES = ("z1 - z_y", "z2 - z_y")
# penalties below this are drawn at it (a readable log axis; float64 weights reach 1e-320)
_PENALTY_FLOOR = 1e-30


def _penalty_floor(weights) -> float:
    w = np.asarray(weights, dtype=float)
    pos = w[np.isfinite(w) & (w > 0)]
    return max(_PENALTY_FLOOR, 1e-3 * float(pos.min())) if pos.size else _PENALTY_FLOOR


_MARGIN_AXIS = "margin z_y - max_k z_k"


# ----------------------------------------------------------------------------- surfaces


def _surface_traces(s: LossSurface, kind: str):
    import plotly.graph_objects as go

    # plotly's z[row][col] = z(y[row], x[col]) -> x = d1 (columns), y = d2 (rows): transpose ij values
    if kind == "surface":
        return [go.Surface(x=s.d1, y=s.d2, z=s.values.T, colorscale="Viridis", showscale=False)]
    return [
        go.Contour(
            x=s.d1,
            y=s.d2,
            z=s.values.T,
            colorscale="Viridis",
            ncontours=25,
            colorbar={"title": "loss"},
            contours={"coloring": "heatmap"},
        ),
    ]


def plot_loss_surface(
    surface: LossSurface,
    *,
    kind: str = "contour",
    backend: str = "plotly",
    ax=None,
    title: str | None = None,
):
    """Draw a :class:`LossSurface` (``kind="contour" | "surface"``; matplotlib draws a contour).

    Examples
    --------
    >>> from lossviz import losses
    >>> s = losses.logit_surface(losses.ldr_kl, num=5, tau=1.0)
    >>> [a.title.text for a in (s.plot().layout.xaxis, s.plot().layout.yaxis)]
    ['z1 - z_y', 'z2 - z_y']
    """
    if not isinstance(surface, LossSurface):
        raise TypeError(f"`surface` must be a LossSurface, got {type(surface).__name__}")
    check_choice(kind, "kind", ("contour", "surface"))
    backend = _plot.check_backend(backend)
    title = title or f"{surface.loss} {surface.params}"
    fig, ax = _plot.new_figure(backend, ax, figsize=(4.6, 4))
    if backend == "matplotlib":
        cs = ax.contourf(surface.d1, surface.d2, surface.values.T, levels=25, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="loss")
        ax.axhline(0, color="w", lw=0.5)
        ax.axvline(0, color="w", lw=0.5)
        return _plot.finish(
            fig, backend, ax=ax, title=title, xlabel=_SURFACE_AXES[0], ylabel=_SURFACE_AXES[1]
        )
    fig.add_traces(_surface_traces(surface, kind))
    fig.update_layout(width=520, height=450, margin={"l": 50, "r": 20, "t": 50, "b": 50})
    if kind == "surface":
        fig.update_layout(
            title=title,
            scene={"xaxis_title": _SURFACE_AXES[0], "yaxis_title": _SURFACE_AXES[1], "zaxis_title": "loss"},
        )
        return fig
    return _plot.finish(fig, backend, title=title, xlabel=_SURFACE_AXES[0], ylabel=_SURFACE_AXES[1])


# ----------------------------------------------------------------------------- margins


def plot_margin_curves(curves: MarginCurves, *, backend: str = "plotly", ax=None, normalize: bool = False):
    """One line per parameter value (fixed colours); ``normalize=True`` divides each curve by its
    value at margin 0."""
    if not isinstance(curves, MarginCurves):
        raise TypeError(f"`curves` must be MarginCurves, got {type(curves).__name__}")
    backend = _plot.check_backend(backend)
    ys = curves.values
    if normalize:
        j0 = int(np.argmin(np.abs(curves.margins)))
        ys = ys / np.where(ys[:, j0 : j0 + 1] == 0, 1.0, ys[:, j0 : j0 + 1])
    title = f"{curves.loss} vs true-class margin (K={curves.num_classes})"
    ylabel = "loss / loss at margin 0" if normalize else "loss"
    fig, ax = _plot.new_figure(backend, ax, figsize=(5.5, 3.6))
    for i, (p, y) in enumerate(zip(curves.params, ys)):
        name = f"{curves.param_name}={p:.3g}"
        _plot.line(fig, ax, backend, curves.margins, y, name=name, index=i)
    if backend == "plotly":
        fig.update_layout(width=620, height=400)
    return _plot.finish(fig, backend, ax=ax, title=title, xlabel=_MARGIN_AXIS, ylabel=ylabel, legend=True)


# ----------------------------------------------------------------------------- penalties, bounds


def plot_penalty_distribution(pd: PenaltyDistribution, *, backend: str = "plotly", ax=None):
    """Relative penalty ``exp(s/tau) / sum exp(s/tau)`` against the negative's similarity, per tau
    (log y axis with a floor: weights below ``max(1e-30, 1e-3 x the smallest positive weight)``,
    including those that underflow to 0, are drawn at the floor)."""
    if not isinstance(pd, PenaltyDistribution):
        raise TypeError(f"`pd` must be a PenaltyDistribution, got {type(pd).__name__}")
    backend = _plot.check_backend(backend)
    title = "hardness-aware penalty over negatives"
    weights, _ = _plot.log_floor(pd.weights, floor=_penalty_floor(pd.weights), name="weights")
    fig, ax = _plot.new_figure(backend, ax, figsize=(5.5, 3.6))
    for i, (tau, w, h) in enumerate(zip(pd.taus, weights, pd.entropy)):
        name = f"tau={tau:.3g} (entropy {h:.2f})"
        _plot.line(fig, ax, backend, pd.similarities, w, name=name, index=i)
    if backend == "plotly":
        fig.update_layout(width=620, height=400)
    return _plot.finish(
        fig,
        backend,
        ax=ax,
        title=title,
        xlabel="similarity of the negative s_ij",
        ylabel="relative penalty r_ij",
        ylog=True,
        legend=True,
    )


def _as_bounds(bounds: Any, num_classes: int) -> list[CompSumBound]:
    if isinstance(bounds, CompSumBound):
        return [bounds]
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence):
        raise TypeError(
            f"`bounds` must be a CompSumBound or a sequence of them (or of q values), got {type(bounds).__name__}"
        )
    return [b if isinstance(b, CompSumBound) else comp_sum_bound(b, num_classes) for b in bounds]


def plot_comp_sum_bounds(
    bounds: Any = (0.0, 0.5, 0.7, 1.0),
    num_classes: int = 10,
    *,
    backend: str = "plotly",
    ax=None,
):
    """``Gamma_q``: the bound on the excess 0-1 error given the excess comp-sum loss, per bound.

    ``bounds``: a :class:`CompSumBound`, a sequence of them, or of ``q`` values (then
    :func:`comp_sum_bound` with ``num_classes`` is called for each). Log x axis over the
    log-spaced ``eps`` grid of the bounds (no ``eps = 0`` point on the log axis).
    """
    bounds = _as_bounds(bounds, num_classes)
    backend = _plot.check_backend(backend)
    ks = sorted({b.num_classes for b in bounds})
    title = f"H-consistency bounds of comp-sum losses (K={', '.join(map(str, ks))})"
    fig, ax = _plot.new_figure(backend, ax, figsize=(5.5, 3.6))
    for i, b in enumerate(bounds):
        keep = b.eps > 0
        name = f"q={b.q:g}" + (f", K={b.num_classes}" if len(ks) > 1 else "")
        _plot.line(fig, ax, backend, b.eps[keep], b.gamma[keep], name=name, index=i)
    if backend == "plotly":
        fig.update_layout(width=620, height=400)
    return _plot.finish(
        fig,
        backend,
        ax=ax,
        title=title,
        xlabel="excess surrogate loss epsilon",
        ylabel="bound on excess 0-1 error",
        xlog=True,
        legend=True,
    )


# ----------------------------------------------------------------------------- widgets


def _log_slider(name, low, high, value):
    from ..widgets import log_slider

    return log_slider(name, low, high, value)


def _scale(z: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(z)))
    return m if m > 0 else 1.0


def surface_widget(
    loss_fn: LossFn,
    *,
    param_name: str = "tau",
    low: float = 1e-3,
    high: float = 1e3,
    value: float = 1.0,
    extent: float = 6.0,
    num: int = 61,
    normalize: bool = False,
    **fixed,
):
    """A :class:`lossviz.widgets.Panel`: log slider for ``param_name`` (from ``low`` to ``high``)
    morphing the loss surface.

    ``normalize=True`` divides the surface by its maximum so the shape, not the scale, is shown
    (losses like tempered CE grow like ``1/tau``).
    """
    import plotly.graph_objects as go

    from ..widgets import Panel

    first = logit_surface(loss_fn, extent=extent, num=num, **{**fixed, param_name: value})
    fig = go.FigureWidget(_surface_traces(first, "contour"))
    fig.update_layout(
        width=520,
        height=450,
        xaxis_title=_SURFACE_AXES[0],
        yaxis_title=_SURFACE_AXES[1],
        margin={"l": 50, "r": 20, "t": 50, "b": 50},
    )

    def compute(**kw):
        v = kw[param_name]
        s = logit_surface(loss_fn, extent=extent, num=num, **{**fixed, param_name: v})
        z = s.values.T
        if normalize:
            z = z / _scale(z)
        return {0: {"z": z}, "layout": {"title": f"{s.loss}, {param_name} = {v:.3g}"}}

    return Panel(
        {param_name: _log_slider(param_name, low, high, value)},
        compute,
        fig,
        title=f"{getattr(loss_fn, '__name__', 'loss')} over 3-class logits",
    )


def margin_widget(
    loss_fn: LossFn,
    *,
    param_name: str = "tau",
    low: float = 1e-3,
    high: float = 1e3,
    value: float = 1.0,
    num_classes: int = 3,
    **fixed,
):
    """A Panel: log slider for ``param_name`` (``low`` to ``high``), loss against the true-class margin."""
    import plotly.graph_objects as go

    from ..widgets import Panel

    c = margin_curves(loss_fn, [value], param_name=param_name, num_classes=num_classes, **fixed)
    fig = go.FigureWidget(
        [go.Scatter(x=c.margins, y=c.values[0], mode="lines", line={"color": _plot.color(0)})]
    )
    fig.update_layout(width=560, height=360, xaxis_title=_MARGIN_AXIS, yaxis_title="loss")

    def compute(**kw):
        v = kw[param_name]
        cc = margin_curves(loss_fn, [v], param_name=param_name, num_classes=num_classes, **fixed)
        return {0: {"y": cc.values[0]}, "layout": {"title": f"{cc.loss}, {param_name} = {v:.3g}"}}

    return Panel({param_name: _log_slider(param_name, low, high, value)}, compute, fig)


def penalty_widget(*, similarities: Any = None, low: float = 1e-3, high: float = 1e3, value: float = 0.1):
    """A Panel: log slider for tau (``low`` to ``high``), relative penalty over negatives (and its
    entropy in the title). The y axis is logarithmic; penalties below 1e-30 are drawn at 1e-30."""
    import plotly.graph_objects as go

    from ..widgets import Panel

    pd = penalty_distribution([value], similarities)
    fig = go.FigureWidget(
        [
            go.Scatter(
                x=pd.similarities,
                y=_plot.log_floor(pd.weights[0], floor=_PENALTY_FLOOR)[0],
                mode="lines+markers",
                marker={"size": 3},
                line={"color": _plot.color(0)},
            )
        ]
    )
    fig.update_layout(
        width=560,
        height=360,
        xaxis_title="similarity of the negative s_ij",
        yaxis_title="relative penalty r_ij",
        yaxis_type="log",
    )

    def compute(tau):
        p = penalty_distribution([tau], pd.similarities)
        return {
            0: {"y": _plot.log_floor(p.weights[0], floor=_PENALTY_FLOOR)[0]},
            "layout": {
                "title": f"tau = {tau:.3g}: entropy {p.entropy[0]:.3f} nats "
                f"(uniform {np.log(p.similarities.size):.3f})"
            },
        }

    return Panel(
        {"tau": _log_slider("tau", low, high, value)}, compute, fig, title="InfoNCE penalty over negatives"
    )
