"""Tests for StableMax, the Softmax Collapse diagnostic and mixup (lossviz.losses)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossviz.losses import mixup, soft_cross_entropy, softmax_collapse, stablemax, stablemax_cross_entropy

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _s(x):
    return torch.where(x >= 0, x + 1, 1 / (1 - x))


def test_stablemax_matches_definition():
    z = torch.randn(20, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
    want = _s(z) / _s(z).sum(1, keepdim=True)
    torch.testing.assert_close(stablemax(z), want, rtol=1e-12, atol=1e-14)
    ce = stablemax_cross_entropy(z, torch.arange(20) % 7, reduction="none")
    torch.testing.assert_close(
        ce, -torch.log(want[torch.arange(20), torch.arange(20) % 7]), rtol=1e-12, atol=1e-12
    )


def test_stablemax_gradient_continuous_at_zero():
    x = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    stablemax_cross_entropy(x, torch.tensor([0])).backward()
    # d/dz_0 of -log(s(z_0)/sum s) at 0: -1 + 1/3 (s'(0) = 1 from both sides)
    torch.testing.assert_close(x.grad[0, 0], torch.tensor(-2 / 3, dtype=torch.float64))


def test_stablemax_finite_where_softmax_underflows():
    z = torch.tensor([[1e4, 0.0, -1e4], [30.0, -30.0, 0.0]], dtype=torch.float32)
    p_soft = torch.softmax(z, dim=1)
    assert (p_soft[0, 1:] == 0).all() and p_soft[0, 0] == 1  # softmax saturates
    p = stablemax(z)
    assert torch.isfinite(p).all() and (p > 0).all()
    z = z.clone().requires_grad_(True)
    loss = stablemax_cross_entropy(z, torch.tensor([0, 0]))
    loss.backward()
    assert loss > 0 and torch.isfinite(z.grad).all() and (z.grad[0] != 0).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_stablemax_dtypes_large_logits(dtype):
    g = torch.Generator().manual_seed(1)
    z = ((torch.rand(16, 5, generator=g) * 2 - 1) * 1e4).to(dtype).requires_grad_(True)
    y = torch.randint(0, 5, (16,), generator=g)
    loss = stablemax_cross_entropy(z, y)
    assert loss.dtype == dtype and torch.isfinite(loss)
    loss.backward()
    assert z.grad.dtype == dtype and torch.isfinite(z.grad).all()
    p = stablemax(z.detach())
    assert p.dtype == dtype and torch.isfinite(p).all()


def test_stablemax_soft_targets_and_reductions():
    z = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    hard = stablemax_cross_entropy(z, y, reduction="none")
    soft = stablemax_cross_entropy(z, F.one_hot(y, 4).double(), reduction="none")
    torch.testing.assert_close(hard, soft)
    torch.testing.assert_close(stablemax_cross_entropy(z, y, reduction="sum"), hard.sum())
    torch.testing.assert_close(stablemax_cross_entropy(z, y), hard.mean())
    z32 = z.float()
    assert stablemax_cross_entropy(z32, y, dtype=torch.float64).dtype == torch.float32


@pytest.mark.parametrize(
    "logits, targets, kwargs, exc, match",
    [
        (torch.zeros(3, 4), torch.tensor([0, 1, 4]), {}, ValueError, "targets"),
        (torch.zeros(3, 4), torch.tensor([0, 1, -1]), {}, ValueError, "targets"),
        (torch.zeros(3, 4, 2), torch.tensor([0, 1, 2]), {}, ValueError, "logits"),
        (torch.zeros(3), torch.tensor([0, 1, 2]), {}, ValueError, "logits"),
        (torch.zeros(2, 3), torch.tensor([[0.5, 0.6, 0.0], [1.0, 0, 0]]), {}, ValueError, "sum to 1"),
        (torch.zeros(2, 3), torch.tensor([0, 1]), {"reduction": "avg"}, ValueError, "reduction"),
    ],
)
def test_stablemax_bad_input(logits, targets, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        stablemax_cross_entropy(logits, targets, **kwargs)


def test_stablemax_nan_logits_propagate_as_in_torch():
    # like F.cross_entropy: a NaN logit gives a NaN loss for its sample, no error
    loss = stablemax_cross_entropy(
        torch.tensor([[0.0, float("nan")], [1.0, 0.0]]), torch.tensor([0, 0]), reduction="none"
    )
    assert torch.isnan(loss[0]) and torch.isfinite(loss[1])


def test_softmax_collapse_diagnostic():
    y = torch.zeros(4, dtype=torch.long)
    # correct-class margins 10, 20, 50, 200 over 2 other classes
    gaps = torch.tensor([10.0, 20.0, 50.0, 200.0])
    z = torch.stack([gaps, torch.zeros(4), torch.zeros(4)], dim=1)
    r32 = softmax_collapse(z, y)  # float32: exp(-gap) absorbed once < 2^-24 / 2 -> gap > ~17.3
    assert r32.prob_one.tolist() == [False, True, True, True]
    assert r32.fraction == 0.75
    # the whole gradient vanishes only when exp(-gap) underflows float32 (gap > ~104)
    assert r32.grad_zero.tolist() == [False, False, False, True]
    assert softmax_collapse(z, y, criterion="gradient").fraction == 0.25
    r64 = softmax_collapse(z, y, dtype=torch.float64)  # float64 eps ~ 1e-16 -> gap > ~37
    assert r64.prob_one.tolist() == [False, False, True, True]
    # the loss computed by torch in float32 is exactly zero exactly where SC is flagged
    ce = F.cross_entropy(z, y, reduction="none")
    assert ((ce == 0) == r32.prob_one).all()
    with pytest.raises(ValueError, match="criterion"):
        softmax_collapse(z, y, criterion="loss")
    with pytest.raises(TypeError, match="targets"):
        softmax_collapse(z, torch.ones(4, 3) / 3)
    with pytest.raises(TypeError, match="dtype"):
        softmax_collapse(z, y, dtype=torch.int32)


# ----------------------------------------------------------------------------- mixup


def test_mixup_formula_and_seed():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 3, 2, dtype=torch.float64, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    m = mixup(x, y, 4, alpha=0.4, seed=3)
    assert m.x.dtype == torch.float64 and m.targets.dtype == torch.float64 and m.lam.dtype == torch.float64
    lam = m.lam.view(-1, 1, 1)
    torch.testing.assert_close(m.x, lam * x + (1 - lam) * x[m.index])
    eye = F.one_hot(y, 4).double()
    torch.testing.assert_close(m.targets, m.lam[:, None] * eye + (1 - m.lam[:, None]) * eye[m.index])
    torch.testing.assert_close(m.targets.sum(1), torch.ones(50, dtype=torch.float64))
    assert ((m.lam >= 0) & (m.lam <= 1)).all()
    assert sorted(m.index.tolist()) == list(range(50))
    assert (m.y_b == y[m.index]).all() and (m.cross_class == (y != y[m.index])).all()
    m2 = mixup(x, y, 4, alpha=0.4, seed=3)
    assert torch.equal(m.x, m2.x) and torch.equal(m.index, m2.index)
    m3 = mixup(x, y, 4, alpha=0.4, seed=4)
    assert not torch.equal(m.lam, m3.lam)
    # generator path consumes the generator: two calls differ, same initial state reproduces
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a, b = mixup(x, y, 4, generator=g1), mixup(x, y, 4, generator=g1)
    assert not torch.equal(a.lam, b.lam)
    assert torch.equal(a.lam, mixup(x, y, 4, generator=g2).lam)


def test_mixup_lambda_distribution_and_batch_mode():
    x = torch.zeros(4000, 1)
    y = torch.zeros(4000, dtype=torch.long)
    m = mixup(x, y, 2, alpha=1.0, seed=0)  # Beta(1, 1) = uniform: mean 1/2, variance 1/12
    assert abs(float(m.lam.mean()) - 0.5) < 0.02 and abs(float(m.lam.var()) - 1 / 12) < 0.01
    m = mixup(x, y, 2, alpha=0.2, seed=0)  # Beta(0.2, 0.2) variance 1/(4 * 1.4) = 0.179
    assert abs(float(m.lam.var()) - 1 / 5.6) < 0.02
    mb = mixup(x[:10], y[:10], 2, per_sample=False, seed=1)
    assert (mb.lam == mb.lam[0]).all()


def test_mixup_bad_input():
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="alpha"):
        mixup(x, y, 3, alpha=0.0)
    with pytest.raises(ValueError, match="`y`"):
        mixup(x, y, 2)
    with pytest.raises(ValueError, match="`y`"):
        mixup(x, y[:4], 3)
    with pytest.raises(TypeError, match="`x`"):
        mixup(torch.ones(5, 2, dtype=torch.long), y, 3)
    with pytest.raises(ValueError, match="not both"):
        mixup(x, y, 3, seed=0, generator=torch.Generator())


def test_soft_cross_entropy_matches_torch():
    z = torch.randn(7, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (7,))
    torch.testing.assert_close(soft_cross_entropy(z, y), F.cross_entropy(z, y))
    t = torch.softmax(torch.randn(7, 5, dtype=torch.float64), 1)
    torch.testing.assert_close(
        soft_cross_entropy(z, t, reduction="none"), F.cross_entropy(z, t, reduction="none")
    )
    for dtype in DTYPES:
        zz = (torch.randn(7, 5) * 1e4).to(dtype).requires_grad_(True)
        loss = soft_cross_entropy(zz, y)
        loss.backward()
        assert loss.dtype == dtype and torch.isfinite(loss) and torch.isfinite(zz.grad).all()


def test_stablemax_accepts_numpy_like_the_other_losses():
    import numpy as np

    z = np.array([[0.0, 1.0, -1.0]])
    torch.testing.assert_close(stablemax(z), stablemax(torch.from_numpy(z)))
    torch.testing.assert_close(
        stablemax_cross_entropy(z, np.array([1])),
        stablemax_cross_entropy(torch.from_numpy(z), torch.tensor([1])),
    )
    with pytest.raises(TypeError, match="logits"):
        stablemax([0.0, 1.0])
    with pytest.raises(TypeError, match="logits"):
        stablemax(np.array([1, 2]))  # integers: not logits
