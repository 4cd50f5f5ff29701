"""Symbolic == numeric for lossviz.derivations.landscape (L01)."""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from lossviz.derivations import landscape as dl
from lossviz.papers import l01_large_step_logistic as l01


def test_logistic_gradient_symbolic_equals_autograd():
    d = dl.logistic_gradient(dim=3)
    for a, b in zip(d["grad"], d["closed"]):
        assert sp.simplify(a - b) == 0
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, w, y = rng.normal(size=3), rng.normal(size=3) * 3, float(rng.choice([-1.0, 1.0]))
        sym = np.asarray(d["numeric"](x, w, y), dtype=float)
        wt = torch.tensor(w, requires_grad=True)
        loss = l01.logistic_loss(torch.tensor(x)[None], torch.tensor([y]), wt)
        (g,) = torch.autograd.grad(loss, wt)
        np.testing.assert_allclose(sym, g.numpy(), rtol=1e-12, atol=1e-14)


def test_limit_is_heaviside_with_half_at_zero_as_used_by_batch_perceptron():
    lim = dl.sigmoid_limit()
    assert lim == {"positive margin": 0, "zero margin": sp.Rational(1, 2), "negative margin": 1}
    # lossviz's batch perceptron uses the same weights
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    v1 = l01.batch_perceptron(X, y, steps=1).w[0, 1]
    expected = sum(float(lim["zero margin"]) * y[i] * X[i] for i in range(3)) / 3
    assert torch.allclose(v1, expected)


def test_quadratic_local_entropy_symbolic_equals_quadrature():
    import pytest

    from lossviz import landscape

    d = dl.quadratic_local_entropy()
    assert sp.simplify(d["energy"] - d["closed"]) == 0
    grid = np.linspace(-10, 10, 4001)
    res = landscape.local_entropy(7.0 * grid**2 / 2, grid, 2.0, 0.3)
    m = np.abs(grid) < 3
    np.testing.assert_allclose(res.energy[m], d["energy_fn"](grid[m], 7.0, 2.0, 0.3), atol=1e-9)
    t = float(d["switch_temperature"].subs({d["gap"]: 0.2, d["a_s"]: 100.1, d["a_w"]: 2.322, d["gamma"]: 1}))
    assert t == pytest.approx(2 * 0.2 / (np.log(101.1) - np.log(3.322)))
