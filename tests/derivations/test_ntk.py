"""Symbolic (sympy) NTK derivations agree with the numeric lossviz.ntk implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from lossviz import ntk
from lossviz.derivations import ntk as dn


def test_arccos_kernels_closed_forms_and_limits():
    e, ed, t = dn.arccos_kernels()
    assert sp.simplify(e - (sp.sin(t) + (sp.pi - t) * sp.cos(t)) / (2 * sp.pi)) == 0
    assert sp.simplify(ed - (sp.pi - t) / (2 * sp.pi)) == 0
    assert sp.simplify(e.subs(t, 0)) == sp.Rational(1, 2)  # E[relu(u)^2] = 1/2
    assert sp.simplify(e.subs(t, sp.pi)) == 0  # u = -v: never both positive
    assert sp.simplify(ed.subs(t, 0)) == sp.Rational(1, 2)


def test_arccos_kernels_match_monte_carlo():
    e, ed, t = dn.arccos_kernels()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 2_000_000, generator=g, dtype=torch.float64)
    for theta in (0.3, 1.2, 2.5):
        u, v = z[0], math.cos(theta) * z[0] + math.sin(theta) * z[1]
        mc = float((torch.relu(u) * torch.relu(v)).mean())
        mcd = float(((u > 0) & (v > 0)).double().mean())
        assert float(e.subs(t, theta)) == pytest.approx(mc, abs=3e-3)
        assert float(ed.subs(t, theta)) == pytest.approx(mcd, abs=2e-3)


@pytest.mark.parametrize("depth", [1, 3])
def test_circle_kernels_symbolic_equals_numeric(depth):
    _, _, _, f_nngp, f_ntk = dn.circle_kernels(depth)
    ang = np.linspace(0.01, 2 * np.pi - 0.01, 41)
    x = torch.from_numpy(np.stack([np.cos(ang), np.sin(ang)], 1))
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    lim = ntk.analytic(x0, x, depth=depth, w_std=2**0.5, b_std=0.1)
    assert np.allclose(f_ntk(ang), lim.ntk[0].numpy(), rtol=1e-12)
    assert np.allclose(f_nngp(ang), lim.nngp[0].numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="depth"):
        dn.circle_kernels(0)


def test_feature_update_scaling_matches_measured_slopes():
    """The symbolic exponents agree with one-step feature changes of real networks."""
    exps = {}
    for p in ("ntk", "mup", "standard"):
        expr, n = dn.feature_update_scaling(p)
        exps[p] = float(sp.limit(sp.log(expr) / sp.log(n), n, sp.oo))
    assert exps == {"ntk": -0.5, "mup": 0.0, "standard": -0.5}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g, dtype=torch.float64)
    y = torch.randn(64, 1, generator=g, dtype=torch.float64)
    for p, lr in (("ntk", 0.5), ("mup", 0.05)):
        change = []
        for width in (256, 4096):
            net = ntk.parametrize((8, width, width, 1), p, seed=0, dtype=torch.float64)
            h0 = net.hidden(x)[0].detach()
            opt = torch.optim.SGD(net.param_groups(lr), lr=lr)
            (0.5 * (net(x) - y).pow(2).mean()).backward()
            opt.step()
            change.append(float((net.hidden(x)[0] - h0).norm() / h0.norm()))
        slope = math.log(change[1] / change[0]) / math.log(16)
        assert abs(slope - exps[p]) < 0.1, (p, slope, change)
    with pytest.raises(ValueError, match="parametrization"):
        dn.feature_update_scaling("ntp")
