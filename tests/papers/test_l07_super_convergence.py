"""lossviz.papers.l07_super_convergence: the L07 toy, the 1cycle runs and the claim statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz.papers import l07_super_convergence as l07

torch.set_num_threads(1)


def test_data_and_model_are_seeded_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = l07.spirals(3), l07.spirals(3), l07.spirals(4)
    net1, net2 = l07.bn_mlp(3), l07.bn_mlp(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and not torch.equal(a[0], c[0])
    assert a[0].shape == (600, 2) and a[2].shape == (2000, 2) and set(a[1].tolist()) == {0, 1, 2}
    assert float(a[0].norm(dim=1).max()) < 2.5  # radius-1 spirals (plus noise) scaled by 2
    assert all(torch.equal(p, q) for p, q in zip(net1.parameters(), net2.parameters()))
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net1.modules()) == 3


def test_one_cycle_lr_is_the_three_phase_piecewise_linear_schedule():
    r = l07.run(0, "1cycle", 0.2, 40)
    t = np.arange(40)
    up, down = 0.45 * 40 - 1, 0.9 * 40 - 2  # torch's phase ends (steps counted from 0)
    ref = np.where(
        t <= up,
        0.02 + 0.18 * t / up,
        np.where(
            t <= down, 0.2 - 0.18 * (t - up) / (down - up), 0.02 - (0.02 - 2e-4) * (t - down) / (39 - down)
        ),
    )
    np.testing.assert_allclose(r["lrs"], ref, rtol=1e-6)
    assert r["lrs"].max() == pytest.approx(0.2) and r["lrs"][-1] == pytest.approx(2e-4)


def test_constant_run_recorded_early_is_the_short_run():
    long = l07.run(1, "constant", 0.1, 30, record_at=[10])
    short = l07.run(1, "constant", 0.1, 10)
    assert l07.acc_at(long, 10) == short["final"]
    assert np.all(long["lrs"] == 0.1) and long["steps"].tolist() == [10, 30]
    with pytest.raises(ValueError, match="step"):
        l07.acc_at(long, 20)


def test_divergence_is_scored_at_chance():
    r = l07.run(0, "constant", 1e4, 20)
    assert r["diverged"] and r["final"] == pytest.approx(1 / 3)


def test_claim_statistics_small_budget_is_consistent():
    s = l07.claim_statistics(0, short=20, long=40, constant_lrs=(0.03, 0.3), long_lrs=(0.3,))
    assert set(s["const_short"]) == {0.03, 0.3} and set(s["const_long"]) == {0.3}
    assert s["gain_vs_short"] == pytest.approx(s["cycle_large"] - max(s["const_short"].values()))
    assert s["gap_vs_long"] == pytest.approx(s["cycle_large"] - s["const_long"][0.3])
    assert s["large_minus_small"] == pytest.approx(s["cycle_large"] - s["cycle_small"])
    assert 0 < s["range_lr"] <= l07.RANGE_LR_MAX
    assert s["large_minus_range"] == pytest.approx(s["cycle_large"] - s["cycle_range"])


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="schedule"):
        l07.run(0, "cosine", 0.1, 10)
    with pytest.raises(ValueError, match="lr"):
        l07.run(0, "constant", -0.1, 10)
    with pytest.raises(ValueError, match="long_lrs"):
        l07.claim_statistics(0, short=10, long=20, constant_lrs=(0.1,), long_lrs=(0.3,))
    with pytest.raises(ValueError, match="max_lrs"):
        l07.claim_statistics(0, short=10, long=20, max_lrs=(0.1,))
    with pytest.raises(ValueError, match="long"):
        l07.claim_statistics(0, short=20, long=10)
