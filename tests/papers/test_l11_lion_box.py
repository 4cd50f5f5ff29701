"""Set-up of notebook L11 (Lion as a box-constrained optimiser, Chen, Liu, Liang & Liu 2024)."""

import numpy as np
import pytest
import torch

from lossviz.papers import l11_lion_box as l11


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="optimizer"):
        l11.run_2d(np.eye(2), np.ones(2), np.zeros(2), optimizer="adam")
    with pytest.raises(ValueError, match="x0"):
        l11.run_2d(np.eye(2), np.ones(2), np.zeros(3))


def test_box_minimiser_against_a_grid():
    q = l11.quadratic(3)
    g = np.linspace(-1, 1, 801)
    xx = np.stack(np.meshgrid(g, g, indexing="ij"), -1)
    fx = l11.f_quad(xx, q["A"], q["c"])
    best = xx.reshape(-1, 2)[fx.argmin()]
    assert np.abs(best - q["x_box"]).max() < 5e-3
    assert l11.f_quad(q["x_box"], q["A"], q["c"]) <= fx.min() + 1e-12


def test_constants_and_schedule():
    k = l11.lyapunov_constants(0.01, (0.9, 0.99), 1.0)
    assert k["alpha"] == pytest.approx(1.0) and k["eps"] == pytest.approx(0.1)
    assert k["kappa"] == pytest.approx(0.9 / 1.1)
    lrs = l11.lr_schedule(100, 0.01, 0.7)
    assert np.all(lrs[:70] == 0.01) and lrs[-1] == 0 and np.all(np.diff(lrs) <= 0)
    d = l11.derivation()
    assert d["entry_bound_fn"](1e-9, 3.0, 0.01) == pytest.approx(np.log(1e-9 / 3) / np.log(0.99))


def test_short_run_obeys_the_box_and_leaves_the_rng_alone():
    q = l11.quadratic(0)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    run = l11.run_2d(q["A"], q["c"], q["x0_far"], steps=300)
    assert torch.equal(state, torch.get_rng_state()) and np.array_equal(np_state, np.random.get_state()[1])
    assert run["x"].shape == (301, 1, 2) and run["m"].shape == (301, 1, 2)
    assert l11.contraction_violations(run["x"][:, 0], run["lr"], 1.0) == 0
    e = l11.entry_step(run["x"][:, 0], 1.0)
    assert e is not None and np.abs(run["x"][e:, 0]).max() <= 1 + 1e-9
    sgd = l11.run_2d(q["A"], q["c"], q["x0_far"], steps=300, optimizer="sgdw", lr=0.05, constant_fraction=1.0)
    np.testing.assert_allclose(sgd["x"][-1, 0], l11.ridge_point(q["A"], q["c"], 1.0), atol=1e-6)


def test_numpy_recursion_equals_the_fit_run():
    q = l11.quadratic(2)
    x0 = np.stack([q["x0_far"], q["x0_near"], np.zeros(2)])
    m0 = np.stack([np.zeros(2), np.zeros(2), -3 * q["A"] @ (-q["c"])])
    wds = [1.0, 0.5, 1.0]
    ref = l11.run_2d(q["A"], q["c"], x0, weight_decay=wds, m0=m0, steps=400)
    fast = l11.lion_quadratic(q["A"], q["c"], x0, weight_decay=wds, m0=m0, steps=400)
    np.testing.assert_array_equal(fast["x"], ref["x"])
    np.testing.assert_allclose(fast["m"], ref["m"], atol=1e-12)
    with pytest.raises(ValueError, match="weight_decay"):
        l11.lion_quadratic(q["A"], q["c"], x0, weight_decay=[1.0, 2.0])
    with pytest.raises(ValueError, match="x0"):
        l11.lion_quadratic(q["A"], q["c"], np.zeros(3))


def test_lambda_grid_ends_at_the_box_solution():
    g = l11.lambda_grid(0, [0.5, 1.0, 2.0], steps=3000)
    assert g["x"].shape == (3001, 3, 2, 2) and g["x_box"].shape == (3, 2)
    assert g["end_dist_box"].max() < 1e-3
    # pushed-out coordinates approach 1/lambda from above, slowest at small lambda (factor 1 - eta lambda)
    assert np.all(np.abs(g["x"][-1]).max(-1) <= 1 / g["lambdas"][:, None] + 1e-5)
    with pytest.raises(ValueError, match="lambdas"):
        l11.lambda_grid(0, [0.0])


def test_lyapunov_coupling_term_is_nonnegative_on_the_box():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(500, 3))
    m = rng.standard_normal((500, 3))
    h = l11.lyapunov(np.zeros(500), x, m, alpha=1.0, eps=0.1, weight_decay=1.0)
    assert h.min() >= -1e-12  # Fenchel-Young: ||m||_1 - lambda m.x >= 0 when ||lambda x||_inf <= 1
    with pytest.raises(ValueError, match="shape"):
        l11.lyapunov(np.zeros(2), x, m, alpha=1.0, eps=0.1, weight_decay=1.0)
