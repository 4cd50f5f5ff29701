"""lossviz.landscape._trainability: the batched kernel against autograd, classification, box counting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.landscape import _trainability

F = nn.functional


@pytest.mark.parametrize("fast_tanh", [False, True])
def test_trainability_kernel_matches_autograd(fast_tanh):
    X, Y, W1, W2 = _trainability.mean_field_problem(16, 16, 16, seed=0, dtype=torch.float64, device="cpu")
    lr_in = torch.tensor([1.0, 30.0, 100.0], dtype=torch.float64)
    lr_out = torch.tensor([5.0, 10.0, 30.0], dtype=torch.float64)
    steps = 15
    hist = torch.full((steps + 1, 3), float("nan"), dtype=torch.float64)
    _trainability._train_chunk(X, Y, W1, W2, lr_in, lr_out, steps, math.inf, 1000, hist, fast_tanh)
    for c in range(3):
        w1, w2 = W1.clone().requires_grad_(), W2.clone().requires_grad_()
        for t in range(steps + 1):
            loss = _trainability.mean_field_loss(X, Y, w1, w2)
            assert float(hist[t, c]) == pytest.approx(loss.item(), rel=1e-9, abs=1e-12), (c, t)
            g1, g2 = torch.autograd.grad(loss, (w1, w2))
            with torch.no_grad():
                w1 -= lr_in[c] * g1
                w2 -= lr_out[c] * g2


def test_trainability_classifies_and_drops_diverged():
    res = landscape.trainability(
        (-1.0, 4.0), (-1.0, 4.0), resolution=12, steps=60, dtype=torch.float64, workers=1
    )
    assert res.converged.shape == (12, 12)
    assert not (res.converged & res.diverged).any()
    assert res.diverged[-1, -1] and not res.diverged[0, 0]
    assert res.cell_steps < 12 * 12 * 60
    assert np.isfinite(res.score).all() and ((res.score >= 0) & (res.score <= 1)).all()
    two = landscape.trainability(
        (-1.0, 4.0), (-1.0, 4.0), resolution=12, steps=60, dtype=torch.float64, workers=2, chunk=16
    )
    np.testing.assert_array_equal(res.converged, two.converged)
    np.testing.assert_array_equal(res.diverged, two.diverged)
    img = landscape.plotting.trainability_image(res)
    assert np.isfinite(img).all()
    fig = landscape.plot_trainability(res)
    assert np.isfinite(np.asarray(fig.data[0].z, dtype=float)).all()
    (x0, x1), (y0, y1) = res.zoom(10)
    assert x1 - x0 == pytest.approx(0.5) and y1 - y0 == pytest.approx(0.5)


def test_box_counting_controls():
    n = 128
    ii, jj = np.mgrid[:n, :n]
    disc = (ii - 60) ** 2 + (jj - 70) ** 2 < 40**2
    assert landscape.box_counting_dimension(disc).dimension < 1.1
    rand = np.random.default_rng(0).random((n, n)) < 0.5
    assert landscape.box_counting_dimension(rand).dimension > 1.9
    with pytest.raises(ValueError, match="outcome"):
        landscape.box_counting_dimension(np.zeros(5, dtype=bool))


def test_trainability_bad_inputs():
    with pytest.raises(ValueError, match="x_range"):
        landscape.trainability((1.0, 0.0))
    with pytest.raises(ValueError, match="resolution"):
        landscape.trainability(resolution=1)
    with pytest.raises(ValueError, match="dtype"):
        landscape.trainability(dtype=torch.float16)
