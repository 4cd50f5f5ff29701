"""Set-up of notebook L10 (Entropy-SGD, Chaudhari et al. 2017)."""

import numpy as np
import pytest
import torch

from lossviz.papers import l10_entropy_sgd as l10


def test_double_well_shape():
    assert l10.f1d(np.array([-1.0]))[0] < l10.f1d(np.array([1.45]))[0]  # the sharp well is deeper
    b = l10.barrier()
    assert -0.8 < b < -0.5
    t = torch.linspace(-4, 4, 11, dtype=torch.float64)
    np.testing.assert_allclose(l10.f1d(t).numpy(), l10.f1d(t.numpy()))
    lap = l10.laplace_switch_temperature()
    assert lap["a_sharp"] == pytest.approx(100.1) and lap["a_wide"] == pytest.approx(2.3222, abs=1e-4)
    assert 0.25 < lap["gap"] < 0.27


def test_starts_are_seeded_and_in_the_sharp_well():
    a, b = l10.starts(0), l10.starts(0)
    assert torch.equal(a, b) and not torch.equal(a, l10.starts(1))
    assert float(a.min()) >= -1.1 and float(a.max()) <= -0.9


def test_runs_shapes_and_seeds():
    x0 = l10.starts(0, 5)
    steps, paths = l10.run_gd(x0, steps=100, every=50)
    assert list(steps) == [0, 50, 100] and paths.shape == (3, 5)
    np.testing.assert_allclose(paths[0], x0.numpy())
    s1, p1 = l10.run_entropy_sgd(x0, outer_steps=3, inner_steps=10, seed=2)
    _, p2 = l10.run_entropy_sgd(x0, outer_steps=3, inner_steps=10, seed=2)
    _, p3 = l10.run_entropy_sgd(x0, outer_steps=3, inner_steps=10, seed=3)
    assert p1.shape == (4, 5) and np.array_equal(p1, p2) and not np.array_equal(p1, p3)
    # noise-free and gamma huge: Entropy-SGD is (almost) gradient descent on f and stays put
    _, p4 = l10.run_entropy_sgd(
        x0, gamma=1e4, temperature=0.0, lr=1e-5, inner_lr=1e-5, outer_steps=3, inner_steps=10
    )
    assert np.abs(p4[-1] - x0.numpy()).max() < 0.05


def test_switch_temperature_brackets():
    with pytest.raises(ValueError, match="switch"):
        l10.switch_temperature(1.0, lo=0.2, hi=0.5)
