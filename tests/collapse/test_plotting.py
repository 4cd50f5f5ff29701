"""Tests for lossviz.collapse.plotting and the .plot() methods of collapse results."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz import collapse

from ._helpers import F64, random_data


def test_plots_return_figures():
    import plotly.graph_objects as go

    c = collapse.simplex_etf(4, 6) + 0.05
    for dims in (2, 3):
        fig = collapse.plot_frame(c, classifier=2 * c, target="etf", dims=dims)
        assert isinstance(fig, go.Figure) and len(fig.data) == 12
    assert collapse.plot_frame(
        collapse.orthogonal_frame(3), target="orthogonal", center=False, backend="matplotlib"
    )
    fig = collapse.plot_gram(c, center=True)
    assert np.allclose(np.asarray(fig.data[0].z)[0, 1], -1 / 3)
    assert collapse.plot_gram(c, backend="matplotlib") is not None
    assert collapse.minority_collapse(c - 0.05, [1, 2, 3]).min_angle == pytest.approx(
        math.degrees(math.acos(-1 / 3))
    )


def _figures(backend, ax=None):
    x, y, w, b = random_data(0)
    m = collapse.nc_metrics(x, y, (w, b))
    rec = collapse.CollapseRecorder(x, y, layer="1", classifier="1")
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(6, 4, dtype=F64))
    rec(0, net, 0.0, None)
    rec(1, net, 0.0, None)
    frame = collapse.imbalanced_frame([20, 10, 5], 1e-2)
    mc = collapse.minority_collapse(w, [1, 2, 3])
    kw = dict(backend=backend, ax=ax)
    return {
        "metrics": collapse.plot_metrics(rec, **kw),
        "frame": collapse.plot_frame(m.means, w, **kw),
        "gram": collapse.plot_gram(w, **kw),
        "angles": collapse.plot_angles(mc, **kw),
        "imbalanced": collapse.plot_imbalanced_frame(frame, feature_norms=frame.feature_norms, **kw),
        "NCMetrics.plot": m.plot(**kw),
        "ImbalancedFrame.plot": frame.plot(**kw),
        "MinorityCollapse.plot": mc.plot(**kw),
        "CollapseRecorder.plot": rec.plot(**kw),
    }


def test_every_plot_has_axis_titles_in_plotly():
    for name, fig in _figures("plotly").items():
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text, name
        assert fig.layout.title.text, name
    heat = _figures("plotly")["gram"].data[0]
    assert heat.colorbar.title.text == "cosine"


def test_matplotlib_figures_are_closed_unless_ax_is_given():
    import matplotlib.pyplot as plt

    plt.close("all")
    figs = _figures("matplotlib")
    assert plt.get_fignums() == []  # every figure lossviz made is closed (no double drawing)
    for name, fig in figs.items():
        ax = fig.axes[0]
        assert ax.get_xlabel() and ax.get_ylabel(), name
    for name in ("gram", "angles"):
        assert figs[name].axes[-1].get_ylabel(), name  # the colour bar says what colour means
    frame = collapse.imbalanced_frame([20, 10, 5], 1e-2)
    for name, draw in (
        (
            "metrics",
            lambda ax: collapse.plot_metrics([0, 1], {"nc1": [1.0, 0.1]}, backend="matplotlib", ax=ax),
        ),
        ("gram", lambda ax: collapse.plot_gram(torch.eye(3, dtype=F64), backend="matplotlib", ax=ax)),
        ("imbalanced", lambda ax: frame.plot(backend="matplotlib", ax=ax)),
    ):
        fig, ax = plt.subplots()
        out = draw(ax)
        assert out is fig and plt.fignum_exists(fig.number), name  # the caller's figure stays open
        plt.close(fig)


def test_plotly_rejects_ax_and_metrics_use_a_log_floor():
    with pytest.raises(ValueError, match="ax"):
        collapse.plot_gram(torch.eye(3, dtype=F64), ax=object())
    fig = collapse.plot_metrics([0, 1, 2], {"ncc_mismatch": [0.5, 0.0, None]})
    ys = np.asarray(fig.data[0].y, dtype=float)
    assert ys[1] == pytest.approx(5e-4) and np.isnan(ys[2])  # 0 drawn at the floor, None not drawn
    with pytest.raises(ValueError, match="positive"):
        collapse.plot_metrics([0, 1], {"ncc_mismatch": [0.0, 0.0]})
