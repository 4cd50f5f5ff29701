"""Tests for lossviz.losses._ldr (LDR-KL, ALDR-KL, Crammer-Singer)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import lossviz.losses as L

from ._cases import _data


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
