"""Tests for shared conventions of every loss: dtype stability, reductions, bad input, relabelling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lossviz.losses as L

from ._cases import DTYPES, LOSSES, _data


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_logits_finite_in_every_dtype(name, dtype):
    g = torch.Generator().manual_seed(2)
    z = ((torch.rand(24, 6, generator=g) * 2 - 1) * 1e4).to(dtype)
    z[0] = torch.tensor([1e4, -1e4, 0, 0, 0, 0], dtype=dtype)  # a saturated row
    z[1] = 0  # a constant row
    z.requires_grad_(True)
    y = torch.randint(0, 6, (24,), generator=g)
    loss = LOSSES[name](z, y)
    assert loss.dtype == dtype and loss.shape == ()
    assert torch.isfinite(loss), f"{name} {dtype}: {loss}"
    loss.backward()
    assert z.grad.dtype == dtype and torch.isfinite(z.grad).all(), f"{name} {dtype}: non-finite gradient"


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_reductions(name):
    z, y = _data()
    none = LOSSES[name](z, y, reduction="none")
    assert none.shape == (32,) and none.dtype == torch.float64
    torch.testing.assert_close(LOSSES[name](z, y, reduction="sum"), none.sum())
    torch.testing.assert_close(LOSSES[name](z, y), none.mean())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_targets_and_logits(name):
    fn = LOSSES[name]
    z, y = _data(n=4, k=3)
    with pytest.raises(ValueError, match="targets"):
        fn(z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="targets"):
        fn(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        fn(z[None], y)
    with pytest.raises(ValueError, match="logits"):
        fn(z[:, 0], y)
    with pytest.raises(ValueError, match="reduction"):
        fn(z, y, reduction="avg")


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperatures(bad):
    z, y = _data(n=4, k=3)
    for fn in (
        lambda: L.tempered_cross_entropy(z, y, bad),
        lambda: L.ldr_kl(z, y, bad),
        lambda: L.aldr_kl(z, y, bad),
        lambda: L.info_nce(z, z, bad),
        lambda: L.robust_contrastive_loss(z, z, bad),
        lambda: L.negative_weights(z[0], bad),
    ):
        with pytest.raises(ValueError, match="tau"):
            fn()
    with pytest.raises(ValueError, match="taus"):
        L.penalty_distribution([1.0, bad])
    with pytest.raises(ValueError, match="tau"):
        L.robust_contrastive_loss(z, z, torch.tensor([0.1, 0.2, bad, 0.3], dtype=torch.float64))


def test_bad_soft_targets_and_other_arguments():
    z, y = _data(n=4, k=3)
    t = torch.full((4, 3), 0.4, dtype=torch.float64)
    for fn in (L.tempered_cross_entropy, L.comp_sum, L.soft_cross_entropy, L.stablemax_cross_entropy):
        with pytest.raises(ValueError, match="sum to 1"):
            fn(z, t)
        with pytest.raises(ValueError, match="non-negative"):
            fn(z, torch.tensor([[1.5, -0.5, 0.0]] * 4, dtype=torch.float64))
        with pytest.raises(ValueError, match="shape"):
            fn(z, torch.full((4, 2), 0.5, dtype=torch.float64))
    with pytest.raises(TypeError, match="targets"):
        L.ldr_kl(z, torch.full((4, 3), 1 / 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="margin"):
        L.ldr_kl(z, y, margin=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        L.aldr_kl(z, y, alpha=0.5)
    with pytest.raises(ValueError, match="`a`"):
        L.z_loss(z, y, a=0.0)
    with pytest.raises(ValueError, match="weight"):
        L.z_loss_spherical(torch.randn(4, 5), torch.randn(3, 4), y)
    with pytest.raises(ValueError, match="same shape"):
        L.info_nce(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="rho"):
        L.robust_contrastive_loss(z, z, 0.1, rho=-1.0)
    with pytest.raises(ValueError, match="labels"):
        L.tolerance(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(sorted(LOSSES)))
def test_relabelling_classes_changes_no_loss(seed, name):
    z, y = _data(n=6, k=5, seed=seed)
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    inv = torch.argsort(perm)
    # column j of the permuted logits is old class perm[j]; old label c moves to column inv[c]
    base = LOSSES[name](z, y, reduction="none")
    moved = LOSSES[name](z[:, perm], inv[y], reduction="none")
    torch.testing.assert_close(moved, base, rtol=1e-10, atol=1e-10)
