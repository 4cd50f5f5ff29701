"""Tests for lossviz.losses: closed-form limits, invariances, dtype stability and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz.losses as L

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _data(n=32, k=5, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, k, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, k, (n,), generator=g)
    return z, y


# every classification loss with integer targets, as (name, callable(z, y))
LOSSES = {
    "tempered_ce": lambda z, y, **kw: L.tempered_cross_entropy(z, y, 1.0, **kw),
    "comp_sum_q0": lambda z, y, **kw: L.comp_sum(z, y, 0.0, **kw),
    "gce": lambda z, y, **kw: L.comp_sum(z, y, 0.7, **kw),
    "mae": lambda z, y, **kw: L.comp_sum(z, y, 1.0, **kw),
    "ldr_kl": lambda z, y, **kw: L.ldr_kl(z, y, 1.0, **kw),
    "ldr_kl_normalized": lambda z, y, **kw: L.ldr_kl(z, y, 1.0, margin=0.1, normalize=True, **kw),
    "aldr_kl": lambda z, y, **kw: L.aldr_kl(z, y, 1.0, **kw),
    "crammer_singer": lambda z, y, **kw: L.crammer_singer_hinge(z, y, **kw),
    "z_loss": lambda z, y, **kw: L.z_loss(z, y, **kw),
    "stablemax_ce": lambda z, y, **kw: L.stablemax_cross_entropy(z, y, **kw),
    "soft_ce": lambda z, y, **kw: L.soft_cross_entropy(z, y, **kw),
}


# ----------------------------------------------------------------------------- stability


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits_finite_in_every_dtype(name, dtype):
    g = torch.Generator().manual_seed(2)
    z = ((torch.rand(24, 6, generator=g) * 2 - 1) * 1e4).to(dtype)
    z[0] = torch.tensor([1e4, -1e4, 0, 0, 0, 0], dtype=dtype)  # a saturated row
    z[1] = 0  # a constant row
    z.requires_grad_(True)
    y = torch.randint(0, 6, (24,), generator=g)
    loss = LOSSES[name](z, y)
    assert loss.dtype == dtype and loss.shape == ()
    assert torch.isfinite(loss), f"{name} {dtype}: {loss}"
    loss.backward()
    assert z.grad.dtype == dtype and torch.isfinite(z.grad).all(), f"{name} {dtype}: non-finite gradient"


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_reductions(name):
    z, y = _data()
    none = LOSSES[name](z, y, reduction="none")
    assert none.shape == (32,) and none.dtype == torch.float64
    torch.testing.assert_close(LOSSES[name](z, y, reduction="sum"), none.sum())
    torch.testing.assert_close(LOSSES[name](z, y), none.mean())


# ----------------------------------------------------------------------------- tempered CE


def test_tempered_ce_definition_and_limits():
    z, y = _data()
    for tau in (0.1, 1.0, 7.0):
        torch.testing.assert_close(L.tempered_cross_entropy(z, y, tau), F.cross_entropy(z / tau, y))
    # tau -> inf: log K for every sample
    big = L.tempered_cross_entropy(z, y, 1e9, reduction="none")
    assert torch.allclose(big, torch.full_like(big, math.log(5)), atol=1e-7)
    # tau -> 0: tau * CE -> max_k z_k - z_y, error <= tau log K
    tau = 1e-6
    small = tau * L.tempered_cross_entropy(z, y, tau, reduction="none")
    hinge = z.max(1).values - z.gather(1, y[:, None]).squeeze(1)
    assert ((small - hinge) >= -1e-12).all() and ((small - hinge) <= tau * math.log(5) + 1e-12).all()
    # soft one-hot targets equal integer targets
    torch.testing.assert_close(
        L.tempered_cross_entropy(z, F.one_hot(y, 5).double(), 0.5), L.tempered_cross_entropy(z, y, 0.5)
    )


# ----------------------------------------------------------------------------- comp-sum


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


# ----------------------------------------------------------------------------- LDR


def test_ldr_kl_limits():
    z, y = _data(k=6)
    cs = L.crammer_singer_hinge(z, y, reduction="none")
    torch.testing.assert_close(
        cs, torch.clamp((z + 1 - 1.0 * F.one_hot(y, 6) - z.gather(1, y[:, None])).max(1).values, min=0)
    )
    tau = 1e-4
    ldr = L.ldr_kl(z, y, tau, reduction="none")
    assert ((cs - ldr) >= -1e-12).all() and ((cs - ldr) <= tau * math.log(6) + 1e-12).all()
    big = L.ldr_kl(z, y, 1e7, reduction="none")
    lim = L.ldr_kl_limit(z, y, "inf", reduction="none")
    torch.testing.assert_close(big, lim, rtol=0, atol=1e-5)
    torch.testing.assert_close(lim, z.mean(1) - z.gather(1, y[:, None]).squeeze(1) + 5 / 6)
    # margin 0, tau 1: CE - log K
    torch.testing.assert_close(
        L.ldr_kl(z, y, 1.0, margin=0.0, reduction="none"),
        F.cross_entropy(z, y, reduction="none") - math.log(6),
    )
    # max over the simplex: psi >= any p's objective (random p)
    a = z + 1 - F.one_hot(y, 6) - z.gather(1, y[:, None])
    p = torch.softmax(torch.randn(32, 6, dtype=torch.float64), 1)
    obj = (p * a).sum(1) - 0.5 * (p * torch.log(6 * p)).sum(1)
    assert (L.ldr_kl(z, y, 0.5, reduction="none") >= obj - 1e-12).all()


def test_ldr_normalized_form_matches_authors():
    z, y = _data(k=4)
    s = F.softplus(z)
    s = s / s.mean(1, keepdim=True)
    a = 0.1 * (1 - F.one_hot(y, 4)) + s - s.gather(1, y[:, None])
    want = 2.0 * torch.log(torch.exp(a / 2.0).mean(1))
    torch.testing.assert_close(L.ldr_kl(z, y, 2.0, margin=0.1, normalize=True, reduction="none"), want)


def test_aldr_kl_fixed_point():
    z, y = _data(k=5)
    lam = L.aldr_kl_lambdas(z, y, 1.0, alpha=2.0)
    a = z + 1 - F.one_hot(y, 5) - z.gather(1, y[:, None])
    logp = torch.log_softmax(a / lam[:, None], 1)
    kl = (logp.exp() * (logp + math.log(5))).sum(1)
    torch.testing.assert_close(lam, 1.0 * (1 - kl / (2.0 * math.log(5))), rtol=1e-8, atol=1e-10)
    assert (lam >= 0.5 - 1e-12).all() and (lam <= 1.0 + 1e-12).all()

    # it is a stationary point of h(lam) = lam LDR_lam - alpha log K / (2 tau0) (lam - tau0)^2
    def h(i, lam_):
        return lam_ * (torch.logsumexp(a[i] / lam_, 0) - math.log(5)) - math.log(5) * (lam_ - 1) ** 2

    for i in range(5):
        e = 1e-6
        deriv = (h(i, lam[i] + e) - h(i, lam[i] - e)) / (2 * e)
        assert abs(float(deriv)) < 1e-6
        torch.testing.assert_close(L.aldr_kl(z[i : i + 1], y[i : i + 1], 1.0, alpha=2.0), h(i, lam[i]))


# ----------------------------------------------------------------------------- Z-loss


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-3, 0.5, 7.0, 1e3]),
    shift=st.floats(-100, 100),
)
def test_z_loss_shift_scale_invariant(seed, scale, shift):
    z, y = _data(n=8, k=6, seed=seed)
    shifts = shift * torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]  # per-row shifts
    base = L.z_loss(z, y, reduction="none")
    moved = L.z_loss(scale * z + shifts, y, reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-9, atol=1e-9)


def test_z_loss_control_and_definition():
    z, y = _data(k=6)
    assert not torch.allclose(F.cross_entropy(7 * z, y), F.cross_entropy(z, y))  # CE is not invariant
    mu, sd = z.mean(1, keepdim=True), z.std(1, unbiased=False, keepdim=True)
    zc = ((z - mu) / sd).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(
        L.z_loss(z, y, a=0.5, b=1.5, reduction="none"), F.softplus(0.5 * (1.5 - zc)) / 0.5
    )
    assert float(L.z_scores(z).pow(2).mean(1).max()) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [10, 1000])
@pytest.mark.parametrize("with_bias", [False, True])
def test_z_loss_spherical_equals_naive(k, with_bias):
    g = torch.Generator().manual_seed(k)
    d, n = 16, 12
    W = (torch.randn(k, d, generator=g, dtype=torch.float64) + 0.3).requires_grad_(
        True
    )  # nonzero column mean
    bias = torch.randn(k, generator=g, dtype=torch.float64).requires_grad_(True) if with_bias else None
    h = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.randint(0, k, (n,), generator=g)
    naive = L.z_loss(F.linear(h, W, bias), y, a=0.7, b=1.3)
    gn = torch.autograd.grad(naive, [h, W] + ([bias] if with_bias else []))
    sph = L.z_loss_spherical(h, W, y, bias=bias, a=0.7, b=1.3)
    gs = torch.autograd.grad(sph, [h, W] + ([bias] if with_bias else []))
    torch.testing.assert_close(sph, naive, rtol=0, atol=1e-10)
    for a, b in zip(gs, gn):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # control: dropping the 1^T W term breaks it
    st_ = L.spherical_stats(W.detach(), None if bias is None else bias.detach())
    bad = type(st_)(**{**st_.as_dict(), "colsum": torch.zeros_like(st_.colsum)})
    bad_loss = L.z_loss_spherical(h, W, y, bias=bias, stats=bad, a=0.7, b=1.3).detach()
    assert abs(float(bad_loss) - float(naive.detach())) > 1e-3


# ----------------------------------------------------------------------------- contrastive


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


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_targets_and_logits(name):
    fn = LOSSES[name]
    z, y = _data(n=4, k=3)
    with pytest.raises(ValueError, match="targets"):
        fn(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="targets"):
        fn(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        fn(z[None], y)
    with pytest.raises(ValueError, match="logits"):
        fn(z[:, 0], y)
    with pytest.raises(ValueError, match="reduction"):
        fn(z, y, reduction="avg")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperatures(bad):
    z, y = _data(n=4, k=3)
    for fn in (
        lambda: L.tempered_cross_entropy(z, y, bad),
        lambda: L.ldr_kl(z, y, bad),
        lambda: L.aldr_kl(z, y, bad),
        lambda: L.info_nce(z, z, bad),
        lambda: L.robust_contrastive_loss(z, z, bad),
        lambda: L.negative_weights(z[0], bad),
    ):
        with pytest.raises(ValueError, match="tau"):
            fn()
    with pytest.raises(ValueError, match="taus"):
        L.penalty_distribution([1.0, bad])
    with pytest.raises(ValueError, match="tau"):
        L.robust_contrastive_loss(z, z, torch.tensor([0.1, 0.2, bad, 0.3], dtype=torch.float64))


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_bad_q(q):
    z, y = _data(n=4, k=3)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum(z, y, q)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum_bound(q, 3)


def test_bad_soft_targets_and_other_arguments():
    z, y = _data(n=4, k=3)
    t = torch.full((4, 3), 0.4, dtype=torch.float64)
    for fn in (L.tempered_cross_entropy, L.comp_sum, L.soft_cross_entropy, L.stablemax_cross_entropy):
        with pytest.raises(ValueError, match="sum to 1"):
            fn(z, t)
        with pytest.raises(ValueError, match="non-negative"):
            fn(z, torch.tensor([[1.5, -0.5, 0.0]] * 4, dtype=torch.float64))
        with pytest.raises(ValueError, match="shape"):
            fn(z, torch.full((4, 2), 0.5, dtype=torch.float64))
    with pytest.raises(TypeError, match="targets"):
        L.ldr_kl(z, torch.full((4, 3), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="margin"):
        L.ldr_kl(z, y, margin=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        L.aldr_kl(z, y, alpha=0.5)
    with pytest.raises(ValueError, match="`a`"):
        L.z_loss(z, y, a=0.0)
    with pytest.raises(ValueError, match="weight"):
        L.z_loss_spherical(torch.randn(4, 5), torch.randn(3, 4), y)
    with pytest.raises(ValueError, match="same shape"):
        L.info_nce(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="rho"):
        L.robust_contrastive_loss(z, z, 0.1, rho=-1.0)
    with pytest.raises(ValueError, match="labels"):
        L.tolerance(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(LOSSES)))
def test_relabelling_classes_changes_no_loss(seed, name):
    z, y = _data(n=6, k=5, seed=seed)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    inv = torch.argsort(perm)
    # column j of the permuted logits is old class perm[j]; old label c moves to column inv[c]
    base = LOSSES[name](z, y, reduction="none")
    moved = LOSSES[name](z[:, perm], inv[y], reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-10, atol=1e-10)
