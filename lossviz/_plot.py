"""The shared drawing kit: backend choice, ``ax=``, palette, axis titles, log floors, closing.

Every plotting function in lossviz has the shape ``plot_x(result, *, backend="plotly", ax=None,
**kw)`` and returns a figure **without displaying it**: a ``plotly.graph_objects.Figure`` by
default, or a matplotlib ``Figure`` with ``backend="matplotlib"``. A matplotlib figure that
lossviz created is returned *closed* (``plt.close``), so Jupyter does not draw it a second time
when the cell ends; display it with ``IPython.display.display(fig)`` or ``fig.savefig``. When the
caller passes ``ax=``, the figure is the caller's and is left open.

Results with a natural picture have ``.plot(backend=..., ax=None, **kw)`` that calls their
family's ``plotting`` function (the scikit-learn Display shape).

>>> import numpy as np
>>> from lossviz import _plot
>>> fig, ax = _plot.new_figure("matplotlib")
>>> _ = ax.plot([1, 2, 3], [1, 4, 9], color=_plot.color(0))
>>> fig = _plot.finish(fig, "matplotlib", ax=ax, xlabel="x", ylabel="x squared")
>>> ax.get_xlabel(), ax.get_ylabel()
('x', 'x squared')
>>> _plot.log_floor([0.0, 1e-2, 1.0])[1]
1e-05
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import check_choice

__all__ = ["BACKENDS", "PALETTE", "check_backend", "color", "new_figure", "finish", "log_floor", "mask"]

BACKENDS = ("plotly", "matplotlib")

# Plotly's default qualitative palette (also readable in matplotlib): series i always gets PALETTE[i].
PALETTE = (
    "#636EFA",
    "#EF553B",
    "#00CC96",
    "#AB63FA",
    "#FFA15A",
    "#19D3F3",
    "#FF6692",
    "#B6E880",
    "#FF97FF",
    "#FECB52",
)


def check_backend(backend: Any) -> str:
    """``"plotly"`` or ``"matplotlib"``; ``ValueError`` naming ``backend`` otherwise."""
    return check_choice(backend, "backend", BACKENDS)


def color(i: int) -> str:
    """The fixed colour of series ``i`` (cycles through :data:`PALETTE`)."""
    return PALETTE[int(i) % len(PALETTE)]


def new_figure(backend: str, ax=None, *, figsize: tuple[float, float] | None = None, **subplots_kw):
    """Start a figure: ``(go.Figure(), None)`` for plotly, ``(fig, ax)`` for matplotlib.

    With ``ax`` given (matplotlib only) the caller's axes are drawn into: ``(ax.figure, ax)``.
    """
    backend = check_backend(backend)
    if backend == "plotly":
        if ax is not None:
            raise ValueError("`ax` is a matplotlib Axes and needs backend='matplotlib'")
        import plotly.graph_objects as go

        return go.Figure(), None
    if ax is not None:
        if not hasattr(ax, "figure") or not hasattr(ax, "plot"):
            raise TypeError(f"`ax` must be a matplotlib Axes, got {type(ax).__name__}")
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize or (6, 4), **subplots_kw)
    fig._lossviz_owned = True  # created here: finish() closes it
    return fig, ax


def line(fig, ax, backend: str, x, y, *, name: str | None = None, index: int = 0) -> None:
    """Add one line in the fixed colour of series ``index`` on either backend (plotly: a trace of
    ``fig``; matplotlib: on ``ax``)."""
    if check_backend(backend) == "matplotlib":
        ax.plot(x, y, label=name, color=color(index))
        return
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line={"color": color(index)}))


def finish(
    fig,
    backend: str,
    *,
    ax=None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    xlog: bool = False,
    ylog: bool = False,
    legend: bool | None = None,
):
    """Axis titles, log axes, legend; close a matplotlib figure that lossviz created.

    A matplotlib figure made by :func:`new_figure` (without ``ax=``) is closed before it is
    returned; a figure behind a caller's ``ax`` is the caller's and stays open. For plotly,
    ``xlabel``/``ylabel`` go to every x/y axis that has no title yet (subplots included).
    """
    backend = check_backend(backend)
    if backend == "plotly":
        layout = {}
        if title is not None:
            layout["title"] = title
        if legend is not None:
            layout["showlegend"] = bool(legend)
        if layout:
            fig.update_layout(**layout)
        if xlabel is not None:
            fig.update_xaxes(title_text=xlabel, selector=lambda a: not (a.title and a.title.text))
        if ylabel is not None:
            fig.update_yaxes(title_text=ylabel, selector=lambda a: not (a.title and a.title.text))
        if xlog:
            fig.update_xaxes(type="log")
        if ylog:
            fig.update_yaxes(type="log")
        return fig
    axes = [ax] if ax is not None else list(fig.axes[:1])
    for a in axes:
        if title is not None:
            a.set_title(title)
        if xlabel is not None:
            a.set_xlabel(xlabel)
        if ylabel is not None:
            a.set_ylabel(ylabel)
        if xlog:
            a.set_xscale("log")
        if ylog:
            a.set_yscale("log")
        if legend or (
            legend is None and any(not lab.startswith("_") for lab in a.get_legend_handles_labels()[1])
        ):
            a.legend(fontsize=8)
    if getattr(fig, "_lossviz_owned", False):
        import matplotlib.pyplot as plt

        plt.close(fig)
    return fig


def log_floor(values: Any, *, floor: float | None = None, name: str = "values") -> tuple[np.ndarray, float]:
    """Values ready for a log axis: everything ``<= floor`` is raised to ``floor``.

    The default floor is ``1e-3`` times the smallest positive finite value (at least the smallest
    normal double, so it stays positive for subnormal data). Non-finite entries
    become ``nan`` (not drawn). Raises ``ValueError`` naming ``name`` when nothing is positive,
    instead of drawing an empty or flat plot.
    """
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    pos = v[finite & (v > 0)]
    if floor is None:
        if pos.size == 0:
            raise ValueError(f"`{name}` has no positive finite value: it cannot be drawn on a log axis")
        # never below the smallest normal double: a subnormal minimum would otherwise give 0
        floor = max(float(pos.min()) * 1e-3, float(np.finfo(float).tiny))
    else:
        floor = float(floor)
        if not floor > 0:
            raise ValueError(f"`floor` must be > 0 for a log axis, got {floor}")
    out = np.where(finite, np.maximum(v, floor), np.nan)
    return out, floor


def mask(values: Any, sentinel: float) -> np.ndarray:
    """``values`` as floats with every entry equal to ``sentinel`` replaced by ``nan`` (not drawn)."""
    v = np.array(values, dtype=float)
    v[v == sentinel] = np.nan
    return v
