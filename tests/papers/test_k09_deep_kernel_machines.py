"""lossviz.papers.k09_deep_kernel_machines: the K09 DKM objective, its pieces and its fit."""

from __future__ import annotations

import math

import pytest
import torch

from lossviz.papers import k09_deep_kernel_machines as k09

torch.set_num_threads(1)


def _small(seed=0, p=8):
    return k09.make_task(seed, p=p)


def test_task_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = k09.make_task(3), k09.make_task(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, k09.make_task(4).y)
    assert a.g0.dtype == torch.float64 and a.g0.shape == (50, 50)


def test_arccos_gram_matches_the_ntk_dual_and_monte_carlo():
    t = _small(1, p=6)
    k = k09.arccos_gram(t.g0)
    assert float((k - k09._reference_arccos(t.g0)).abs().max()) < 1e-12
    assert torch.allclose(torch.diagonal(k), torch.diagonal(t.g0), atol=1e-14)
    g = torch.Generator().manual_seed(0)
    f = torch.linalg.cholesky(t.g0 + 1e-9 * torch.eye(6, dtype=torch.float64)) @ torch.randn(
        6, 400_000, generator=g, dtype=torch.float64
    )
    mc = 2 * torch.relu(f) @ torch.relu(f).T / f.shape[1]
    assert float((mc - k).abs().max()) < 0.02 * float(k.abs().max())


def test_gaussian_kl_closed_form():
    a = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    ref = 0.5 * (torch.trace(torch.linalg.solve(b, a)) - 2 + torch.logdet(b) - torch.logdet(a))
    assert abs(float(k09.gaussian_kl(a, b) - ref)) < 1e-13
    assert abs(float(k09.gaussian_kl(a, a))) < 1e-13


def test_objective_gradient_passes_gradcheck():
    t = _small(2, p=5)
    n = k09.nngp_grams(t)
    vs = [torch.linalg.cholesky(g + 1e-3 * torch.eye(5, dtype=torch.float64)).contiguous() for g in n]
    vs = [v + 0.05 * torch.ones_like(v) for v in vs]

    def f(v1, v2):
        return k09.dkm_objective([v1, v2], t, 0.7)

    assert torch.autograd.gradcheck(f, tuple(v.clone().requires_grad_(True) for v in vs), eps=1e-6, atol=1e-6)


def test_arccos_gradient_is_finite_at_parallel_points():
    g = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64, requires_grad=True)
    k09.arccos_gram(g).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_large_nu_stays_at_the_nngp_and_small_nu_learns():
    t = _small(0, p=12)
    path = k09.fit_dkm(t, (1e4, 0.1), max_iter=40)
    assert path.deviation[0] < 1e-2
    assert path.change[1] > 10 * path.change[0] and path.loglik[1] > path.loglik[0]
    assert path.kl[1] > path.kl[0] and math.isfinite(path.objective[1])


def test_bad_input_names_the_argument():
    t = _small()
    with pytest.raises(ValueError, match="nu"):
        k09.dkm_objective(k09.nngp_grams(t), t, -1.0)
    with pytest.raises(ValueError, match="nus"):
        k09.fit_dkm(t, ())
    with pytest.raises(ValueError, match="g"):
        k09.arccos_gram(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="p"):
        k09.make_task(0, p=1)
