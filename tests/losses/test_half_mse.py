"""lossviz.losses.half_mse: closed forms, equality with the copies it replaced, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lossviz.losses import half_mse


def test_closed_forms_and_reductions():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)
    tgt = torch.zeros_like(out)
    assert half_mse(out, tgt, reduction="none").tolist() == [2.5, 0.5]
    assert float(half_mse(out, tgt)) == 1.5
    assert float(half_mse(out, tgt, reduction="sum")) == 3.0
    # one scalar per sample, (n,) and (n, 1) alike
    v = torch.tensor([1.0, 3.0], dtype=torch.float64)
    assert float(half_mse(v, torch.zeros(2, dtype=torch.float64))) == 2.5
    assert float(half_mse(v[:, None], torch.zeros(2, 1, dtype=torch.float64))) == 2.5
    # integer labels are one-hot rows
    z = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    assert float(half_mse(z, torch.tensor([1, 0]), reduction="sum")) == pytest.approx(0.25)
    assert torch.equal(
        half_mse(z, torch.tensor([1, 0]), num_classes=2), half_mse(z, torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    )


@pytest.mark.parametrize("shape", [(64,), (64, 1), (64, 3), (8, 3, 4)])
def test_bitwise_equal_to_the_hand_written_copies(shape):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(shape, generator=g)
    tgt = torch.randn(shape, generator=g)
    got = half_mse(out, tgt)
    # the forms it replaced in K01/L03/k03/l11 (mean over all entries) and l09/n03 (sum over outputs)
    if len(shape) == 1 or shape[1:] == (1,):
        assert torch.equal(got, 0.5 * (out - tgt).pow(2).mean())
        assert torch.equal(got, 0.5 * F.mse_loss(out, tgt))
    else:
        assert torch.equal(got, 0.5 * (out - tgt).square().reshape(shape[0], -1).sum(-1).mean())


def test_gradient_is_residual_over_n():
    out = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(5, 2, dtype=torch.float64)
    (g,) = torch.autograd.grad(half_mse(out, tgt), out)
    assert torch.allclose(g, (out - tgt).detach() / 5, atol=1e-15)
    assert torch.autograd.gradcheck(lambda o: half_mse(o, tgt, reduction="none"), (out,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_in_float32(dtype):
    out = torch.full((4, 1), 300.0, dtype=dtype)  # 300^2 / 2 = 45000: fine in float32, near float16's edge
    res = half_mse(out, torch.zeros_like(out))
    assert res.dtype == dtype
    assert float(res) == pytest.approx(45000.0, rel=1e-2)  # the square, 90000, overflows float16


def test_bad_input():
    x = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="no broadcasting"):
        half_mse(x, torch.zeros(4))  # F.mse_loss would broadcast to (4, 4)
    with pytest.raises(TypeError, match="outputs"):
        half_mse(torch.zeros(4, dtype=torch.long), torch.zeros(4))
    with pytest.raises(ValueError, match="outputs"):
        half_mse(torch.zeros(()), torch.zeros(()))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        half_mse(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="num_classes"):
        half_mse(torch.zeros(2, 2), torch.tensor([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        half_mse(torch.zeros(2, 2), torch.tensor([[0], [1]]))
    with pytest.raises(TypeError, match="targets"):
        half_mse(x, torch.zeros(4, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="reduction"):
        half_mse(x, x, reduction="avg")
