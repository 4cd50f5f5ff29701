"""lossviz.ntk._analytic: the limit kernels against an independent recursion and wide networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz import ntk

from ._util import F64, _circle, _rel

torch.set_num_threads(1)


# ---------------------------------------------------------------- analytic


def _relu_pair(k11, k22, k12):
    s = math.sqrt(k11 * k22)
    c = max(-1.0, min(1.0, k12 / s))
    t = math.acos(c)
    return s * (math.sin(t) + (math.pi - t) * c) / (2 * math.pi), (math.pi - t) / (2 * math.pi)


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(300)


def _erf_pair(k11, k22, k12):
    """E[erf(u)erf(v)], E[erf'(u)erf'(v)] by 2-D Gauss-Hermite quadrature (independent of closed form)."""
    l11 = math.sqrt(k11)
    l21 = k12 / l11
    l22 = math.sqrt(max(k22 - l21 * l21, 0.0))
    z1, z2 = np.meshgrid(_GH_X, _GH_X, indexing="ij")
    w = np.outer(_GH_W, _GH_W) / (2 * math.pi)
    u, v = l11 * z1, l21 * z1 + l22 * z2
    from scipy.special import erf

    def derf(t):
        return 2 / math.sqrt(math.pi) * np.exp(-t * t)

    return float((w * erf(u) * erf(v)).sum()), float((w * derf(u) * derf(v)).sum())


def _reference_kernels(x1, x2, depth, act, ws, bs, param="ntk", widths=None):
    """Independent scalar float64 implementation of the NNGP/NTK recursion, pair by pair."""
    x1, x2 = x1.double().numpy(), x2.double().numpy()
    d = x1.shape[1]
    pair = _relu_pair if act == "relu" else _erf_pair
    n1, n2 = len(x1), len(x2)
    nngp, ntk_ = np.zeros((n1, n2)), np.zeros((n1, n2))
    fans = [d, *(widths or [])]
    for i in range(n1):
        for j in range(n2):
            q11, q22, q12 = x1[i] @ x1[i] / d, x2[j] @ x2[j] / d, x1[i] @ x2[j] / d  # E-hat_0
            s11, s22, s12 = ws**2 * q11 + bs**2, ws**2 * q22 + bs**2, ws**2 * q12 + bs**2
            th = (ws**2 if param == "ntk" else fans[0]) * q12 + (bs**2 if param == "ntk" else 1.0)
            for layer in range(1, depth + 1):
                e12, ed12 = pair(s11, s22, s12)
                e11, _ = pair(s11, s11, s11)
                e22, _ = pair(s22, s22, s22)
                cw = ws**2 if param == "ntk" else fans[layer]
                th = cw * e12 + (bs**2 if param == "ntk" else 1.0) + ws**2 * ed12 * th
                s11, s22, s12 = ws**2 * e11 + bs**2, ws**2 * e22 + bs**2, ws**2 * e12 + bs**2
            nngp[i, j], ntk_[i, j] = s12, th
    return nngp, ntk_


@pytest.mark.parametrize(
    "act, depth, ws, bs",
    [("relu", 1, 1.0, 0.0), ("relu", 3, 2**0.5, 0.1), ("erf", 2, 1.5, 0.3), ("erf", 1, 1.0, 0.0)],
)
def test_analytic_matches_independent_recursion(act, depth, ws, bs):
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(5, 3, generator=g, dtype=F64)
    x2 = torch.randn(4, 3, generator=g, dtype=F64) * 1.3
    res = ntk.analytic(x1, x2, depth=depth, activation=act, w_std=ws, b_std=bs)
    nngp, th = _reference_kernels(x1, x2, depth, act, ws, bs)
    tol = 1e-12 if act == "relu" else 1e-8  # erf reference: 300-node Gauss-Hermite
    assert np.allclose(res.nngp.numpy(), nngp, rtol=tol, atol=tol)
    assert np.allclose(res.ntk.numpy(), th, rtol=tol, atol=tol)
    sym = ntk.analytic(x1, depth=depth, activation=act, w_std=ws, b_std=bs)
    assert torch.allclose(sym.ntk, sym.ntk.T, atol=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_analytic_standard_parametrization_matches_reference(seed):
    # 40 input draws: before the diagonal was pinned to the variances, ~26% of draws put the
    # diagonal's cos 1 ulp below 1 and the NTK off the reference by ~3e-7 (arccos at 1)
    x = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(seed))
    res = ntk.analytic(x, depth=2, w_std=1.2, b_std=0.2, parametrization="standard", widths=(50, 70))
    nngp, th = _reference_kernels(x, x, 2, "relu", 1.2, 0.2, "standard", [50, 70])
    assert np.allclose(res.ntk.numpy(), th, rtol=1e-12) and np.allclose(res.nngp.numpy(), nngp, rtol=1e-12)
    # the NNGP does not depend on the parametrisation
    assert torch.allclose(ntk.analytic(x, depth=2, w_std=1.2, b_std=0.2).nngp, res.nngp)


def test_analytic_linear_network_closed_form():
    x = torch.randn(5, 4, dtype=F64)
    k0 = x @ x.T / 4
    res = ntk.analytic(x, depth=2, activation="linear", w_std=1.0, b_std=0.0)
    # linear net with unit w_std: Sigma = K0 at every layer, Theta = (L + 1) K0
    assert torch.allclose(res.nngp, k0) and torch.allclose(res.ntk, 3 * k0)


def _mean_error(widths, depth, act, param="ntk", seeds=3):
    x = _circle(12)
    errs = []
    for w in widths:
        kw = {"widths": (w,) * depth} if param == "standard" else {}
        lim = ntk.analytic(x, depth=depth, activation=act, w_std=1.4, b_std=0.2, parametrization=param, **kw)
        e = []
        for s in range(seeds):
            net = ntk.parametrize(
                (2,) + (w,) * depth + (1,), param, activation=act, w_std=1.4, b_std=0.2, seed=s, dtype=F64
            )
            e.append(ntk.relative_change(lim.ntk, ntk.empirical(net, x).kernel))
        errs.append(float(np.mean(e)))
    return errs


@pytest.mark.parametrize(
    "act, depth, param", [("relu", 2, "ntk"), ("erf", 1, "ntk"), ("relu", 2, "standard")]
)
def test_wide_network_approaches_analytic(act, depth, param):
    errs = _mean_error((32, 256, 2048), depth, act, param)
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.1, errs
    slope = np.polyfit(np.log([32, 256, 2048]), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (slope, errs)  # ~ width^-1/2 fluctuations


def test_analytic_nngp_matches_wide_network_output_covariance():
    x = _circle(6)
    lim = ntk.analytic(x, depth=1, w_std=1.4, b_std=0.2)
    outs = []
    for s in range(400):
        net = ntk.parametrize((2, 256, 1), "ntk", w_std=1.4, b_std=0.2, seed=s, dtype=F64)
        with torch.no_grad():
            outs.append(net(x).reshape(-1))
    f = torch.stack(outs)
    cov = f.T @ f / f.shape[0]
    assert _rel(cov, lim.nngp) < 0.15


def test_bad_inputs_analytic():
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match="input width"):
        ntk.analytic(x, torch.randn(2, 4), depth=1)
    with pytest.raises(ValueError, match="empty"):
        ntk.analytic(torch.zeros(0, 3), depth=1)
    with pytest.raises(ValueError, match="`depth` must be >= 1"):
        ntk.analytic(x, depth=0)
    with pytest.raises(ValueError, match="`w_std` must be > 0"):
        ntk.analytic(x, depth=1, w_std=0.0)
    with pytest.raises(ValueError, match="`activation`"):
        ntk.analytic(x, depth=1, activation="tanh")
    with pytest.raises(ValueError, match="`parametrization`"):
        ntk.analytic(x, depth=1, parametrization="mup")
    with pytest.raises(ValueError, match="widths"):
        ntk.analytic(x, depth=2, parametrization="standard")
    with pytest.raises(ValueError, match="2 hidden widths"):
        ntk.analytic(x, depth=2, parametrization="standard", widths=(3, 4, 5))


def test_one_activation_table():
    """The dual-activation table is keyed by names of lossviz.models.ACTIVATIONS (the one table)."""
    from lossviz import models

    assert set(ntk.DUAL_ACTIVATIONS) <= set(models.ACTIVATIONS)
    x = torch.randn(5, 3, dtype=F64)
    for act in ntk.DUAL_ACTIVATIONS:  # every analytic activation builds a finite network too
        net = ntk.parametrize((3, 4096, 1), "ntk", activation=act, w_std=1.3, seed=0, dtype=F64)
        assert _rel(ntk.empirical(net, x).kernel, net.analytic_kernel(x).ntk) < 0.1
