"""lossviz.papers.k02_grokking_lazy_rich: the centred two-layer model and its closed-form solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import ntk, train
from lossviz.papers import k02_grokking_lazy_rich as k02

torch.set_num_threads(1)
F64 = torch.float64


def _data(n=30, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64) / d**0.5
    return x, torch.randn(n, generator=g, dtype=F64)


def test_centered_two_layer_and_closed_form_gd_match_autograd():
    x, y = _data()
    net = k02.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64)
    assert torch.allclose(net(x), torch.zeros(30, dtype=F64))  # centred at init
    ref = k02.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64)
    lr = 50.0
    run = k02.train_two_layer(net, x, y, lr=lr, steps=5, x_test=x[:7], y_test=y[:7], snapshot_at=[0, 5])
    # the reference: the same objective through lossviz.train.fit (autograd + torch SGD)
    hist = train.fit(ref, train.batch_loss(lambda m, b: 0.5 / 9.0 * (m(b[0]) - b[1]).pow(2).mean()), (x, y),
                     steps=5, lr=lr, progress=False)  # fmt: skip
    assert np.allclose(run.train_loss, hist.loss, rtol=1e-10)
    assert torch.allclose(net.layer.weight, ref.layer.weight, rtol=1e-10, atol=1e-12)
    assert sorted(run.kernels) == [0, 5] and run.steps_run == 5 and not run.stopped_early
    assert ntk.empirical(net, x).method == "structured"
    # the uncentred model trained on shifted targets follows exactly the same path
    unc = k02.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64, center=False)
    run2 = k02.train_two_layer(unc, x, y + unc.initial_output(x), lr=lr, steps=5)
    assert np.allclose(run2.train_loss, run.train_loss, rtol=1e-10)
    assert run.drop_step("train", 1.01) == 0
    run3 = k02.train_two_layer(
        k02.CenteredTwoLayer(5, 40, alpha=3.0, seed=1, dtype=F64), x, y, lr=lr, steps=5,
        x_test=x[:7], y_test=y[:7], snapshot_test_fraction=0.999,
    )  # fmt: skip
    assert run3.drop_step("test", 0.999) in run3.kernels and 5 in run3.kernels
    with pytest.raises(TypeError, match="CenteredTwoLayer"):
        k02.train_two_layer(nn.Linear(5, 1), x, y, lr=1.0, steps=1)


def test_solver_shares_the_callback_contract():
    """A special solver offers every step through train.run_callbacks: [0, 5, 7] with every=5."""
    x, y = _data()
    snaps = ntk.NTKSnapshots(x, every=5)
    seen = []
    run = k02.train_two_layer(k02.CenteredTwoLayer(5, 20, alpha=2.0, seed=0, dtype=F64), x, y, lr=10.0, steps=7,
                              callbacks=[snaps, lambda step, model, loss, history: seen.append(step)])  # fmt: skip
    assert snaps.steps == [0, 5, 7] and seen == list(range(8)) and run.steps_run == 7
    # a callback returning True stops the solver; the stopping step is the final one
    stop = k02.train_two_layer(k02.CenteredTwoLayer(5, 20, alpha=2.0, seed=0, dtype=F64), x, y, lr=10.0, steps=7,
                               callbacks=[lambda step, model, loss, history: step == 3])  # fmt: skip
    assert stop.steps_run == 3 and stop.stopped_early and 3 in stop.kernels


def test_stop_factor_trains_past_the_drop():
    x, _ = _data(60)
    y = 2 * x[:, 0] + x[:, 1]  # learnable: the test (here = train) loss drops
    kw = dict(lr=30.0, steps=400, x_test=x, y_test=y, stop_test_fraction=0.5)
    a = k02.train_two_layer(k02.CenteredTwoLayer(5, 20, alpha=1.0, seed=0, dtype=F64), x, y, **kw)
    b = k02.train_two_layer(
        k02.CenteredTwoLayer(5, 20, alpha=1.0, seed=0, dtype=F64), x, y, stop_factor=3.0, **kw
    )
    t = a.drop_step("test")
    assert a.steps_run == t and b.steps_run == min(3 * t, 400)
    assert b.loss_at(b.steps_run) <= a.loss_at(t)


def test_constructor_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    k02.CenteredTwoLayer(5, 40, seed=1)
    assert torch.equal(before, torch.random.get_rng_state())
