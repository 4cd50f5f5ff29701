"""lossviz.papers.k08_depth_mup: the K08 lr x depth toy and its claim statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz.papers import k08_depth_mup as k08

torch.set_num_threads(1)


def test_task_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a, b = k08.make_task(3), k08.make_task(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, k08.make_task(4).y)
    assert a.x.shape == (256, 16) and a.y.shape == (256, 1)
    # y = tanh(x A) b / sqrt(32) with A ~ N(0, 1/16): E y^2 = E tanh(z)^2 (z ~ N(0, |x|^2/16) ~ N(0, 1)) ~ 0.39
    assert 0.2 < float(a.y.pow(2).mean()) < 0.6


def test_final_loss_at_a_vanishing_lr_is_the_centred_initial_loss():
    # f - f_0 = 0 at init, so with lr -> 0 the final loss is mean(y^2)
    t = k08.make_task(0)
    for par in k08.PARAMETRIZATIONS:
        got = k08.final_loss(t, 3, 1e-9, parametrization=par, steps=3)
        assert got == pytest.approx(float(t.y.pow(2).mean()), rel=1e-4)


def test_final_loss_decreases_at_a_good_lr_and_diverges_at_a_huge_one():
    t = k08.make_task(0)
    assert k08.final_loss(t, 2, 1.0, steps=20) < 0.5 * float(t.y.pow(2).mean())
    assert k08.final_loss(t, 2, 1e4, steps=20) == math.inf


def test_global_rng_untouched_by_training():
    state = torch.random.get_rng_state()
    k08.final_loss(k08.make_task(1), 2, 0.5, steps=2)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_best_index_ignores_diverged_runs():
    losses = np.array([[0.3, 0.1, np.inf, np.nan], [np.inf, np.inf, 0.5, np.inf]])
    assert k08.best_index(losses).tolist() == [1, 2]
    with pytest.raises(ValueError, match="losses"):
        k08.best_index(np.zeros((2, 0)))


def test_lr_sweep_shape_and_stops_a_depth_after_the_first_divergence():
    sw = k08.lr_sweep(0, depths=(2, 4), lrs=(0.0625, 0.25, 1e4, 1e5), steps=5)
    assert sw.losses.shape == (2, 2, 4)
    assert np.all(np.isinf(sw.losses[..., 2:])) and np.all(np.isfinite(sw.losses[..., :2]))
    assert sw.best("depth_mup").shape == (2,)
    # the sweep entry is final_loss at the same settings
    t = k08.make_task(0)
    assert sw.losses[1, 1, 0] == pytest.approx(
        k08.final_loss(t, 4, 0.0625, parametrization="standard", steps=5)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lrs=(1.0, 0.5)), "lrs"),
        (dict(lrs=(0.0, 1.0)), "lrs"),
        (dict(lrs=()), "lrs"),
        (dict(depths=(0,)), "depths"),
        (dict(parametrizations=("mup",)), "parametrizations"),
    ],
)
def test_lr_sweep_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        k08.lr_sweep(0, steps=1, **kwargs)


def test_final_loss_bad_input():
    t = k08.make_task(0)
    with pytest.raises(ValueError, match="parametrization"):
        k08.final_loss(t, 2, 0.1, parametrization="ntk")
    with pytest.raises(ValueError, match="steps"):
        k08.final_loss(t, 2, 0.1, steps=0)
    with pytest.raises(ValueError, match="seed"):
        k08.make_task(-1)


def test_claim_statistics_on_a_given_sweep():
    lrs = np.asarray(k08.LRS)
    mup = np.full((5, 13), 1.0)
    std = np.full((5, 13), 1.0)
    for i, j in enumerate([8, 9, 8, 8, 9]):
        mup[i, j] = 0.01
    for i, j in enumerate([8, 6, 3, 0, 0]):
        std[i, j] = 0.02
    std[4] = np.inf
    sw = k08.LRSweep(k08.PARAMETRIZATIONS, np.asarray(k08.DEPTHS), lrs, np.stack([mup, std]))
    s = k08.claim_statistics(0, sweep=sw)
    assert s["mup_best"] == [8, 9, 8, 8, 9] and s["mup_spread"] == 1
    assert s["std_best"] == [8, 6, 3, 0, 0] and s["std_drift"] == 5 and s["l2_gap"] == 0
    assert s["mup_best_loss"] == [0.01] * 5 and s["std_smallest_lr_loss"][4] == math.inf


def test_final_loss_statistics_read_back_from_the_same_run():
    # "last", "tail_median" and "min" of one run, against the per-step losses of that run through train.fit
    t = k08.make_task(2)
    kw = dict(steps=8, tail=5)
    per_step = [k08.final_loss(t, 2, 2.0, steps=s, statistic="last") for s in range(1, 9)]
    assert k08.final_loss(t, 2, 2.0, statistic="last", **kw) == pytest.approx(per_step[-1])
    assert k08.final_loss(t, 2, 2.0, statistic="tail_median", **kw) == pytest.approx(
        float(np.median(per_step[-5:]))
    )
    assert k08.final_loss(t, 2, 2.0, **kw) == pytest.approx(min(per_step))  # "min" is the default
    # a spike: at this lr the loss is not monotone, so "min" is strictly below the last loss
    assert min(per_step) < per_step[-1]
    with pytest.raises(ValueError, match="tail"):
        k08.final_loss(t, 2, 1.0, steps=3, tail=0)
    with pytest.raises(ValueError, match="statistic"):
        k08.final_loss(t, 2, 1.0, steps=3, statistic="mean")
