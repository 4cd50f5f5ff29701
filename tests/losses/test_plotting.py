"""Tests for the analytic views and widgets of lossviz.losses (derivations: tests/derivations)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

import lossviz.losses as L
from lossviz.losses import plotting as P


def test_penalty_and_bound_plots():
    pd = L.penalty_distribution([0.05, 0.5])
    fig = P.plot_penalty_distribution(pd)
    assert len(fig.data) == 2 and np.allclose(fig.data[0].y, pd.weights[0])
    assert len(P.plot_comp_sum_bounds((0.0, 1.0), 5).data) == 2


def test_surface_widget_updates_in_place():
    panel = P.surface_widget(L.ldr_kl, num=21, extent=3.0)
    fig = panel.figure
    assert isinstance(fig, go.FigureWidget) and panel.last_error is None
    panel.controls["tau"].value = 0.01
    want = L.logit_surface(L.ldr_kl, extent=3.0, num=21, tau=panel.controls["tau"].value).values.T
    np.testing.assert_allclose(np.asarray(fig.data[0].z), want)
    assert panel.figure is fig and panel.calls == 2


def test_penalty_and_margin_widgets():
    pw = P.penalty_widget(value=0.1)
    pw.controls["tau"].value = 10.0
    v = pw.controls["tau"].value
    np.testing.assert_allclose(np.asarray(pw.figure.data[0].y), L.penalty_distribution([v]).weights[0])
    mw = P.margin_widget(L.comp_sum, param_name="q", low=1e-3, high=1.0, value=0.5)
    mw.controls["q"].value = 1.0
    np.testing.assert_allclose(
        np.asarray(mw.figure.data[0].y), L.margin_curves(L.comp_sum, [1.0], param_name="q").values[0]
    )
    assert mw.last_error is None


# ----------------------------------------------------------------------------- sympy == numeric


# ----------------------------------------------------------------------------- the drawing shape


def _results():
    return {
        "surface": L.logit_surface(L.ldr_kl, num=5, tau=1.0),
        "margins": L.margin_curves(L.tempered_cross_entropy, [0.1, 1.0], margins=[-1.0, 0.0, 1.0]),
        "penalty": L.penalty_distribution([0.01, 1.0]),
        "bound": L.comp_sum_bound(0.5, 10),
    }


@pytest.mark.parametrize("name", ["surface", "margins", "penalty", "bound"])
def test_every_result_plots_with_axis_titles_in_both_backends(name):
    import matplotlib.pyplot as plt

    r = _results()[name]
    fig = r.plot()
    assert isinstance(fig, go.Figure)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    before = plt.get_fignums()
    mfig = r.plot(backend="matplotlib")
    assert plt.get_fignums() == before, "a matplotlib figure made by lossviz must be returned closed"
    ax = mfig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    # into the caller's axes: the caller's figure, left open
    cfig, cax = plt.subplots()
    try:
        out = r.plot(backend="matplotlib", ax=cax)
        assert out is cfig and plt.fignum_exists(cfig.number)
        assert cax.get_xlabel() and (cax.lines or cax.collections)
    finally:
        plt.close(cfig)
    with pytest.raises(ValueError, match="backend"):
        r.plot(backend="bokeh")


def test_plot_colours_are_fixed_per_series():
    from lossviz import _plot

    fig = L.plot_margin_curves(_results()["margins"])
    assert [t.line.color for t in fig.data] == [_plot.color(0), _plot.color(1)]


def test_penalty_plot_has_a_log_floor_not_zeros():
    pd = L.penalty_distribution([1e-3])  # weights underflow to exactly 0 far from the hardest negative
    assert (pd.weights[0] == 0).any()
    fig = L.plot_penalty_distribution(pd)
    y = np.asarray(fig.data[0].y, dtype=float)
    assert np.all(y > 0) and fig.layout.yaxis.type == "log"


def test_comp_sum_bound_plot_takes_results_or_q_values():
    b = [L.comp_sum_bound(q, 5) for q in (0.0, 1.0)]
    assert len(L.plot_comp_sum_bounds(b).data) == 2
    assert len(L.plot_comp_sum_bounds((0.0, 1.0), 5).data) == 2
    with pytest.raises(TypeError, match="bounds"):
        L.plot_comp_sum_bounds("q")
