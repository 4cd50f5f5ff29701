"""Analytic views of the loss families: loss surfaces over 3-class logits, loss against the
true-class margin for a family of temperatures, the penalty distribution over negatives, the
comp-sum H-consistency bounds; and live widgets for them.

Compute and draw are separate: :func:`logit_surface`, :func:`margin_curves` and
:func:`lossviz.losses.penalty_distribution` return results; the ``plot_*`` functions return a
figure without showing it (plotly by default, ``backend="matplotlib"``). The ``*_widget``
functions return a :class:`lossviz.widgets.Panel` whose log-scale slider updates a plotly
``FigureWidget`` in place (a 61 x 61 surface re-renders in a few milliseconds).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._result import Result
from .._validate import check_choice, check_float, check_int
from .contrastive import PenaltyDistribution, penalty_distribution

__all__ = [
    "LossSurface",
    "logit_surface",
    "plot_loss_surface",
    "MarginCurves",
    "margin_curves",
    "plot_margin_curves",
    "plot_penalty_distribution",
    "plot_comp_sum_bounds",
    "surface_widget",
    "margin_widget",
    "penalty_widget",
]

LossFn = Callable[..., torch.Tensor]


def _check_loss_fn(loss_fn: Any) -> LossFn:
    if not callable(loss_fn):
        raise TypeError(
            f"`loss_fn` must be callable(logits, targets, **params), got {type(loss_fn).__name__}"
        )
    return loss_fn


def _eval(loss_fn: LossFn, logits: torch.Tensor, targets: torch.Tensor, params: dict) -> np.ndarray:
    try:
        sig = inspect.signature(loss_fn)
        takes_reduction = "reduction" in sig.parameters or any(
            p.kind is p.VAR_KEYWORD for p in sig.parameters.values()
        )
    except (TypeError, ValueError):
        takes_reduction = True
    with torch.no_grad():
        if takes_reduction:
            out = loss_fn(logits, targets, reduction="none", **params)
        else:
            out = loss_fn(logits, targets, **params)
    out = torch.as_tensor(out)
    if out.shape != (logits.shape[0],):
        raise ValueError(
            f"`loss_fn` must return one loss per sample (shape ({logits.shape[0]},)) with reduction='none', "
            f"got shape {tuple(out.shape)}"
        )
    return out.to(torch.float64).cpu().numpy()


# ----------------------------------------------------------------------------- surfaces


@dataclass(frozen=True, repr=False)
class LossSurface(Result):
    """A loss over the plane of 3-class logit differences.

    ``d1``, ``d2`` (grid axes): the logits are ``(0, d1, d2)`` relative to the true class 0, so
    ``d_k = z_k - z_y``; ``values[i, j]`` is the loss at ``(d1[i], d2[j])`` (``indexing="ij"``).
    Shift-invariant losses depend on the logits only through these differences; for the others
    (e.g. LDR-KL with ``normalize=True``) the true-class logit is fixed at 0.
    """

    d1: np.ndarray
    d2: np.ndarray
    values: np.ndarray
    params: dict
    loss: str


def logit_surface(
    loss_fn: LossFn,
    *,
    extent: float = 6.0,
    num: int = 61,
    dtype: torch.dtype = torch.float64,
    **params,
) -> LossSurface:
    """Evaluate ``loss_fn(logits, targets, reduction="none", **params)`` on a ``num x num`` grid
    of 3-class logits ``(0, d1, d2)`` with true class 0 and ``d1, d2`` in ``[-extent, extent]``.

    Examples
    --------
    >>> from lossviz.losses import ldr_kl, logit_surface
    >>> s = logit_surface(ldr_kl, num=5, tau=1.0)
    >>> s.values.shape
    (5, 5)
    """
    loss_fn = _check_loss_fn(loss_fn)
    extent = check_float(extent, "extent", positive=True)
    num = check_int(num, "num", minimum=2)
    axis = np.linspace(-extent, extent, num)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    logits = torch.tensor(np.stack([np.zeros(g1.size), g1.ravel(), g2.ravel()], axis=1), dtype=dtype)
    targets = torch.zeros(g1.size, dtype=torch.long)
    values = _eval(loss_fn, logits, targets, params).reshape(num, num)
    return LossSurface(
        d1=axis, d2=axis.copy(), values=values, params=dict(params), loss=getattr(loss_fn, "__name__", "loss")
    )


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
    surface: LossSurface, *, kind: str = "contour", backend: str = "plotly", title: str | None = None
):
    """Draw a :class:`LossSurface` (``kind="contour" | "surface"``; matplotlib draws a contour)."""
    if not isinstance(surface, LossSurface):
        raise TypeError(f"`surface` must be a LossSurface, got {type(surface).__name__}")
    check_choice(kind, "kind", ("contour", "surface"))
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    title = title or f"{surface.loss} {surface.params}"
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.6, 4))
        cs = ax.contourf(surface.d1, surface.d2, surface.values.T, levels=25, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="loss")
        ax.set(xlabel="z1 - z_y", ylabel="z2 - z_y", title=title)
        ax.axhline(0, color="w", lw=0.5)
        ax.axvline(0, color="w", lw=0.5)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(_surface_traces(surface, kind))
    fig.update_layout(title=title, width=520, height=450, margin={"l": 50, "r": 20, "t": 50, "b": 50})
    if kind == "contour":
        fig.update_xaxes(title="z1 - z_y")
        fig.update_yaxes(title="z2 - z_y")
    else:
        fig.update_layout(scene={"xaxis_title": "z1 - z_y", "yaxis_title": "z2 - z_y", "zaxis_title": "loss"})
    return fig


# ----------------------------------------------------------------------------- margins


@dataclass(frozen=True, repr=False)
class MarginCurves(Result):
    """Loss against the true-class margin ``m = z_y - max_{k != y} z_k`` (logits ``(m, 0, ..., 0)``).

    ``values[i, j]`` is the loss at ``params[i]`` (the value of ``param_name``) and ``margins[j]``.
    """

    margins: np.ndarray
    param_name: str
    params: np.ndarray
    values: np.ndarray
    num_classes: int
    loss: str


def margin_curves(
    loss_fn: LossFn,
    values: Sequence[float],
    *,
    param_name: str = "tau",
    margins: Any = None,
    num_classes: int = 3,
    dtype: torch.dtype = torch.float64,
    **fixed,
) -> MarginCurves:
    """Loss of logits ``(m, 0, ..., 0)`` with true class 0, for each ``param_name`` in ``values``.

    Examples
    --------
    >>> from lossviz.losses import tempered_cross_entropy, margin_curves
    >>> c = margin_curves(tempered_cross_entropy, [0.1, 1.0, 10.0], margins=[-1.0, 0.0, 1.0])
    >>> c.values.shape
    (3, 3)
    """
    loss_fn = _check_loss_fn(loss_fn)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    m = np.linspace(-5.0, 5.0, 201) if margins is None else np.asarray(margins, dtype=np.float64)
    if m.ndim != 1 or m.size < 1 or not np.all(np.isfinite(m)):
        raise ValueError("`margins` must be a 1-D array of finite values")
    vals = np.asarray(values, dtype=np.float64).ravel()
    if vals.size == 0:
        raise ValueError("`values` must not be empty")
    logits = torch.zeros(m.size, num_classes, dtype=dtype)
    logits[:, 0] = torch.as_tensor(m, dtype=dtype)
    targets = torch.zeros(m.size, dtype=torch.long)
    out = np.stack([_eval(loss_fn, logits, targets, {**fixed, param_name: float(v)}) for v in vals])
    return MarginCurves(
        margins=m,
        param_name=param_name,
        params=vals,
        values=out,
        num_classes=num_classes,
        loss=getattr(loss_fn, "__name__", "loss"),
    )


def plot_margin_curves(curves: MarginCurves, *, backend: str = "plotly", normalize: bool = False):
    """One line per parameter value; ``normalize=True`` divides each curve by its value at margin 0."""
    if not isinstance(curves, MarginCurves):
        raise TypeError(f"`curves` must be MarginCurves, got {type(curves).__name__}")
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    ys = curves.values
    if normalize:
        j0 = int(np.argmin(np.abs(curves.margins)))
        ys = ys / np.where(ys[:, j0 : j0 + 1] == 0, 1.0, ys[:, j0 : j0 + 1])
    title = f"{curves.loss} vs true-class margin (K={curves.num_classes})"
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for p, y in zip(curves.params, ys):
            ax.plot(curves.margins, y, label=f"{curves.param_name}={p:.3g}")
        ax.set(xlabel="margin z_y - max_k z_k", ylabel="loss", title=title)
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(
        [
            go.Scatter(x=curves.margins, y=y, mode="lines", name=f"{curves.param_name}={p:.3g}")
            for p, y in zip(curves.params, ys)
        ]
    )
    fig.update_layout(
        title=title, xaxis_title="margin z_y - max_k z_k", yaxis_title="loss", width=620, height=400
    )
    return fig


# ----------------------------------------------------------------------------- penalties, bounds


def plot_penalty_distribution(pd: PenaltyDistribution, *, backend: str = "plotly"):
    """Relative penalty ``exp(s/tau) / sum exp(s/tau)`` against the negative's similarity, per tau."""
    if not isinstance(pd, PenaltyDistribution):
        raise TypeError(f"`pd` must be a PenaltyDistribution, got {type(pd).__name__}")
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    title = "hardness-aware penalty over negatives"
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for tau, w, h in zip(pd.taus, pd.weights, pd.entropy):
            ax.plot(pd.similarities, w, label=f"tau={tau:.3g} (entropy {h:.2f})")
        ax.set(
            xlabel="similarity of the negative s_ij",
            ylabel="relative penalty r_ij",
            title=title,
            yscale="log",
        )
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(
        [
            go.Scatter(x=pd.similarities, y=w, mode="lines", name=f"tau={tau:.3g}")
            for tau, w in zip(pd.taus, pd.weights)
        ]
    )
    fig.update_layout(
        title=title,
        xaxis_title="similarity of the negative s_ij",
        yaxis_title="relative penalty",
        yaxis_type="log",
        width=620,
        height=400,
    )
    return fig


def plot_comp_sum_bounds(
    qs: Sequence[float] = (0.0, 0.5, 0.7, 1.0), num_classes: int = 10, *, backend: str = "plotly"
):
    """``Gamma_q``: the bound on the excess 0-1 error given the excess comp-sum loss, per ``q``."""
    from .classification import comp_sum_bound

    bounds = [comp_sum_bound(q, num_classes) for q in qs]
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    title = f"H-consistency bounds of comp-sum losses (K={num_classes})"
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for b in bounds:
            ax.plot(b.eps, b.gamma, label=f"q={b.q:g}")
        ax.set(xlabel="excess surrogate loss", ylabel="bound on excess 0-1 error", title=title, xscale="log")
        ax.legend(fontsize=8)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=b.eps[1:], y=b.gamma[1:], mode="lines", name=f"q={b.q:g}") for b in bounds])
    fig.update_layout(
        title=title,
        xaxis_title="excess surrogate loss",
        yaxis_title="bound on excess 0-1 error",
        xaxis_type="log",
        width=620,
        height=400,
    )
    return fig


# ----------------------------------------------------------------------------- widgets


def _log_slider(name, lo, hi, value):
    from ..widgets import log_slider

    return log_slider(name, lo, hi, value)


def surface_widget(
    loss_fn: LossFn,
    *,
    param_name: str = "tau",
    min: float = 1e-3,
    max: float = 1e3,
    value: float = 1.0,
    extent: float = 6.0,
    num: int = 61,
    normalize: bool = False,
    **fixed,
):
    """A :class:`lossviz.widgets.Panel`: log slider for ``param_name`` morphing the loss surface.

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
        xaxis_title="z1 - z_y",
        yaxis_title="z2 - z_y",
        margin={"l": 50, "r": 20, "t": 50, "b": 50},
    )

    def compute(**kw):
        v = kw[param_name]
        s = logit_surface(loss_fn, extent=extent, num=num, **{**fixed, param_name: v})
        z = s.values.T
        if normalize:
            z = z / max_(z)
        return {0: {"z": z}, "layout": {"title": f"{s.loss}, {param_name} = {v:.3g}"}}

    return Panel(
        {param_name: _log_slider(param_name, min, max, value)},
        compute,
        fig,
        title=f"{getattr(loss_fn, '__name__', 'loss')} over 3-class logits",
    )


def max_(z: np.ndarray) -> float:
    m = float(np.nanmax(np.abs(z)))
    return m if m > 0 else 1.0


def margin_widget(
    loss_fn: LossFn,
    *,
    param_name: str = "tau",
    min: float = 1e-3,
    max: float = 1e3,
    value: float = 1.0,
    num_classes: int = 3,
    **fixed,
):
    """A Panel: log slider for ``param_name``, loss against the true-class margin."""
    import plotly.graph_objects as go

    from ..widgets import Panel

    c = margin_curves(loss_fn, [value], param_name=param_name, num_classes=num_classes, **fixed)
    fig = go.FigureWidget([go.Scatter(x=c.margins, y=c.values[0], mode="lines")])
    fig.update_layout(width=560, height=360, xaxis_title="margin z_y - max_k z_k", yaxis_title="loss")

    def compute(**kw):
        v = kw[param_name]
        cc = margin_curves(loss_fn, [v], param_name=param_name, num_classes=num_classes, **fixed)
        return {0: {"y": cc.values[0]}, "layout": {"title": f"{cc.loss}, {param_name} = {v:.3g}"}}

    return Panel({param_name: _log_slider(param_name, min, max, value)}, compute, fig)


def penalty_widget(*, similarities: Any = None, min: float = 1e-3, max: float = 1e3, value: float = 0.1):
    """A Panel: log slider for tau, relative penalty over negatives (and its entropy in the title)."""
    import plotly.graph_objects as go

    from ..widgets import Panel

    pd = penalty_distribution([value], similarities)
    fig = go.FigureWidget(
        [go.Scatter(x=pd.similarities, y=pd.weights[0], mode="lines+markers", marker={"size": 3})]
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
            0: {"y": p.weights[0]},
            "layout": {
                "title": f"tau = {tau:.3g}: entropy {p.entropy[0]:.3f} nats "
                f"(uniform {np.log(p.similarities.size):.3f})"
            },
        }

    return Panel(
        {"tau": _log_slider("tau", min, max, value)}, compute, fig, title="InfoNCE penalty over negatives"
    )
