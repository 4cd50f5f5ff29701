"""papers.l13_transformer_instabilities: z-loss, schedule, LR sensitivity, a short run, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz.papers import l13_transformer_instabilities as l13


def test_log_z_loss_value_and_gradient():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)
    loss = l13.log_z_loss(z, 0.3)
    lz = torch.logsumexp(z, -1)
    assert float(loss.detach()) == pytest.approx(0.3 * float((lz**2).mean().detach()), rel=1e-12)
    loss.backward()
    expect = 2 * 0.3 * lz[:, None] * z.softmax(-1) / 5
    assert torch.allclose(z.grad, expect.detach())
    shifted = (z - lz[:, None]).detach().requires_grad_()  # log Z = 0: no pull
    l13.log_z_loss(shifted, 0.3).backward()
    assert float(shifted.grad.abs().max()) < 1e-12
    with pytest.raises(ValueError, match="coef"):
        l13.log_z_loss(z, -1.0)
    with pytest.raises(TypeError, match="logits"):
        l13.log_z_loss(torch.zeros(2, 3, dtype=torch.int64), 1.0)


def test_warmup_cosine_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = l13.warmup_cosine(200)(opt)
    lrs = []
    for _ in range(200):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(2.0 / 50) and lrs[49] == pytest.approx(2.0)
    assert np.all(np.diff(lrs[:50]) > 0) and np.all(np.diff(lrs[50:]) <= 0)
    assert lrs[-1] < 1e-3 and max(lrs) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="warmup"):
        l13.warmup_cosine(10, 1.5)


def test_lr_sensitivity():
    assert l13.lr_sensitivity([0.5, 0.5, 0.5], 3.0) == 0.0
    assert l13.lr_sensitivity([0.0, 5.0, float("nan")], 3.0) == pytest.approx(2.0)  # capped at L0
    assert l13.lr_sensitivity([1.0, 2.0], 3.0) == pytest.approx(0.5)


def test_short_run_trains_records_and_leaves_rng_alone():
    state = torch.get_rng_state()
    ds = l13.make_data(0, steps=30)
    assert ds[0].x.shape == (30 * l13.BATCH, 2 * l13.LENGTH - 1) and ds[1].x.shape[0] == l13.N_EVAL
    r = l13.train_run(0, 0.03, "qk", steps=30, datasets=ds)
    again = l13.train_run(0, 0.03, "qk", steps=30, datasets=ds)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(r["loss"]) == 31 and len(r["attn"]) == len(r["log_z"]) == 31
    assert r["loss"][0] > 0.9 * math.log(l13.VOCAB) and r["loss"][-1] < r["loss"][0]
    assert r["max_attn"] <= math.sqrt(l13.D_MODEL // l13.HEADS) * 1.5  # qk-LN, gains near 1
    assert r["final_loss"] == again["final_loss"] and np.array_equal(r["attn"], again["attn"])
    z = l13.train_run(0, 0.03, "qk", z_coef=1.0, steps=30, datasets=ds)
    assert abs(z["final_log_z"]) < abs(r["final_log_z"])  # a strong z-loss pulls log Z to 0
    with pytest.raises(ValueError, match="variant"):
        l13.train_run(0, 0.1, "nope", steps=2)
    with pytest.raises(ValueError, match="lr"):
        l13.train_run(0, -0.1, steps=2)


def _fake(loss, attn, logz):
    return {"final_loss": loss, "max_attn": attn, "final_log_z": logz}


def test_statistics_on_a_made_up_sweep():
    res = {}
    for lr in l13.LRS:
        hi = lr >= 0.1
        res["base", lr] = _fake(3.3 if hi else 0.05, 5e3 if hi else 50.0, 3.0)
        res["qk", lr] = _fake(0.01 if lr < 1 else float("nan"), 40.0, 30.0)
        res["qk_z", lr] = _fake(0.01, 40.0, 0.03 if lr > 0.01 else 29.7)
    for lr in l13.CONTROL_LRS:
        res["base_z", lr] = _fake(3.0 if lr < 1 else float("nan"), 2e3 * lr, 0.1)
    st = l13.statistics(res)
    # the control runs are not part of the grid the sensitivities average over
    assert st["sens_base"] == pytest.approx(3 / 5 * (3.3 - 0.05))
    assert st["ctrl_basez_min_attn_top"] == pytest.approx(600.0)
    assert st["ctrl_basez_min_loss_top"] == pytest.approx(3.0 / math.log(32))
    assert st["base_min_attn_hi"] == 5e3 and st["base_min_loss_hi"] == pytest.approx(3.3 / math.log(32))
    assert st["qk_max_attn_mid"] == 40.0 and st["qk_max_loss_mid"] == 0.01
    assert st["sens_ratio"] == pytest.approx(st["sens_qk"] / st["sens_base"])
    assert st["z_ratio_03"] == pytest.approx(0.001) and st["ctrl_z_change_001"] == pytest.approx(0.01)
    assert st["ctrl_base_loss_003"] == 0.05 and math.isinf(st["qk_loss_lr1"])


def test_sweep_adds_the_z_loss_control_without_qk_layernorm():
    res = l13.sweep(0, lrs=(0.01,), variants=("base",), control_lrs=(0.3,), steps=2)
    assert set(res) == {("base", 0.01), ("base_z", 0.3)}
    assert res["base_z", 0.3]["z_coef"] == l13.Z_COEF and res["base", 0.01]["z_coef"] == 0.0
    assert set(l13.sweep(0, lrs=(0.01,), variants=("qk",), control_lrs=(), steps=2)) == {("qk", 0.01)}
