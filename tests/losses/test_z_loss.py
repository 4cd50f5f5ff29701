"""Tests for lossviz.losses._z_loss (Z-loss, spherical family)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz.losses as L

from ._cases import _data


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([1e-3, 0.5, 7.0, 1e3]),
    shift=st.floats(-100, 100),
)
def test_z_loss_shift_scale_invariant(seed, scale, shift):
    z, y = _data(n=8, k=6, seed=seed)
    shifts = shift * torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None]  # per-row shifts
    base = L.z_loss(z, y, reduction="none")
    moved = L.z_loss(scale * z + shifts, y, reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-9, atol=1e-9)


def test_z_loss_control_and_definition():
    z, y = _data(k=6)
    assert not torch.allclose(F.cross_entropy(7 * z, y), F.cross_entropy(z, y))  # CE is not invariant
    mu, sd = z.mean(1, keepdim=True), z.std(1, unbiased=False, keepdim=True)
    zc = ((z - mu) / sd).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(
        L.z_loss(z, y, a=0.5, b=1.5, reduction="none"), F.softplus(0.5 * (1.5 - zc)) / 0.5
    )
    assert float(L.z_scores(z).pow(2).mean(1).max()) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [10, 1000])
@pytest.mark.parametrize("with_bias", [False, True])
def test_z_loss_spherical_equals_naive(k, with_bias):
    g = torch.Generator().manual_seed(k)
    d, n = 16, 12
    W = (torch.randn(k, d, generator=g, dtype=torch.float64) + 0.3).requires_grad_(
        True
    )  # nonzero column mean
    bias = torch.randn(k, generator=g, dtype=torch.float64).requires_grad_(True) if with_bias else None
    h = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_(True)
    y = torch.randint(0, k, (n,), generator=g)
    naive = L.z_loss(F.linear(h, W, bias), y, a=0.7, b=1.3)
    gn = torch.autograd.grad(naive, [h, W] + ([bias] if with_bias else []))
    sph = L.z_loss_spherical(h, W, y, bias=bias, a=0.7, b=1.3)
    gs = torch.autograd.grad(sph, [h, W] + ([bias] if with_bias else []))
    torch.testing.assert_close(sph, naive, rtol=0, atol=1e-10)
    for a, b in zip(gs, gn):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # control: dropping the 1^T W term breaks it
    st_ = L.spherical_stats(W.detach(), None if bias is None else bias.detach())
    bad = type(st_)(**{**st_.as_dict(), "colsum": torch.zeros_like(st_.colsum)})
    bad_loss = L.z_loss_spherical(h, W, y, bias=bias, stats=bad, a=0.7, b=1.3).detach()
    assert abs(float(bad_loss) - float(naive.detach())) > 1e-3


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int8, torch.int32])
def test_z_loss_spherical_reads_small_integer_labels_as_indices(label_dtype):
    # uint8 labels used to be read as a boolean mask (silently wrong)
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, generator=g, dtype=torch.float64)
    h = torch.randn(5, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 5, 1, 3])
    ref = L.z_loss(h @ W.T, y, reduction="none")
    got = L.z_loss_spherical(h, W, y.to(label_dtype), reduction="none")
    torch.testing.assert_close(got, ref)
    yi = y.clone()
    yi[2] = -100
    torch.testing.assert_close(L.z_loss_spherical(h, W, yi), L.z_loss(h @ W.T, yi))
    with pytest.raises(TypeError, match="targets"):
        L.z_loss_spherical(h, W, y > 2)
    with pytest.raises(ValueError, match="targets"):
        L.z_loss_spherical(h, W, torch.tensor([0, 1, 6, 1, 3]))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_z_loss_spherical_half_precision_at_logit_scale_1e4(dtype):
    g = torch.Generator().manual_seed(1)
    W = torch.randn(50, 8, generator=g, dtype=torch.float64)
    h = torch.randn(16, 8, generator=g, dtype=torch.float64)
    h = h * (1e4 / (h @ W.T).abs().max())  # logits up to 1e4
    y = torch.randint(0, 50, (16,), generator=g)
    Wh, hh = W.to(dtype), h.to(dtype).requires_grad_(True)
    ref = L.z_loss(hh.detach().to(torch.float64) @ Wh.to(torch.float64).T, y, reduction="none")
    got = L.z_loss_spherical(hh, Wh, y, reduction="none")
    assert got.dtype == dtype and torch.isfinite(got).all()
    tol = 2e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(got.to(torch.float64), ref, rtol=tol, atol=tol)
    got.sum().backward()
    assert torch.isfinite(hh.grad).all()
