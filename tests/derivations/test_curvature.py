"""Symbolic curvature derivations agree with the numeric lossviz implementation."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from lossviz import curvature
from lossviz.derivations import curvature as dc
from lossviz.papers import l03_gfs_sharpness as l03
from lossviz.papers import l06_saddle_free_newton as l06

F64 = torch.float64


def _half_mse(out, t):
    return 0.5 * ((out - t) ** 2).mean()


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_scalar_network_hessian_symbolic_equals_numeric(depth):
    d = dc.scalar_network(depth)
    rng = np.random.default_rng(depth)
    w = rng.uniform(0.5, 2.0, depth)
    y = 5.0
    data = (torch.ones(1, 1, dtype=F64), torch.full((1, 1), y, dtype=F64))
    # anywhere: the full symbolic Hessian equals lossviz's exact Hessian
    H_num = curvature.exact_hessian(l03.ScalarNetwork(w), _half_mse, data).matrix.numpy()
    np.testing.assert_allclose(np.array(d.hessian_fn(*w, y), dtype=float), H_num, rtol=1e-12, atol=1e-12)
    # on the minimiser manifold: rank one with eigenvalue y^2 sum 1/w^2 (= the GFS sharpness)
    w_star, sharp = l03.gradient_flow_solution(w, y)
    assert float(d.sharpness_fn(*w_star, y)) == pytest.approx(sharp, rel=1e-13)
    H_star = curvature.exact_hessian(l03.ScalarNetwork(w_star), _half_mse, data).matrix
    np.testing.assert_allclose(
        np.array(d.hessian_fn(*w_star, y), dtype=float), H_star.numpy(), rtol=1e-9, atol=1e-9
    )
    assert float(torch.linalg.eigvalsh(H_star)[-1]) == pytest.approx(
        float(d.sharpness_fn(*w_star, y)), rel=1e-10
    )
    # and the symbolic manifold Hessian is the full Hessian with prod w = y substituted
    sub = {d.w[-1]: d.y / sp.Mul(*d.w[:-1])}
    assert sp.simplify(d.hessian.subs(sub) - d.hessian_on_manifold.subs(sub)) == sp.zeros(depth, depth)


def test_saddle_critical_points_and_eigenvalues_match_numeric():
    d = dc.saddle_2d()
    eps = 0.01
    assert [(c[d.x], c[d.y]) for c in d.critical_points] == [(0, 0), (0, -1), (0, 1)]
    for c, eig in zip(d.critical_points, d.eigenvalues):
        H = np.array(d.hessian_fn(float(c[d.x]), float(c[d.y]), eps), dtype=float)
        want = sorted(float(sp.sympify(k).subs(d.eps, eps)) for k in eig)
        np.testing.assert_allclose(np.linalg.eigvalsh(H), want, atol=1e-15)
    f = lambda p: p[0] ** 2 / 2 + eps * (p[1] ** 4 / 4 - p[1] ** 2 / 2)  # noqa: E731
    path = l06.second_order_path(f, [0.3, 1e-5], method="gd", lr=1.5, steps=3)
    np.testing.assert_allclose(
        path.points[1:, 1] / path.points[:-1, 1],
        float(d.gd_escape_factor.subs({d.lr: 1.5, d.eps: eps})),
        rtol=1e-8,
    )
    sfn = l06.second_order_path(f, [0.3, 1e-5], method="sfn", damping=1e-4, steps=3)
    np.testing.assert_allclose(
        sfn.points[1:, 1] / sfn.points[:-1, 1],
        float(d.sfn_escape_factor.subs({d.delta: 1e-4, d.eps: eps})),
        rtol=1e-6,
    )
    newton = l06.second_order_path(f, [0.3, 1e-5], method="newton", steps=1)
    assert abs(newton.points[1, 1]) < 1e-12 * 1e-5 * 1e3 and float(d.newton_factor) == 0
    X, Y = np.meshgrid(np.linspace(-1, 1, 3), np.linspace(-1, 1, 4), indexing="ij")
    vals = d.f_fn(X, Y, eps)
    assert vals.shape == (3, 4)
    assert vals[1, 0] == pytest.approx(f(torch.tensor([0.0, -1.0])).item())


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        dc.scalar_network(0)
