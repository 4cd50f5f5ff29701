"""Widget helpers: log sliders, error output, debounce, panels and cached sweeps.

The widget rules (CONTRIBUTING.md):

* cheap views update live; a value change re-renders by updating an *existing* plotly
  ``FigureWidget`` inside ``fig.batch_update()`` (one message to the browser), never by
  building a new figure;
* anything slower than ~100 ms is computed once over a grid (:class:`Sweep`) and the slider
  scrubs the cached results, or runs with ``continuous_update=False`` plus :func:`debounce`;
* errors in callbacks are printed into an ``Output`` widget, which JupyterLab shows (it hides
  exceptions raised inside widget callbacks otherwise);
* everything is testable without a browser: set ``slider.value`` and check the figure's data.

Example
-------
>>> import numpy as np, plotly.graph_objects as go
>>> from lossviz.widgets import Panel, log_slider
>>> x = np.linspace(-3, 3, 50)
>>> fig = go.FigureWidget(go.Scatter(x=x, y=np.exp(-x)))
>>> panel = Panel({"tau": log_slider("tau", 1e-2, 1e2, 1.0)},
...               lambda tau: {0: {"y": np.exp(-x / tau)}}, fig)
>>> panel.controls["tau"].value = 10.0
>>> bool(np.allclose(fig.data[0].y, np.exp(-x / 10.0)))
True
"""

from __future__ import annotations

import asyncio
import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as W

from ._validate import check_float, check_int

__all__ = [
    "log_slider",
    "error_output",
    "show_error",
    "debounce",
    "Panel",
    "Sweep",
    "sweep",
    "scrub_slider",
    "static_copy",
    "frames_figure",
    "fit_frame_ranges",
    "panel_frames",
    "check_prediction",
    "Verdict",
]


def log_slider(
    description: str,
    low: float,
    high: float,
    value: float | None = None,
    *,
    steps_per_decade: int = 20,
    readout_format: str = ".3g",
    continuous_update: bool = True,
    **kwargs,
) -> W.FloatLogSlider:
    """A ``FloatLogSlider`` from ``low`` to ``high`` (positive), ``steps_per_decade`` stops per decade.

    ``value`` defaults to the geometric mean of the range.
    """
    lo = check_float(low, "low", positive=True)
    hi = check_float(high, "high", positive=True)
    if not hi > lo:
        raise ValueError(f"`high` must be > `low`, got low={lo}, high={hi}")
    steps_per_decade = check_int(steps_per_decade, "steps_per_decade", minimum=1)
    if value is None:
        value = math.sqrt(lo * hi)
    value = check_float(value, "value", positive=True)
    if not lo <= value <= hi:
        raise ValueError(f"`value`={value} must lie in [low, high] = [{lo}, {hi}]")
    return W.FloatLogSlider(
        value=value,
        base=10,
        min=math.log10(lo),
        max=math.log10(hi),
        step=1.0 / steps_per_decade,
        description=description,
        readout_format=readout_format,
        continuous_update=continuous_update,
        style={"description_width": "initial"},
        **kwargs,
    )


_ERROR_LAYOUT = {"border": "1px solid #e0a0a0", "max_height": "12em", "overflow": "auto"}


def error_output() -> W.Output:
    """An ``Output`` widget to catch and show errors from widget callbacks.

    It is hidden (``display: none``) while empty; :func:`show_error` writes into it and shows it.
    """
    out = W.Output(layout={**_ERROR_LAYOUT, "display": "none"})
    out.add_class("lossviz-error")  # the browser test finds it by this class
    return out


def show_error(output: W.Output, text: str) -> None:
    """Append ``text`` to an :func:`error_output` as stderr and make the box visible."""
    output.layout.display = None
    # append_stderr works inside and outside a kernel (``with output:`` needs IPython)
    output.append_stderr(text)


def debounce(wait: float) -> Callable[[Callable], Callable]:
    """Decorator: run the function only once calls stop for ``wait`` seconds.

    Uses the running asyncio loop (the Jupyter kernel's); with no running loop (scripts, tests)
    or ``wait <= 0`` the call happens immediately, so logic stays testable.
    """
    wait = check_float(wait, "wait", minimum=0.0)

    def decorator(fn: Callable) -> Callable:
        handle: list[Any] = [None]

        def run(*args, **kwargs):
            handle[0] = None
            return fn(*args, **kwargs)

        def debounced(*args, **kwargs):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None or wait == 0:
                return fn(*args, **kwargs)
            if handle[0] is not None:
                handle[0].cancel()
            handle[0] = loop.call_later(wait, lambda: run(*args, **kwargs))
            return None

        def pending() -> bool:
            """Cancel a scheduled call and say whether there was one (the caller runs it now)."""
            if handle[0] is None:
                return False
            handle[0].cancel()
            handle[0] = None
            return True

        debounced.__wrapped__ = fn  # type: ignore[attr-defined]
        debounced.pending = pending  # type: ignore[attr-defined]
        return debounced

    return decorator


def _apply_updates(fig, updates: Mapping) -> None:
    """Apply ``{trace index or name: {prop: value}, "layout": {...}}`` to a plotly figure."""
    for key, props in updates.items():
        if key == "layout":
            fig.update_layout(**props)
            continue
        if isinstance(key, int):
            try:
                trace = fig.data[key]
            except IndexError:
                raise KeyError(f"figure has no trace {key} (it has {len(fig.data)})") from None
        else:
            matches = [t for t in fig.data if t.name == key]
            if not matches:
                raise KeyError(f"figure has no trace named {key!r}")
            trace = matches[0]
        trace.update(**props)


class Panel:
    """Wire controls to a compute function that updates an existing figure in place.

    Parameters
    ----------
    controls : mapping name -> widget
        Their ``.value`` are passed to ``compute`` as keyword arguments.
    compute : callable
        Called as ``compute(**values)``; returns updates ``{trace index or trace name: {property: value}, "layout": {...}}`` that
        are applied to ``figure`` inside one ``batch_update`` (plotly), or returns ``None`` after
        updating whatever it draws itself (e.g. matplotlib artists).
    figure : plotly ``FigureWidget`` (or ``go.Figure``), optional
    wait : float
        Debounce in seconds (0 = update on every change; use > 0 with expensive computations
        and ``continuous_update=False`` sliders).
    run : bool
        Call ``compute`` once at construction so the figure shows the default values.

    Attributes
    ----------
    output : the ``Output`` widget that shows errors; ``last_error`` the last exception or None;
    calls : number of completed updates (useful in tests and latency benchmarks).
    """

    def __init__(
        self,
        controls: Mapping[str, W.Widget],
        compute: Callable[..., Mapping | None],
        figure=None,
        *,
        wait: float = 0.0,
        run: bool = True,
        title: str | None = None,
    ):
        if not isinstance(controls, Mapping) or not controls:
            raise TypeError("`controls` must be a non-empty mapping name -> widget")
        for name, w in controls.items():
            if not isinstance(w, W.ValueWidget):
                raise TypeError(
                    f"`controls[{name!r}]` must be an ipywidgets value widget, got {type(w).__name__}"
                )
        if not callable(compute):
            raise TypeError("`compute` must be callable(**values)")
        self.controls = dict(controls)
        self.compute = compute
        self.figure = figure
        self.output = error_output()
        self.last_error: BaseException | None = None
        self.calls = 0
        self.title = title
        self._update = debounce(wait)(self.update)
        for w in self.controls.values():
            w.observe(self._on_change, names="value")
        if run:
            self.update()

    @property
    def values(self) -> dict[str, Any]:
        return {k: w.value for k, w in self.controls.items()}

    def _on_change(self, change) -> None:
        self._update()

    def update(self) -> None:
        """Recompute and redraw now (errors go to :attr:`output`)."""
        try:
            updates = self.compute(**self.values)
            if updates:
                if self.figure is None:
                    raise TypeError("`compute` returned figure updates but the panel has no `figure`")
                if hasattr(self.figure, "batch_update"):
                    with self.figure.batch_update():
                        _apply_updates(self.figure, updates)
                else:
                    _apply_updates(self.figure, updates)
            self.last_error = None
            self.calls += 1
        except Exception as exc:  # noqa: BLE001 - shown to the user in the Output widget
            self.last_error = exc
            show_error(self.output, f"lossviz: update failed for {self.values}:\n" + traceback.format_exc())

    @property
    def widget(self) -> W.Widget:
        """The panel laid out: title, controls, figure (if a widget), error output."""
        children: list[W.Widget] = []
        if self.title:
            children.append(W.HTML(f"<b>{self.title}</b>"))
        children.append(W.HBox(list(self.controls.values()), layout={"flex_flow": "row wrap"}))
        if isinstance(self.figure, W.DOMWidget):
            children.append(self.figure)
        children.append(self.output)
        return W.VBox(children)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def check_responds(self, control: str | None = None, value: Any = None) -> bool:
        """Self-check for notebooks and tests: moving ``control`` changes the figure.

        Sets ``control`` (default: the first) to ``value`` (default: another allowed value:
        the other end of a slider's range, the next option of a dropdown), asserts that the
        update raised nothing and that the figure's data changed, then restores the old value
        (and asserts the figure went back). Returns ``True``; raises ``AssertionError`` with what
        went wrong otherwise.
        """
        name = next(iter(self.controls)) if control is None else control
        if name not in self.controls:
            raise ValueError(f"`control` must be one of {sorted(self.controls)}, got {name!r}")
        w = self.controls[name]
        old = w.value
        new = _other_value(w) if value is None else value
        if new == old:
            raise ValueError(f"`value` {new!r} equals the current value of {name!r}: nothing would change")
        assert self.last_error is None, f"the panel already failed: {self.last_error!r}"
        before = _figure_state(self.figure)
        try:
            w.value = new
            self._flush()
            assert self.last_error is None, f"moving {name!r} to {new!r} raised {self.last_error!r}"
            after = _figure_state(self.figure)
            assert after != before, f"moving {name!r} from {old!r} to {new!r} did not change the figure"
        finally:
            w.value = old
            self._flush()
        assert _figure_state(self.figure) == before, (
            f"restoring {name!r} to {old!r} did not restore the figure"
        )
        return True

    def _flush(self) -> None:
        """Run a pending debounced update now (tests and self-checks do not wait for timers)."""
        pending = getattr(self._update, "pending", None)
        if pending is not None and pending():
            self.update()


def _other_value(w) -> Any:
    options = getattr(w, "options", None)
    if options:
        values = [o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in options]
        values = list(values)
        i = values.index(w.value) if w.value in values else -1
        return values[(i + 1) % len(values)]
    if isinstance(w, W.Checkbox) or isinstance(w.value, bool):
        return not w.value
    lo, hi = getattr(w, "min", None), getattr(w, "max", None)
    if lo is not None and hi is not None:
        return hi if w.value != hi else lo
    raise ValueError(f"cannot choose another value for a {type(w).__name__}: pass `value=`")


def _figure_state(figure) -> Any:
    """A comparable snapshot of what a figure shows (plotly data, or matplotlib artists' data)."""
    if figure is None:
        return None
    if hasattr(figure, "to_plotly_json") or hasattr(figure, "to_dict"):
        import plotly.io as pio

        return pio.to_json({"data": figure.to_dict()["data"]}, validate=False)
    state = []
    for ax in getattr(figure, "axes", []):
        for line in ax.get_lines():
            state.append(repr(line.get_xydata().tolist()))
        for im in ax.get_images():
            state.append(repr(im.get_array().tolist()))
        for coll in ax.collections:
            state.append(repr(coll.get_offsets().tolist()))
        state.append(ax.get_title())
    return state


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`check_prediction`: ``status`` is ``"unset"``, ``"right"`` or ``"wrong"``."""

    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "right"

    def _ipython_display_(self) -> None:
        """Shown already (printed by :func:`check_prediction`): display nothing a second time."""

    def __repr__(self) -> str:
        return f"Verdict(status={self.status!r})"


def _fmt(v: Any, unit: str) -> str:
    if (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        or (hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0)
    ):
        text = f"{float(v):.4g}"
    else:
        text = repr(v) if isinstance(v, str) else str(v)
    return text + (f" {unit}" if unit else "")


def check_prediction(
    prediction: Any,
    answer: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    choices: Sequence[Any] | None = None,
    unit: str = "",
    explain: str = "",
    name: str = "PREDICTION",
) -> Verdict:
    """ "Predict, then check": reveal ``answer`` only once the student has set a prediction.

    Exercise cells follow one pattern: the student writes a guess into a variable, the notebook
    has measured ``answer``, and this call compares them::

        PREDICTION = None  # your guess: the ratio at width 1024
        widgets.check_prediction(PREDICTION, answer=ratio, rtol=0.25, explain="...")

    With ``prediction=None`` nothing is revealed (no number, no hint beyond "set your prediction
    first"), so *Run All* shows no answers. Otherwise the verdict says right or not quite, with
    the measured answer and ``explain``. It never raises for a wrong or missing prediction.

    Parameters
    ----------
    prediction : the student's guess, or ``None`` (not set yet)
    answer : the measured value (a number) or the right choice (with ``choices``)
    rtol, atol : float, optional
        A numeric prediction is right when ``|prediction - answer| <= atol + rtol * |answer|``
        (default ``rtol=0.1``, ``atol=0``).
    choices : sequence, optional
        The allowed answers of a categorical question (``answer`` must be one of them); a
        prediction outside them is told so.
    unit, explain, name : str
        Unit printed after numbers, the explanation shown after a prediction, and the variable
        name the student sets (for the prompt).

    Returns
    -------
    Verdict
        ``status`` ``"unset"`` / ``"right"`` / ``"wrong"`` and the message shown.

    Examples
    --------
    >>> v = check_prediction(None, 2.8)
    Set your prediction first (`PREDICTION = ...`), then run this cell again.
    >>> v.status
    'unset'
    >>> check_prediction(3.0, 2.8, rtol=0.1).status
    Right: you predicted 3, the notebook measured 2.8.
    'right'
    >>> check_prediction("below", "above", choices=("above", "below")).status
    Not quite: you predicted 'below', the notebook measured 'above'.
    'wrong'
    """
    if choices is not None:
        choices = tuple(choices)
        if answer not in choices:
            raise ValueError(f"`answer` {answer!r} must be one of `choices` {choices}")
    elif rtol is None and atol is None:
        rtol = 0.1
    rtol = 0.0 if rtol is None else check_float(rtol, "rtol", minimum=0.0)
    atol = 0.0 if atol is None else check_float(atol, "atol", minimum=0.0)
    if prediction is None:
        msg = f"Set your prediction first (`{name} = ...`), then run this cell again."
        return _show(Verdict("unset", msg))
    if choices is not None:
        if prediction not in choices:
            msg = f"`{name}` must be one of {choices}, got {prediction!r}: set it and run again."
            return _show(Verdict("unset", msg))
        right = prediction == answer
    else:
        try:
            p, a = float(prediction), float(answer)
        except (TypeError, ValueError):
            msg = f"`{name}` must be a number, got {prediction!r}: set it and run again."
            return _show(Verdict("unset", msg))
        right = math.isfinite(p) and abs(p - a) <= atol + rtol * abs(a)
    head = "Right" if right else "Not quite"
    msg = f"{head}: you predicted {_fmt(prediction, unit)}, the notebook measured {_fmt(answer, unit)}."
    if explain:
        msg += " " + explain
    return _show(Verdict("right" if right else "wrong", msg))


def _show(verdict: Verdict) -> Verdict:
    print(verdict.message)
    return verdict


def static_copy(figure):
    """A static ``go.Figure`` copy of a ``FigureWidget`` (renders without a kernel)."""
    import plotly.graph_objects as go

    return go.Figure(figure.to_dict())


@dataclass(frozen=True)
class Sweep:
    """Results of an expensive computation precomputed over a grid of knob values.

    ``sweep[v]`` returns the result for the grid value nearest to ``v`` (in log distance when
    ``log=True``), so a slider can scrub cached results instantly.
    """

    values: tuple
    results: tuple
    log: bool = False

    def index(self, value) -> int:
        if not self.values:
            raise ValueError("empty sweep")
        if isinstance(self.values[0], (int, float)) and not isinstance(self.values[0], bool):
            f = (lambda v: math.log(v)) if self.log else (lambda v: v)
            target = f(value)
            return min(range(len(self.values)), key=lambda i: abs(f(self.values[i]) - target))
        return self.values.index(value)

    def __getitem__(self, value):
        return self.results[self.index(value)]

    def __len__(self) -> int:
        return len(self.values)

    def items(self):
        return zip(self.values, self.results)


def sweep(
    fn: Callable[[Any], Any],
    values: Sequence,
    *,
    log: bool = False,
    progress: bool = True,
    desc: str = "sweep",
    executor=None,
    cache=None,
    key: Any = None,
) -> Sweep:
    """Evaluate ``fn(v)`` for every ``v`` in ``values`` once (with a tqdm bar) into a :class:`Sweep`.

    ``executor`` (a ``concurrent.futures`` executor, a Dask ``distributed.Client``, ...) runs the
    values in parallel, and ``cache`` (a directory) with ``key`` (the settings) keeps finished
    values on disk so an interrupted sweep resumes: see :func:`lossviz.parallel.map_tiles`. The
    result is the same as the one-process run, value for value.
    """
    from .parallel import map_tiles

    values = tuple(values)
    if not values:
        raise ValueError("`values` must not be empty")
    if log and any(not (isinstance(v, (int, float)) and v > 0) for v in values):
        raise ValueError("`values` must be positive numbers when log=True")
    results = map_tiles(fn, values, executor=executor, cache=cache, key=key, progress=progress, desc=desc)
    return Sweep(values, tuple(results), log)


def scrub_slider(
    sweep_or_values, description: str = "", value=None, *, fmt: str = "{:.3g}"
) -> W.SelectionSlider:
    """A ``SelectionSlider`` over the grid values of a :class:`Sweep` (or a sequence)."""
    values = sweep_or_values.values if isinstance(sweep_or_values, Sweep) else tuple(sweep_or_values)
    if not values:
        raise ValueError("`sweep_or_values` must not be empty")
    options = [(fmt.format(v) if isinstance(v, (int, float)) else str(v), v) for v in values]
    if value is None:
        value = values[0]
    if value not in values:
        raise ValueError(f"`value`={value!r} is not one of the sweep values")
    return W.SelectionSlider(options=options, value=value, description=description, continuous_update=True)


def frames_figure(
    sweep: Sweep,
    make_traces: Callable[[Any, Any], Sequence],
    *,
    label: str = "value",
    fmt: str = "{:.3g}",
    layout: Mapping | None = None,
    active: int = 0,
):
    """A plotly figure with one frame per sweep value and a built-in slider.

    The kernel-free twin of a slider that scrubs a :class:`Sweep`: rendered pages (``make site``)
    keep the interaction without Python. ``make_traces(value, result)`` returns the list of plotly
    traces for one value; every value must return the same number of traces.
    """
    import plotly.graph_objects as go

    if not isinstance(sweep, Sweep) or len(sweep) == 0:
        raise TypeError("`sweep` must be a non-empty lossviz.widgets.Sweep")
    if not callable(make_traces):
        raise TypeError("`make_traces` must be callable(value, result) -> list of traces")
    active = check_int(active, "active", minimum=0, maximum=len(sweep) - 1)
    names, frames = [], []
    count = None
    for v, r in sweep.items():
        traces = list(make_traces(v, r))
        if count is None:
            count = len(traces)
        elif len(traces) != count:
            raise ValueError(f"`make_traces` returned {len(traces)} traces for {v!r}, expected {count}")
        name = fmt.format(v) if isinstance(v, (int, float)) else str(v)
        names.append(name)
        frames.append(go.Frame(data=traces, name=name))
    fig = go.Figure(data=frames[active].data, frames=frames)
    fig.update_layout(**(layout or {}))
    fit_frame_ranges(fig)
    return _add_frame_slider(fig, names, label, active)


def _numeric(values) -> Any:
    import numpy as np

    if values is None:
        return None
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        return None  # categorical axis: plotly lays it out itself
    a = a[np.isfinite(a)]
    return a if a.size else None


def fit_frame_ranges(fig, *, pad: float = 0.05):
    """Give a figure with frames axis and colour ranges that contain **every** frame's data.

    A plotly figure keeps the axis ranges of its first frame while its slider moves through the
    others, so later frames are clipped (a barrier of 1.004 drawn on an axis that stops at 0.45).
    This sets, on the figure's layout, the range of every x/y axis that has no explicit range to
    the union over all frames (on log axes, of the positive values), padded by ``pad``, and
    ``zmin``/``zmax`` of heat maps and contours to the union of their ``z``, so one colour means
    one number in every frame. Axis ranges that a frame's own layout sets are left alone.
    Returns the figure (changed in place).
    """
    import numpy as np

    frames = list(fig.frames) or [None]
    datasets = [fig.data] + [fr.data for fr in frames if fr is not None]
    spans: dict[str, list[float]] = {}
    zspans: dict[int, list[float]] = {}
    for data in datasets:
        for i, tr in enumerate(data):
            if tr.type in ("heatmap", "contour", "histogram2dcontour"):
                z = _numeric(getattr(tr, "z", None))
                if z is not None:
                    lo, hi = zspans.get(i, [np.inf, -np.inf])
                    zspans[i] = [min(lo, z.min()), max(hi, z.max())]
            if not hasattr(tr, "xaxis") or tr.type in ("pie", "scatter3d", "surface", "scatterpolar"):
                continue
            for dim in ("x", "y"):
                vals = _numeric(getattr(tr, dim, None))
                if vals is None:
                    continue
                ref = getattr(tr, f"{dim}axis", None) or dim
                key = f"{dim}axis{ref[1:]}"
                axis = fig.layout[key] if key in fig.layout else None
                if axis is not None and axis.type == "log":
                    vals = vals[vals > 0]
                    if not vals.size:
                        continue
                    vals = np.log10(vals)
                lo, hi = spans.get(key, [np.inf, -np.inf])
                spans[key] = [min(lo, float(vals.min())), max(hi, float(vals.max()))]
    framed = {
        k for fr in frames if fr is not None and fr.layout is not None for k in fr.layout.to_plotly_json()
    }
    for key, (lo, hi) in spans.items():
        axis = fig.layout[key]
        if axis.range is not None or key in framed or axis.type in ("category", "date"):
            continue
        width = hi - lo
        margin = pad * (width if width > 0 else max(abs(hi), 1.0))
        fig.layout[key].range = [lo - margin, hi + margin]
    for i, (lo, hi) in zspans.items():
        for data in datasets:
            if (
                i < len(data)
                and getattr(data[i], "zmin", None) is None
                and getattr(data[i], "zmax", None) is None
            ):
                data[i].update(zmin=lo, zmax=hi)
    return fig


def _add_frame_slider(fig, names: list[str], label: str, active: int):
    """Add a plotly slider whose steps jump to the frames called ``names``."""
    steps = [
        {
            "method": "animate",
            "label": n,
            "args": [
                [n],
                {
                    "mode": "immediate",
                    "frame": {"duration": 0, "redraw": True},
                    "transition": {"duration": 0},
                },
            ],
        }
        for n in names
    ]
    fig.update_layout(
        sliders=[
            {"active": active, "currentvalue": {"prefix": f"{label} = "}, "steps": steps, "pad": {"t": 30}}
        ]
    )
    return fig


def panel_frames(
    panel: Panel, control: str | None = None, values: Sequence | None = None, *, fmt: str = "{:.3g}"
):
    """The kernel-free twin of a :class:`Panel`: one plotly frame per value of one control.

    For every value (default: the options of a ``SelectionSlider``, e.g. :func:`scrub_slider`
    over a cached :class:`Sweep`) the panel's ``compute`` runs with that value and its updates are
    applied to a static copy of the figure; the result is a ``go.Figure`` with a built-in slider
    over those frames, so rendered pages (``make site``) keep the interaction. The panel and its
    figure are not changed. Needs a panel whose ``compute`` returns plotly figure updates.
    """
    import plotly.graph_objects as go

    if not isinstance(panel, Panel):
        raise TypeError(f"`panel` must be a lossviz.widgets.Panel, got {type(panel).__name__}")
    if panel.figure is None or not hasattr(panel.figure, "to_dict"):
        raise TypeError("`panel` has no plotly figure to export")
    if control is None:
        if len(panel.controls) != 1:
            raise ValueError(f"`control` must name one of {sorted(panel.controls)}")
        control = next(iter(panel.controls))
    if control not in panel.controls:
        raise ValueError(f"`control` must be one of {sorted(panel.controls)}, got {control!r}")
    widget = panel.controls[control]
    if values is None:
        options = getattr(widget, "options", None)
        if not options:
            raise ValueError("`values` is needed unless the control is a selection widget with options")
        values = [o[1] if isinstance(o, tuple) else o for o in options]
    values = list(values)
    if not values:
        raise ValueError("`values` must not be empty")
    base_values = panel.values
    names, frames = [], []
    for v in values:
        updates = panel.compute(**{**base_values, control: v})
        if not isinstance(updates, Mapping):
            raise TypeError("`panel.compute` must return plotly figure updates to export frames")
        fig = go.Figure(panel.figure.to_dict())
        _apply_updates(fig, updates)
        name = fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
        names.append(name)
        layout = updates.get("layout")
        frames.append(go.Frame(data=fig.data, name=name, layout=layout))
    current = base_values[control]
    active = next((i for i, v in enumerate(values) if v == current), 0)
    out = go.Figure(panel.figure.to_dict())
    _apply_updates(out, panel.compute(**{**base_values, control: values[active]}))
    out.frames = frames
    fit_frame_ranges(out)
    return _add_frame_slider(out, names, getattr(widget, "description", "") or control, active)
