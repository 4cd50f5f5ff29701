"""The track-T sympy derivations (``lossviz.derivations.temperature``) against the losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lossviz.losses as L
from lossviz.derivations import temperature as T


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
        r = torch.randn(2000, kk, dtype=torch.float64, generator=torch.Generator().manual_seed(kk))
        # K = 2 attains the bound exactly (every z-score is +-1): allow float64 rounding
        assert float(L.z_scores(r).max()) <= float(zmax.subs(k, kk)) * (1 + 1e-10)


def sp_simplify_equal(expr, k):
    import sympy as sp

    return sp.simplify(expr - sp.sqrt(k - 1)) == 0


def test_ldr_loss_fn_is_stable_at_small_tau_and_either_order():
    """The numeric loss is the max-shifted form: finite where the plain formula overflows."""
    d = T.ldr_limits()
    a1 = np.array([1.0, -2.0, 800.0])
    a2 = np.array([0.5, 3.0, 799.0])
    got = d.loss_fn(a1, a2, 1e-3)
    assert np.all(np.isfinite(got))
    # tau -> 0: the max minus tau log 2
    np.testing.assert_allclose(got, np.maximum(a1, a2) - 1e-3 * np.log(2), rtol=1e-12)
    with np.errstate(over="ignore", invalid="ignore"):
        plain = 1e-3 * np.log((np.exp(a1 / 1e-3) + np.exp(a2 / 1e-3)) / 2)
    assert not np.all(np.isfinite(plain))  # the naive form does overflow here
