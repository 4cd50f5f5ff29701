"""Tests for lossviz.losses._contrastive (InfoNCE, uniformity/tolerance, robust contrastive loss, DRO)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossviz.losses as L


def test_info_nce_gradient_equals_softmax_weights():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(6, 9, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    pos = torch.tensor([0, 3, 2, 8, 1, 5])
    tau = 0.2
    loss = L.info_nce_from_similarities(s, pos, tau, reduction="sum")
    (grad,) = torch.autograd.grad(loss, s)
    P = torch.softmax(s.detach() / tau, 1)
    want = P / tau
    want[torch.arange(6), pos] = -(1 - P[torch.arange(6), pos]) / tau
    torch.testing.assert_close(grad, want)
    # relative penalty of negatives = softmax over the negatives only
    for i in range(6):
        neg = [j for j in range(9) if j != pos[i]]
        r = grad[i, neg] / grad[i, pos[i]].abs()
        torch.testing.assert_close(r, L.negative_weights(s.detach()[i, neg], tau))


def test_info_nce_matches_loop():
    g = torch.Generator().manual_seed(1)
    z1, z2 = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    tau = 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    losses = []
    for i in range(10):
        p = (i + 5) % 10
        num = math.exp(float(z[i] @ z[p]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(10) if k != i)
        losses.append(-math.log(num / den))
    torch.testing.assert_close(
        L.info_nce(z1, z2, tau, reduction="none"), torch.tensor(losses, dtype=torch.float64)
    )
    assert L.info_nce(z1.float(), z2.float(), tau).dtype == torch.float32


def test_penalty_distribution_entropy_increases_with_tau():
    taus = np.geomspace(1e-3, 1e3, 25)
    pd = L.penalty_distribution(taus)
    np.testing.assert_allclose(pd.weights.sum(1), 1.0)
    assert np.all(np.diff(pd.entropy) > 0)
    assert pd.entropy[-1] == pytest.approx(math.log(201), abs=1e-3)
    assert pd.weights[0].argmax() == 200  # tiny tau: all penalty on the hardest negative


def test_uniformity_and_tolerance():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(400, 8, generator=g, dtype=torch.float64)
    clumped = torch.randn(1, 8, dtype=torch.float64) + 0.05 * torch.randn(
        400, 8, generator=g, dtype=torch.float64
    )
    assert L.uniformity(spread) < L.uniformity(clumped) - 1.0
    assert L.uniformity(clumped) <= 0
    # two antipodal points: ||z1 - z2||^2 = 4
    assert L.uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == pytest.approx(-8.0)
    labels = torch.arange(400) % 4
    assert L.tolerance(clumped, labels) > 0.9 and abs(L.tolerance(spread, labels)) < 0.1


def test_robust_contrastive_loss_temperature_gradient():
    g = torch.Generator().manual_seed(3)
    z1, z2 = (
        torch.randn(6, 4, generator=g, dtype=torch.float64),
        torch.randn(6, 4, generator=g, dtype=torch.float64),
    )
    tau = torch.tensor([0.1, 0.2, 0.5, 1.0, 2.0, 0.3], dtype=torch.float64, requires_grad=True)
    rho = 0.2
    loss = L.robust_contrastive_loss(z1, z2, tau, rho=rho, reduction="sum")
    (gt,) = torch.autograd.grad(loss, tau)
    sim, pos = L.nt_xent_similarities(z1, z2)
    want = torch.zeros(6, dtype=torch.float64)
    for i in range(12):
        neg = [j for j in range(12) if j != i and j != int(pos[i])]
        a = sim[i, neg] - sim[i, pos[i]]
        p = torch.softmax(a / tau.detach()[i % 6], 0)
        kl = float((torch.xlogy(p, p) + p * math.log(len(neg))).sum())
        want[i % 6] += rho - kl
    torch.testing.assert_close(gt, want)
    # a float temperature works and tau * rho enters linearly
    l0 = L.robust_contrastive_loss(z1, z2, 0.5, rho=0.0)
    l1 = L.robust_contrastive_loss(z1, z2, 0.5, rho=1.0)
    assert float(l1 - l0) == pytest.approx(0.5)


def test_dro_optimal_temperature_is_the_minimiser():
    g = torch.Generator().manual_seed(4)
    a = (torch.rand(50, generator=g, dtype=torch.float64) - 1).numpy()
    for rho in (0.05, 0.3):
        t_star = L.dro_optimal_temperature(a, rho)
        grid = np.geomspace(t_star / 3, t_star * 3, 2001)
        vals = L.dro_objective(a, grid, rho)
        assert abs(grid[vals.argmin()] / t_star - 1) < 2e-3
        # the derivative of the robust loss wrt tau (autograd) vanishes there: rho - KL = 0
        t = torch.tensor(t_star, dtype=torch.float64, requires_grad=True)
        at = torch.tensor(a)
        obj = t * (torch.logsumexp(at / t, 0) - math.log(50)) + t * rho
        (gt,) = torch.autograd.grad(obj, t)
        assert abs(float(gt)) < 1e-8
    # spread-out negatives (many look-alikes) need a larger temperature than a few look-alikes
    freq = np.r_[np.zeros(200), -np.ones(758)]
    rare = np.r_[np.zeros(10), -np.ones(948)]
    assert L.dro_optimal_temperature(freq, 0.1) > 1.5 * L.dro_optimal_temperature(rare, 0.1)
    with pytest.raises(ValueError, match="rho"):
        L.dro_optimal_temperature(a, 0.0)
    with pytest.raises(ValueError, match="taus"):
        L.dro_objective(a, [0.0], 0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_contrastive_losses_half_precision_without_normalisation(dtype):
    # embeddings of norm ~ 100: similarities ~ 1e4, whose products overflow float16
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(8, 4, generator=g, dtype=torch.float64) * 50
    z2 = z1 + torch.randn(8, 4, generator=g, dtype=torch.float64) * 5
    a, b = z1.to(dtype), z2.to(dtype)
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    tau = torch.full((8,), 1e3, dtype=torch.float64)
    for got, ref in (
        (
            L.robust_contrastive_loss(a, b, tau.to(dtype), normalize=False),
            L.robust_contrastive_loss(a64, b64, tau, normalize=False),
        ),
        (L.info_nce(a, b, 1e3, normalize=False), L.info_nce(a64, b64, 1e3, normalize=False)),
        (
            L.info_nce(a, b, 0.1, normalize=True, reduction="sum"),
            L.info_nce(a64, b64, 0.1, normalize=True, reduction="sum"),
        ),
    ):
        assert got.dtype == dtype and torch.isfinite(got)
        torch.testing.assert_close(got.to(torch.float64), ref, rtol=1e-2, atol=1e-2)


def test_too_few_samples_and_columns_name_the_argument():
    z = torch.randn(1, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="`z1` and `z2` need at least 2 samples"):
        L.info_nce(z, z)
    with pytest.raises(ValueError, match="`similarities` matrix needs at least n=4 columns"):
        L.info_nce_from_similarities(torch.zeros(4, 2, dtype=torch.float64))


def test_wasserstein_uniformity_closed_forms_and_properties():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 6, generator=g, dtype=torch.float64)
    # isotropic collapse onto half the coordinates: W2^2 -> 2 - 2 sqrt(1/2) for N >> m
    zc = z.clone()
    zc[:, 3:] = 0
    assert L.wasserstein_uniformity(zc) ** 2 == pytest.approx(2 - 2 * 0.5**0.5, abs=0.01)
    assert L.wasserstein_uniformity(z) < 0.1
    assert L.wasserstein_uniformity(torch.ones(4, 3)) == pytest.approx(2**0.5)
    # instance cloning leaves it unchanged exactly, a permutation and a rotation too
    w = L.wasserstein_uniformity(z)
    assert abs(L.wasserstein_uniformity(torch.cat([z, z])) - w) < 1e-12
    assert (
        abs(L.wasserstein_uniformity(z[torch.randperm(3000, generator=g)][:, [2, 0, 1, 5, 4, 3]]) - w) < 1e-12
    )
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    assert abs(L.wasserstein_uniformity(z @ q) - w) < 1e-12
    # feature cloning and a zero feature block change it (m changes); Wang-Isola uniformity does not
    assert L.wasserstein_uniformity(torch.cat([z, z], 1)) > w + 0.5
    assert L.wasserstein_uniformity(torch.cat([z, torch.zeros_like(z)], 1)) > w + 0.5
    u = L.uniformity(z[:500])
    assert abs(L.uniformity(torch.cat([z[:500], z[:500]], 1)) - u) < 1e-12
    # against an independent formula: sqrtm of the covariance by eigh
    zn = torch.nn.functional.normalize(z[:200], dim=1)
    mu = zn.mean(0)
    cov = torch.cov(zn.T, correction=0)
    ev, vec = torch.linalg.eigh(cov)
    root = vec @ torch.diag(ev.clamp(min=0).sqrt()) @ vec.T
    ref = (mu @ mu + 1 + torch.trace(cov) - 2 / 6**0.5 * torch.trace(root)).sqrt()
    assert L.wasserstein_uniformity(z[:200]) == pytest.approx(float(ref), abs=1e-12)
    with pytest.raises(ValueError, match="z"):
        L.wasserstein_uniformity(z[:1])
    with pytest.raises(ValueError, match="z"):
        L.wasserstein_uniformity(z[0])
