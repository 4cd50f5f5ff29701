"""papers.l09_batch_size_lr: loss, data, the sympy batch-mean variance, lr_max against GD's 2/lambda."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lossviz.papers import l09_batch_size_lr as l09
from lossviz.testing import assert_model_unchanged


def test_half_mse_is_half_the_mean_squared_norm():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(7, 10, generator=g, dtype=torch.float64)
    tgt = torch.randn(7, 10, generator=g, dtype=torch.float64)
    ref = 0.5 * np.mean([float(((out[i] - tgt[i]) ** 2).sum()) for i in range(7)])
    assert float(l09.half_mse(out, tgt)) == pytest.approx(ref, rel=1e-14)


def test_batch_mean_variance_matches_enumeration_of_all_subsets():
    d = l09.batch_mean_variance()
    vals = np.array([0.3, -1.2, 2.5, 0.7, 4.1, -0.4])
    n = len(vals)
    pop_var = vals.var()  # population variance sigma^2
    for b in range(1, n + 1):
        means = [vals[list(c)].mean() for c in itertools.combinations(range(n), b)]
        assert np.var(means) == pytest.approx(d["fn"](pop_var, n, b), rel=1e-12)
    assert d["at_full_batch"] == 0


def test_make_data_seeded_identical_control_and_rng_untouched():
    state, np_state = torch.random.get_rng_state(), np.random.get_state()
    x, t, y = l09.make_data(3, 64)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert x.shape == (64, 64) and t.shape == (64, 10) and x.dtype == torch.float64
    assert torch.equal(t.argmax(1), y)
    x2, _, _ = l09.make_data(3, 64)
    assert torch.equal(x, x2)
    assert not torch.equal(x, l09.make_data(4, 64)[0])
    xc, tc, _ = l09.make_data(3, 64, identical=True)
    assert torch.equal(xc, x[:1].expand(64, -1)) and torch.equal(tc, t[:1].expand(64, -1))


def _quadratic(lam_scale=1.0):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, generator=g, dtype=torch.float64) * lam_scale
    t = torch.randn(32, 2, generator=g, dtype=torch.float64)
    model = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=g, dtype=torch.float64))
    lam = float(torch.linalg.eigvalsh(x.T @ x / 32)[-1])  # Hessian of half_mse: kron(I_2, X^T X / n)
    return model, x, t, lam


def test_max_stable_lr_full_batch_is_the_grid_point_below_two_over_lambda():
    model, x, t, lam = _quadratic(1.3)
    with assert_model_unchanged(model):
        lr, tried = l09.max_stable_lr(model, x, t, 32, lam, start_factor=1.5, steps=150)
    expected = 2.0 ** (math.floor(4 * math.log2(2 / lam)) / 4)  # GD on a quadratic: stable iff lr < 2/lambda
    assert lr == pytest.approx(expected, rel=1e-12)
    assert tried[-1] == (lr, True) and all(not ok for _, ok in tried[:-1])
    assert tried[0][0] <= 3 / lam < tried[0][0] * 2**0.25
    assert not l09.is_stable(model, x, t, 2.05 / lam, 32, steps=150)
    assert l09.is_stable(model, x, t, 1.9 / lam, 32, steps=150)


def test_control_batches_equal_the_full_hessian_and_model_unchanged():
    x, t, _ = l09.make_data(0, 256, identical=True)
    model = l09.make_model(0)
    with assert_model_unchanged(model):
        spec = l09.spectra(model, x, t, batch_sizes=(8, 128), bottom_sizes=(8,), num_batches=2, seed=0)
    for b in (8, 128):
        np.testing.assert_allclose(spec["top"][b].eigenvalues, spec["full_top"], rtol=1e-9)
    np.testing.assert_allclose(spec["bottom"][8].eigenvalues, spec["full_bottom"], rtol=1e-9, atol=1e-12)


def test_bad_input_names_the_argument():
    model, x, t, lam = _quadratic()
    with pytest.raises(ValueError, match="lam_batch"):
        l09.max_stable_lr(model, x, t, 8, 0.0)
    with pytest.raises(ValueError, match="lr"):
        l09.is_stable(model, x, t, -1.0, 8)
    with pytest.raises(ValueError, match="seed"):
        l09.make_data(-1)
    with pytest.raises(ValueError, match="n"):
        l09.make_data(0, 5000)
    with pytest.raises(ValueError, match="lr_sizes"):
        l09.run(0, lr_sizes=(24,))
