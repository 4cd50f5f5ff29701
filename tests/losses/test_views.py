"""Tests for lossviz.losses._views (loss surfaces over logits, margin curves)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import lossviz.losses as L
from lossviz.losses import plotting as P


def test_logit_surface_grid_convention():
    s = L.logit_surface(L.tempered_cross_entropy, extent=2.0, num=5, tau=0.5)
    assert s.values.shape == (5, 5) and s.d1[0] == -2.0 and s.d1[-1] == 2.0
    i, j = 1, 4  # values[i, j] is the loss at logits (0, d1[i], d2[j])
    z = torch.tensor([[0.0, s.d1[i], s.d2[j]]], dtype=torch.float64)
    assert s.values[i, j] == pytest.approx(float(L.tempered_cross_entropy(z, torch.tensor([0]), 0.5)))
    # an asymmetric "loss" pins the axis convention (d1 first, ij indexing)
    a = L.logit_surface(lambda z, y, reduction="none": z[:, 1] + 10 * z[:, 2], extent=2.0, num=5)
    assert a.values[i, j] == pytest.approx(s.d1[i] + 10 * s.d2[j])
    fig = P.plot_loss_surface(a)
    assert isinstance(fig, go.Figure)
    # plotly draws z[row=d2][col=d1]
    assert np.asarray(fig.data[0].z)[j, i] == pytest.approx(a.values[i, j])
    P.plot_loss_surface(s, kind="surface")
    import matplotlib.pyplot as plt

    plt.close(P.plot_loss_surface(s, backend="matplotlib"))


def test_margin_curves_and_limits():
    c = L.margin_curves(L.tempered_cross_entropy, [1e-2, 1.0, 1e6], margins=[-1.0, 0.0, 2.0], num_classes=4)
    assert c.values.shape == (3, 3)
    # tau -> inf: log K everywhere
    np.testing.assert_allclose(c.values[2], math.log(4), atol=1e-5)
    # tau = 1 at margin 0: log K
    assert c.values[1, 1] == pytest.approx(math.log(4))
    assert isinstance(P.plot_margin_curves(c), go.Figure)
    assert isinstance(P.plot_margin_curves(c, normalize=True), go.Figure)
    q = L.margin_curves(L.comp_sum, [0.0, 1.0], param_name="q", margins=[0.0, 50.0])
    assert q.values[1, 1] == pytest.approx(0.0, abs=1e-12)  # MAE saturates at 0 for large margins


def test_loss_fn_errors():
    with pytest.raises(TypeError, match="loss_fn"):
        L.logit_surface(42)
    with pytest.raises(ValueError, match="one loss per sample"):
        L.logit_surface(lambda z, y: z.sum(), num=3)
    with pytest.raises(ValueError, match="num"):
        L.logit_surface(L.ldr_kl, num=1)
    with pytest.raises(TypeError, match="surface"):
        P.plot_loss_surface("nope")
    with pytest.raises(ValueError, match="backend"):
        P.plot_loss_surface(L.logit_surface(L.ldr_kl, num=3), backend="bokeh")
