"""Tests for lossviz.papers.t05_z_loss (the complexity check of the spherical Z-loss)."""

from __future__ import annotations

import pytest
import torch

from lossviz import losses
from lossviz.papers.t05_z_loss import largest_intermediate


def _case(k, d=8, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(k, d, generator=g, dtype=torch.float64) + 0.05
    h = torch.randn(b, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, k, (b,), generator=g)
    return w, h, y


@pytest.mark.parametrize("k", [100, 1000])
def test_spherical_path_touches_no_size_k_tensor_naive_does(k):
    w, h, y = _case(k)
    stats = losses.spherical_stats(w)

    def spherical():
        torch.autograd.grad(losses.z_loss_spherical(h, w, y, stats=stats), h)

    def naive():
        torch.autograd.grad(losses.z_loss(h @ w.T, y), h)

    sph, nai = largest_intermediate(spherical), largest_intermediate(naive)
    assert sph.numel < k and sph.num_ops > 0
    assert nai.numel >= 4 * k  # the (B, K) logits (or their gradient)
    # matmul FLOPs: h @ W^T and its backward are 2 products of 2 B K d each on the naive path
    assert nai.flops == 2 * (2 * 4 * k * 8)
    assert 0 < sph.flops < 2 * 4 * k * 8


def test_spherical_footprint_is_independent_of_k():
    sizes = set()
    for k in (50, 500, 5000):
        w, h, y = _case(k)
        stats = losses.spherical_stats(w)

        def run(h=h, w=w, y=y, stats=stats):
            losses.z_loss_spherical(h, w, y, stats=stats).backward()

        fp = largest_intermediate(run)
        sizes.add((fp.numel, fp.flops))
    assert len(sizes) == 1


def test_flops_of_a_known_product():
    a, b = torch.ones(3, 40, dtype=torch.float64), torch.ones(40, 5, dtype=torch.float64)
    fp = largest_intermediate(lambda: a @ b)
    assert fp.flops == 2 * 3 * 40 * 5 and fp.shape == (3, 5)
    assert largest_intermediate(lambda: a * 2).flops == 0  # element-wise: not counted


def test_largest_intermediate_rejects_non_callables():
    with pytest.raises(TypeError, match="fn"):
        largest_intermediate(3)
