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


def test_slq_without_reorthogonalisation_keeps_three_vectors_and_the_quadrature():
    # 3n steps: the plain recurrence loses orthogonality and repeats converged Ritz values
    # ("ghosts"), yet the quadrature stays a good approximation of the spectral measure
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam = torch.linalg.eigvalsh(H_ref)
    n, spread = H_ref.shape[0], float(lam.max() - lam.min())
    full = curvature.spectral_density(net, CE, (x, y), num_probes=10, steps=n, seed=3)
    plain = curvature.spectral_density(
        net, CE, (x, y), num_probes=10, steps=3 * n, seed=3, reorthogonalize=False
    )
    assert plain.orthogonality_loss > 1e-3  # orthogonality really was lost
    assert plain.wasserstein(lam) < 0.05 * spread
    assert plain.wasserstein(lam) < 2 * full.wasserstein(lam) + 0.01 * spread
    # the first moment is v^T H v whatever happens later: the trace estimates agree
    assert plain.trace_estimate == pytest.approx(full.trace_estimate, rel=1e-8)
    assert plain.all_nodes.max() == pytest.approx(float(lam.max()), rel=1e-8)
    assert plain.all_nodes.max() <= float(lam.max()) * (1 + 1e-10)
    with pytest.raises(TypeError, match="reorthogonalize"):
        curvature.spectral_density(net, CE, (x, y), steps=4, reorthogonalize="no")


def test_three_term_lanczos_agrees_with_full_before_orthogonality_is_lost():
    g = torch.Generator().manual_seed(0)
    d = torch.linspace(0.0, 1.0, 200, dtype=torch.float64)
    v0 = torch.randn(200, generator=g, dtype=torch.float64)
    full = curvature.lanczos(lambda v: d * v, v0, 8)
    plain = curvature.lanczos(lambda v: d * v, v0, 8, reorthogonalize=False, keep_basis=False)
    assert plain.basis is None and full.basis is not None
    np.testing.assert_allclose(plain.alpha, full.alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plain.beta, full.beta, rtol=1e-10)
    assert plain.orthogonality_loss < 1e-10 and plain.matvecs == 8
    with pytest.raises(ValueError, match="keep_basis"):
        curvature.lanczos(lambda v: d * v, v0, 8, keep_basis=False)


def test_three_term_lanczos_peak_memory_does_not_grow_with_steps():
    # n = 2e6 float32: a kept basis of 60 steps would take 480 MB; the recurrence keeps ~3 vectors
    import subprocess
    import sys

    code = (
        "import resource, torch\n"
        "from lossviz import curvature\n"
        "n = 2_000_000\n"
        "g = torch.Generator().manual_seed(0)\n"
        "d = torch.rand(n, generator=g)\n"
        "v0 = torch.randn(n, generator=g)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "lz = curvature.lanczos(lambda v: d * v, v0, 60, reorthogonalize=False, keep_basis=KEEP)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) / 1024)\n"  # ru_maxrss is in KiB on Linux
    )
    out = subprocess.run(
        [sys.executable, "-c", code.replace("KEEP", "False")], capture_output=True, text=True, check=True
    )
    grew_mb = float(out.stdout.strip().splitlines()[-1])
    assert grew_mb < 120, f"peak memory grew by {grew_mb:.0f} MB (a kept basis would be 480 MB)"
