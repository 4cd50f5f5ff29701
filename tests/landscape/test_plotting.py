"""lossviz.landscape.plotting: every result's .plot, both backends, ax=, closed figures, titles, log floors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape, models

from ._common import _data, _mlp

F = nn.functional


@pytest.fixture(scope="module")
def results():
    net = _mlp(dtype=torch.float64)
    x, y = _data(dtype=torch.float64)
    other = _mlp(dtype=torch.float64, seed=1)
    path = [{k: v + 0.1 * t * torch.randn_like(v) for k, v in net.state_dict().items()} for t in range(6)]
    tr = landscape.trainability((0.0, 4.0), (0.5, 3.0), resolution=16, steps=20, workers=1)
    a, b = models.MLP(4, (8,), 3, seed=0), models.MLP(4, (8,), 3, seed=1)
    return {
        "line": landscape.line(net, F.cross_entropy, (x, y), steps=7),
        "plane": landscape.plane(net, F.cross_entropy, (x, y), steps=(5, 4)),
        "interpolation": landscape.interpolate(net, other, F.cross_entropy, (x, y), steps=5),
        "trajectory": landscape.trajectory(net, path),
        "trainability": tr,
        "box_counting": landscape.box_counting_dimension(tr.converged, sizes=(1, 2, 4)),
        "weight_matching": landscape.weight_matching(a, b),
    }


NAMES = ["line", "plane", "interpolation", "trajectory", "trainability", "box_counting", "weight_matching"]


def _titles_plotly(fig):
    xs = [fig.layout[k].title.text for k in fig.layout if k.startswith("xaxis")]
    ys = [fig.layout[k].title.text for k in fig.layout if k.startswith("yaxis")]
    return xs, ys


@pytest.mark.parametrize("name", NAMES)
def test_plot_plotly_has_axis_titles(results, name):
    fig = results[name].plot()
    assert type(fig).__name__ == "Figure" and len(fig.data) >= 1
    xs, ys = _titles_plotly(fig)
    assert xs and all(xs) and ys and all(ys), (xs, ys)
    assert fig.layout.title.text


@pytest.mark.parametrize("name", NAMES)
def test_plot_matplotlib_closed_and_ax_left_open(results, name):
    before = set(plt.get_fignums())
    fig = results[name].plot(backend="matplotlib")
    assert set(plt.get_fignums()) == before  # returned closed: Jupyter does not draw it twice
    ax0 = fig.axes[0]
    assert ax0.get_xlabel() and ax0.get_ylabel() and ax0.get_title()
    own, ax = plt.subplots()
    try:
        out = results[name].plot(backend="matplotlib", ax=ax)
        assert out is own and plt.fignum_exists(own.number)  # the caller's figure stays open
        assert ax.get_xlabel() and ax.get_ylabel()
    finally:
        plt.close(own)


def test_plot_functions_reject_bad_backend_and_ax_with_plotly(results):
    with pytest.raises(ValueError, match="backend"):
        results["line"].plot(backend="bokeh")
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match="ax"):
            results["plane"].plot(ax=ax)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="metric"):
        landscape.plot_plane(results["plane"], metric="nope")
    with pytest.raises(ValueError, match="metric"):
        landscape.plot_line(results["line"], metric="nope")


def _plane_with_loss(plane, loss):
    d = plane.as_dict()
    d["loss"] = loss
    return type(plane)(**d)


def test_log_plane_floors_non_positive_and_refuses_all_non_positive(results):
    pl = results["plane"]
    loss = np.array(pl.loss, copy=True)
    loss[0, 0] = 0.0
    loss[1, 1] = -1.0
    with pytest.warns(UserWarning, match="2 of .* <= 0 and are drawn at the floor"):
        fig = landscape.plot_plane(_plane_with_loss(pl, loss), log=True, kind="heatmap")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isfinite(z).all()
    pos = loss[loss > 0]
    floor = np.log10(pos.min() * 1e-3)
    assert z.T[0, 0] == pytest.approx(floor) and z.T[1, 1] == pytest.approx(floor)
    assert np.ptp(z) > 1  # not a flat picture
    with pytest.raises(ValueError, match="loss"):
        landscape.plot_plane(_plane_with_loss(pl, np.zeros_like(loss)), log=True)
    with pytest.raises(ValueError, match="loss"):
        landscape.plot_plane(_plane_with_loss(pl, -np.ones_like(loss)), log=True, backend="matplotlib")


def test_clip_that_would_flatten_the_plane_is_refused(results):
    # REVIEW B11: clip=-1 capped every cell and drew a flat plane without a word
    pl = results["plane"]
    lo, hi = float(np.min(pl.loss)), float(np.max(pl.loss))
    for clip in (-1.0, lo):
        with pytest.raises(ValueError, match="`clip`.*flat"):
            landscape.plot_plane(pl, clip=clip)
    with pytest.raises(ValueError, match="`clip`"):
        landscape.plot_plane(pl, clip=float("nan"))
    with pytest.raises(ValueError, match="`clip` must be > 0 with log=True"):
        landscape.plot_plane(pl, clip=-1.0, log=True)
    with pytest.raises(TypeError, match="`clip`"):
        landscape.plot_plane(pl, clip="5")
    fig = landscape.plot_plane(pl, clip=(lo + hi) / 2, kind="heatmap")  # a real cap: not flat
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.max() == pytest.approx((lo + hi) / 2) and np.ptp(z) > 0


def test_log_line_floors(results):
    ln = results["line"]
    d = ln.as_dict()
    d["loss"] = np.where(np.arange(len(ln.loss)) == 0, 0.0, ln.loss)
    with pytest.warns(UserWarning, match="1 of .* drawn at the floor"):
        fig = landscape.plot_line(type(ln)(**d), log=True)
    y = np.asarray(fig.data[0].y, dtype=float)
    assert np.isfinite(y).all() and y[0] < y[1:].min()


def test_interpolation_curves_have_fixed_colours_and_legends(results):
    r = results["interpolation"]
    fig = landscape.plot_interpolation([r, r], labels=["a", "b"])
    assert [t.line.color for t in fig.data] == [
        landscape.plotting._plot.color(0),
        landscape.plotting._plot.color(1),
    ]
    assert all("barrier" in t.name for t in fig.data)
    with pytest.raises(ValueError, match="labels"):
        landscape.plot_interpolation([r, r], labels=["a"])


def test_box_counting_plot_log_axes_and_fit(results):
    fig = landscape.plot_box_counting([results["box_counting"]] * 2, labels=["x", "y"])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert sum(t.showlegend is not False for t in fig.data) == 2
