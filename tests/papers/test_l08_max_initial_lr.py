"""papers.l08_max_initial_lr: data split, He init with a 1/fan_in readout, the slow input layer,
eta* on one small net (model untouched, a seed-fixed answer), lambda_1 over non-input layers,
and the regression statistics on an exact power law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz.papers import l08_max_initial_lr as l08
from lossviz.testing import assert_model_unchanged


def test_configs_are_the_curriculum_grid():
    assert len(l08.CONFIGS) == 11
    assert all(w >= 16 * d for d, w in l08.CONFIGS)
    dw = sorted(d * w for d, w in l08.CONFIGS)
    assert dw[0] == 128 and dw[-1] == 4096


def test_make_data_split_seeded_disjoint_and_rng_untouched():
    state = torch.random.get_rng_state()
    x, y, xt, yt = l08.make_data(3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert x.shape == (1200, 64) and xt.shape == (597, 64) and x.dtype == torch.float32
    x2, *_ = l08.make_data(3)
    x4, *_ = l08.make_data(4)
    assert torch.equal(x, x2) and not torch.equal(x, x4)
    rows = {tuple(r.tolist()) for r in x[:200]}
    assert not any(tuple(r.tolist()) in rows for r in xt)
    with pytest.raises(ValueError, match="seed"):
        l08.make_data(-1)


def test_make_model_bias_free_he_init_and_readout():
    net = l08.make_model(3, 512, seed=0)
    assert all(m.bias is None for m in [*net.layers, net.head])
    assert net.layers[0].weight.var().item() == pytest.approx(2 / 64, rel=0.05)
    assert net.layers[1].weight.var().item() == pytest.approx(2 / 512, rel=0.02)
    assert net.head.weight.var().item() == pytest.approx(1 / 512, rel=0.1)
    same = l08.make_model(3, 512, seed=0)
    assert torch.equal(net.head.weight, same.head.weight)
    assert not torch.equal(net.layers[1].weight, l08.make_model(3, 512, seed=1).layers[1].weight)
    with pytest.raises(ValueError, match="depth"):
        l08.make_model(0, 8)


def test_slow_input_sgd_groups():
    net = l08.make_model(2, 16)
    opt = l08.slow_input_sgd()(net, 0.7)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.7]
    assert opt.param_groups[0]["params"][0] is net.layers[0].weight
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    same = l08.slow_input_sgd(None)(net, 0.7)
    assert [g["lr"] for g in same.param_groups] == [0.7]
    with pytest.raises(ValueError, match="input_lr"):
        l08.slow_input_sgd(0.0)


def test_eta_star_one_net_model_untouched_bracket_and_lr_start():
    split = l08.make_data(0)
    net = l08.make_model(2, 64, seed=0)
    with assert_model_unchanged(net):
        res = l08.eta_star(net, split, seed=0)
    assert res.found and 0.5 < res.lr < 8.0, res.lr
    assert res.bracket[1] / res.bracket[0] == pytest.approx(2 ** (1 / 16))
    assert math.log2(16 / res.lr) * 16 == pytest.approx(round(math.log2(16 / res.lr) * 16), abs=1e-9)
    again = l08.eta_star(net, split, seed=0, lr_start=res.lr)
    assert again.lr == res.lr and again.runs < res.runs
    # the condition-(ii) control (input layer at the searched lr too) is a search of its own
    same = l08.eta_star(net, split, seed=0, lr_start=res.lr, input_lr=None)
    assert same.found


def test_sharpness_excludes_input_layer_and_is_positive():
    x, y, *_ = l08.make_data(0)
    net = l08.make_model(2, 32, seed=0)
    with assert_model_unchanged(net):
        lam = l08.sharpness(net, x[:256], y[:256])
    assert lam > 0 and math.isfinite(lam)


def test_statistics_exact_power_law():
    d = np.array([d for d, _ in l08.CONFIGS])
    w = np.array([w for _, w in l08.CONFIGS])
    eta = 3.0 * (d * w) ** -0.7
    lam = 0.01 * (d * w) ** 1.0
    st = l08.statistics({"depth": d, "width": w, "eta": eta, "lambda1": lam})
    assert st["slope"] == pytest.approx(-0.7, abs=1e-10)
    assert st["r2_dw"] == pytest.approx(1.0, abs=1e-12)
    assert st["r2_w"] < st["r2_dw"] and st["r2_d"] < st["r2_dw"]
    assert st["lambda_slope"] == pytest.approx(1.0, abs=1e-10)
    assert st["eta_on_lambda_slope"] == pytest.approx(-0.7, abs=1e-10)
    assert st["eta_lambda_min"] == pytest.approx(float((eta * lam).min()))
    assert st["exp_d"] == pytest.approx(-0.7, abs=1e-10) and st["exp_w"] == pytest.approx(-0.7, abs=1e-10)
    assert st["r2_d_w"] == pytest.approx(1.0, abs=1e-12)
    # separate powers of depth and width: the two-variable fit recovers them, the dw fit cannot
    sep = l08.statistics({"depth": d, "width": w, "eta": 2.0 * d**-1.2 * w**-0.4, "lambda1": lam})
    assert sep["exp_d"] == pytest.approx(-1.2, abs=1e-10) and sep["exp_w"] == pytest.approx(-0.4, abs=1e-10)
    assert sep["r2_d_w"] == pytest.approx(1.0, abs=1e-12) and sep["r2_dw"] < 0.99
    nolam = l08.statistics({"depth": d, "width": w, "eta": eta, "lambda1": lam * np.nan})
    assert "lambda_slope" not in nolam
