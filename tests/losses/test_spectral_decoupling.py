"""lossviz.losses.spectral_decoupling: closed forms, gradients, conventions, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lossviz.losses import spectral_decoupling


def test_closed_form_values():
    z = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    assert float(spectral_decoupling(z, torch.tensor([1]), lam=0.7)) == pytest.approx(math.log(2), abs=1e-15)
    z = torch.tensor([[1.0, 2.0, -1.0]], dtype=torch.float64)
    lse = math.log(math.e + math.e**2 + math.e**-1)
    want = lse - 2.0 + 0.25 * (1 + 4 + 1)
    assert float(spectral_decoupling(z, torch.tensor([1]), lam=0.5)) == pytest.approx(want, abs=1e-14)
    # binary: softplus(-y f) + lam f^2 / 2, labels +-1 and 0/1 agree
    f = torch.tensor([2.0, -1.0], dtype=torch.float64)
    want = [math.log1p(math.exp(-2)) + 0.2, math.log1p(math.exp(-1)) + 0.05]
    for y in (torch.tensor([1.0, -1.0]), torch.tensor([1, 0])):
        out = spectral_decoupling(f, y, lam=0.1, reduction="none")
        assert torch.allclose(out, torch.tensor(want, dtype=torch.float64), atol=1e-15)
    assert spectral_decoupling(f[:, None], torch.tensor([1, -1]), lam=0.1, reduction="none").shape == (2, 1)


def test_lam_zero_is_cross_entropy_and_reductions():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)
    t = torch.randint(0, 4, (6, 3), generator=g)
    t[0, 0] = -100
    for red in ("mean", "sum", "none"):
        a = spectral_decoupling(z, t, lam=0.0, reduction=red)
        assert torch.allclose(a, F.cross_entropy(z, t, reduction=red), atol=1e-14)
    pen = 0.15 * z.square().sum(1)
    pen[0, 0] = 0
    full = spectral_decoupling(z, t, lam=0.3, reduction="none")
    assert full.shape == (6, 3) and full[0, 0] == 0
    assert torch.allclose(full, F.cross_entropy(z, t, reduction="none") + pen, atol=1e-14)
    assert torch.allclose(spectral_decoupling(z, t, lam=0.3), full.sum() / 17)
    soft = torch.softmax(torch.randn(5, 3, generator=g, dtype=torch.float64), 1)
    zs = torch.randn(5, 3, generator=g, dtype=torch.float64)
    want = F.cross_entropy(zs, soft) + 0.05 * zs.square().sum(1).mean()
    assert torch.allclose(spectral_decoupling(zs, soft, lam=0.1), want)


def test_binary_per_sample_optimum_and_gradcheck():
    # d/dm [softplus(-m) + lam m^2/2] = 0 at lam m = 1/(1+e^m): m* = 1.6335 for lam = 0.1
    m = torch.tensor([1.6335061701558464], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(spectral_decoupling(m, torch.tensor([1]), lam=0.1), m)
    assert abs(float(g)) < 1e-12
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 2, 1, 2])
    assert torch.autograd.gradcheck(lambda x: spectral_decoupling(x, t, lam=0.4), (z,))
    f = torch.randn(5, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, -1, 1, -1, -1], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: spectral_decoupling(x, y, lam=0.4, reduction="sum"), (f,))


def test_dtype_device_follow_the_input():
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    out = spectral_decoupling(z, torch.tensor([0, 1, 1]))
    assert out.dtype == torch.bfloat16 and out.device == z.device
    assert spectral_decoupling(z[:, 0], torch.tensor([1, 0, 1])).dtype == torch.bfloat16


def test_bad_input():
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="lam"):
        spectral_decoupling(z, torch.tensor([0, 1, 1]), lam=-0.1)
    with pytest.raises(ValueError, match="reduction"):
        spectral_decoupling(z, torch.tensor([0, 1, 1]), reduction="max")
    with pytest.raises(ValueError, match="targets"):
        spectral_decoupling(z, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="targets"):
        spectral_decoupling(z[:, 0], torch.tensor([1, -1]))
    with pytest.raises(ValueError, match="targets"):
        spectral_decoupling(z[:, 0], torch.tensor([2, 1, 0]))
    with pytest.raises(ValueError, match="targets"):
        spectral_decoupling(z[:, 0], torch.tensor([-1, 0, 1]))
    with pytest.raises(TypeError, match="logits"):
        spectral_decoupling(torch.zeros(3, 2, dtype=torch.long), torch.tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="lam"):
        spectral_decoupling(z, torch.tensor([0, 1, 1]), lam="big")
