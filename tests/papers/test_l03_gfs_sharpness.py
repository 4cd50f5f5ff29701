"""lossviz.papers.l03_gfs_sharpness: the scalar network and its closed-form gradient-flow solution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import curvature
from lossviz.papers.l03_gfs_sharpness import ScalarNetwork, gradient_flow_solution

F64 = torch.float64


def test_gradient_flow_solution_matches_ode_and_exact_hessian():
    from scipy.integrate import solve_ivp

    y = 5.0
    for w0 in ([0.8, 1.5, 2.9], [3.0, 1.2, 1.4, 0.7], [2.0, 2.0, 2.0]):
        w0 = np.array(w0)
        w_star, sharp = gradient_flow_solution(w0, y)
        assert np.prod(w_star) == pytest.approx(y, rel=1e-12)
        np.testing.assert_allclose(w_star**2 - w_star[0] ** 2, w0**2 - w0[0] ** 2, atol=1e-10)

        def rhs(t, w):
            p = np.prod(w)
            return -(p - y) * p / w

        sol = solve_ivp(rhs, (0, 200), w0, rtol=1e-12, atol=1e-12, method="DOP853")
        np.testing.assert_allclose(sol.y[:, -1], w_star, atol=1e-6)
        net = ScalarNetwork(w_star)
        data = (torch.ones(1, 1, dtype=F64), torch.full((1, 1), y, dtype=F64))
        mse_half = lambda out, t: 0.5 * ((out - t) ** 2).mean()  # noqa: E731
        lam = curvature.exact_hessian(net, mse_half, data).eigenvalues
        assert float(lam[-1]) == pytest.approx(sharp, rel=1e-10)
        assert float(lam[:-1].abs().max()) < 1e-9 * sharp  # on the minimiser manifold: rank one


def test_gradient_flow_solution_bad_input():
    with pytest.raises(ValueError, match="sign"):
        gradient_flow_solution([1.0, -1.0], 5.0)
    with pytest.raises(ValueError, match="non-zero"):
        gradient_flow_solution([1.0, 0.0], 5.0)


def test_deprecated_aliases_in_curvature():
    for name, obj in (("ScalarNetwork", ScalarNetwork), ("gradient_flow_solution", gradient_flow_solution)):
        with pytest.warns(DeprecationWarning, match=f"curvature.{name} moved to lossviz.papers.l03"):
            assert getattr(curvature, name) is obj


def test_scalar_hessian_matches_exact_hessian_off_the_manifold():
    from lossviz.papers.l03_gfs_sharpness import scalar_hessian

    y = 5.0
    data = (torch.ones(1, 1, dtype=F64), torch.full((1, 1), y, dtype=F64))
    mse_half = lambda out, t: 0.5 * ((out - t) ** 2).mean()  # noqa: E731
    for w in ([0.8, 1.5, 2.9], [3.0, 1.2, -1.4, 0.7]):
        H = curvature.exact_hessian(ScalarNetwork(w), mse_half, data).matrix.numpy()
        np.testing.assert_allclose(scalar_hessian(w, y), H, atol=1e-12, rtol=1e-12)


def test_edge_of_stability_run_and_its_control():
    from lossviz.papers.l03_gfs_sharpness import eos_claim, eos_statistics, gd_run, imbalanced_start

    y = 5.0
    w0 = imbalanced_start(4, y, np.random.default_rng(0))
    assert np.all(w0 > 0)
    _, S0 = gradient_flow_solution(w0, y)
    run = gd_run(w0, 2 * 1.2 / S0, y)
    st = eos_statistics(run)
    assert eos_claim(st), st
    assert st["loss_rises"] >= 1 and st["gfs_max_rise"] <= 1e-12 and st["final_ratio"] <= 1.001
    assert st["iterate_max_rise"] > 0.1 and st["iterate_max_fall"] > 0.1  # the iterate oscillates
    assert run.steps == len(run.w) - 1 and run.sharpness.shape == run.loss.shape
    # below the edge of stability the claim's test fails: no loss rise, the GFS barely moves
    ctrl = eos_statistics(gd_run(w0, 2 * 0.8 / S0, y))
    assert not eos_claim(ctrl) and ctrl["loss_rises"] == 0 and ctrl["gfs_drop"] < 0.1
    # a run that is cut short does not converge and fails too
    assert not eos_claim(eos_statistics(gd_run(w0, 2 * 1.2 / S0, y, max_steps=3)))
