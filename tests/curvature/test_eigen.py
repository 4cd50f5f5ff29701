"""top_eigenvalues (eigsh and adaptive Lanczos) against the exact spectrum, with honest convergence flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature

from ._helpers import CE, _batches, _data, _net, _reference_hessian


def test_top_eigenvalues_match_exact_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam, U = torch.linalg.eigh(H_ref)
    top = curvature.top_eigenvalues(net, CE, _batches(x, y, (10, 30)), k=3, seed=0)
    np.testing.assert_allclose(top.eigenvalues, lam.flip(0)[:3].numpy(), rtol=1e-9, atol=1e-11)
    assert top.all_converged
    assert np.all(top.residual_norms < 1e-8)
    assert top.matvecs > 3
    overlap = (top.eigenvectors[:, 0] @ U[:, -1]).abs()
    assert overlap > 1 - 1e-8
    low = curvature.top_eigenvalues(net, CE, (x, y), k=2, which="SA")
    np.testing.assert_allclose(low.eigenvalues, lam[:2].numpy(), rtol=1e-9, atol=1e-11)
    assert low.eigenvalues[0] < 0  # a tanh network at a random point has negative curvature
    lm = curvature.top_eigenvalues(net, CE, (x, y), k=1, which="LM")
    assert lm.eigenvalues[0] == pytest.approx(float(lam.abs().max()), rel=1e-9)


def test_top_eigenvalues_reports_non_convergence_instead_of_lying():
    net, (x, y) = _net(width=8), _data(40)
    with pytest.warns(RuntimeWarning, match="converged for only"):
        bad = curvature.top_eigenvalues(net, CE, (x, y), k=3, maxiter=1, ncv=4, tol=1e-14)
    assert not bad.all_converged
    assert np.isnan(bad.eigenvalues).any() or not bad.converged.all()


def test_top_eigenvalues_seed_and_operator_reuse():
    net, (x, y) = _net(width=8), _data(40)
    op = curvature.hessian_operator(net, CE, (x, y))
    a = curvature.top_eigenvalues(op, k=2, seed=5)
    b = curvature.top_eigenvalues(op, k=2, seed=5)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert a.matvecs == b.matvecs
    warm = curvature.top_eigenvalues(op, k=1, v0=a.eigenvectors[:, 0])
    assert warm.matvecs < a.matvecs
    with pytest.raises(ValueError, match="either a curvature operator alone"):
        curvature.top_eigenvalues(op, CE, (x, y))


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_adaptive_lanczos_matches_exact_spectrum(which):
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam = torch.linalg.eigvalsh(H_ref).numpy()
    want = {"LA": lam[::-1][:3], "SA": lam[:3], "LM": lam[np.argsort(-np.abs(lam))][:3]}[which]
    res = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, method="lanczos", seed=0)
    assert res.method == "lanczos"
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-9, atol=1e-11)
    assert res.all_converged
    # the recurrence residuals are the true ones (full re-orthogonalisation)
    V = res.eigenvectors
    true_res = (H_ref @ V - V * torch.as_tensor(res.eigenvalues)).norm(dim=0).numpy()
    np.testing.assert_allclose(res.residual_norms, true_res, atol=1e-9)
    eig = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, seed=0)
    assert res.matvecs < eig.matvecs


def test_adaptive_lanczos_reports_non_convergence():
    net, (x, y) = _net(width=8), _data(40)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = curvature.top_eigenvalues(net, CE, (x, y), k=2, method="lanczos", maxiter=3, tol=1e-12)
    assert not res.all_converged
    verified = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", verify=True)
    assert verified.all_converged and verified.residual_norms[0] < 1e-8
    with pytest.raises(ValueError, match="method"):
        curvature.top_eigenvalues(net, CE, (x, y), method="power")


def test_adaptive_lanczos_gap_stop_is_accurate_and_cheaper():
    net, (x, y) = _net(width=8), _data(40)
    lam = torch.linalg.eigvalsh(_reference_hessian(net, CE, x, y)[0]).numpy()
    res_stop = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", tol=1e-6, seed=1)
    gap_stop = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", tol=1e-6, stop="gap", seed=1)
    assert gap_stop.matvecs <= res_stop.matvecs
    assert abs(gap_stop.eigenvalues[0] - lam[-1]) <= 1e-6 * lam[-1]
    assert gap_stop.all_converged
    with pytest.raises(ValueError, match="stop"):
        curvature.top_eigenvalues(net, CE, (x, y), method="lanczos", stop="never")
