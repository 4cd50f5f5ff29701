"""lossviz.ntk._self_distillation: closed-form iterated self-distillation (Borup & Andersen 2021)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz import ntk

torch.set_num_threads(1)
F64 = torch.float64


def _problem(n=12, m=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g, dtype=F64) * 2 - 1
    xt = torch.rand(m, 1, generator=g, dtype=F64) * 2 - 1
    y = torch.randn(n, 2, generator=g, dtype=F64)
    return ntk.rbf_kernel(x, length=0.4), ntk.rbf_kernel(xt, x, length=0.4), y


def _iterated(k, kt, y, ridge, alpha, steps):
    target, tr, te = y, [], []
    for _ in range(steps):
        fit = ntk.kernel_regression(k, target, kt, ridge=ridge)
        tr.append(fit.train_predictions)
        te.append(fit.predictions)
        target = alpha * y + (1 - alpha) * fit.train_predictions
    return torch.stack(tr), torch.stack(te)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.7, 1.0, 1.4, -0.5])
def test_closed_form_equals_repeated_ridge_solves(alpha):
    k, kt, y = _problem()
    sd = ntk.self_distillation(k, y, kt, ridge=0.05, alpha=alpha, steps=range(1, 9))
    tr, te = _iterated(k, kt, y, 0.05, alpha, 8)
    assert torch.allclose(sd.train_predictions, tr, atol=1e-10)
    assert torch.allclose(sd.predictions, te, atol=1e-10)
    assert torch.allclose(torch.einsum("mp,tpj->tmj", kt, sd.coef), sd.predictions)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_infinite_steps_is_ridge_regression_with_amplified_ridge(alpha):
    k, kt, y = _problem(seed=1)
    sd = ntk.self_distillation(k, y, kt, ridge=0.02, alpha=alpha, steps=[math.inf, 10**6])
    krr = ntk.kernel_regression(k, y, kt, ridge=0.02 / alpha)
    for i in range(2):
        assert torch.allclose(sd.train_predictions[i], krr.train_predictions, atol=1e-10)
        assert torch.allclose(sd.predictions[i], krr.predictions, atol=1e-10)
    assert sd.amplified_ridge == pytest.approx(0.02 / alpha)
    d = sd.eigenvalues
    assert torch.allclose(sd.gains[0], d / (d + 0.02 / alpha))


def test_alpha_one_is_the_first_fit_and_alpha_zero_collapses():
    k, kt, y = _problem(seed=2)
    one = ntk.self_distillation(k, y, kt, ridge=0.1, alpha=1.0, steps=[1, 2, 50, math.inf])
    assert torch.allclose(one.predictions, one.predictions[:1].expand_as(one.predictions), atol=1e-12)
    zero = ntk.self_distillation(k, y, kt, ridge=0.1, alpha=0.0, steps=[1, 10**5, math.inf])
    assert zero.predictions[1].norm() < 1e-6 * zero.predictions[0].norm()
    assert float(zero.predictions[2].abs().max()) == 0.0
    assert zero.amplified_ridge == math.inf
    # the gains fall monotonically towards the fixed point and never below it
    half = ntk.self_distillation(k, y, ridge=0.1, alpha=0.5, steps=range(1, 30))
    fixed = half.eigenvalues / (half.eigenvalues + 0.2)
    assert bool((half.gains >= fixed - 1e-15).all())
    assert bool((half.gains[1:] <= half.gains[:-1] + 1e-15).all())


def test_distillation_weight_minimises_the_error_over_a_grid():
    k, kt, y = _problem(seed=3)
    y = y[:, :1]
    teacher = ntk.kernel_regression(k, y, ridge=0.01).train_predictions
    target = torch.sin(torch.linspace(0, 3, kt.shape[0], dtype=F64))[:, None]
    a = ntk.distillation_weight(k, y, teacher, target, ridge=0.01, k_eval_train=kt)

    def err(al):
        p = ntk.self_distillation(k, y, kt, ridge=0.01, alpha=al, steps=[2]).predictions[0]
        return float((p - target).pow(2).sum())

    grid = np.linspace(a - 2, a + 2, 401)
    assert err(a) <= min(err(g) for g in grid) + 1e-12
    # on the training points, with the data itself as the target
    a_tr = ntk.distillation_weight(k, y, teacher, y, ridge=0.01)
    p2 = lambda al: ntk.self_distillation(k, y, ridge=0.01, alpha=al, steps=[2]).train_predictions[0]  # noqa: E731
    e = lambda al: float((p2(al) - y).pow(2).sum())  # noqa: E731
    assert e(a_tr) <= min(e(a_tr + dx) for dx in (-1e-3, 1e-3))


def test_bad_inputs_name_the_argument():
    k, kt, y = _problem()
    with pytest.raises(ValueError, match="ridge"):
        ntk.self_distillation(k, y, ridge=0.0, alpha=0.5)
    with pytest.raises(ValueError, match="steps"):
        ntk.self_distillation(k, y, ridge=0.1, alpha=0.5, steps=[0])
    with pytest.raises(ValueError, match="steps"):
        ntk.self_distillation(k, y, ridge=0.1, alpha=0.5, steps=[1.5])
    with pytest.raises(ValueError, match="alpha"):
        ntk.self_distillation(k, y, ridge=0.1, alpha=1.5, steps=[math.inf])
    with pytest.raises(ValueError, match="k_test_train"):
        ntk.self_distillation(k, y, kt[:, :3], ridge=0.1, alpha=0.5)
    with pytest.raises(TypeError, match="alpha"):
        ntk.self_distillation(k, y, ridge=0.1, alpha="half")
    with pytest.raises(ValueError, match="teacher"):
        ntk.distillation_weight(k, y, y[:, :1], y, ridge=0.1)
    with pytest.raises(ValueError, match="k_eval_train"):
        ntk.distillation_weight(k, y, y, y, ridge=0.1, k_eval_train=kt[:, :3])


@pytest.mark.parametrize("backend", ["plotly", "matplotlib"])
def test_plot_draws_one_gain_curve_per_step_against_the_eigenvalues(backend):
    x = torch.linspace(-1, 1, 12, dtype=torch.float64)[:, None]
    res = ntk.self_distillation(
        ntk.rbf_kernel(x, x), torch.sin(3 * x), ridge=1e-2, alpha=0.3, steps=(1, 2, math.inf)
    )
    fig = res.plot(backend=backend)
    if backend == "plotly":
        assert [t.name for t in fig.data] == ["t = 1", "t = 2", "t = inf"]
        assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text
        # the curve is the gains sorted by eigenvalue
        order = torch.argsort(res.eigenvalues)
        assert list(fig.data[1].y) == pytest.approx(res.gains[1, order].tolist())
    else:
        assert len(fig.axes[0].get_lines()) == 3 and fig.axes[0].get_xscale() == "log"
    with pytest.raises(TypeError, match="result"):
        ntk.plot_self_distillation("not a result")
