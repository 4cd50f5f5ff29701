"""Tests of the random calibrated (EnsLoss) margin losses."""

from __future__ import annotations

import pytest
import torch

from lossviz.losses import ensloss, ensloss_derivatives, integrate_derivatives


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_draws_negative_nondecreasing_convex_calibrated() -> None:
    gen = _gen(0)
    for i in range(100):
        z = torch.randn(32, generator=_gen(1000 + i), dtype=torch.float64) * 3
        z[0] = 0.0
        g = ensloss_derivatives(z, generator=gen)
        order = torch.argsort(z)
        gs = g[order]
        assert (g < 0).all()  # decreasing loss; phi'(0) < 0 (calibration)
        assert g[0] < 0
        assert (gs[1:] - gs[:-1] >= -1e-12).all()  # non-decreasing derivative = convex
        zs, phi = integrate_derivatives(z, g)
        assert (phi[1:] - phi[:-1] <= 1e-12).all()
        slopes = (phi[1:] - phi[:-1]) / (zs[1:] - zs[:-1]).clamp_min(1e-12)
        assert (slopes[1:] - slopes[:-1] >= -1e-9).all()


def test_clip_and_large_margin_decay() -> None:
    z = torch.tensor([-1.0, 0.0, 0.5, 2.0, 4.0], dtype=torch.float64)
    g = ensloss_derivatives(z, generator=_gen(3), clip=-0.5)
    assert (g[:3] >= -0.5).all() and (g < 0).all()  # bounded by |clip|, like BCE's derivative by 1
    assert (g[3:] >= -0.5 / z[3:] - 1e-12).all()
    # the lower half of a large batch's margins sits at clip (P(-exp(N(0,1)) < -1) = 1/2), the
    # upper half strictly between clip and 0
    z = torch.linspace(-1.0, 1.0, 2000, dtype=torch.float64)
    g = ensloss_derivatives(z, generator=_gen(4))
    at_clip = g == -1.0
    assert 0.45 < float(at_clip.double().mean()) < 0.55
    assert bool(at_clip[:800].all()) and not bool(at_clip[1200:].any())


def test_gradient_is_derivative() -> None:
    z = torch.randn(16, dtype=torch.float64, generator=_gen(1)).requires_grad_(True)
    loss = ensloss(z, generator=_gen(5), reduction="sum")
    loss.backward()
    g = ensloss_derivatives(z, generator=_gen(5))
    torch.testing.assert_close(z.grad, g)
    per = ensloss(z.detach(), generator=_gen(5), reduction="none")
    torch.testing.assert_close(per.mean(), ensloss(z.detach(), generator=_gen(5)))


def test_seeded_reproducible_and_global_rng_untouched() -> None:
    z = torch.linspace(-2, 3, 20)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = ensloss_derivatives(z, generator=_gen(7))
    b = ensloss_derivatives(z, generator=_gen(7))
    c = ensloss_derivatives(z, generator=_gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(state, torch.get_rng_state())
    assert a.dtype == z.dtype and a.device == z.device


def test_bad_input() -> None:
    z = torch.zeros(4)
    with pytest.raises(TypeError, match="generator"):
        ensloss_derivatives(z, generator=0)
    with pytest.raises(TypeError, match="margins"):
        ensloss_derivatives([0.0, 1.0], generator=_gen())
    with pytest.raises(ValueError, match="margins"):
        ensloss_derivatives(torch.zeros(2, 2), generator=_gen())
    with pytest.raises(ValueError, match="margins"):
        ensloss_derivatives(torch.zeros(3, dtype=torch.long), generator=_gen())
    with pytest.raises(ValueError, match="clip"):
        ensloss_derivatives(z, generator=_gen(), clip=0.5)
    with pytest.raises(ValueError, match="reduction"):
        ensloss(z, generator=_gen(), reduction="max")
    with pytest.raises(ValueError, match="derivatives"):
        integrate_derivatives(z, torch.zeros(3))
