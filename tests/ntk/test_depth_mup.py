"""lossviz.ntk._depth_mup: residual MLPs in Depth-muP (Yang, Yu, Zhu & Hayou 2024) or unscaled."""

from __future__ import annotations

import math

import pytest
import torch

from lossviz import ntk

torch.set_num_threads(1)
F64 = torch.float64


def _x(n=256, d=8, seed=0, dtype=F64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _rms(t):
    return float(t.detach().pow(2).mean().sqrt())


def test_forward_equals_the_formula_written_out():
    net = ntk.ResidualMLP(8, 32, 3, seed=1, dtype=F64)
    x = _x(5)
    h = x @ net.input_layer.weight.T / math.sqrt(8)
    for b in net.blocks:
        h = h + (1 / math.sqrt(3)) * torch.relu(h) @ b.weight.T / math.sqrt(32)
    f = h @ net.readout.weight.T / 32
    assert torch.allclose(net(x), f, atol=1e-12)
    assert torch.allclose(net.features(x), h, atol=1e-12)
    assert len(net.hidden(x)) == 4


def test_branch_multiplier_table():
    assert ntk.branch_multiplier(16) == pytest.approx(0.25)
    assert ntk.branch_multiplier(16, "standard") == 1.0
    assert ntk.branch_multiplier(4, "depth_mup", 2.0) == pytest.approx(1.0)
    assert ntk.branch_multiplier(4, "standard", 2.0) == 2.0
    assert ntk.ResidualMLP(4, 8, 9).branch_multiplier == pytest.approx(1 / 3)
    assert ntk.ResidualMLP(4, 8, 9, parametrization="standard").branch_multiplier == 1.0


def test_depth_mup_forward_scale_is_order_one_in_depth_and_unscaled_explodes():
    x = _x()
    rms = {}
    for par in ("depth_mup", "standard"):
        for L in (2, 64):
            hs = [
                _rms(ntk.ResidualMLP(8, 256, L, parametrization=par, seed=s, dtype=F64).features(x))
                for s in range(3)
            ]
            rms[par, L] = sum(hs) / len(hs)
    # Depth-muP: E|h_l|^2 grows by (1 + 1 / (2L)) a block, so at most e^{1/4} ~ 1.28 overall
    assert rms["depth_mup", 64] / rms["depth_mup", 2] < 1.5
    assert 1.0 < rms["depth_mup", 64] < 1.5
    # unscaled: by 1.5 a block, 1.5^32 ~ 4e5 in rms at L = 64
    assert rms["standard", 64] / rms["standard", 2] > 1e4
    # and the mean-field prediction of the rms, sqrt((1 + m^2 / 2)^L): within 15 % where the
    # product stays order one, within a factor 3 for the unscaled L = 64 (finite-width noise compounds)
    for (par, L), got in rms.items():
        want = math.sqrt((1 + ntk.branch_multiplier(L, par) ** 2 / 2) ** L)
        if (par, L) == ("standard", 64):
            assert 1 / 3 < got / want < 3
        else:
            assert got == pytest.approx(want, rel=0.15)


def test_lr_multipliers_are_mup_in_width_and_adam_scales_blocks_in_depth():
    net = ntk.ResidualMLP(5, 16, 4, bias=True, seed=0)
    sgd = {g["name"]: g["lr"] for g in net.param_groups(0.5)}
    assert sgd["input_layer.weight"] == sgd["blocks.2.weight"] == sgd["readout.weight"] == 8.0
    assert sgd["blocks.0.bias"] == 8.0 and sgd["readout.bias"] == 0.5
    adam = {g["name"]: g["lr"] for g in net.param_groups(0.5, optimizer="adam")}
    assert adam["input_layer.weight"] == 0.5 and adam["readout.weight"] == pytest.approx(0.5 / 16)
    assert adam["blocks.1.weight"] == pytest.approx(0.5 / 16 / 2)  # 1/fan_in x L^{-1/2}
    assert adam["blocks.1.bias"] == pytest.approx(0.5 / 2)
    std = ntk.ResidualMLP(5, 16, 4, parametrization="standard", seed=0)
    assert {g["name"]: g["lr"] for g in std.param_groups(0.5, optimizer="adam")}[
        "blocks.1.weight"
    ] == pytest.approx(0.5 / 16)
    assert sum(p.numel() for g in net.param_groups(0.1) for p in g["params"]) == sum(
        p.numel() for p in net.parameters()
    )


def test_seeded_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = ntk.ResidualMLP(4, 8, 3, seed=7)
    b = ntk.ResidualMLP(4, 8, 3, seed=7)
    c = ntk.ResidualMLP(4, 8, 3, seed=8)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.blocks[0].weight, c.blocks[0].weight)
    assert all(float(p.detach().std()) > 0.3 for p in a.parameters() if p.numel() > 4)


def test_trains_through_fit_with_its_param_groups():
    from lossviz import train

    x = _x(64, 4, dtype=torch.float32)
    y = torch.sin(x[:, :1])
    net = ntk.ResidualMLP(4, 32, 4, seed=0)
    hist = train.fit(
        net,
        torch.nn.functional.mse_loss,
        (x, y),
        steps=50,
        optimizer=lambda ps: torch.optim.SGD(net.param_groups(0.5)),
        progress=False,
    )
    assert hist.loss[-1] < 0.5 * hist.loss[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_follow_the_arguments(dtype):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    net = ntk.ResidualMLP(3, 8, 2, bias=True, dtype=dtype, device=dev)
    assert all(p.dtype == dtype and p.device.type == dev for p in net.parameters())
    out = net(torch.randn(4, 3, dtype=dtype, device=dev))
    assert out.dtype == dtype and out.device.type == dev
    assert ntk.ResidualMLP(3, 8, 2, dtype="float64").readout.weight.dtype == torch.float64


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(depth=0), ValueError, "depth"),
        (dict(width=0), ValueError, "width"),
        (dict(d_in=2.5), TypeError, "d_in"),
        (dict(parametrization="mup"), ValueError, "parametrization"),
        (dict(activation="nope"), ValueError, "activation"),
        (dict(block_multiplier=0.0), ValueError, "block_multiplier"),
        (dict(block_multiplier=float("nan")), ValueError, "block_multiplier"),
        (dict(seed=-1), ValueError, "seed"),
        (dict(bias="yes"), TypeError, "bias"),
        (dict(dtype=3), TypeError, "dtype"),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, match):
    args = dict(d_in=3, width=8, depth=2) | kwargs
    with pytest.raises(exc, match=match):
        ntk.ResidualMLP(**args)


def test_bad_forward_and_param_group_input():
    net = ntk.ResidualMLP(3, 8, 2)
    with pytest.raises(ValueError, match="`x`"):
        net(torch.randn(4, 5))
    with pytest.raises(TypeError, match="`x`"):
        net([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="optimizer"):
        net.param_groups(0.1, optimizer="lion")
    with pytest.raises(ValueError, match="lr"):
        net.param_groups(-1.0)
    with pytest.raises(ValueError, match="depth"):
        ntk.branch_multiplier(0)
