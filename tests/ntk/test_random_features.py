"""lossviz.ntk._random_features: ridge paths and random-feature Gram matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import ntk

from ._util import F64, _circle, _rel

torch.set_num_threads(1)


# ---------------------------------------------------------------- random features / ridge path


@pytest.mark.parametrize("n, f", [(20, 50), (50, 20)])
def test_ridge_path_matches_direct_solves(n, f):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g, dtype=F64)
    xt = torch.randn(15, 4, generator=g, dtype=F64)
    y = torch.randn(n, 2, generator=g, dtype=F64)
    yt = torch.randn(15, 2, generator=g, dtype=F64)
    phi = ntk.random_features(x, f, seed=1)
    phit = ntk.random_features(xt, f, seed=1)
    ridges = [0.0, 1e-3, 0.1, 10.0]
    path = ntk.ridge_path(phi, y, phit, yt, ridges=ridges)
    for i, r in enumerate(ridges):
        if r == 0:
            w = torch.linalg.pinv(phi) @ y
        else:
            w = torch.linalg.solve(phi.T @ phi + r * torch.eye(f, dtype=F64), phi.T @ y)
        assert path.train_risk[i] == pytest.approx(float(((phi @ w - y) ** 2).mean()), rel=1e-7, abs=1e-12)
        assert path.test_risk[i] == pytest.approx(float(((phit @ w - yt) ** 2).mean()), rel=1e-7)
    assert 0 <= path.best < len(ridges)


def test_random_features_gram_approaches_nngp():
    x = _circle(8)
    phi = ntk.random_features(x, 20000, seed=0, weight_std=1.0)
    # E[relu(w.x) relu(w.x')] with w ~ N(0, I): arc-cosine kernel with K = x.x'
    lim = ntk.analytic(x, depth=1, w_std=2**0.5, b_std=0.0)  # Sigma^(1) = x.x' (d_in = 2)
    assert _rel(phi @ phi.T, lim.nngp / 2) < 0.03


def test_ridge_path_validation_split_matches_a_separate_solve():
    g = torch.Generator().manual_seed(1)
    for n, f in ((20, 40), (40, 20)):
        phi = torch.randn(n + 30, f, generator=g, dtype=F64)
        y = phi[:, :3].sum(1) + 0.3 * torch.randn(n + 30, generator=g, dtype=F64)
        ridges = [0.0, 1e-3, 1e-1, 10.0]
        path = ntk.ridge_path(phi[:n], y[:n], phi[n + 10 :], y[n + 10 :], phi_val=phi[n : n + 10], y_val=y[n : n + 10],
                              ridges=ridges)  # fmt: skip
        ref = ntk.ridge_path(phi[:n], y[:n], phi[n : n + 10], y[n : n + 10], ridges=ridges)
        assert np.allclose(path.val_risk, ref.test_risk, rtol=1e-9)
        assert path.best == int(np.argmin(path.val_risk))
    with pytest.raises(ValueError, match="y_val"):
        ntk.ridge_path(phi[:n], y[:n], phi_val=phi[:5], ridges=[0.0])
