"""lossviz.papers.k06_gradient_starvation: the K06 toys and their claim statistics."""

from __future__ import annotations

import math

import pytest
import torch

from lossviz.losses import spectral_decoupling
from lossviz.papers import k06_gradient_starvation as k06

torch.set_num_threads(1)
STEPS = 8000  # lr 0.15 is stable for s1 = 5 (curvature <= 0.35 E[x1^2] ~ 9.5 < 2 / lr)


def test_m_star_solves_the_stationarity_equation():
    lam = 0.1
    m = k06.derivation(lam)["m_star"]
    assert abs(lam * m - 1 / (1 + math.exp(m))) < 1e-12
    assert abs(m - 1.6335) < 1e-4


def test_papers_module_uses_the_family_loss():
    import lossviz.losses

    assert k06.spectral_decoupling is lossviz.losses.spectral_decoupling
    assert not hasattr(k06, "sd_loss")


def test_linear_gd_matches_autograd_and_sd_is_decoupled():
    y, a1, a2 = k06.linear_task(0)
    for loss in ("ce", "sd", "wd"):
        w_fast = k06.linear_weights(0, loss, s1=(3.0,), steps=5)[5][0]
        w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        x = torch.stack([3.0 * a1, a2], 1)
        for _ in range(5):
            f = x @ w
            obj = spectral_decoupling(f, y, lam=0.1 if loss == "sd" else 0.0)
            if loss == "wd":
                obj = obj + 0.005 * w.square().sum()
            (g,) = torch.autograd.grad(obj, w)
            w = (w - 0.05 * g).detach().requires_grad_(True)
        assert torch.allclose(w_fast, w.detach(), atol=1e-13)
    # SD's optimum in (s1 w1, w2) does not depend on s1 (strictly convex, reparametrised)
    ws = k06.linear_weights(0, "sd", s1=(1.0, 5.0), steps=STEPS, lr=0.15, n=40)[STEPS]
    assert abs(float(ws[1, 1] / ws[0, 1]) - 1) < 1e-6
    assert abs(float(ws[1, 0] * 5 / ws[0, 0]) - 1) < 1e-6


def test_moons_shift_and_bad_input():
    x, y = k06.make_moons(0, gap=0.1)
    assert float(x[y > 0, 0].min() - x[y < 0, 0].max()) == pytest.approx(0.1, abs=1e-6)
    xc, _ = k06.make_moons(0, shifted=False)
    assert float(xc[:, 0].max()) <= 2 + 1e-6
    with pytest.raises(ValueError, match="gap"):
        k06.make_moons(0, gap=-1)
    with pytest.raises(ValueError, match="loss"):
        k06.linear_weights(0, "mse", steps=2)
    with pytest.raises(ValueError, match="s1"):
        k06.linear_weights(0, s1=(0.0,), steps=2)


def test_seeded_calls_leave_rng_and_model_alone():
    state = torch.random.get_rng_state()
    x, y = k06.make_moons(1)
    model = k06.train_moons(x, y, lam=0.1, seed=1, steps=5, hidden=(16,))
    assert torch.equal(torch.random.get_rng_state(), state)
    before = [p.detach().clone() for p in model.parameters()]
    model.eval()
    r = k06.vertical_reliance(model, x)
    k06.margins(model, x, y)
    k06.shuffled_x1_accuracy(model, x, y, seed=0)
    assert 0 <= r <= 1 and not model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert torch.equal(torch.random.get_rng_state(), state)
    again = k06.train_moons(x, y, lam=0.1, seed=1, steps=5, hidden=(16,))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
