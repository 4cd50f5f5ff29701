"""top_eigenvalues (eigsh and adaptive Lanczos) against the exact spectrum, with honest convergence flags."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

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
        bad = curvature.top_eigenvalues(net, CE, (x, y), k=3, method="eigsh", maxiter=1, ncv=4, tol=1e-14)
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
    # the reported residuals are the true ones (recomputed with explicit products)
    V = res.eigenvectors
    true_res = (H_ref @ V - V * torch.as_tensor(res.eigenvalues)).norm(dim=0).numpy()
    np.testing.assert_allclose(res.residual_norms, true_res, atol=1e-9)
    assert np.all(true_res <= res.tol * np.abs(res.eigenvalues))
    default = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, seed=0)
    assert default.method == "lanczos" and default.matvecs == res.matvecs  # the default method
    eig = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, method="eigsh", seed=0)
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


class _Noisy(curvature.CurvatureOperator):
    """``A v`` plus noise of relative size ``eps``: products that cannot certify a tighter tol."""

    matrix = "noisy"

    def __init__(self, A, eps):
        self.A, self.eps, self.size, self.dtype, self.device, self.matvecs = (
            A,
            eps,
            A.shape[0],
            A.dtype,
            A.device,
            0,
        )
        self.g = torch.Generator().manual_seed(0)

    def _matmat(self, V):
        self.matvecs += V.shape[0]
        noise = torch.randn(V.shape, generator=self.g, dtype=V.dtype)
        return V @ self.A + self.eps * V.norm(dim=1, keepdim=True) * noise


def _spectrum_matrix(n=400, seed=0):
    g = np.random.default_rng(seed)
    U, _ = np.linalg.qr(g.standard_normal((n, n)))
    eigs = np.concatenate([[10.0, 9.0], g.uniform(0, 5, n - 2)])
    return torch.tensor((U * eigs) @ U.T)


def test_lanczos_converged_means_the_true_residual_meets_tol():
    """Noisy products (1e-4): the recurrence residual says 3e-8 (converged at tol=1e-8) while the
    true residual is 2e-3; the verified default reports the true residual and converged=False."""
    A = _spectrum_matrix()
    unverified = curvature.top_eigenvalues(_Noisy(A, 1e-4), method="lanczos", tol=1e-8, verify=False)
    v = unverified.eigenvectors[:, 0]
    true = float((A @ v - unverified.eigenvalues[0] * v).norm())
    assert unverified.residual_norms[0] < 1e-3 * true  # the recurrence under-states it (the old flag)
    with pytest.warns(RuntimeWarning, match="true residuals"):
        r = curvature.top_eigenvalues(_Noisy(A, 1e-4), method="lanczos", tol=1e-8)
    v = r.eigenvectors[:, 0]
    assert not r.converged[0]
    assert r.residual_norms[0] > 1e-3 and float((A @ v - r.eigenvalues[0] * v).norm()) > 1e-3
    # exact products: converged, and the reported residual is the true one
    ok = curvature.top_eigenvalues(curvature.MatrixOperator(A), method="lanczos", tol=1e-10)
    v = ok.eigenvectors[:, 0]
    assert ok.converged[0] and ok.eigenvalues[0] == pytest.approx(10.0, rel=1e-10)
    assert float((A @ v - ok.eigenvalues[0] * v).norm()) == pytest.approx(
        ok.residual_norms[0], rel=0.05, abs=1e-13
    )


class _BNCNN(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, 2 * c, 3, padding=1, stride=2), nn.BatchNorm2d(2 * c)
        self.fc = nn.Linear(2 * c * 6 * 6, 10)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = torch.relu(self.b2(self.c2(x)))
        return self.fc(x.flatten(1))


def test_float32_lanczos_is_certified_against_a_float64_reference():
    """A BatchNorm CNN in float32 against the same network in float64 (eval mode, warm statistics)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = _BNCNN()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, 12, 12, generator=g), torch.randint(0, 10, (32,), generator=g)
    with torch.no_grad():
        net.train()(x)
    net.eval()
    op64 = curvature.hessian_operator(copy.deepcopy(net).double(), CE, (x.double(), y))
    lam = curvature.top_eigenvalues(op64, method="lanczos", tol=1e-12).eigenvalues[0]
    r = curvature.top_eigenvalues(net, CE, (x, y), method="lanczos")
    assert r.converged[0] and r.eigenvectors.dtype == torch.float32
    v = r.eigenvectors[:, 0].double()
    v = v / v.norm()
    true64 = float((op64.matvec(v) - r.eigenvalues[0] * v).norm())
    noise = 1e-6 * abs(lam)  # float32 products against float64 ones
    assert true64 <= r.tol * abs(r.eigenvalues[0]) + noise  # converged means the tolerance holds
    assert abs(r.residual_norms[0] - true64) <= 0.05 * true64 + noise  # the reported residual is the true one
    assert abs(r.eigenvalues[0] - lam) <= r.residual_norms[0] + noise  # and it bounds the error
