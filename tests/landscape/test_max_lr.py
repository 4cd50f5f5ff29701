"""max_trainable_lr: an analytically known eta* (GD on a quadratic diverges above 2 / lambda_max)
is bracketed within the resolution; per-layer lrs via param groups; the model and the global RNG
are untouched; bad input is refused."""

import math

import pytest
import torch
from torch import nn

from lossviz import landscape, testing


class Quad(nn.Module):
    """o = x[:, 0] p1 + x[:, 1] p2: with x = diag(a, b) and ``_loss`` = sum (o - y)^2 / 2 the
    Hessian is diag(a^2, b^2) exactly, so full-batch GD diverges iff lr > 2 / a^2."""

    def __init__(self):
        super().__init__()
        self.p1 = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        self.p2 = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))

    def forward(self, x):
        return x[:, 0] * self.p1 + x[:, 1] * self.p2


def _loss(out, y):
    return 0.5 * ((out - y) ** 2).sum()


A2, B2 = 3.0, 0.75  # Hessian eigenvalues: GD diverges iff lr > 2 / 3 (or 8 / 3 with p1 slow)
X = torch.tensor([[math.sqrt(A2), 0.0], [0.0, math.sqrt(B2)]], dtype=torch.float64)
Y = torch.zeros(2, dtype=torch.float64)


def _metric(net):
    with torch.no_grad():
        return float(_loss(net(X), Y))


INIT = 0.5 * (A2 + B2)  # the loss at p = (1, 1)


def _search(model, **kw):
    kw.setdefault("steps", 200)
    return landscape.max_trainable_lr(
        model, _loss, (X, Y), _metric, target=INIT, mode="min", lr_max=16.0, **kw
    )


def test_quadratic_eta_star_is_two_over_lambda_max():
    res = _search(Quad())
    lo, hi = res.bracket
    assert res.found
    assert lo <= 2 / A2 < hi, res.bracket
    assert hi / lo == pytest.approx(2 ** (1 / 16), rel=1e-9)
    assert res.lr == lo == max(res.lrs[res.trained])
    assert res.runs == len(res.values) == len(res.diverged)
    # halving from 16: 16, 8, 4, 2, 1 fail, 0.5 trains, then 4 bisections
    assert list(res.lrs[:6]) == [16.0, 8.0, 4.0, 2.0, 1.0, 0.5]
    assert res.runs == 10
    assert res.diverged[0] and not res.trained[0]


def test_lr_start_near_answer_same_result_fewer_runs():
    full = _search(Quad())
    near = _search(Quad(), lr_start=0.5)
    assert near.bracket == full.bracket
    assert near.runs < full.runs


def test_param_groups_slow_first_parameter_moves_eta_star():
    def slow_p1(net, lr):
        return torch.optim.SGD([{"params": [net.p1], "lr": 0.01}, {"params": [net.p2]}], lr=lr)

    res = _search(Quad(), optimizer=slow_p1)
    lo, hi = res.bracket
    assert lo <= 2 / B2 < hi, res.bracket


def test_optimizer_over_original_model_is_refused_and_model_untouched():
    net = Quad()
    with testing.assert_model_unchanged(net):
        with pytest.raises(ValueError, match="optimizer"):
            _search(net, optimizer=lambda m, lr: torch.optim.SGD(net.parameters(), lr=lr))
    with pytest.raises(TypeError, match="optimizer"):
        _search(net, optimizer=lambda m, lr: None)


def test_model_and_global_rng_unchanged():
    net = testing.BNDropoutNet()
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(32) % 3
    before = torch.get_rng_state()
    with testing.assert_model_unchanged(net):
        res = landscape.max_trainable_lr(
            net,
            nn.functional.cross_entropy,
            (x, y),
            lambda m: 1.0,
            target=0.5,
            steps=3,
            refine=1,
            lr_max=1.0,
        )
    assert torch.equal(before, torch.get_rng_state())
    assert res.lr == 1.0 and math.isnan(res.bracket[1]) and not res.found


def test_nothing_trains_gives_nan():
    res = landscape.max_trainable_lr(
        Quad(), _loss, (X, Y), _metric, target=-1.0, mode="min", steps=2, lr_max=1.0, lr_min=0.25
    )
    assert math.isnan(res.lr) and not res.found
    assert list(res.lrs) == [1.0, 0.5, 0.25]


@pytest.mark.parametrize(
    ("kw", "exc", "name"),
    [
        ({"lr_min": 2.0, "lr_max": 1.0}, ValueError, "lr_max"),
        ({"lr_min": -1.0}, ValueError, "lr_min"),
        ({"factor": 1.0}, ValueError, "factor"),
        ({"refine": -1}, ValueError, "refine"),
        ({"steps": 0}, ValueError, "steps"),
        ({"mode": "up"}, ValueError, "mode"),
        ({"target": math.nan}, ValueError, "target"),
        ({"lr_start": 0.0}, ValueError, "lr_start"),
        ({"divergence_threshold": 0.0}, ValueError, "divergence_threshold"),
        ({"optimizer": "sgd"}, TypeError, "optimizer"),
    ],
)
def test_bad_input(kw, exc, name):
    args = {"target": INIT, "steps": 5, **kw}
    with pytest.raises(exc, match=name):
        landscape.max_trainable_lr(Quad(), _loss, (X, Y), _metric, **args)
    with pytest.raises(TypeError, match="metric"):
        landscape.max_trainable_lr(Quad(), _loss, (X, Y), 3, target=0.5, steps=5)
