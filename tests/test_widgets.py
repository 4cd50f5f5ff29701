import asyncio

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import pytest

from lossviz import widgets


def test_log_slider_range():
    s = widgets.log_slider("lr", 1e-3, 1e3, steps_per_decade=10)
    assert s.base == 10 and s.min == -3 and s.max == 3 and s.step == pytest.approx(0.1)
    assert s.value == pytest.approx(1.0)
    s.value = 0.05
    assert s.value == pytest.approx(0.05)


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((1e-3, 1e-4), {}, "high"),
        ((0.0, 1.0), {}, "low"),
        ((1e-3, 1.0), {"value": 5.0}, "value"),
        ((1e-3, 1.0), {"steps_per_decade": 0}, "steps_per_decade"),
    ],
)
def test_log_slider_bad_input(args, kw, match):
    with pytest.raises(ValueError, match=match):
        widgets.log_slider("x", *args, **kw)


def _panel(**kw):
    x = np.linspace(-2, 2, 30)
    fig = go.FigureWidget([go.Scatter(x=x, y=x, name="curve"), go.Scatter(x=x, y=x, name="other")])
    slider = widgets.log_slider("tau", 0.1, 10, 1.0)
    panel = widgets.Panel(
        {"tau": slider},
        lambda tau: {"curve": {"y": np.tanh(x / tau)}, "layout": {"title": f"{tau:.2f}"}},
        fig,
        **kw,
    )
    return x, fig, slider, panel


def test_panel_updates_figure_in_place():
    x, fig, slider, panel = _panel()
    assert np.allclose(fig.data[0].y, np.tanh(x))  # ran once at construction
    trace = fig.data[0]
    slider.value = 0.2
    assert fig.data[0] is trace, "the figure must be updated in place, not rebuilt"
    assert np.allclose(fig.data[0].y, np.tanh(x / 0.2))
    assert np.allclose(fig.data[1].y, x)  # other trace untouched
    assert fig.layout.title.text == "0.20"
    assert panel.calls == 2 and panel.last_error is None
    assert isinstance(panel.widget, W.VBox)


def test_panel_routes_errors_to_output():
    fig = go.FigureWidget(go.Scatter(y=[1, 2]))
    slider = W.FloatSlider(value=1.0)

    def compute(v):
        if v > 2:
            raise RuntimeError("boom at v > 2")
        return {0: {"y": [v, v]}}

    panel = widgets.Panel({"v": slider}, compute, fig)
    assert panel.output.layout.display == "none"  # the empty error box is invisible
    slider.value = 3.0  # must not raise into the caller
    assert isinstance(panel.last_error, RuntimeError)
    assert panel.output.layout.display != "none"  # ... and shows itself with an error
    assert any("boom" in o.get("text", "") for o in panel.output.outputs)
    assert list(fig.data[0].y) == [1.0, 1.0]  # last good state kept
    slider.value = 1.5
    assert panel.last_error is None and list(fig.data[0].y) == [1.5, 1.5]


def test_panel_unknown_trace_is_an_error():
    fig = go.FigureWidget(go.Scatter(y=[1]))
    panel = widgets.Panel({"v": W.FloatSlider()}, lambda v: {"missing": {"y": [v]}}, fig)
    assert isinstance(panel.last_error, KeyError)


def test_panel_bad_input():
    with pytest.raises(TypeError, match="controls"):
        widgets.Panel({}, lambda: None)
    with pytest.raises(TypeError, match="controls"):
        widgets.Panel({"a": 3}, lambda a: None)
    with pytest.raises(TypeError, match="compute"):
        widgets.Panel({"a": W.FloatSlider()}, None)


def test_debounce_immediate_without_loop_and_delayed_with_loop():
    calls = []
    f = widgets.debounce(0.05)(lambda v: calls.append(v))
    f(1)
    assert calls == [1]

    async def burst():
        for v in (2, 3, 4):
            f(v)
        assert calls == [1]
        await asyncio.sleep(0.15)

    asyncio.run(burst())
    assert calls == [1, 4], "only the last call of a burst runs"


def test_sweep_and_scrub_slider():
    sw = widgets.sweep(lambda v: v**2, [0.1, 1.0, 10.0], log=True, progress=False)
    assert (
        sw[0.12] == pytest.approx(0.01) and sw[2.5] == pytest.approx(1.0) and sw[4.0] == pytest.approx(100.0)
    )
    s = widgets.scrub_slider(sw, "v", 1.0)
    assert s.value == 1.0 and len(s.options) == 3
    with pytest.raises(ValueError, match="value"):
        widgets.scrub_slider(sw, "v", 2.0)
    with pytest.raises(ValueError, match="positive"):
        widgets.sweep(lambda v: v, [0.0, 1.0], log=True)


def test_static_copy():
    fig = go.FigureWidget(go.Scatter(y=[1, 2, 3]))
    static = widgets.static_copy(fig)
    assert isinstance(static, go.Figure) and not isinstance(static, go.FigureWidget)
    assert list(static.data[0].y) == [1, 2, 3]


def test_frames_figure_has_one_frame_per_value():
    sw = widgets.sweep(lambda v: np.arange(5) * v, [1.0, 2.0, 4.0], progress=False)
    fig = widgets.frames_figure(sw, lambda v, r: [go.Scatter(y=r, name="line")], label="lr", active=1)
    assert len(fig.frames) == 3
    assert [s.label for s in fig.layout.sliders[0].steps] == ["1", "2", "4"]
    assert list(fig.data[0].y) == [0, 2, 4, 6, 8]  # the active value is drawn initially
    assert list(fig.frames[2].data[0].y) == [0, 4, 8, 12, 16]
    with pytest.raises(ValueError, match="traces"):
        widgets.frames_figure(sw, lambda v, r: [go.Scatter(y=r)] * int(v))
    with pytest.raises(TypeError, match="sweep"):
        widgets.frames_figure([1, 2], lambda v, r: [])


def test_panel_frames_exports_every_cached_value_without_touching_the_panel():
    x = np.linspace(0, 1, 5)
    sw = widgets.sweep(lambda v: x * v, [1.0, 2.0, 3.0], progress=False)
    fig = go.FigureWidget([go.Scatter(x=x, y=x, name="curve")])
    panel = widgets.Panel(
        {"v": widgets.scrub_slider(sw, "v", 2.0)},
        lambda v: {"curve": {"y": sw[v]}, "layout": {"title": f"v={v}"}},
        fig,
    )
    out = widgets.panel_frames(panel)
    assert [f.name for f in out.frames] == ["1", "2", "3"]
    assert list(out.frames[2].data[0].y) == list(x * 3)
    assert out.frames[0].layout.title.text == "v=1.0"
    assert out.layout.sliders[0].active == 1 and list(out.data[0].y) == list(x * 2)
    assert panel.controls["v"].value == 2.0 and list(fig.data[0].y) == list(x * 2) and panel.calls == 1
    with pytest.raises(ValueError, match="values"):
        widgets.panel_frames(
            widgets.Panel({"t": widgets.log_slider("t", 0.1, 10)}, lambda t: {"curve": {"y": x * t}}, fig)
        )
    log_panel = widgets.Panel({"t": widgets.log_slider("t", 0.1, 10)}, lambda t: {"curve": {"y": x * t}}, fig)
    assert len(widgets.panel_frames(log_panel, values=[0.1, 1.0, 10.0]).frames) == 3
    with pytest.raises(TypeError, match="plotly"):
        widgets.panel_frames(widgets.Panel({"t": W.FloatSlider()}, lambda t: None))


# ---------------------------------------------------------------------------------------------
# Panel.check_responds and check_prediction (the notebooks' self-check and exercise helpers)


def _tau_panel(responsive=True):
    import numpy as np
    import plotly.graph_objects as go

    from lossviz.widgets import Panel, log_slider

    x = np.linspace(-3, 3, 20)
    fig = go.Figure(go.Scatter(x=x, y=np.exp(-x)))
    compute = (
        (lambda tau: {0: {"y": np.exp(-x / tau)}}) if responsive else (lambda tau: {0: {"y": np.exp(-x)}})
    )
    return Panel({"tau": log_slider("tau", 1e-1, 1e1, 1.0)}, compute, fig)


def test_check_responds_passes_on_a_live_panel_and_restores_the_value():
    panel = _tau_panel()
    before = list(panel.figure.data[0].y)
    assert panel.check_responds() is True
    assert panel.controls["tau"].value == 1.0
    assert list(panel.figure.data[0].y) == before


def test_check_responds_fails_on_a_dead_tau_panel():
    import pytest

    with pytest.raises(AssertionError, match="did not change the figure"):
        _tau_panel(responsive=False).check_responds()


def test_check_responds_fails_when_the_update_raises():
    import numpy as np
    import plotly.graph_objects as go
    import pytest

    from lossviz.widgets import Panel, log_slider

    def compute(tau):
        if tau != 1.0:
            raise RuntimeError("boom")
        return {0: {"y": [1, 2]}}

    panel = Panel({"tau": log_slider("tau", 1e-1, 1e1, 1.0)}, compute, go.Figure(go.Scatter(y=np.zeros(2))))
    with pytest.raises(AssertionError, match="boom"):
        panel.check_responds()


def test_check_responds_rejects_unknown_control():
    import pytest

    with pytest.raises(ValueError, match="control"):
        _tau_panel().check_responds("nope")


def test_check_prediction_reveals_nothing_before_a_prediction(capsys):
    from lossviz.widgets import check_prediction

    v = check_prediction(None, 2.8172, explain="the secret explanation")
    out = capsys.readouterr().out
    assert v.status == "unset" and not v
    assert "2.8" not in out and "secret" not in out and "Set your prediction first" in out


def test_check_prediction_numeric_right_and_wrong(capsys):
    from lossviz.widgets import check_prediction

    right = check_prediction(2.9, 2.8172, rtol=0.1, explain="why")
    assert right.status == "right" and right
    assert "2.817" in capsys.readouterr().out
    wrong = check_prediction(2.21, 2.8172, rtol=0.1)
    assert wrong.status == "wrong" and not wrong
    assert "Not quite" in capsys.readouterr().out
    assert check_prediction(2.0, 2.5, atol=0.6).status == "right"
    assert check_prediction("abc", 2.5).status == "unset"


def test_check_prediction_choices():
    import pytest

    from lossviz.widgets import check_prediction

    assert check_prediction("a", "a", choices=("a", "b")).status == "right"
    assert check_prediction("b", "a", choices=("a", "b")).status == "wrong"
    assert check_prediction("c", "a", choices=("a", "b")).status == "unset"
    with pytest.raises(ValueError, match="answer"):
        check_prediction("a", "z", choices=("a", "b"))


# ---------------------------------------------------------------------------------------------
# kernel-free sliders show every frame's data (no axis range stuck at the first frame)


def _growing_sweep():
    import numpy as np

    from lossviz.widgets import sweep

    return sweep(lambda s: {"y": np.linspace(0, s, 5), "z": np.full((2, 2), s)}, [0.45, 1.004, 3.0])


def test_frames_figure_axis_range_contains_every_frame():
    import plotly.graph_objects as go

    from lossviz.widgets import frames_figure

    fig = frames_figure(_growing_sweep(), lambda v, r: [go.Scatter(y=r["y"])], label="s")
    lo, hi = fig.layout.yaxis.range
    assert lo <= 0 and hi >= 3.0, fig.layout.yaxis.range
    assert len(fig.frames) == 3


def test_frames_figure_heatmap_colour_range_is_shared_and_log_axes_use_log_units():
    import numpy as np
    import plotly.graph_objects as go

    from lossviz.widgets import frames_figure

    fig = frames_figure(_growing_sweep(), lambda v, r: [go.Heatmap(z=r["z"])])
    assert all(fr.data[0].zmin == 0.45 and fr.data[0].zmax == 3.0 for fr in fig.frames)
    logfig = frames_figure(
        _growing_sweep(),
        lambda v, r: [go.Scatter(x=[1, 10, 100], y=r["y"][2:] + 1e-3)],
        layout={"yaxis_type": "log"},
    )
    lo, hi = logfig.layout.yaxis.range
    assert lo <= np.log10(0.45 / 2) and hi >= np.log10(3.0)


def test_panel_frames_ranges_cover_all_frames_but_keep_explicit_ranges():
    import numpy as np
    import plotly.graph_objects as go

    from lossviz.widgets import Panel, panel_frames, scrub_slider

    sw = _growing_sweep()
    fig = go.FigureWidget(go.Scatter(y=sw[0.45]["y"]))
    panel = Panel({"s": scrub_slider(sw, "s")}, lambda s: {0: {"y": sw[s]["y"]}}, fig)
    out = panel_frames(panel)
    assert out.layout.yaxis.range[1] >= 3.0
    fig.update_yaxes(range=[0, 1])
    kept = panel_frames(panel)
    assert list(kept.layout.yaxis.range) == [0, 1]
    assert np.allclose(fig.data[0].y, sw[0.45]["y"])  # the live figure is untouched


# ---------------------------------------------------------------- kernel-free sliders show the truth
# The three cases the review found clipped (REVIEW D): L05's barrier curve (first frame tops out at
# 0.45, a later one at 1.004), T01's embedding scatter (spreads wider as tau changes), K02's loss
# curves on a log axis (later frames reach far lower losses), and a heat map's colour scale.


def _frames(values, make):
    sw = widgets.sweep(lambda v: v, values, progress=False)
    return widgets.frames_figure(sw, make, label="knob")


def _covers(axis_range, lo, hi):
    return axis_range[0] <= lo and axis_range[1] >= hi


def test_frames_axis_range_contains_every_frame_l05_barrier():
    t = np.linspace(0, 1, 11)
    fig = _frames([0.45, 0.8, 1.004], lambda h, _: [go.Scatter(x=t, y=h * 4 * t * (1 - t))])
    y = fig.layout.yaxis.range
    assert y is not None and _covers(y, 0.0, 1.004), y
    assert fig.layout.xaxis.range[0] <= 0 and fig.layout.xaxis.range[1] >= 1


def test_frames_axis_range_contains_every_frame_t01_scatter():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((2, 50))

    def make(scale, _):
        return [go.Scatter(x=scale * pts[0], y=scale * pts[1], mode="markers")]

    fig = _frames([0.1, 1.0, 5.0], make)
    assert _covers(fig.layout.xaxis.range, 5.0 * pts[0].min(), 5.0 * pts[0].max())
    assert _covers(fig.layout.yaxis.range, 5.0 * pts[1].min(), 5.0 * pts[1].max())


def test_frames_log_axis_range_contains_every_frame_k02_losses():
    steps = np.arange(1, 101)

    def make(alpha, _):
        return [go.Scatter(x=steps, y=np.exp(-steps / alpha), name="test loss")]

    sw = widgets.sweep(lambda v: v, [40.0, 10.0, 2.0], progress=False)
    fig = widgets.frames_figure(sw, make, label="alpha", layout={"yaxis": {"type": "log"}})
    lo = np.log10(np.exp(-100 / 2.0))  # the last frame's smallest loss
    y = fig.layout.yaxis.range  # log axes: ranges are in log10 units
    assert _covers(y, lo, 0.0), (y, lo)


def test_frames_share_one_colour_scale_and_keep_explicit_ranges():
    def make(s, _):
        return [go.Heatmap(z=s * np.arange(6.0).reshape(2, 3))]

    fig = _frames([1.0, 10.0], make)
    zs = {(tr.zmin, tr.zmax) for tr in [fig.data[0], *(f.data[0] for f in fig.frames)]}
    assert zs == {(0.0, 50.0)}
    # an explicit range is the author's choice and stays
    fig2 = go.Figure(go.Scatter(y=[0, 1]), frames=[go.Frame(data=[go.Scatter(y=[0, 9])])])
    fig2.layout.yaxis.range = [0, 2]
    widgets.fit_frame_ranges(fig2)
    assert tuple(fig2.layout.yaxis.range) == (0, 2)
