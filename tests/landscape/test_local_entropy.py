"""Local entropy by quadrature (Chaudhari et al. 2017) against closed forms."""

import math

import numpy as np
import pytest

from lossviz import landscape

GRID = np.linspace(-12, 12, 4801)


@pytest.mark.parametrize("a, gamma, t", [(1.0, 1.0, 0.1), (50.0, 2.0, 0.3), (0.5, 10.0, 0.02)])
def test_quadratic_well_matches_closed_form(a, gamma, t):
    res = landscape.local_entropy(a * GRID**2 / 2, GRID, gamma, t)
    m = np.abs(GRID) <= 3
    exact = a * gamma * GRID**2 / (2 * (a + gamma)) + 0.5 * t * math.log(1 + a / gamma)
    np.testing.assert_allclose(res.energy[m], exact[m], atol=1e-8)
    np.testing.assert_allclose(res.mean[m], gamma * GRID[m] / (a + gamma), atol=1e-8)
    np.testing.assert_allclose(res.variance[m], t / (a + gamma), rtol=1e-6)
    np.testing.assert_allclose(res.curvature[m], a * gamma / (a + gamma), rtol=1e-5)


def test_gradient_is_gamma_times_x_minus_mean():
    g = np.linspace(-4, 4, 2001)
    f = np.sin(3 * g) + 0.1 * g**2
    res = landscape.local_entropy(f, g, 2.0, 0.2)
    num = np.gradient(res.energy, g)
    np.testing.assert_allclose(
        num[10:-10], (2.0 * (g - res.mean))[10:-10], atol=1e-3
    )  # central differences, dx = 0.004
    assert res.curvature.max() <= 2.0 + 1e-12


def test_large_gamma_recovers_f_and_moments_flag():
    g = np.linspace(-4, 4, 2001)
    f = np.cos(2 * g)
    res = landscape.local_entropy(f, g, 1e4, 0.1, moments=False)
    assert res.mean is None and res.variance is None and res.resolution == pytest.approx(0.79, abs=0.01)
    # f_{gamma,T} ~ f - f'^2 / (2 gamma) + (T/2) log(1 + f''/gamma): at most 2e-4 + 2e-5 here
    assert np.abs(res.energy - f)[np.abs(g) < 3].max() < 3e-4
    # an unresolved Gaussian (width << dx): the rectangle rule subtracts T log(dx / sqrt(2 pi T / gamma))
    bad = landscape.local_entropy(f, g, 1e4, 1e-3)
    assert bad.resolution < 0.1
    assert f[1000] - bad.energy[1000] == pytest.approx(
        1e-3 * math.log(0.004 / math.sqrt(2 * math.pi * 1e-7)), rel=1e-3
    )
    with pytest.raises(ValueError, match="1-D"):
        landscape.local_entropy(np.zeros((3, 3)), (g[:3], g[:3]), 1.0, 1.0).curvature  # noqa: B018


def test_two_d_separable_equals_brute_force_and_product():
    xs = np.linspace(-3, 3, 41)
    ys = np.linspace(-2, 2, 31)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    f = np.sin(X) * np.cos(Y) + 0.2 * X**2
    gamma, t = 1.5, 0.4
    res = landscape.local_entropy(f, (xs, ys), gamma, t)
    dv = (xs[1] - xs[0]) * (ys[1] - ys[0])
    q = np.stack([X.ravel(), Y.ravel()], 1)
    a = -(f.ravel()[None] + gamma / 2 * ((q[:, None, :] - q[None, :, :]) ** 2).sum(-1)) / t
    mx = a.max(1, keepdims=True)
    lse = (mx[:, 0] + np.log(np.exp(a - mx).sum(1))).reshape(X.shape)
    brute = -t * (lse + math.log(dv)) + t * math.log(2 * math.pi * t / gamma)
    np.testing.assert_allclose(res.energy, brute, atol=1e-10)
    # additive separable f: the energy is the sum of the 1-D energies
    sep = landscape.local_entropy(lambda x, y: np.cos(x) + y**2, (xs, ys), gamma, t)
    e1 = landscape.local_entropy(np.cos(xs), xs, gamma, t).energy
    e2 = landscape.local_entropy(ys**2, ys, gamma, t).energy
    np.testing.assert_allclose(sep.energy, e1[:, None] + e2[None, :], atol=1e-10)


def test_descent_reaches_smoothed_argmin():
    g = np.linspace(-4, 4, 2001)
    f = 0.05 * g**2 - np.exp(-((g + 1) ** 2) / 0.02) - 0.8 * np.exp(-((g - 1.5) ** 2) / 0.72)
    target = landscape.local_entropy(f, g, 0.3, 0.3).argmin[0]
    path = landscape.local_entropy_descent(f, g, np.array([-1.0, 0.0, 2.0]), 0.3, 0.3, steps=100)
    assert path.shape == (101, 3)
    assert np.abs(path[-1] - target).max() < 5e-3


def test_bad_inputs():
    g = np.linspace(-1, 1, 11)
    with pytest.raises(ValueError, match="gamma"):
        landscape.local_entropy(g**2, g, 0.0, 1.0)
    with pytest.raises(ValueError, match="temperature"):
        landscape.local_entropy(g**2, g, 1.0, -1.0)
    with pytest.raises(ValueError, match="values"):
        landscape.local_entropy(g[:5], g, 1.0, 1.0)
    with pytest.raises(ValueError, match="uniformly"):
        landscape.local_entropy(g**2, g**3, 1.0, 1.0)
    with pytest.raises(TypeError, match="grid"):
        landscape.local_entropy(g**2, "x", 1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        landscape.local_entropy(g / 0, g, 1.0, 1.0)


def test_plot_both_backends():
    g = np.linspace(-2, 2, 101)
    res = landscape.local_entropy(g**2, g, 1.0, 0.1)
    fig = res.plot(backend="matplotlib")
    assert fig.axes[0].get_xlabel() == "x"
    assert len(res.plot().data) == 4
