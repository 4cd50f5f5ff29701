"""ntk.arccos_gram, gaussian_kl and dkm_objective (Yang et al. 2023) against independent references."""

import math

import numpy as np
import pytest
import torch

from lossviz import ntk

F64 = torch.float64


def _gram(p=6, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, d, generator=g, dtype=F64)
    return x @ x.T / d + 0.1 * torch.eye(p, dtype=F64)


def test_arccos_gram_is_twice_the_relu_expectation():
    g = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=F64)
    k = ntk.arccos_gram(g)
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(400_000, 2, generator=gen, dtype=F64) @ torch.linalg.cholesky(g).T
    mc = 2 * (torch.relu(f).T @ torch.relu(f)) / f.shape[0]
    torch.testing.assert_close(k, mc, atol=0.02, rtol=0.02)
    # closed form, written out independently
    c = 0.6 / math.sqrt(2.0)
    t = math.acos(c)
    assert float(k[0, 1]) == pytest.approx(
        math.sqrt(2.0) * (math.sin(t) + (math.pi - t) * c) / math.pi, rel=1e-12
    )
    torch.testing.assert_close(torch.diagonal(k), torch.diagonal(g))


def test_arccos_gram_gradient_is_exact_and_finite_at_collinear_inputs():
    g = _gram().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ntk.arccos_gram((a + a.T) / 2), (g,))
    v = torch.ones(4, 1, dtype=F64)
    rank1 = (v @ v.T).requires_grad_(True)  # every cos t = 1, where arccos has an infinite slope
    ntk.arccos_gram(rank1).sum().backward()
    assert bool(torch.isfinite(rank1.grad).all())


def test_gaussian_kl_matches_torch_distributions():
    a, b = _gram(seed=1), _gram(seed=2)
    z = torch.zeros(a.shape[0], dtype=F64)
    ref = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(z, a), torch.distributions.MultivariateNormal(z, b)
    )
    torch.testing.assert_close(ntk.gaussian_kl(a, b), ref)
    assert float(ntk.gaussian_kl(a, a)) == pytest.approx(0.0, abs=1e-12)


def test_dkm_objective_at_the_nngp_is_the_nngp_likelihood():
    g0 = _gram(p=8)
    y = torch.sin(torch.arange(8, dtype=F64))
    jitter, noise = 1e-6, 0.01
    eye = torch.eye(8, dtype=F64)
    g1 = ntk.arccos_gram(g0) + jitter * eye
    g2 = ntk.arccos_gram(g1) + jitter * eye
    obj, ll, kls = ntk.dkm_objective([g1, g2], g0, y, 1e4, noise=noise, jitter=jitter, return_terms=True)
    np.testing.assert_allclose(kls.numpy(), 0.0, atol=1e-9)
    cov = ntk.arccos_gram(g2) + noise * eye
    ref = torch.distributions.MultivariateNormal(torch.zeros(8, dtype=F64), cov).log_prob(y)
    torch.testing.assert_close(ll, ref)
    torch.testing.assert_close(obj, ll - 1e4 * kls.sum())
    # per-layer nu, two output columns: one likelihood per column, weighted KLs
    h1 = g1 + 0.05 * _gram(p=8, seed=3)
    y2 = torch.stack([y, torch.cos(torch.arange(8, dtype=F64))], 1)
    obj2, ll2, kls2 = ntk.dkm_objective([h1, g2], g0, y2, (2.0, 0.5), return_terms=True)
    torch.testing.assert_close(obj2, ll2 - 2.0 * kls2[0] - 0.5 * kls2[1])
    assert float(kls2[0]) > 0
    single = sum(ntk.dkm_objective([h1, g2], g0, y2[:, i], 0.0, return_terms=True)[1] for i in range(2))
    torch.testing.assert_close(ll2, single)


def test_dkm_objective_is_differentiable_in_the_grams():
    g0 = _gram(p=5)
    gen = torch.Generator().manual_seed(4)
    v = torch.randn(5, 5, generator=gen, dtype=F64, requires_grad=True)
    y = torch.randn(5, generator=gen, dtype=F64)
    obj = ntk.dkm_objective([v @ v.T + 1e-3 * torch.eye(5, dtype=F64)], g0, y, 1.0)
    (grad,) = torch.autograd.grad(obj, v)
    assert grad.shape == v.shape and bool(torch.isfinite(grad).all())


def test_bad_input_names_the_argument():
    g0 = _gram(p=4)
    y = torch.zeros(4, dtype=F64)
    with pytest.raises(ValueError, match="gram"):
        ntk.arccos_gram(torch.zeros(3, 4, dtype=F64))
    with pytest.raises(ValueError, match="cov_b"):
        ntk.gaussian_kl(g0, -g0)
    with pytest.raises(TypeError, match="grams"):
        ntk.dkm_objective(g0, g0, y, 1.0)
    with pytest.raises(ValueError, match="y"):
        ntk.dkm_objective([g0], g0, torch.zeros(5, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="nu"):
        ntk.dkm_objective([g0, g0], g0, y, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="nu"):
        ntk.dkm_objective([g0], g0, y, -1.0)
    with pytest.raises(ValueError, match="noise"):
        ntk.dkm_objective([g0], g0, y, 1.0, noise=0.0)
