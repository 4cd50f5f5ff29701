"""pass@N and the DCO loss (Chen et al. 2025, arXiv:2502.07154)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lossviz.losses import dco_loss, dco_weight, log_pass_at_n, pass_at_n


def _data(n=40, k=7, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, k, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, k, (n,), generator=g)
    return z, y


def _p(z, y):
    return torch.softmax(z.double(), 1).gather(1, y[:, None]).squeeze(1)


def test_pass_at_1_is_the_target_probability_and_closed_form():
    z, y = _data()
    p = _p(z, y)
    torch.testing.assert_close(pass_at_n(z, y, 1, reduction="none"), p, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(pass_at_n(z, y, 1), p.mean())
    for n in (2, 7, 64, 1000):
        ref = 1 - (1 - p) ** n
        torch.testing.assert_close(pass_at_n(z, y, n, reduction="none"), ref, rtol=1e-10, atol=1e-14)
    # a sequence of N stacks the results in dimension 0
    many = pass_at_n(z, y, [1, 4, 64])
    assert many.shape == (3,)
    torch.testing.assert_close(many[2], pass_at_n(z, y, 64))
    assert bool((many[1:] >= many[:-1]).all())  # monotone in N
    # temperature divides the logits
    torch.testing.assert_close(pass_at_n(z, y, 8, tau=2.5), pass_at_n(z / 2.5, y, 8))
    torch.testing.assert_close(
        pass_at_n(z, y, 4, reduction="sum"), pass_at_n(z, y, 4, reduction="none").sum()
    )


def test_closed_form_matches_monte_carlo_sampling():
    z, y = _data(n=30, k=5, scale=1.5, seed=3)
    probs = torch.softmax(z, 1)
    g = torch.Generator().manual_seed(0)
    reps, n = 4000, 8
    draws = torch.multinomial(probs, reps * n, replacement=True, generator=g).reshape(30, reps, n)
    hit = (draws == y[:, None, None]).any(-1).double().mean(1)
    exact = pass_at_n(z, y, n, reduction="none")
    se = (exact * (1 - exact) / reps).sqrt()
    assert bool(((hit - exact).abs() <= 5 * se + 1e-3).all())
    assert abs(float(hit.mean() - exact.mean())) < 0.01


def test_dco_with_n_1_is_cross_entropy():
    z, y = _data(n=200, k=100, scale=4.0, seed=1)
    assert float((dco_loss(z, y, 1) - F.cross_entropy(z, y)).abs()) < 1e-12
    torch.testing.assert_close(
        dco_loss(z, y, 1, reduction="none"), F.cross_entropy(z, y, reduction="none"), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(dco_loss(z, y, 5), -log_pass_at_n(z, y, 5).mean())
    torch.testing.assert_close(log_pass_at_n(z, y, 5).exp(), pass_at_n(z, y, 5, reduction="none"))


def test_dco_gradient_is_ce_gradient_times_the_weight():
    z, y = _data(n=25, k=6, seed=2)
    for n in (1, 4, 16):
        a = z.clone().requires_grad_()
        dco_loss(a, y, n, reduction="sum").backward()
        b = z.clone().requires_grad_()
        F.cross_entropy(b, y, reduction="none").backward(dco_weight(_p(z, y), n))
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_dco_weight_values():
    assert float(dco_weight(0.5, 16)) == pytest.approx(16 * 0.5**16 / (1 - 0.5**16), rel=1e-12)
    assert float(dco_weight(0.5, 16)) == pytest.approx(2.44e-4, rel=1e-3)
    torch.testing.assert_close(dco_weight([0.0, 0.3, 1.0], 1), torch.ones(3, dtype=torch.float64))
    w = dco_weight(np.array([0.0, 1e-300, 1e-9, 0.1, 0.9, 1.0]), 8)
    assert float(w[0]) == 1.0 and float(w[-1]) == 0.0 and bool(torch.isfinite(w).all())
    assert bool((w[1:] <= w[:-1] + 1e-12).all())  # confident items weigh less
    with pytest.raises(ValueError, match="`p`"):
        dco_weight(1.5, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_stable_at_p_near_0_and_1(dtype):
    z = torch.tensor(
        [[1e4, 0.0, -1e4], [0.0, 1e4, -1e4], [-1e4, 1e4, 0.0], [0.0, 0.0, 0.0], [40.0, 0.0, 0.0]], dtype=dtype
    )
    y = torch.zeros(5, dtype=torch.long)
    zz = z.clone().requires_grad_()
    loss = dco_loss(zz, y, 64, reduction="none")
    loss.sum().backward()
    assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(zz.grad).all())
    assert loss.dtype == dtype
    lf = loss.detach().double()
    assert float(lf[0]) == 0.0
    # p -> 0: -log(1 - (1 - p)^N) -> -log N - log p
    assert float(lf[1]) == pytest.approx(1e4 - math.log(64), rel=2e-3)
    assert float(lf[2]) == pytest.approx(2e4 - math.log(64), rel=2e-3)
    assert float(lf[3]) == pytest.approx((2 / 3) ** 64, rel=1e-2, abs=1e-7)
    pa = pass_at_n(z, y, 64, reduction="none").double()
    assert float(pa[0]) == 1.0 and float(pa[1]) == 0.0 and float(pa[4]) == 1.0


def test_precision_for_tiny_and_huge_p_in_float64():
    # p = 1e-20: pass@N = N p to relative 1e-12 (the naive 1 - (1 - p)^N gives 0)
    lp = math.log(1e-20)
    z = torch.tensor([[lp, 0.0]], dtype=torch.float64)  # p_0 = 1e-20 / (1 + 1e-20)
    y = torch.tensor([0])
    p = 1e-20 / (1 + 1e-20)
    assert float(pass_at_n(z, y, 100)) == pytest.approx(100 * p, rel=1e-12)
    assert float(dco_loss(z, y, 100)) == pytest.approx(-math.log(100 * p) + 99 * p / 2, rel=1e-14)
    # 1 - p = 1e-30: log(1 - pass@N) = N log(1 - p) exactly representable
    z = torch.tensor([[0.0, math.log(1e-30)]], dtype=torch.float64)
    q = 1e-30 / (1 + 1e-30)
    assert float(dco_loss(z, torch.tensor([0]), 3)) == pytest.approx(q**3, rel=1e-10)
    assert float(dco_loss(z, torch.tensor([0]), 1)) == pytest.approx(q, rel=1e-10)


def test_ignore_index_and_higher_dimensional_logits():
    z, y = _data(n=12, k=5)
    y2 = y.clone()
    y2[[1, 4]] = -100
    keep = y2 != -100
    torch.testing.assert_close(dco_loss(z, y2, 8), dco_loss(z[keep], y[keep], 8))
    torch.testing.assert_close(pass_at_n(z, y2, 8), pass_at_n(z[keep], y[keep], 8))
    assert float(pass_at_n(z, y2, 8, reduction="none")[1]) == 0.0
    # (n, K, T) like a language model
    z3 = z.reshape(3, 4, 5).transpose(1, 2)  # (3, 5, 4)
    y3 = y.reshape(3, 4)
    torch.testing.assert_close(dco_loss(z3, y3, 8), dco_loss(z, y, 8))
    assert pass_at_n(z3, y3, 8, reduction="none").shape == (3, 4)


def test_device_and_dtype_follow_inputs_and_numpy_is_accepted():
    z, y = _data(dtype=torch.float32)
    assert pass_at_n(z, y, 4).dtype == torch.float32
    assert dco_loss(z.numpy(), y.numpy(), 4).dtype == torch.float32
    assert pass_at_n(z.double(), y, 4).device == z.device


def test_bad_input():
    z, y = _data()
    for bad in (0, -3):
        with pytest.raises(ValueError, match="`n`"):
            dco_loss(z, y, bad)
    with pytest.raises(TypeError, match="`n`"):
        dco_loss(z, y, 2.5)
    with pytest.raises(TypeError, match="`n`"):
        pass_at_n(z, y, True)
    with pytest.raises(ValueError, match=r"`n\[i\]`"):
        pass_at_n(z, y, [1, 0])
    with pytest.raises(ValueError, match="`n`"):
        pass_at_n(z, y, [])
    with pytest.raises(ValueError, match="tau"):
        pass_at_n(z, y, 4, tau=0.0)
    with pytest.raises(ValueError, match="reduction"):
        dco_loss(z, y, 4, reduction="max")
    with pytest.raises(ValueError, match="targets"):
        dco_loss(z, y + 100, 4)
    with pytest.raises(ValueError, match="targets"):
        pass_at_n(z, y[:3], 4)
    with pytest.raises(TypeError, match="targets"):
        dco_loss(z, torch.softmax(z, 1), 4)
    with pytest.raises(TypeError, match="logits"):
        pass_at_n(torch.ones(3, 4, dtype=torch.long), torch.zeros(3, dtype=torch.long), 2)
