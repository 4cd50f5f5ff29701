"""spectral_density (stochastic Lanczos quadrature) against the exact spectrum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature

from ._helpers import CE, _data, _net, _reference_hessian


def test_spectral_density_matches_exact_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam = torch.linalg.eigvalsh(H_ref)
    n = H_ref.shape[0]
    dens = curvature.spectral_density(net, CE, (x, y), num_probes=20, steps=n, seed=0)
    assert dens.matvecs <= 20 * n
    assert dens.orthogonality_loss < 1e-10
    spread = float(lam.max() - lam.min())
    # with n steps every probe's quadrature has the exact eigenvalues as nodes; only the weights
    # are random (mean 1/n each)
    w1 = dens.wasserstein(lam)
    assert w1 < 0.05 * spread, (w1, spread)
    assert dens.trace_estimate == pytest.approx(float(lam.sum()), abs=5 * dens.trace_standard_error + 1e-9)
    np.testing.assert_allclose(sum(w.sum() for w in dens.weights) / 20, 1.0)
    grid, phi = dens.density()
    assert np.trapezoid(phi, grid) == pytest.approx(1.0, rel=1e-3)
    # few steps: extreme eigenvalue still found (Lanczos converges at the edges first)
    short = curvature.spectral_density(net, CE, (x, y), num_probes=2, steps=15, seed=1)
    assert short.all_nodes.max() == pytest.approx(float(lam.max()), rel=1e-6)
    assert short.matvecs == 2 * 15
