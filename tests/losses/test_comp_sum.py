"""Tests for lossviz.losses._comp_sum (comp-sum losses and their H-consistency bounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lossviz.losses as L

from ._cases import _data


def test_comp_sum_members():
    z, y = _data()
    ce = F.cross_entropy(z, y, reduction="none")
    p_y = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(L.comp_sum(z, y, 0.0, reduction="none"), ce)
    torch.testing.assert_close(L.comp_sum(z, y, 0.5, reduction="none"), (1 - p_y**0.5) / 0.5)
    torch.testing.assert_close(L.comp_sum(z, y, 1.0, reduction="none"), 1 - p_y)
    # written with u = sum_{k != y} exp(z_k - z_y): Phi^q(u) = (1 - (1 + u)^-q) / q
    u = (z - z.gather(1, y[:, None])).exp().sum(1) - 1
    torch.testing.assert_close(L.comp_sum(z, y, 0.3, reduction="none"), (1 - (1 + u) ** -0.3) / 0.3)


def test_comp_sum_tends_to_ce_linearly_in_q():
    z, y = _data()
    ce = F.cross_entropy(z, y, reduction="none")
    gaps = []
    for q in (1e-3, 1e-5):
        d = L.comp_sum(z, y, q, reduction="none") - ce
        # Phi^q - CE = -q CE^2 / 2 + O(q^2 CE^3)
        torch.testing.assert_close(d / q, -(ce**2) / 2, rtol=0, atol=q * float((ce**3).max()))
        gaps.append(float(d.abs().mean()))
    assert 80 < gaps[0] / gaps[1] < 120  # shrinks proportionally to q


def test_gce_float32_is_stable_for_small_q():
    z, y = _data(dtype=torch.float32)
    q = 1e-5
    ours = L.comp_sum(z, y, q, reduction="none")
    ref = L.comp_sum(z.double(), y, q, reduction="none").float()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    p = torch.softmax(z, 1).gather(1, y[:, None]).squeeze(1)
    naive = (1 - p**q) / q  # catastrophic cancellation in float32
    assert float((naive - ref).abs().max()) > 100 * float((ours - ref).abs().max())


def test_mae_sum_over_labels_is_constant():
    z, _ = _data(n=16, k=7)
    total = sum(L.comp_sum(z, torch.full((16,), k), 1.0, reduction="none") for k in range(7))
    torch.testing.assert_close(total, torch.full((16,), 6.0, dtype=torch.float64))
    total_ce = sum(L.comp_sum(z, torch.full((16,), k), 0.0, reduction="none") for k in range(7))
    assert float(total_ce.std()) > 0.1  # CE is not symmetric (control)


def test_comp_sum_bound_functions():
    for k in (2, 10):
        b0 = L.comp_sum_bound(0.0, k)
        assert b0.T[0] == 0 and np.all(np.diff(b0.T) > 0)
        assert abs(b0.T[-1] - math.log(2)) < 1e-12
        # square-root growth of Gamma near 0 for CE: Gamma(e) ~ sqrt(2 e)
        g = L.comp_sum_bound_inverse(1e-8, 0.0, k)[0]
        assert abs(g / math.sqrt(2e-8) - 1) < 1e-3
        # continuity of the branches in q
        t = np.linspace(0, 1, 11)
        np.testing.assert_allclose(L.comp_sum_bound(1e-7, k, t).T, b0.T[::20], atol=1e-6)
        np.testing.assert_allclose(L.comp_sum_bound(1 - 1e-7, k, t).T, t / k, atol=1e-5)
        b1 = L.comp_sum_bound(1.0, k, t)
        np.testing.assert_allclose(b1.T, t / k)
        # Gamma inverts T
        for q in (0.0, 0.5, 1.0):
            b = L.comp_sum_bound(q, k, t)
            np.testing.assert_allclose(L.comp_sum_bound_inverse(b.T, q, k), t, atol=1e-9)


@pytest.mark.parametrize("q", [-1.5, float("inf"), float("nan")])
def test_bad_q(q):
    z, y = _data(n=4, k=3)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum(z, y, q)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum_bound(q, 3)


# ----------------------------------------------------------------------------- the bound is a bound


def _phi(s, q):
    """Comp-sum loss as a function of the predicted true-class probability s (float64)."""
    return -np.log(s) if q == 0 else -np.expm1(q * np.log(s)) / q


def _best_conditional_risk(p, q):
    """inf over the simplex of sum_y p_y phi(s_y) (exact, per row of p)."""
    if q == 0:
        return -(p * np.log(p)).sum(1)
    if q >= 1:  # phi concave (linear at q = 1): a vertex, all mass on the most likely class
        return (1 - p.max(1)) / q
    r = 1 / (1 - q)
    big_s = (p**r).sum(1)
    return -np.expm1((1 - q) * np.log(big_s)) / q


def _regret_samples(n, num=4000, seed=0):
    """Conditional distributions p and predicted distributions s: random and adversarial (the
    predicted class barely above the most likely one, the rest at the surrogate optimum)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(n, 0.5), size=num)
    p = np.clip(p, 1e-9, None)
    p /= p.sum(1, keepdims=True)
    s_rand = rng.dirichlet(np.ones(n), size=num)
    s = s_rand.copy()
    half = num // 2
    top = p[:half].argmax(1)
    wrong = (top + rng.integers(1, n, size=half)) % n
    s_adv = p[:half] ** rng.uniform(0.5, 2.0, size=(half, 1))
    s_adv /= s_adv.sum(1, keepdims=True)
    rows = np.arange(half)
    m = (s_adv[rows, top] + s_adv[rows, wrong]) / 2
    s_adv[rows, top], s_adv[rows, wrong] = m * (1 - 1e-9), m * (1 + 1e-9)
    s[:half] = s_adv
    return p, s


def _regrets(p, s, q):
    rows = np.arange(len(p))
    d01 = p.max(1) - p[rows, s.argmax(1)]
    c = (p * _phi(s, q)).sum(1)
    return d01, c - _best_conditional_risk(p, q)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("q", [-1.0, -0.5, 0.0, 0.3, 0.7, 1.0, 1.5, 3.0])
def test_comp_sum_bound_lower_bounds_the_exact_conditional_regret(n, q):
    p, s = _regret_samples(n, seed=n)
    d01, dphi = _regrets(p, s, q)
    assert np.all(dphi >= -1e-9), "the surrogate regret is never negative"
    T = L.comp_sum_bound(q, n, np.clip(d01, 0, 1)).T
    worst = float(np.max(T - dphi))
    assert worst <= 1e-9 * max(1.0, float(np.abs(dphi).max())), (
        f"T(Delta_01) exceeds Delta_Phi by {worst:.2e}"
    )
    # equivalently Delta_01 <= Gamma(Delta_Phi)
    gamma = L.comp_sum_bound_inverse(dphi[::20], q, n)
    assert np.all(d01[::20] <= gamma + 1e-7)


@pytest.mark.parametrize("q", [-0.5, 0.0, 0.7, 1.0])
def test_comp_sum_bound_is_attained_for_two_classes(q):
    # n = 2, p = ((1+t)/2, (1-t)/2), prediction at the decision boundary: Delta_Phi = T(t)
    t = np.array([0.05, 0.3, 0.7, 0.95])
    p = np.stack([(1 + t) / 2, (1 - t) / 2], 1)
    s = np.full_like(p, 0.5)
    s[:, 1] += 1e-12
    s[:, 0] -= 1e-12
    d01, dphi = _regrets(p, s, q)
    np.testing.assert_allclose(d01, t)
    np.testing.assert_allclose(L.comp_sum_bound(q, 2, t).T, dphi, rtol=1e-6, atol=1e-12)


def test_gce_bound_is_loose_for_many_classes():
    # valid but not tight for n > 2 and q > 0: the closest sample is still ~3x above the bound
    p, s = _regret_samples(10, num=10000, seed=3)
    d01, dphi = _regrets(p, s, 0.7)
    keep = d01 > 0.2
    ratio = dphi[keep] / L.comp_sum_bound(0.7, 10, d01[keep]).T
    assert ratio.min() > 1.5


def test_comp_sum_bound_eps_grid_is_log_spaced():
    b = L.comp_sum_bound(0.7, 10)
    assert b.eps[0] > 0 and np.allclose(np.diff(np.log(b.eps)), np.log(b.eps[1] / b.eps[0]))
    assert b.eps[-1] == pytest.approx(float(b.T[-1]))
    assert b.gamma[-1] == pytest.approx(1.0) and np.all(np.diff(b.gamma) >= 0)


def test_comp_sum_branches_beyond_gce():
    z, y = _data(n=16, k=4)
    py = torch.softmax(z, 1)[torch.arange(16), y]
    torch.testing.assert_close(L.comp_sum(z, y, -1.0, reduction="none"), 1 / py - 1)  # sum-exponential
    torch.testing.assert_close(L.comp_sum(z, y, 2.0, reduction="none"), (1 - py**2) / 2)
    t = np.linspace(0, 1, 11)
    for k in (2, 10):
        # continuity of T in q at the new branch points q = 0 (from below) and q = 1 (from above)
        np.testing.assert_allclose(L.comp_sum_bound(-1e-7, k, t).T, L.comp_sum_bound(0.0, k, t).T, atol=1e-6)
        np.testing.assert_allclose(L.comp_sum_bound(1 + 1e-7, k, t).T, t / k, atol=1e-6)
        assert np.all(np.diff(L.comp_sum_bound(-0.5, k, t).T) > 0)


@pytest.mark.parametrize("q", [-1.0, 0.0, 0.7, 1.0, 2.0])
def test_library_conditional_regret_matches_the_reference(q):
    p, s = _regret_samples(5, num=500, seed=7)
    d01, dphi = L.comp_sum_conditional_regret(p, s, q)
    r01, rphi = _regrets(p, s, q)
    np.testing.assert_allclose(d01, r01)
    np.testing.assert_allclose(dphi, rphi, atol=1e-12)
    # the infimum is the infimum: a random prediction never beats it
    assert np.all(dphi >= -1e-12)
    with pytest.raises(ValueError, match="p"):
        L.comp_sum_conditional_regret(p[:, :1], s[:, :1], q)
    with pytest.raises(ValueError, match="s"):
        L.comp_sum_conditional_regret(p, np.abs(s - 0.1), q)
