"""curvature.plotting: figures, axis titles, log floors, ax=, closed figures and .plot()."""

from __future__ import annotations

import warnings

import matplotlib
import matplotlib.figure
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import pytest

from lossviz import curvature, train

from ._helpers import CE, _data, _net


@pytest.fixture(scope="module")
def results():
    net, (x, y) = _net(width=8), _data(40)
    dens = curvature.spectral_density(net, CE, (x, y), num_probes=2, steps=10)
    lam = curvature.exact_hessian(net, CE, (x, y)).eigenvalues
    top = curvature.top_eigenvalues(net, CE, (x, y), k=3, seed=0)
    tracker = curvature.SharpnessTracker(CE, (x, y), every=2)
    train.fit(net, CE, (x, y), steps=4, lr=0.1, callbacks=[tracker], progress=False)
    return {"dens": dens, "lam": lam, "top": top, "hist": tracker.result()}


def _calls(r):
    return {
        "density": (curvature.plot_density, (r["dens"],), {"exact": r["lam"]}),
        "sharpness": (curvature.plot_sharpness, (r["hist"],), {"lr": 0.1}),
        "eigenvalues": (curvature.plot_eigenvalues, (r["top"],), {}),
    }


@pytest.mark.parametrize("kind", ["density", "sharpness", "eigenvalues"])
def test_plotly_figures_have_axis_titles(results, kind):
    fn, args, kw = _calls(results)[kind]
    fig = fn(*args, **kw)
    assert isinstance(fig, go.Figure)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert len(fig.data) >= 1


@pytest.mark.parametrize("kind", ["density", "sharpness", "eigenvalues"])
def test_matplotlib_figures_are_closed_unless_ax_is_given(results, kind):
    fn, args, kw = _calls(results)[kind]
    before = set(plt.get_fignums())
    fig = fn(*args, backend="matplotlib", **kw)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert set(plt.get_fignums()) == before  # returned closed: Jupyter will not draw it twice
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel()
    # with ax=: drawn into the caller's axes, which stay open
    fig2, ax2 = plt.subplots()
    try:
        out = fn(*args, backend="matplotlib", ax=ax2, **kw)
        assert out is fig2 and plt.fignum_exists(fig2.number)
        assert ax2.get_xlabel() and (ax2.lines or ax2.patches or ax2.collections)
    finally:
        plt.close(fig2)
    with pytest.raises(ValueError, match="backend"):
        fn(*args, ax=ax2, **kw)  # ax= needs matplotlib
    with pytest.raises(ValueError, match="backend"):
        fn(*args, backend="bokeh", **kw)


def test_results_plot_themselves(results):
    for key, name in (("dens", "plot_density"), ("hist", "plot_sharpness"), ("top", "plot_eigenvalues")):
        fig = results[key].plot()
        assert isinstance(fig, go.Figure), name
        mfig = results[key].plot(backend="matplotlib")
        assert isinstance(mfig, matplotlib.figure.Figure), name
    fig = results["dens"].plot(exact=results["lam"])
    assert [t.name for t in fig.data] == ["exact eigenvalues", "SLQ density"]


def test_density_log_axis_has_a_floor(results):
    """The SLQ density's Gaussian tails must not drag a log axis down to 1e-32 (REVIEW L04)."""
    dens, lam = results["dens"], results["lam"]
    fig = curvature.plot_density(dens, lam)
    lo, hi = fig.layout.yaxis.range
    assert fig.layout.yaxis.type == "log" and lo > -8 and hi > lo
    y = np.asarray(fig.data[1].y, dtype=float)
    assert np.nanmin(y) >= 10**lo * (1 - 1e-12)  # nothing drawn below the floor
    # every eigenvalue's histogram bar stays above the floor
    bars = np.asarray(fig.data[0].y, dtype=float)
    assert np.nanmin(bars) > 10**lo
    mfig = curvature.plot_density(dens, lam, backend="matplotlib")
    ylo = mfig.axes[0].get_ylim()[0]
    assert mfig.axes[0].get_yscale() == "log" and ylo > 1e-8
    # an explicit floor is honoured; a linear axis has none
    fig = curvature.plot_density(dens, floor=1e-3)
    assert fig.layout.yaxis.range[0] == pytest.approx(-3)
    assert np.nanmin(np.asarray(fig.data[0].y, dtype=float)) >= 1e-3
    lin = curvature.plot_density(dens, log=False)
    assert lin.layout.yaxis.type != "log"
    with pytest.raises(ValueError, match="floor"):
        curvature.plot_density(dens, floor=0.0)


def test_plot_input_errors(results):
    with pytest.raises(ValueError, match="density"):
        curvature.plot_density()
    with pytest.raises(TypeError, match="SpectralDensity"):
        curvature.plot_density(np.zeros(3))
    with pytest.raises(TypeError, match="SharpnessHistory"):
        curvature.plot_sharpness(results["dens"])
    with pytest.raises(TypeError, match="EigenResult"):
        curvature.plot_eigenvalues(results["hist"])


def test_plot_spectrum_is_a_deprecated_alias_of_plot_density(results):
    with pytest.warns(
        DeprecationWarning, match="plot_spectrum moved to lossviz.curvature.plotting.plot_density"
    ):
        fn = curvature.plot_spectrum
    assert fn is curvature.plot_density
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(
            curvature.plot_density(results["dens"], results["lam"], backend="matplotlib"),
            matplotlib.figure.Figure,
        )
    assert "plot_spectrum" not in curvature.__all__


def test_no_figure_is_left_open(results):
    before = len(plt.get_fignums())
    for fn, args, kw in _calls(results).values():
        fn(*args, backend="matplotlib", **kw)
    assert len(plt.get_fignums()) == before
