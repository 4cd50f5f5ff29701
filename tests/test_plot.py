"""The shared drawing kit: backends, ax=, closed figures, log floors."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import pytest

from lossviz import _plot


def test_new_figure_and_finish_close_owned_matplotlib_figures():
    fig, ax = _plot.new_figure("matplotlib")
    ax.plot([1, 2], [3, 4], label="a")
    _plot.finish(fig, "matplotlib", ax=ax, xlabel="x", ylabel="y", title="t", ylog=True)
    assert not plt.fignum_exists(fig.number)
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title(), ax.get_yscale()) == ("x", "y", "t", "log")
    assert ax.get_legend() is not None


def test_finish_leaves_a_callers_axes_open():
    fig, ax = plt.subplots()
    same_fig, same_ax = _plot.new_figure("matplotlib", ax=ax)
    assert same_fig is fig and same_ax is ax
    _plot.finish(same_fig, "matplotlib", ax=ax, xlabel="x")
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def test_plotly_axis_titles_on_every_untitled_axis():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2)
    fig.update_xaxes(title_text="kept", row=1, col=2)
    _plot.finish(fig, "plotly", xlabel="step", ylabel="loss", xlog=True)
    assert fig.layout.xaxis.title.text == "step" and fig.layout.xaxis2.title.text == "kept"
    assert fig.layout.yaxis.title.text == "loss" and fig.layout.xaxis.type == "log"


def test_backend_and_ax_errors():
    with pytest.raises(ValueError, match="backend"):
        _plot.check_backend("bokeh")
    with pytest.raises(ValueError, match="ax"):
        _plot.new_figure("plotly", ax=object())
    with pytest.raises(TypeError, match="ax"):
        _plot.new_figure("matplotlib", ax=object())
    assert isinstance(_plot.new_figure("plotly")[0], go.Figure)


def test_log_floor_and_mask():
    v, floor = _plot.log_floor([0.0, -1.0, 1e-2, 1.0, np.inf])
    assert floor == pytest.approx(1e-5)
    assert np.allclose(v[:4], [1e-5, 1e-5, 1e-2, 1.0]) and np.isnan(v[4])
    with pytest.raises(ValueError, match="losses"):
        _plot.log_floor([0.0, -2.0], name="losses")
    with pytest.raises(ValueError, match="floor"):
        _plot.log_floor([1.0], floor=0.0)
    assert np.isnan(_plot.mask([1, -1, 2], -1)[1])
    assert _plot.color(0) == _plot.color(len(_plot.PALETTE))


def test_log_floor_stays_positive_for_subnormal_minima():
    tiny = np.finfo(float).tiny
    v, floor = _plot.log_floor([1e-322, 0.0, 1.0])  # 1e-322 is subnormal: 1e-3 of it underflows
    assert floor > 0 and floor == tiny
    assert np.all(v > 0) and np.all(np.isfinite(np.log10(v)))


@pytest.mark.parametrize("backend", ["matplotlib", "plotly"])
def test_line_draws_one_series_in_its_fixed_colour_on_either_backend(backend):
    fig, ax = _plot.new_figure(backend)
    _plot.line(fig, ax, backend, [0, 1, 2], [3, 1, 2], name="a", index=0)
    _plot.line(fig, ax, backend, [0, 1], [5, 6], name="b", index=7)
    if backend == "matplotlib":
        lines = ax.get_lines()
        got = [
            (ln.get_label(), list(ln.get_ydata()), matplotlib.colors.to_hex(ln.get_color())) for ln in lines
        ]
        plt.close(fig)
    else:
        got = [(t.name, list(t.y), t.line.color) for t in fig.data]
    want_colors = [matplotlib.colors.to_hex(_plot.color(0)), matplotlib.colors.to_hex(_plot.color(7))]
    assert [g[0] for g in got] == ["a", "b"]
    assert [g[1] for g in got] == [[3, 1, 2], [5, 6]]
    assert [matplotlib.colors.to_hex(g[2]) for g in got] == want_colors
