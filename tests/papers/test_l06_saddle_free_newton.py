"""lossviz.papers.l06_saddle_free_newton: GD, Newton and saddle-free Newton with exact Hessians."""

from __future__ import annotations

import math
import warnings

import matplotlib.figure
import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from lossviz import curvature
from lossviz.papers.l06_saddle_free_newton import OptimizationPath, plot_paths_2d, second_order_path

F64 = torch.float64


def _saddle(eps=0.01):
    return lambda p: p[0] ** 2 / 2 + eps * (p[1] ** 4 / 4 - p[1] ** 2 / 2)


def test_newton_goes_to_the_saddle_and_sfn_escapes():
    f = _saddle()
    newton = second_order_path(f, [1.5, 3e-4], method="newton", steps=30)
    assert newton.grad_norms[-1] < 1e-8 and newton.min_eigenvalues[-1] < 0
    sfn = second_order_path(f, [1.5, 3e-4], method="sfn", steps=60)
    assert sfn.min_eigenvalues[-1] > 0
    assert sfn.values[-1] == pytest.approx(-0.01 / 4, rel=1e-6)
    assert np.all(np.diff(sfn.values) <= 1e-15)  # Armijo: monotone
    gd = second_order_path(f, [1.5, 3e-4], method="gd", lr=1.0, steps=60)
    assert gd.values[-1] > sfn.values[-1] + 0.001  # GD is still on the plateau
    assert sfn.steps_to(-0.99 * 0.01 / 4) < 30
    assert gd.steps_to(-0.99 * 0.01 / 4) is None


def test_newton_on_a_quadratic_is_one_step():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)
    path = second_order_path(lambda p: 0.5 * p @ A @ p - b @ p, [5.0, 5.0], method="newton", steps=1)
    np.testing.assert_allclose(path.points[-1], torch.linalg.solve(A, b).numpy(), atol=1e-12)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="x0.*non-finite"):
        second_order_path(_saddle(), [math.nan, 0.0])
    with pytest.raises(ValueError, match="method"):
        second_order_path(_saddle(), [1.0, 0.0], method="bfgs")


def test_plot_paths_2d():
    path = second_order_path(_saddle(), [1.0, 1e-3], method="sfn", steps=5)
    f = lambda X, Y: X**2 / 2 + 0.01 * (Y**4 / 4 - Y**2 / 2)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plot_paths_2d(f, {"sfn": path})
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.axes[0].get_xlabel() == "x" and fig.axes[0].get_ylabel() == "y"
    pfig = plot_paths_2d(f, {"sfn": path, "raw": path.points}, backend="plotly")
    assert isinstance(pfig, go.Figure) and pfig.layout.xaxis.title.text == "x"
    assert pfig.data[1].line.color != pfig.data[2].line.color  # fixed colours per path
    with pytest.raises(ValueError, match="paths"):
        plot_paths_2d(f, {"bad": np.zeros((3, 3))})


def test_deprecated_aliases_in_curvature():
    for name, obj in (
        ("second_order_path", second_order_path),
        ("OptimizationPath", OptimizationPath),
        ("plot_paths_2d", plot_paths_2d),
    ):
        with pytest.warns(DeprecationWarning, match=f"curvature.{name} moved to lossviz.papers"):
            assert getattr(curvature, name) is obj


def test_best_gd_and_race():
    from lossviz.papers.l06_saddle_free_newton import best_gd, race, saddle_2d

    f = saddle_2d(0.01)
    path, lr, steps = best_gd(f, [1.0, 1e-3], (1.0, 1.9), -0.99 * 0.01 / 4)
    assert lr == 1.9 and steps == path.steps_to(-0.99 * 0.01 / 4) and steps > 100
    slow = second_order_path(f, [1.0, 1e-3], method="gd", lr=1.0, steps=steps)
    assert slow.steps_to(-0.99 * 0.01 / 4) is None  # the smaller step size is slower
    never = best_gd(f, [1.0, 0.0], (1.0,), -0.99 * 0.01 / 4, max_steps=20)
    assert never[2] is None and never[1] == 1.0
    r = race([1.0, 1e-3], 0.01, (1.0, 1.9))
    assert r["gd_steps"] >= 10 * r["sfn_steps"]
    assert r["newton"].min_eigenvalues[-1] < 0 < r["sfn"].min_eigenvalues[-1]
    with pytest.raises(ValueError, match="lrs"):
        best_gd(f, [1.0, 1e-3], (), -1.0)


def test_linear_net_saddles():
    from lossviz.papers.l06_saddle_free_newton import linear_net

    net = linear_net(0)
    assert net.theta0.shape == (72,) and net.target.shape == (6, 6)
    np.testing.assert_allclose(torch.linalg.svdvals(net.target)[:3].numpy(), [10.0, 1.0, 0.1], rtol=1e-12)
    assert net.saddle_levels == pytest.approx([50.505, 0.505, 0.005, 0.0])
    assert float(net.loss(torch.zeros(72, dtype=F64))) == pytest.approx(50.505)
    torch.testing.assert_close(linear_net(0).theta0, net.theta0)  # seeded
