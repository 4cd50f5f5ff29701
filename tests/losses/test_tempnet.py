"""losses.TempNet, kl_dro_loss and kl_to_uniform (Qiu et al. 2024) against closed forms."""

import math

import numpy as np
import pytest
import torch

from lossviz import losses

F64 = torch.float64


def _logits(b=6, v=7, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, v, generator=g, dtype=dtype) * 2, torch.randint(0, v, (b,), generator=g)


def test_kl_dro_loss_is_the_authors_form_and_the_dual_objective():
    h, y = _logits()
    tau = torch.tensor([0.3, 0.7, 1.0, 2.0, 5.0, 0.05], dtype=F64)
    ours = losses.kl_dro_loss(h, y, tau, 0.3)
    ce = torch.nn.functional.cross_entropy(h / tau[:, None], y, reduction="none")
    authors = tau * ce + (0.3 - math.log(h.shape[1])) * tau
    torch.testing.assert_close(ours, authors)
    for i in range(h.shape[0]):  # the per-anchor dual of losses.dro_objective with a = h - h_y
        a = (h[i] - h[i, y[i]]).numpy()
        np.testing.assert_allclose(
            float(ours[i]), losses.dro_objective(a, [float(tau[i])], 0.3)[0], rtol=1e-12
        )
    assert losses.kl_dro_loss(h, y, 0.5, 0.3, reduction="mean") == pytest.approx(
        float(losses.kl_dro_loss(h, y, 0.5, 0.3).mean())
    )


def test_tau_derivative_is_rho_minus_kl_and_the_minimiser_matches_brentq():
    h, y = _logits(b=4)
    tau = torch.tensor([0.4, 0.9, 1.5, 3.0], dtype=F64, requires_grad=True)
    losses.kl_dro_loss(h, y, tau, 0.3).sum().backward()
    torch.testing.assert_close(tau.grad, 0.3 - losses.kl_to_uniform(h, tau.detach()))
    a = (h[0] - h[0, y[0]]).numpy()
    t_star = losses.dro_optimal_temperature(a, 0.3)
    assert float(losses.kl_to_uniform(h[:1], t_star)) == pytest.approx(0.3, abs=1e-9)


def test_kl_to_uniform_limits():
    h, _ = _logits()
    assert torch.allclose(losses.kl_to_uniform(torch.zeros(3, 5, dtype=F64)), torch.zeros(3, dtype=F64))
    cold = losses.kl_to_uniform(h, 1e-3)  # one-hot: KL = log V
    torch.testing.assert_close(cold, torch.full_like(cold, math.log(h.shape[1])), rtol=0, atol=1e-6)


def test_tempnet_range_start_and_invariance_to_shift_and_scale():
    h, _ = _logits(b=10, v=50)
    net = losses.TempNet(50, 16, dtype=F64).eval()
    tau = net(h)
    assert tau.shape == (10,)
    torch.testing.assert_close(tau, torch.full_like(tau, (0.05 + 5.0) / 2))  # u = v = bias = 0
    with torch.no_grad():
        net.u.normal_(generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        tau = net(h)
    assert bool((tau > 0.05).all() and (tau < 5.0).all()) and float(tau.std()) > 0
    torch.testing.assert_close(net(3.0 * h + 7.0), tau)  # the shape of the distribution, not its scale


def test_tempnet_parameters_follow_device_and_dtype_arguments():
    net = losses.TempNet(8, 4, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    assert {p.device.type for p in net.parameters()} == {"cpu"}


def test_bad_input_names_the_argument():
    h, y = _logits()
    with pytest.raises(ValueError, match="tau"):
        losses.kl_dro_loss(h, y, -1.0, 0.3)
    with pytest.raises(ValueError, match="tau"):
        losses.kl_dro_loss(h, y, torch.ones(3, dtype=F64), 0.3)
    with pytest.raises(ValueError, match="rho"):
        losses.kl_dro_loss(h, y, 1.0, -0.1)
    with pytest.raises(ValueError, match="targets"):
        losses.kl_dro_loss(h, y + 100, 1.0, 0.3)
    with pytest.raises(ValueError, match="reduction"):
        losses.kl_dro_loss(h, y, 1.0, 0.3, reduction="max")
    with pytest.raises(ValueError, match="logits"):
        losses.kl_to_uniform(h[0])
    with pytest.raises(ValueError, match="tau_max"):
        losses.TempNet(8, tau_min=2.0, tau_max=1.0)
    with pytest.raises(ValueError, match="h"):
        losses.TempNet(8)(torch.zeros(2, 9))
