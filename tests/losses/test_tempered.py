"""Tests for lossviz.losses._tempered (tempered cross-entropy)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import lossviz.losses as L

from ._cases import _data


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
