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


@pytest.mark.parametrize("q", [-0.1, 1.5, float("nan")])
def test_bad_q(q):
    z, y = _data(n=4, k=3)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum(z, y, q)
    with pytest.raises(ValueError, match="q"):
        L.comp_sum_bound(q, 3)
