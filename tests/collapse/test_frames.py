"""Tests for lossviz.collapse._frames (simplex ETF, orthogonal and imbalanced frames, minority collapse)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import collapse

from ._helpers import F64, TOL


def test_simplex_etf_geometry():
    for k in (2, 3, 7):
        m = collapse.simplex_etf(k, k + 2)
        g = m @ m.T
        assert torch.allclose(torch.diag(g), torch.ones(k, dtype=F64), atol=1e-12)
        off = g[~torch.eye(k, dtype=torch.bool)]
        assert torch.allclose(off, torch.full_like(off, -1.0 / (k - 1)), atol=1e-12)
        assert m.sum(0).abs().max() < 1e-12
    o = collapse.orthogonal_frame(3, 5)
    assert torch.equal(o @ o.T, torch.eye(3, dtype=F64))
    assert collapse.frame_distance(o, "orthogonal") < TOL
    assert collapse.frame_distance(o, "etf") > 0.1
    with pytest.raises(ValueError, match="dim"):
        collapse.simplex_etf(4, 2)


def _direct_ufm_optimum(counts, lam, d, seed=0):
    """Minimise (1/2N)||W H - Y||^2 + lam/2 ||W||^2 + lam/2 ||H||^2 over all entries with scipy."""
    from scipy.optimize import minimize

    k = len(counts)
    n = sum(counts)
    y = np.repeat(np.arange(k), counts)
    Y = np.eye(k)[:, y]  # (K, N)
    rng = np.random.default_rng(seed)
    z0 = rng.standard_normal(k * d + d * n)

    def f(z):
        W = z[: k * d].reshape(k, d)
        H = z[k * d :].reshape(d, n)
        R = W @ H - Y
        val = 0.5 / n * (R**2).sum() + lam / 2 * (W**2).sum() + lam / 2 * (H**2).sum()
        gW = R @ H.T / n + lam * W
        gH = W.T @ R / n + lam * H
        return val, np.concatenate([gW.ravel(), gH.ravel()])

    res = minimize(
        f, z0, jac=True, method="L-BFGS-B", options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-15}
    )
    W = res.x[: k * d].reshape(k, d)
    H = res.x[k * d :].reshape(d, n)
    means = np.stack([H[:, y == j].mean(1) for j in range(k)])
    return W, H.T, means, y


@pytest.mark.parametrize("lam", [5e-3, 5.5e-2])
def test_imbalanced_frame_matches_direct_scipy_optimum(lam):
    counts = (16, 8, 4, 2)
    W, H, means, y = _direct_ufm_optimum(counts, lam, d=5)
    target = collapse.imbalanced_frame(counts, lam)
    assert np.allclose(np.linalg.norm(means, axis=1), target.feature_norms, atol=2e-4)
    assert np.allclose(np.linalg.norm(W, axis=1), target.classifier_norms, atol=2e-4)
    assert collapse.frame_distance(torch.from_numpy(means), torch.from_numpy(target.feature_gram())) < 1e-3
    if lam == 5.5e-2:
        assert target.collapsed == (3,)  # n = 2 < N^2 lam^2 = 2.72 < 4: only the smallest class dies
        assert np.linalg.norm(means[3]) < 1e-5 and np.linalg.norm(W[3]) < 1e-5
    else:
        assert target.collapsed == ()
    m = collapse.nc_metrics(torch.from_numpy(H[:, :5]), torch.from_numpy(y))
    assert m.trace_ratio < 1e-6  # features collapsed to their means


def test_minority_collapse_angle():
    w = torch.tensor([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 1.0]], dtype=F64)
    r = collapse.minority_collapse(w, [1, 2, 3])
    assert r.min_angle == pytest.approx(0.0, abs=1e-6) and r.pair == (1, 2)
    with pytest.raises(ValueError, match="two distinct"):
        collapse.minority_collapse(w, [1, 1])
