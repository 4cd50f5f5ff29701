"""lossviz.papers.k07_self_distillation: the K07 toy and its claim statistics."""

from __future__ import annotations

import numpy as np
import torch

from lossviz import ntk
from lossviz.papers import k07_self_distillation as k07

torch.set_num_threads(1)


def test_task_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = k07.make_task(3), k07.make_task(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, k07.make_task(4).y)
    assert a.k.dtype == torch.float64 and a.k_test.shape == (400, 40)


def test_iterate_agrees_with_the_closed_form():
    t = k07.make_task(0)
    tr, te = k07.iterate(t, 1e-3, 0.3, 5)
    sd = ntk.self_distillation(t.k, t.y, t.k_test, ridge=1e-3, alpha=0.3, steps=range(1, 6))
    assert float((sd.train_predictions[..., 0] - tr).abs().max()) < 1e-9
    assert float((sd.predictions[..., 0] - te).abs().max()) < 1e-9


def test_step2_grid_brute_force_matches_closed_form_errors():
    t = k07.make_task(1)
    grid = np.array([-0.5, 0.0, 0.4, 1.0, 1.7])
    errs = k07.step2_grid_errors(t, 1e-3, grid)
    for a, e in zip(grid, errs):
        p = ntk.self_distillation(t.k, t.y, t.k_test, ridge=1e-3, alpha=float(a), steps=[2]).predictions[
            0, :, 0
        ]
        assert abs(float(k07.test_error(p, t)) - e) < 1e-12


def test_error_grid_alpha_one_row_is_the_teacher():
    t = k07.make_task(2)
    g = k07.error_grid(t, 1e-3)
    assert g.errors.shape == (len(k07.ALPHAS), len(k07.STEPS))
    assert np.allclose(g.errors[-1], g.teacher_error, atol=1e-12)


def test_claim_statistics_seed0_has_the_claimed_shape():
    s = k07.claim_statistics(0)
    assert s["closed_vs_iter"] < 1e-9 and s["inf_vs_krr"] < 1e-8
    assert s["sd0_norm_ratio"] < 1e-2 and abs(s["sd0_err_vs_zero"] - 1) < 0.05
    assert s["best_vs_teacher"] <= 0.8 and s["best_vs_tuned"] <= 1.05 and s["over_ratio"] >= 1
    assert s["alpha_star_gap"] <= 1e-12
