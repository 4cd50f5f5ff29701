"""The Lanczos iteration: quadrature moments, breakdown, and the growing Krylov basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature

from ._helpers import CE, F64, _data, _net, _reference_hessian


def test_lanczos_quadrature_reproduces_moments():
    net, (x, y) = _net(width=8), _data(40)
    H, _ = _reference_hessian(net, CE, x, y)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(0), dtype=F64)
    m = 6
    lz = curvature.lanczos(lambda u: H @ u, v, m)
    assert lz.orthogonality_loss < 1e-12
    theta, tau = lz.ritz()
    u = v / v.norm()
    for p in range(2 * m):  # Gauss quadrature with m nodes is exact up to degree 2m - 1
        exact = float(u @ torch.linalg.matrix_power(H, p) @ u)
        assert np.sum(tau * theta**p) == pytest.approx(exact, rel=1e-7, abs=1e-9), p


def test_lanczos_breakdown_on_low_rank_start():
    A = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=F64))
    lz = curvature.lanczos(lambda u: A @ u, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64), 4)
    assert lz.breakdown and len(lz.alpha) == 2
    np.testing.assert_allclose(np.sort(lz.ritz()[0]), [2.0, 3.0], atol=1e-12)


def test_adaptive_lanczos_grows_its_basis():
    net, (x, y) = _net(width=8), _data(40)
    lam = torch.linalg.eigvalsh(_reference_hessian(net, CE, x, y)[0]).numpy()
    res = curvature.top_eigenvalues(net, CE, (x, y), k=6, method="lanczos", tol=1e-11, seed=2)
    assert res.matvecs > 16  # more steps than the first allocation of the Krylov basis
    np.testing.assert_allclose(res.eigenvalues, lam[::-1][:6], rtol=1e-9, atol=1e-11)
    assert res.all_converged
