"""lossviz.ntk._parametrization: multipliers, learning rates, feature movement, Architecture."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import ntk
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._util import F64, _circle, _mlp, _rel

torch.set_num_threads(1)


# ---------------------------------------------------------------- parametrize


def test_parametrize_multipliers_and_lrs():
    w = (3, 64, 32, 2)
    ntp = ntk.parametrize(w, "ntk", w_std=2.0, b_std=0.5, seed=0)
    sp = ntk.parametrize(w, "standard", w_std=2.0, b_std=0.5, seed=0)
    mup = ntk.parametrize(w, "mup", w_std=2.0, b_std=0.5, seed=0)
    assert ntp.layers[1].weight_multiplier == pytest.approx(2.0 / 8.0)
    assert ntp.layers[2].weight_multiplier == pytest.approx(2.0 / math.sqrt(32))
    assert mup.layers[2].weight_multiplier == pytest.approx(2.0 / 32)
    assert sp.layers[1].weight_multiplier == 1.0 and float(
        sp.layers[1].weight.detach().std()
    ) == pytest.approx(0.25, rel=0.1)
    assert set(ntp.lr_multipliers.values()) == {1.0} and set(sp.lr_multipliers.values()) == {1.0}
    assert mup.lr_multipliers == {
        "layers.0.weight": 64.0,
        "layers.0.bias": 64.0,
        "layers.1.weight": 64.0,
        "layers.1.bias": 32.0,
        "layers.2.weight": 32.0,
        "layers.2.bias": 1.0,
    }
    groups = mup.param_groups(0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.1 * v for v in mup.lr_multipliers.values()])
    # same seed -> same init; NTP and SP represent the same distribution of functions
    assert torch.equal(
        ntk.parametrize(w, "ntk", seed=3).layers[0].weight, ntk.parametrize(w, "ntk", seed=3).layers[0].weight
    )
    x = torch.randn(2000, 3)
    with torch.no_grad():
        v_ntp = ntp.features(x).pow(2).mean()
        v_sp = sp.features(x).pow(2).mean()
    assert float(v_ntp / v_sp) == pytest.approx(1.0, rel=0.15)


def test_parametrize_from_model_copies_shape_and_leaves_model_alone():
    from lossviz.models import MLP

    src = MLP(5, (7, 9), 2, activation="tanh", seed=0)
    src(torch.randn(3, 5)).sum().backward()
    with assert_model_unchanged(src):
        net = ntk.parametrize(src, "mup", seed=1)
    assert net.widths == (5, 7, 9, 2) and net.activation_name == "tanh"
    seq = _mlp((4, 6, 1), act=nn.ReLU)
    assert ntk.parametrize(seq, "ntk").widths == (4, 6, 1)


def test_ntp_feature_change_shrinks_with_width_mup_does_not():
    """One SGD step on the same data: first-layer feature change ~ n^-1/2 under NTP, O(1) under muP."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g, dtype=F64)
    y = torch.randn(64, 1, generator=g, dtype=F64)
    change = {}
    for param, lr in (("ntk", 0.5), ("mup", 0.05)):
        vals = []
        for width in (128, 2048):
            net = ntk.parametrize((8, width, width, 1), param, seed=0, dtype=F64)
            h0 = net.hidden(x)[0].detach()
            opt = torch.optim.SGD(net.param_groups(lr), lr=lr)
            for _ in range(3):
                opt.zero_grad()
                (0.5 * (net(x) - y).pow(2).mean()).backward()
                opt.step()
            h1 = net.hidden(x)[0].detach()
            vals.append(float((h1 - h0).norm() / h0.norm()))
        change[param] = vals
    slope_ntk = math.log(change["ntk"][1] / change["ntk"][0]) / math.log(16)
    slope_mup = math.log(change["mup"][1] / change["mup"][0]) / math.log(16)
    assert -0.65 < slope_ntk < -0.35, change
    assert abs(slope_mup) < 0.15, change


def test_parametrize_bad_inputs():
    with pytest.raises(ValueError, match="`w_std` must be > 0"):
        ntk.parametrize((3, 4, 1), "ntk", w_std=-1.0)
    with pytest.raises(ValueError, match="`parametrization`"):
        ntk.parametrize((3, 4, 1), "ntp")


class _FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_parametrize_refuses_what_it_cannot_copy():
    """REVIEW B13: torch.relu in forward or BatchNorm silently gave a linear network."""
    with pytest.raises(ValueError, match="torch.relu.*activation="):
        ntk.parametrize(_FunctionalRelu(), "ntk")
    net = ntk.parametrize(_FunctionalRelu(), "ntk", activation="relu", seed=0)  # explicit: fine
    assert net.activation_name == "relu" and net.widths == (3, 8, 1)
    with pytest.raises(ValueError, match="BatchNorm1d"):
        ntk.parametrize(nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)))
    with pytest.raises(ValueError, match="Dropout"):
        ntk.parametrize(nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 1)))
    with pytest.raises(ValueError, match="several activations"):
        ntk.parametrize(
            nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1))
        )
    with pytest.raises(ValueError, match="BatchNorm"):
        ntk.parametrize(BNDropoutNet())
    # a plain Sequential of Linear layers really is linear; nn.Tanh is read from the module
    assert ntk.parametrize(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))).activation_name == "linear"
    assert ntk.parametrize(_mlp((3, 5, 1))).activation_name == "tanh"


def test_architecture_builds_the_network_and_its_limit():
    """One description gives the finite network and the analytic kernel (neural-tangents' stax idea)."""
    arch = ntk.Architecture(depth=2, activation="relu", w_std=2**0.5, b_std=0.1, d_in=2)
    x = _circle(12)
    lim = arch.analytic(x)
    ref = ntk.analytic(x, depth=2, activation="relu", w_std=2**0.5, b_std=0.1)
    assert torch.equal(lim.ntk, ref.ntk)
    errs = [ntk.relative_change(lim.ntk, ntk.empirical(arch.build(w, seed=s, dtype=F64), x).kernel)
            for w in (64, 2048) for s in range(2)]  # fmt: skip
    assert np.mean(errs[2:]) < 0.5 * np.mean(errs[:2])  # wider nets approach the same limit
    net = arch.build(256, seed=3, dtype=F64)
    assert net.widths == (2, 256, 256, 1) and net.architecture == arch
    assert torch.equal(net.analytic_kernel(x).ntk, lim.ntk)
    # the standard parametrisation's limit needs (and uses) the widths
    sp = ntk.Architecture(depth=1, parametrization="standard", w_std=1.2, d_in=2)
    net_sp = sp.build(4096, seed=0, dtype=F64)
    assert _rel(ntk.empirical(net_sp, x).kernel, net_sp.analytic_kernel(x).ntk) < 0.1
    with pytest.raises(ValueError, match="width"):
        sp.analytic(x)
    with pytest.raises(ValueError, match="`parametrization`"):
        ntk.Architecture(depth=1, parametrization="mup", d_in=2).analytic(x)
    with pytest.raises(ValueError, match="d_in"):
        arch.analytic(torch.randn(3, 5))
    with pytest.raises(ValueError, match="`depth`"):
        ntk.Architecture(depth=0)
    with pytest.raises(ValueError, match="2 hidden widths"):
        arch.build((8, 8, 8))


class _FunctionalRelu(nn.Module):
    """REVIEW B13: torch.relu in forward (beside a Tanh module, or with BatchNorm)."""

    def __init__(self, act=None, bn=False):
        super().__init__()
        self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 1)
        self.act = act
        self.bn = nn.BatchNorm1d(8) if bn else None

    def forward(self, x):
        h = self.a(x)
        if self.bn is not None:
            h = self.bn(h)
        if self.act is not None:
            h = self.act(h)
        return self.b(torch.relu(h))


def test_parametrize_refuses_a_forward_it_cannot_copy():
    tanh_relu, bn_relu, plain = _FunctionalRelu(nn.Tanh()), _FunctionalRelu(bn=True), _FunctionalRelu()
    state = torch.random.get_rng_state()
    with pytest.raises(ValueError, match="forward is not the chain"):
        ntk.parametrize(tanh_relu)  # would silently build a tanh network
    with pytest.raises(ValueError, match="BatchNorm"):
        ntk.parametrize(bn_relu)  # would silently build a linear network
    with pytest.raises(ValueError, match="activation="):
        ntk.parametrize(plain)
    with assert_model_unchanged(plain):
        net = ntk.parametrize(plain, activation="relu")  # told: the chain matches
    assert net.activation_name == "relu" and net.widths == (3, 8, 1)
    assert torch.equal(torch.random.get_rng_state(), state)
