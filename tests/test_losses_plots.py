"""Tests for the analytic views and widgets of lossviz.losses, and the track-T sympy derivations."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import lossviz.losses as L
from lossviz.derivations import temperature as T
from lossviz.losses import plots as P


def test_logit_surface_grid_convention():
    s = P.logit_surface(L.tempered_cross_entropy, extent=2.0, num=5, tau=0.5)
    assert s.values.shape == (5, 5) and s.d1[0] == -2.0 and s.d1[-1] == 2.0
    i, j = 1, 4  # values[i, j] is the loss at logits (0, d1[i], d2[j])
    z = torch.tensor([[0.0, s.d1[i], s.d2[j]]], dtype=torch.float64)
    assert s.values[i, j] == pytest.approx(float(L.tempered_cross_entropy(z, torch.tensor([0]), 0.5)))
    # an asymmetric "loss" pins the axis convention (d1 first, ij indexing)
    a = P.logit_surface(lambda z, y, reduction="none": z[:, 1] + 10 * z[:, 2], extent=2.0, num=5)
    assert a.values[i, j] == pytest.approx(s.d1[i] + 10 * s.d2[j])
    fig = P.plot_loss_surface(a)
    assert isinstance(fig, go.Figure)
    # plotly draws z[row=d2][col=d1]
    assert np.asarray(fig.data[0].z)[j, i] == pytest.approx(a.values[i, j])
    P.plot_loss_surface(s, kind="surface")
    import matplotlib.pyplot as plt

    plt.close(P.plot_loss_surface(s, backend="matplotlib"))


def test_margin_curves_and_limits():
    c = P.margin_curves(L.tempered_cross_entropy, [1e-2, 1.0, 1e6], margins=[-1.0, 0.0, 2.0], num_classes=4)
    assert c.values.shape == (3, 3)
    # tau -> inf: log K everywhere
    np.testing.assert_allclose(c.values[2], math.log(4), atol=1e-5)
    # tau = 1 at margin 0: log K
    assert c.values[1, 1] == pytest.approx(math.log(4))
    assert isinstance(P.plot_margin_curves(c), go.Figure)
    assert isinstance(P.plot_margin_curves(c, normalize=True), go.Figure)
    q = P.margin_curves(L.comp_sum, [0.0, 1.0], param_name="q", margins=[0.0, 50.0])
    assert q.values[1, 1] == pytest.approx(0.0, abs=1e-12)  # MAE saturates at 0 for large margins


def test_loss_fn_errors():
    with pytest.raises(TypeError, match="loss_fn"):
        P.logit_surface(42)
    with pytest.raises(ValueError, match="one loss per sample"):
        P.logit_surface(lambda z, y: z.sum(), num=3)
    with pytest.raises(ValueError, match="num"):
        P.logit_surface(L.ldr_kl, num=1)
    with pytest.raises(TypeError, match="surface"):
        P.plot_loss_surface("nope")
    with pytest.raises(ValueError, match="backend"):
        P.plot_loss_surface(P.logit_surface(L.ldr_kl, num=3), backend="bokeh")


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
    want = P.logit_surface(L.ldr_kl, extent=3.0, num=21, tau=panel.controls["tau"].value).values.T
    np.testing.assert_allclose(np.asarray(fig.data[0].z), want)
    assert panel.figure is fig and panel.calls == 2


def test_penalty_and_margin_widgets():
    pw = P.penalty_widget(value=0.1)
    pw.controls["tau"].value = 10.0
    v = pw.controls["tau"].value
    np.testing.assert_allclose(np.asarray(pw.figure.data[0].y), L.penalty_distribution([v]).weights[0])
    mw = P.margin_widget(L.comp_sum, param_name="q", min=1e-3, max=1.0, value=0.5)
    mw.controls["q"].value = 1.0
    np.testing.assert_allclose(
        np.asarray(mw.figure.data[0].y), P.margin_curves(L.comp_sum, [1.0], param_name="q").values[0]
    )
    assert mw.last_error is None


# ----------------------------------------------------------------------------- sympy == numeric


def test_derivation_info_nce_gradient_matches_autograd():
    d = T.info_nce_gradient(m=4)
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(5, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    tau = 0.3
    loss = L.info_nce_from_similarities(s[None], torch.tensor([0]), tau)
    (grad,) = torch.autograd.grad(loss, s)
    sym = np.array(d.grad_fn(*s.detach().numpy(), tau), dtype=float)
    np.testing.assert_allclose(sym, grad.numpy(), rtol=1e-12, atol=1e-14)
    rel = np.array(d.relative_penalty_fn(*s.detach().numpy()[1:], tau), dtype=float)
    np.testing.assert_allclose(rel, L.negative_weights(s.detach()[1:], tau).numpy(), rtol=1e-12)


def test_derivation_comp_sum_matches_numeric():
    d = T.comp_sum_family()
    assert str(d.limit_q0) == "-log(p)"
    z = torch.tensor([[1.0, -0.5, 0.3], [0.2, 2.0, -1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    p = torch.softmax(z, 1)[torch.arange(2), y].numpy()
    for q in (0.1, 0.7, 1.0):
        np.testing.assert_allclose(d.phi_fn(p, q), L.comp_sum(z, y, q, reduction="none").numpy(), rtol=1e-12)
    q = 1e-4
    ce = L.comp_sum(z, y, 0.0, reduction="none").numpy()
    gap = (L.comp_sum(z, y, q, reduction="none").numpy() - ce) / q
    np.testing.assert_allclose(gap, d.first_order_fn(p), rtol=1e-3)


def test_derivation_ldr_limits_match_numeric():
    d = T.ldr_limits()
    a1, a2 = d.symbols[:2]
    assert d.limit_zero == a1 and (d.limit_inf - (a1 + a2) / 2).simplify() == 0
    # two-class LDR-KL with margin 0: a = (0, z_1 - z_0) for true class 0
    z = torch.tensor([[0.3, 1.1]], dtype=torch.float64)
    for tau in (0.05, 1.0, 20.0):
        want = float(L.ldr_kl(z, torch.tensor([0]), tau, margin=0.0))
        assert d.loss_fn(0.8, 0.0, tau) == pytest.approx(want, rel=1e-12)


def test_derivation_z_score_max_matches_numeric():
    k, zmax = T.z_score_max()
    assert sp_simplify_equal(zmax, k)
    for kk in (2, 10, 1000):
        z = torch.zeros(1, kk, dtype=torch.float64)
        z[0, 0] = 3.7
        assert float(L.z_scores(z)[0, 0]) == pytest.approx(float(zmax.subs(k, kk)), rel=1e-12)
        # no logit vector does better (random search)
        r = torch.randn(2000, kk, dtype=torch.float64)
        assert float(L.z_scores(r).max()) <= float(zmax.subs(k, kk)) + 1e-12


def sp_simplify_equal(expr, k):
    import sympy as sp

    return sp.simplify(expr - sp.sqrt(k - 1)) == 0
