"""lossviz.ntk.plotting: figures, ax=, closed matplotlib figures, axis titles, fixed colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lossviz import _plot, ntk  # noqa: E402

from ._util import F64, _circle, _mlp  # noqa: E402


def _results():
    x = _circle(8)
    lim = ntk.analytic(x, depth=2)
    emp = ntk.empirical(_mlp((2, 16, 1), act=nn.ReLU), x)
    net = ntk.parametrize((2, 16, 1), "standard", seed=0, dtype=F64)
    snaps = ntk.NTKSnapshots(x, every=1, targets=x[:, 0])
    from lossviz import train

    train.fit(net, lambda o, t: (o - t).pow(2).mean(), (x, x[:, :1]), steps=2, lr=0.1, callbacks=[snaps],
              progress=False)  # fmt: skip
    phi = ntk.random_features(x, 32, seed=0)
    path = ntk.ridge_path(phi, x[:, 0], phi, x[:, 0], ridges=[0.0, 1e-3, 1.0])
    return {"lim": lim, "emp": emp, "spec": ntk.eigh(lim), "snaps": snaps.result(), "path": path}


def _titles(fig):
    if isinstance(fig, go.Figure):
        xs = [a.title.text for k, a in fig.layout.to_plotly_json().items() if False]  # noqa: F841
        out = []
        for name in dir(fig.layout):
            if name.startswith(("xaxis", "yaxis")):
                ax = getattr(fig.layout, name)
                if ax is not None and hasattr(ax, "title"):
                    out.append(ax.title.text)
        return out
    return [t for a in fig.axes if a.get_label() != "<colorbar>" for t in (a.get_xlabel(), a.get_ylabel())]


def test_every_result_plots_in_both_backends_with_axis_titles():
    res = _results()
    for name, r in res.items():
        fig = r.plot()
        assert isinstance(fig, go.Figure), name
        assert all(_titles(fig)) and len(_titles(fig)) >= 2, (name, _titles(fig))
        mfig = r.plot(backend="matplotlib")
        assert isinstance(mfig, plt.Figure)
        assert mfig.number not in plt.get_fignums(), f"{name}: matplotlib figure left open"
        assert all(_titles(mfig)), (name, _titles(mfig))


def test_ax_is_drawn_into_and_left_open():
    res = _results()
    for name in ("lim", "emp", "spec", "path"):
        fig, ax = plt.subplots()
        out = res[name].plot(backend="matplotlib", ax=ax)
        assert out is fig and fig.number in plt.get_fignums() and ax.get_xlabel()
        plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    assert res["snaps"].plot(backend="matplotlib", ax=axes) is fig
    plt.close(fig)
    with pytest.raises(ValueError, match="pair"):
        res["snaps"].plot(backend="matplotlib", ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="`backend`"):
        res["lim"].plot(backend="bokeh")
    plt.close("all")


def test_kernel_slice_ensemble_and_colours():
    x = _circle(8)
    lim = ntk.analytic(x, depth=2)
    nets = torch.stack([lim.ntk[0] * 1.1, lim.ntk[0] * 0.9, lim.ntk[0]])
    fig = ntk.plot_kernel_slice({"limit": lim.ntk[0], "width 64": nets}, np.arange(8))
    assert len(fig.data) == 1 + 3 + 1
    assert fig.data[0].line.color == _plot.color(0) and fig.data[1].line.color == _plot.color(1)
    assert fig.data[-1].name == "width 64 (mean of 3)"
    assert np.allclose(fig.data[-1].y, nets.mean(0).numpy())
    assert fig.layout.xaxis.title.text == "angle" and fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="points"):
        ntk.plot_kernel_slice({"a": np.zeros(3)}, np.arange(8))


def test_kernel_spectrum_floor_and_deprecated_name():
    k = torch.diag(torch.tensor([1.0, 0.5, 0.0], dtype=F64))
    fig = ntk.plot_kernel_spectrum(k)
    y = np.array(fig.data[0].y)
    assert y.min() > 0 and y.min() >= 0.5e-3 * 0.999  # the zero eigenvalue sits at the floor
    assert fig.layout.yaxis.type == "log"
    with pytest.warns(DeprecationWarning, match="plot_kernel_spectrum"):
        old = ntk.plot_spectrum
    assert old is ntk.plot_kernel_spectrum
    assert isinstance(ntk.plot_kernel_spectrum([k, k], labels=["a", "b"], backend="matplotlib"), plt.Figure)
