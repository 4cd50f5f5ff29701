"""Tests for shared conventions of every loss: dtype stability, reductions, bad input, relabelling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
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


INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.uint8, torch.int64]


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("label_dtype", INT_DTYPES)
def test_any_integer_label_dtype_reads_as_class_indices(name, label_dtype):
    z, y = _data(n=12, k=5)
    ref = LOSSES[name](z, y, reduction="none")
    got = LOSSES[name](z, y.to(label_dtype), reduction="none")
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bool_labels_are_refused(name):
    z, _ = _data(n=4, k=2)
    with pytest.raises(TypeError, match="targets"):
        LOSSES[name](z, torch.tensor([True, False, True, False]))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ignore_index_leaves_entries_out_like_cross_entropy(name):
    z, y = _data(n=12, k=5)
    fn = LOSSES[name]
    yi = y.clone()
    yi[[1, 4, 7]] = -100
    keep = yi != -100
    none = fn(z, yi, reduction="none")
    assert torch.all(none[~keep] == 0)
    torch.testing.assert_close(none[keep], fn(z[keep], y[keep], reduction="none"))
    torch.testing.assert_close(fn(z, yi), fn(z[keep], y[keep]))
    torch.testing.assert_close(fn(z, yi, reduction="sum"), fn(z[keep], y[keep], reduction="sum"))
    # a custom ignore_index
    y7 = torch.where(keep, y, torch.full_like(y, 7))
    torch.testing.assert_close(fn(z, y7, ignore_index=7), fn(z[keep], y[keep]))
    # every entry ignored: NaN mean, as F.cross_entropy
    assert torch.isnan(fn(z, torch.full_like(y, -100)))
    # a label outside [0, K) that is not ignore_index still names `targets`
    with pytest.raises(ValueError, match="targets"):
        fn(z, torch.where(keep, y, torch.full_like(y, -1)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_spatial_logits_like_cross_entropy(name):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 5, 4, 2, generator=g, dtype=torch.float64)  # (B, C, d1, d2)
    y = torch.randint(0, 5, (3, 4, 2), generator=g)
    y[0, 1, 1] = -100
    fn = LOSSES[name]
    flat_z, flat_y = z.movedim(1, -1).reshape(-1, 5), y.reshape(-1)
    none = fn(z, y, reduction="none")
    assert none.shape == (3, 4, 2)
    torch.testing.assert_close(none.reshape(-1), fn(flat_z, flat_y, reduction="none"))
    torch.testing.assert_close(fn(z, y), fn(flat_z, flat_y))
    with pytest.raises(ValueError, match="targets"):
        fn(z, y[:, :, 0])


@pytest.mark.parametrize("name", ["tempered_ce", "comp_sum_q0", "soft_ce"])
def test_ce_equivalent_losses_equal_f_cross_entropy(name):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(4, 7, 6, generator=g)  # (B, V, T) as a language model's transposed logits
    y = torch.randint(0, 7, (4, 6), generator=g)
    y[:, -2:] = -100  # padding
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            LOSSES[name](z, y, reduction=reduction), F.cross_entropy(z, y, reduction=reduction)
        )


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_nan_logits_propagate_without_raising(name):
    z, y = _data(n=6, k=4)
    z[2, 1] = float("nan")
    none = LOSSES[name](z, y, reduction="none")
    assert torch.isnan(none[2])
    if name != "aldr_kl":  # the others are per-row: the NaN stays in its row
        assert torch.isfinite(none[torch.arange(6) != 2]).all()
    assert torch.isnan(LOSSES[name](z, y))


def test_tempered_cross_entropy_sum_at_large_logits_in_half_precision():
    g = torch.Generator().manual_seed(5)
    z64 = (torch.rand(16, 6, generator=g, dtype=torch.float64) * 2 - 1) * 1e4
    y = torch.randint(0, 6, (16,), generator=g)
    ref = L.tempered_cross_entropy(z64, y, 0.1, reduction="sum")
    # bfloat16 holds the value (about 1e6): finite and within bfloat16 rounding of the reference
    zb = z64.to(torch.bfloat16)
    got = L.tempered_cross_entropy(zb, y, 0.1, reduction="sum")
    ref_b = L.tempered_cross_entropy(zb.to(torch.float64), y, 0.1, reduction="sum")
    assert got.dtype == torch.bfloat16 and torch.isfinite(got)
    assert abs(float(got) - float(ref_b)) <= 1e-2 * abs(float(ref_b))
    assert abs(float(ref_b) - float(ref)) <= 1e-2 * abs(float(ref))
    # float16 (max 65504): per-sample values below the range are finite and right
    zh = (z64 / 1e3).to(torch.float16)
    got = L.tempered_cross_entropy(zh, y, 0.1, reduction="sum")
    ref_h = L.tempered_cross_entropy(zh.to(torch.float64), y, 0.1, reduction="sum")
    assert got.dtype == torch.float16 and abs(float(got) - float(ref_h)) <= 1e-3 * abs(float(ref_h))


@pytest.mark.parametrize("name", ["tempered_ce", "ldr_kl"])
def test_no_graph_breaks_under_dynamo_with_padding_labels(name):
    import torch._dynamo as dynamo

    z, y = _data(n=16, k=5)
    y[:3] = -100
    dynamo.reset()
    explained = dynamo.explain(LOSSES[name])(z, y)
    assert explained.graph_break_count == 0, explained.break_reasons
