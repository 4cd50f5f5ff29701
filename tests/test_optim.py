"""lossviz.optim: Lion and ADOPT against their update rules written out by hand."""

import numpy as np
import pytest
import torch

from lossviz import optim, train


def _param(values, dtype=torch.float64):
    return torch.nn.Parameter(torch.tensor(values, dtype=dtype))


def test_lion_step_matches_closed_form():
    w = _param([3.0, -0.5, 0.2])
    opt = optim.Lion([w], lr=0.1, betas=(0.9, 0.99), weight_decay=1.0)
    m0 = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    opt.state[w]["exp_avg"] = m0.clone()
    g = torch.tensor([-20.0, 2.0, -1.0], dtype=torch.float64)
    w.grad = g.clone()
    x0 = w.detach().clone()
    opt.step()
    c = 0.9 * m0 + 0.1 * g
    torch.testing.assert_close(w.detach(), 0.9 * x0 - 0.1 * torch.sign(c))
    torch.testing.assert_close(opt.state[w]["exp_avg"], 0.99 * m0 + 0.01 * g)


def test_lion_sign_of_zero_is_zero_and_decay_is_decoupled():
    w = _param([2.0])
    opt = optim.Lion([w], lr=0.5, weight_decay=0.2)
    w.grad = torch.zeros(1, dtype=torch.float64)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([2.0 * 0.9], dtype=torch.float64))
    torch.testing.assert_close(opt.state[w]["exp_avg"], torch.zeros(1, dtype=torch.float64))


def test_adopt_matches_algorithm_1_by_hand():
    w = _param([0.5, -1.0, 2.0])
    opt = optim.ADOPT([w], lr=0.1, betas=(0.8, 0.6), eps=1e-6)
    gs = [
        torch.tensor(g, dtype=torch.float64) for g in ([1.0, -2.0, 0.5], [3.0, 1.0, -1.0], [-1.0, 4.0, 2.0])
    ]
    x, m, v = w.detach().clone(), torch.zeros(3, dtype=torch.float64), gs[0] ** 2
    w.grad = gs[0].clone()
    opt.step()
    torch.testing.assert_close(w.detach(), x)  # the first call only initialises v
    for g in gs[1:]:
        w.grad = g.clone()
        opt.step()
        m = 0.8 * m + 0.2 * g / v.sqrt().clamp_min(1e-6)
        x = x - 0.1 * m
        v = 0.6 * v + 0.4 * g**2
        torch.testing.assert_close(w.detach(), x)
        torch.testing.assert_close(opt.state[w]["exp_avg_sq"], v)
    assert opt.state[w]["step"] == 3


def test_plain_and_clipped_adopt_differ_exactly_where_v_is_tiny():
    # a coordinate with v_0 = 0 (a unit dead on the first batch): plain ADOPT steps by g / eps
    wp, wc = _param([0.0, 0.0]), _param([0.0, 0.0])
    plain = optim.ADOPT([wp], lr=1e-3, betas=(0.0, 0.9), eps=1e-6)
    clip = optim.ClippedADOPT([wc], lr=1e-3, betas=(0.0, 0.9), eps=1e-6)
    for g in ([0.0, 1.0], [0.5, 1.0], [0.5, 1.0]):
        for w, o in ((wp, plain), (wc, clip)):
            w.grad = torch.tensor(g, dtype=torch.float64)
            o.step()
    # step 1: u = (0.5 / 1e-6, 1), step 2: u = (0.5 / sqrt(0.025), 1 / 1)
    u2 = 0.5 / np.sqrt(0.1 * 0.25)
    np.testing.assert_allclose(wp.detach().numpy(), [-1e-3 * (0.5e6 + u2), -2e-3])
    np.testing.assert_allclose(wc.detach().numpy(), [-1e-3 * (1.0 + min(u2, 2**0.25)), -2e-3])
    assert optim.ClippedADOPT([_param([0.0])]).defaults["clip_exponent"] == 0.25
    assert optim.ADOPT([_param([0.0])]).defaults["clip_exponent"] is None


@pytest.mark.parametrize("make", [optim.Lion, optim.ADOPT, optim.ClippedADOPT])
def test_state_follows_the_parameter_dtype_and_skips_parameters_without_grad(make):
    w, frozen = _param([1.0, -1.0], torch.float32), _param([5.0], torch.float32)
    opt = make([w, frozen], lr=0.01)
    for _ in range(3):
        w.grad = torch.ones(2, dtype=torch.float32)
        opt.step()
    assert all(t.dtype == torch.float32 for t in opt.state[w].values() if torch.is_tensor(t))
    assert frozen not in opt.state and frozen.item() == 5.0


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.Lion(p, lr=0.05),
        lambda p: optim.ADOPT(p, lr=0.05),
        lambda p: optim.ClippedADOPT(p, lr=0.05),
    ],
)
def test_train_fit_minimises_a_quadratic_with_each_optimiser(make):
    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(3, 1, bias=False, dtype=torch.float64)
    torch.nn.init.zeros_(net.weight)
    x = torch.randn(64, 3, dtype=torch.float64, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    with torch.no_grad():
        first = float(((net(x) - y) ** 2).mean())
    train.fit(net, torch.nn.MSELoss(), (x, y), optimizer=make, steps=300, progress=False)
    with torch.no_grad():
        assert float(((net(x) - y) ** 2).mean()) < 0.01 * first


def test_bad_input_names_the_argument():
    w = [_param([0.0])]
    for make in (optim.Lion, optim.ADOPT):
        with pytest.raises(ValueError, match="lr"):
            make(w, lr=-1.0)
        with pytest.raises(TypeError, match="betas"):
            make(w, betas=0.9)
        with pytest.raises(ValueError, match=r"betas\[1\]"):
            make(w, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        optim.Lion(w, weight_decay=-1.0)
    with pytest.raises(ValueError, match="eps"):
        optim.ADOPT(w, eps=0.0)
    with pytest.raises(ValueError, match="clip_exponent"):
        optim.ADOPT(w, clip_exponent=-1.0)


def test_papers_modules_use_the_same_classes():
    from lossviz.papers import l11_lion_box, l12_adopt

    assert l11_lion_box.Lion is optim.Lion
    assert l12_adopt.ADOPT is optim.ADOPT and l12_adopt.ClippedADOPT is optim.ClippedADOPT
