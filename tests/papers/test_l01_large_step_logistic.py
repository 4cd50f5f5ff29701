"""lossviz.papers.l01_large_step_logistic: LR+GD with large steps and its perceptron limit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossviz.papers import l01_large_step_logistic as l01

F = nn.functional


def test_logistic_gd_matches_autograd_and_perceptron_limit():
    X, y = l01.separable_cloud(60, seed=1)
    run = l01.logistic_gd(X, y, [0.5, 1e8], steps=8)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for t in range(8):
        loss = l01.logistic_loss(X, y, w)
        assert run.loss[0, t] == pytest.approx(loss.item(), rel=1e-12)
        (g,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.5 * g
    assert torch.allclose(run.w[0, -1], w.detach(), rtol=1e-12)
    per = l01.batch_perceptron(X, y, steps=8)
    cos = F.cosine_similarity(run.w[1, 1:], per.w[0, 1:], dim=-1)
    assert cos.min() > 1 - 1e-9
    assert run.errors.shape == (2, 9) and run.errors[0, 0] == 60  # w0 = 0 misclassifies all


def test_perceptron_tie_rule_is_one_half():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    per = l01.batch_perceptron(X, y, steps=1)
    # both margins are 0 at v = 0: each point contributes with weight 1/2
    assert torch.allclose(per.w[0, 1], torch.tensor([0.25, -0.25], dtype=torch.float64))


def test_normalized_and_stop_when_separated_and_bad_input():
    X, y = l01.separable_cloud(100, seed=0)
    run = l01.logistic_gd(X, y, [1.0, 10.0], steps=10_000, stop_when_separated=True)
    assert (run.steps_to_zero >= 0).all() and run.w.shape[1] == run.steps_to_zero.max() + 1
    nrm = l01.logistic_gd(X, y, [1.0], steps=10_000, stop_when_separated=True, normalized=True)
    assert nrm.steps_to_zero[0] < run.steps_to_zero[0]
    with pytest.raises(ValueError, match="gammas"):
        l01.logistic_gd(X, y, [-1.0], steps=3)
    with pytest.raises(ValueError, match="y"):
        l01.logistic_gd(X, y * 2, [1.0], steps=3)
    with pytest.raises(ValueError, match="steps"):
        l01.logistic_gd(X, y, [1.0], steps=0)
    assert l01.separable_cloud(10, dtype=torch.float32)[0].dtype == torch.float32


@pytest.mark.parametrize(
    "name", ["GDRun", "separable_cloud", "logistic_loss", "logistic_gd", "batch_perceptron"]
)
def test_old_landscape_names_warn_and_forward(name):
    from lossviz import landscape

    with pytest.warns(DeprecationWarning, match=f"moved to lossviz.papers.l01_large_step_logistic.{name}"):
        obj = getattr(landscape, name)
    assert obj is getattr(l01, name)
    assert name not in landscape.__all__


def test_run_until_separated_has_no_fixed_cap_and_refuses_non_separable():
    X, y = l01.separable_cloud(80, seed=3)
    fixed = l01.logistic_gd(X, y, [0.05, 1.0], steps=50, stop_when_separated=True)
    assert fixed.steps_to_zero[0] == -1  # a fixed budget is too small for the small step
    run = l01.run_until_separated(X, y, [0.05, 1.0], first_cap=50)
    assert (run.steps_to_zero > 50).all() or run.steps_to_zero[0] > 50
    full = l01.logistic_gd(
        X, y, [0.05, 1.0], steps=int(run.steps_to_zero.max()) + 5, stop_when_separated=True
    )
    assert full.steps_to_zero.tolist() == run.steps_to_zero.tolist()
    y_bad = l01.flip_labels(y, 0.2, seed=0)
    assert int((y_bad != y).sum()) == 16
    with pytest.raises(ValueError, match="max_steps"):
        l01.run_until_separated(X, y_bad, [1.0], first_cap=10, max_steps=200)


def test_loss_slopes_are_one_in_the_perceptron_regime_and_checked():
    X, y = l01.separable_cloud(100, seed=0)
    run = l01.logistic_gd(X, y, [1e2, 1e3, 1e4, 1e5], steps=6)
    s = l01.loss_slopes(run, steps=(1, 2, 3))
    assert s.shape == (3,) and abs(s - 1).max() < 0.05
    small = l01.logistic_gd(X, y, [1e-3, 1e-2], steps=6)
    assert abs(l01.loss_slopes(small, steps=(3,), min_gamma=1e-3)[0]) < 0.1  # small steps: loss ~ log 2
    with pytest.raises(ValueError, match="min_gamma"):
        l01.loss_slopes(small)
