"""Tests for lossviz.ntk: empirical (two paths), analytic, parametrisations and kernel tools."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import ntk
from lossviz.testing import BNDropoutNet, assert_model_unchanged

torch.set_num_threads(1)
F64 = torch.float64


def _mlp(widths, bias=True, act=nn.Tanh, seed=0, dtype=F64):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _rel(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _circle(n, dtype=F64):
    ang = torch.arange(n, dtype=dtype) * 2 * math.pi / n
    return torch.stack([ang.cos(), ang.sin()], 1)


# ---------------------------------------------------------------- empirical: two paths agree


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("output", ["full", "trace_sum", "trace_mean", "diagonal"])
@pytest.mark.parametrize("two_inputs", [False, True])
def test_structured_equals_jacobian(bias, outputs, output, two_inputs):
    net = _mlp((4, 16, 12, outputs), bias=bias, act=nn.ReLU)
    g = torch.Generator().manual_seed(1)
    x1 = torch.randn(7, 4, generator=g, dtype=F64)
    x2 = torch.randn(5, 4, generator=g, dtype=F64) if two_inputs else None
    a = ntk.empirical(net, x1, x2, output=output, method="structured")
    b = ntk.empirical(net, x1, x2, output=output, method="jacobian", chunk_size=3)
    assert a.method == "structured" and b.method == "jacobian"
    n2 = 5 if two_inputs else 7
    shape = {"full": (7, n2, outputs, outputs), "diagonal": (7, n2, outputs)}.get(output, (7, n2))
    assert a.kernel.shape == shape == b.kernel.shape
    assert _rel(a.kernel, b.kernel) < 1e-10


def test_output_modes_are_consistent():
    net = _mlp((3, 10, 2))
    x = torch.randn(6, 3, dtype=F64)
    full = ntk.empirical(net, x, output="full").kernel
    diag = ntk.empirical(net, x, output="diagonal").kernel
    tsum = ntk.empirical(net, x, output="trace_sum").kernel
    tmean = ntk.empirical(net, x, output="trace_mean").kernel
    assert torch.allclose(torch.diagonal(full, dim1=2, dim2=3), diag)
    assert torch.allclose(diag.sum(-1), tsum)
    assert torch.allclose(tsum / 2, tmean)


def test_scaled_linear_structured_equals_jacobian_and_frozen_params():
    net = ntk.parametrize((3, 20, 20, 2), "ntk", w_std=1.3, b_std=0.4, seed=0, dtype=F64)
    x = torch.randn(6, 3, dtype=F64)
    a = ntk.empirical(net, x, output="full", method="structured").kernel
    b = ntk.empirical(net, x, output="full", method="jacobian").kernel
    assert _rel(a, b) < 1e-10
    net.layers[1].weight.requires_grad_(False)
    net.layers[2].bias.requires_grad_(False)
    a = ntk.empirical(net, x, method="structured")
    b = ntk.empirical(net, x, method="jacobian")
    assert _rel(a.kernel, b.kernel) < 1e-10
    assert a.num_parameters == sum(p.numel() for p in net.parameters() if p.requires_grad)
    c = ntk.empirical(net, x, trainable_only=False, method="structured").kernel
    d = ntk.empirical(net, x, trainable_only=False, method="jacobian").kernel
    assert _rel(c, d) < 1e-10 and _rel(c, a.kernel) > 1e-3


def test_symmetric_and_psd():
    net = _mlp((3, 32, 1))
    x = torch.randn(10, 3, dtype=F64)
    k = ntk.empirical(net, x).kernel
    assert torch.allclose(k, k.T, atol=1e-12)
    spec = ntk.eigh(k)
    assert spec.psd and float(spec.eigenvalues.min()) >= 0


# ---------------------------------------------------------------- auto fallback and diagnostics


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4, dtype=F64)
        self.b = nn.Linear(4, 4, dtype=F64)
        self.b.weight = self.a.weight  # shared parameter
        self.out = nn.Linear(4, 1, dtype=F64)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.tanh(self.a(x)))))


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4, dtype=F64)
        self.out = nn.Linear(4, 2, dtype=F64)

    def forward(self, x):
        return self.out(torch.tanh(self.a(torch.tanh(self.a(x)))))


class Seq(nn.Module):
    """Linear applied to (batch, tokens, features): not 2-D inputs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 5, dtype=F64)
        self.out = nn.Linear(5, 1, dtype=F64)

    def forward(self, x):
        return self.out(torch.tanh(self.a(x.reshape(x.shape[0], 2, 3))).mean(1))


class WithConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 3, dtype=F64)
        self.out = nn.Linear(8, 1, dtype=F64)

    def forward(self, x):
        return self.out(torch.tanh(self.conv(x[:, None, :])).flatten(1))


@pytest.mark.parametrize(
    "model, width, words",
    [
        (Tied(), 4, "shared parameters"),
        (Twice(), 4, "more than once"),
        (Seq(), 6, "(batch, features)"),
        (WithConv(), 6, "unsupported layer"),
        (BNDropoutNet(dtype=F64), 4, "unsupported layer"),
    ],
)
def test_auto_falls_back_and_says_why(model, width, words):
    x = torch.randn(5, width, dtype=F64)
    with assert_model_unchanged(model):
        res = ntk.empirical(model, x)
    assert res.method == "jacobian"
    assert words in res.diagnostics["fallback_reason"]
    # the generic path agrees with an explicit per-parameter Jacobian
    with assert_model_unchanged(model):
        ref = _explicit_ntk(model, x)
    assert _rel(res.kernel, ref) < 1e-10
    with pytest.raises(ValueError, match="structured"):
        ntk.empirical(model, x, method="structured")


def _explicit_ntk(model, x):
    """Reference: loop over samples, autograd per output, in eval mode."""
    was = model.training
    model.eval()
    try:
        rows = []
        params = [p for p in model.parameters() if p.requires_grad]
        for i in range(x.shape[0]):
            out = model(x[i : i + 1]).reshape(-1)
            for a in range(out.numel()):
                g = torch.autograd.grad(out[a], params, retain_graph=True)
                rows.append(torch.cat([t.reshape(-1) for t in g]))
        j = torch.stack(rows).reshape(x.shape[0], -1, rows[0].numel())
        return torch.einsum("iap,jap->ij", j, j)
    finally:
        model.train(was)


def test_train_mode_batchnorm():
    model = BNDropoutNet(dtype=F64)
    model.drop.p = 0.0  # deterministic train mode
    x = torch.randn(6, 4, dtype=F64)
    with assert_model_unchanged(model):
        res = ntk.empirical(model, x, mode="train")
    assert res.method == "jacobian" and "BatchNorm" in res.diagnostics["fallback_reason"]
    # reference: whole-batch Jacobian in train mode (samples are coupled)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    frozen = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}
    bufs = {k: v.clone() for k, v in model.named_buffers()}

    def f(p, b):
        return torch.func.functional_call(model, {**p, **frozen, **b}, (x,)).reshape(6, -1)

    jac = torch.func.jacrev(f)(params, bufs)
    j = torch.cat([v.reshape(6, 3, -1) for v in jac.values()], -1)
    assert _rel(res.kernel, torch.einsum("iap,jap->ij", j, j)) < 1e-10
    with pytest.raises(ValueError, match="x2"):
        ntk.empirical(model, x, x, mode="train")


def test_model_unchanged_structured_path():
    net = _mlp((3, 16, 2), act=nn.ReLU, dtype=torch.float32)
    net.train()
    net(torch.randn(4, 3)).sum().backward()  # .grad set
    net[0].bias.requires_grad_(False)
    with assert_model_unchanged(net):
        res = ntk.empirical(net, torch.randn(5, 3), output="full")
    assert res.method == "structured"
    assert all(m.training for m in net.modules())
    assert not net[0]._forward_hooks  # hooks removed


def test_dtype_propagation():
    x32 = torch.randn(5, 3)
    net64 = _mlp((3, 8, 1), dtype=F64)
    net32 = _mlp((3, 8, 1), dtype=torch.float32)
    for method in ("structured", "jacobian"):
        assert ntk.empirical(net64, x32.double(), method=method).kernel.dtype == F64
        assert ntk.empirical(net32, x32, method=method).kernel.dtype == torch.float32
    # inputs are cast to the model's dtype
    assert ntk.empirical(net64, x32).kernel.dtype == F64
    assert ntk.analytic(x32, depth=2).ntk.dtype == F64
    assert ntk.analytic(x32.double(), depth=2).nngp.dtype == F64


def test_chunking_does_not_change_result():
    net = _mlp((3, 8, 2))
    x1, x2 = torch.randn(9, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    a = ntk.empirical(net, x1, x2, method="jacobian", chunk_size=2).kernel
    b = ntk.empirical(net, x1, x2, method="jacobian", chunk_size=100).kernel
    c = ntk.empirical(net, x1, x2, method="jacobian", max_block_bytes=1).kernel  # 1 sample per chunk
    assert _rel(a, b) < 1e-12 and _rel(c, b) < 1e-12
    for output in ("trace_sum", "diagonal", "full"):  # symmetric case, blocks recomputed (tiny cache)
        ref = ntk.empirical(net, x1, output=output, method="structured").kernel
        got = ntk.empirical(net, x1, output=output, method="jacobian", max_block_bytes=200).kernel
        assert _rel(got, ref) < 1e-10, output


# ---------------------------------------------------------------- analytic


def _relu_pair(k11, k22, k12):
    s = math.sqrt(k11 * k22)
    c = max(-1.0, min(1.0, k12 / s))
    t = math.acos(c)
    return s * (math.sin(t) + (math.pi - t) * c) / (2 * math.pi), (math.pi - t) / (2 * math.pi)


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(300)


def _erf_pair(k11, k22, k12):
    """E[erf(u)erf(v)], E[erf'(u)erf'(v)] by 2-D Gauss-Hermite quadrature (independent of closed form)."""
    l11 = math.sqrt(k11)
    l21 = k12 / l11
    l22 = math.sqrt(max(k22 - l21 * l21, 0.0))
    z1, z2 = np.meshgrid(_GH_X, _GH_X, indexing="ij")
    w = np.outer(_GH_W, _GH_W) / (2 * math.pi)
    u, v = l11 * z1, l21 * z1 + l22 * z2
    from scipy.special import erf

    def derf(t):
        return 2 / math.sqrt(math.pi) * np.exp(-t * t)

    return float((w * erf(u) * erf(v)).sum()), float((w * derf(u) * derf(v)).sum())


def _reference_kernels(x1, x2, depth, act, ws, bs, param="ntk", widths=None):
    """Independent scalar float64 implementation of the NNGP/NTK recursion, pair by pair."""
    x1, x2 = x1.double().numpy(), x2.double().numpy()
    d = x1.shape[1]
    pair = _relu_pair if act == "relu" else _erf_pair
    n1, n2 = len(x1), len(x2)
    nngp, ntk_ = np.zeros((n1, n2)), np.zeros((n1, n2))
    fans = [d, *(widths or [])]
    for i in range(n1):
        for j in range(n2):
            q11, q22, q12 = x1[i] @ x1[i] / d, x2[j] @ x2[j] / d, x1[i] @ x2[j] / d  # E-hat_0
            s11, s22, s12 = ws**2 * q11 + bs**2, ws**2 * q22 + bs**2, ws**2 * q12 + bs**2
            th = (ws**2 if param == "ntk" else fans[0]) * q12 + (bs**2 if param == "ntk" else 1.0)
            for layer in range(1, depth + 1):
                e12, ed12 = pair(s11, s22, s12)
                e11, _ = pair(s11, s11, s11)
                e22, _ = pair(s22, s22, s22)
                cw = ws**2 if param == "ntk" else fans[layer]
                th = cw * e12 + (bs**2 if param == "ntk" else 1.0) + ws**2 * ed12 * th
                s11, s22, s12 = ws**2 * e11 + bs**2, ws**2 * e22 + bs**2, ws**2 * e12 + bs**2
            nngp[i, j], ntk_[i, j] = s12, th
    return nngp, ntk_


@pytest.mark.parametrize(
    "act, depth, ws, bs",
    [("relu", 1, 1.0, 0.0), ("relu", 3, 2**0.5, 0.1), ("erf", 2, 1.5, 0.3), ("erf", 1, 1.0, 0.0)],
)
def test_analytic_matches_independent_recursion(act, depth, ws, bs):
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(5, 3, generator=g, dtype=F64)
    x2 = torch.randn(4, 3, generator=g, dtype=F64) * 1.3
    res = ntk.analytic(x1, x2, depth=depth, activation=act, w_std=ws, b_std=bs)
    nngp, th = _reference_kernels(x1, x2, depth, act, ws, bs)
    tol = 1e-12 if act == "relu" else 1e-8  # erf reference: 300-node Gauss-Hermite
    assert np.allclose(res.nngp.numpy(), nngp, rtol=tol, atol=tol)
    assert np.allclose(res.ntk.numpy(), th, rtol=tol, atol=tol)
    sym = ntk.analytic(x1, depth=depth, activation=act, w_std=ws, b_std=bs)
    assert torch.allclose(sym.ntk, sym.ntk.T, atol=1e-12)


def test_analytic_standard_parametrization_matches_reference():
    x = torch.randn(4, 3, dtype=F64)
    res = ntk.analytic(x, depth=2, w_std=1.2, b_std=0.2, parametrization="standard", widths=(50, 70))
    nngp, th = _reference_kernels(x, x, 2, "relu", 1.2, 0.2, "standard", [50, 70])
    assert np.allclose(res.ntk.numpy(), th, rtol=1e-12) and np.allclose(res.nngp.numpy(), nngp, rtol=1e-12)
    # the NNGP does not depend on the parametrisation
    assert torch.allclose(ntk.analytic(x, depth=2, w_std=1.2, b_std=0.2).nngp, res.nngp)


def test_analytic_linear_network_closed_form():
    x = torch.randn(5, 4, dtype=F64)
    k0 = x @ x.T / 4
    res = ntk.analytic(x, depth=2, activation="linear", w_std=1.0, b_std=0.0)
    # linear net with unit w_std: Sigma = K0 at every layer, Theta = (L + 1) K0
    assert torch.allclose(res.nngp, k0) and torch.allclose(res.ntk, 3 * k0)


def _mean_error(widths, depth, act, param="ntk", seeds=3):
    x = _circle(12)
    errs = []
    for w in widths:
        kw = {"widths": (w,) * depth} if param == "standard" else {}
        lim = ntk.analytic(x, depth=depth, activation=act, w_std=1.4, b_std=0.2, parametrization=param, **kw)
        e = []
        for s in range(seeds):
            net = ntk.parametrize(
                (2,) + (w,) * depth + (1,), param, activation=act, w_std=1.4, b_std=0.2, seed=s, dtype=F64
            )
            e.append(ntk.relative_change(lim.ntk, ntk.empirical(net, x).kernel))
        errs.append(float(np.mean(e)))
    return errs


@pytest.mark.parametrize(
    "act, depth, param", [("relu", 2, "ntk"), ("erf", 1, "ntk"), ("relu", 2, "standard")]
)
def test_wide_network_approaches_analytic(act, depth, param):
    errs = _mean_error((32, 256, 2048), depth, act, param)
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.1, errs
    slope = np.polyfit(np.log([32, 256, 2048]), np.log(errs), 1)[0]
    assert -0.8 < slope < -0.3, (slope, errs)  # ~ width^-1/2 fluctuations


def test_analytic_nngp_matches_wide_network_output_covariance():
    x = _circle(6)
    lim = ntk.analytic(x, depth=1, w_std=1.4, b_std=0.2)
    outs = []
    for s in range(400):
        net = ntk.parametrize((2, 256, 1), "ntk", w_std=1.4, b_std=0.2, seed=s, dtype=F64)
        with torch.no_grad():
            outs.append(net(x).reshape(-1))
    f = torch.stack(outs)
    cov = f.T @ f / f.shape[0]
    assert _rel(cov, lim.nngp) < 0.15


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


# ---------------------------------------------------------------- kernel regression / gradient flow


def _linearised_training(lr, steps, record, n=6, o=2):
    g = torch.Generator().manual_seed(0)
    xtr = torch.randn(n, 2, generator=g, dtype=F64)
    ytr = torch.randn(n, o, generator=g, dtype=F64)
    xte = torch.randn(4, 2, generator=g, dtype=F64)
    net = _mlp((2, 24, o), act=nn.Tanh, seed=1)
    p0 = {k: v.detach().clone() for k, v in net.named_parameters()}

    def f(p, x):
        return torch.func.functional_call(net, p, (x,))

    def f_lin(p, x):
        dp = {k: p[k] - p0[k] for k in p}
        out, jvp = torch.func.jvp(lambda q: f(q, x), (p0,), (dp,))
        return out + jvp

    p = {k: v.clone() for k, v in p0.items()}
    traj_tr, traj_te = {}, {}
    for t in range(steps + 1):
        if t in record:
            traj_tr[t], traj_te[t] = f_lin(p, xtr).detach(), f_lin(p, xte).detach()
        if t == steps:
            break
        loss_grad = torch.func.grad(lambda q: 0.5 * (f_lin(q, xtr) - ytr).pow(2).sum(1).mean())(p)
        p = {k: p[k] - lr * loss_grad[k] for k in p}
    ktt = ntk.empirical(net, xtr, output="full").kernel
    kxt = ntk.empirical(net, xte, xtr, output="full").kernel
    with torch.no_grad():
        f0tr, f0te = net(xtr), net(xte)
    return ktt, kxt, ytr, f0tr, f0te, traj_tr, traj_te


def test_gradient_flow_matches_small_step_training_of_linearised_model():
    lr, steps = 0.002, 4000
    record = [0, 500, 2000, 4000]
    ktt, kxt, ytr, f0tr, f0te, tr, te = _linearised_training(lr, steps, record)
    flow = ntk.gradient_flow(
        ktt, ytr, [lr * s for s in record], f0_train=f0tr, k_test_train=kxt, f0_test=f0te
    )
    for i, s in enumerate(record):
        assert _rel(flow.train[i], tr[s]) < 2e-3, s
        assert _rel(flow.test[i] - f0te, te[s] - f0te) < 5e-3 if s else True
    # the discrete version is exact for gradient descent on the linearised model
    disc = ntk.gradient_flow(
        ktt, ytr, record, f0_train=f0tr, k_test_train=kxt, f0_test=f0te, lr=lr, discrete=True
    )
    for i, s in enumerate(record):
        assert _rel(disc.train[i], tr[s]) < 1e-8 and _rel(disc.test[i], te[s]) < 1e-8


def test_kernel_regression_is_the_long_time_limit():
    lr, steps = 0.4, 600  # lr * lambda_max / n = 1.8 < 2 (stable); smallest mode decays to ~1e-6
    ktt, kxt, ytr, f0tr, f0te, tr, te = _linearised_training(lr, steps, [steps], n=4)
    kr = ntk.kernel_regression(ktt, (ytr - f0tr).reshape(-1), kxt)
    assert kr.residual < 1e-8
    pred = f0te + kr.predictions.reshape(4, 2)
    assert _rel(pred, te[steps]) < 1e-4
    assert _rel(tr[steps], ytr) < 1e-4  # interpolates the training data
    flow = ntk.gradient_flow(ktt, ytr, [1e9], f0_train=f0tr, k_test_train=kxt, f0_test=f0te)
    assert _rel(flow.test[0], pred) < 1e-8


def test_kernel_regression_ridge_and_singular():
    g = torch.Generator().manual_seed(0)
    phi = torch.randn(10, 3, generator=g, dtype=F64)
    k = phi @ phi.T  # rank 3
    y = torch.randn(10, generator=g, dtype=F64)
    kr = ntk.kernel_regression(k, y)  # minimum-norm: the least-squares fit in feature space
    w = torch.linalg.lstsq(phi, y[:, None]).solution
    assert _rel(kr.train_predictions, phi @ w) < 1e-8 and kr.rank == 3
    kr2 = ntk.kernel_regression(k, y, ridge=0.7)
    ref = torch.linalg.solve(k + 0.7 * torch.eye(10, dtype=F64), y[:, None])
    assert _rel(kr2.coef, ref) < 1e-10


def test_gradient_flow_singular_kernel_and_scalar_kernel():
    k = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)  # singular
    y = torch.tensor([1.0, -1.0], dtype=F64)
    res = ntk.gradient_flow(k, y, [0.0, 1.0, 100.0], k_test_train=k[:1], lr=1.0, loss="sum")
    assert torch.allclose(res.train[0, :, 0], torch.zeros(2, dtype=F64))
    # the component along (1, -1) is in the null space: never fitted; mean of y is 0, so f stays 0
    assert torch.allclose(res.train[-1, :, 0], torch.zeros(2, dtype=F64), atol=1e-12)
    assert torch.isfinite(res.test).all()


# ---------------------------------------------------------------- spectrum, alignment, distance


def test_eigh_clips_roundoff_negatives():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(30, 3, generator=g, dtype=torch.float32)
    k = a @ a.T  # rank 3 in float32: 27 eigenvalues ~ +-1e-6
    spec = ntk.eigh(k)
    assert spec.psd and spec.num_clipped > 0 and float(spec.eigenvalues.min()) >= 0
    assert spec.eigenvalues.dtype == F64
    assert torch.all(spec.eigenvalues[:-1] >= spec.eigenvalues[1:])
    bad = ntk.eigh(torch.diag(torch.tensor([1.0, -0.5], dtype=F64)))
    assert not bad.psd and bad.min_raw == pytest.approx(-0.5) and bad.num_clipped == 0
    full = ntk.empirical(_mlp((2, 8, 2)), torch.randn(4, 2, dtype=F64), output="full")
    assert ntk.eigh(full).eigenvalues.shape == (8,)


def test_alignment_distance_change():
    y = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=F64)
    assert ntk.alignment(torch.outer(y, y), y) == pytest.approx(1.0)
    k = torch.eye(4, dtype=F64)
    assert ntk.alignment(k, y) == pytest.approx(0.5)  # <I, yy^T> = 4, ||I|| = 2, ||yy^T|| = 4
    assert ntk.alignment(3 * k, 2 * y) == pytest.approx(0.5)
    assert ntk.alignment(torch.ones(4, 4, dtype=F64), y, centered=False) == pytest.approx(0.0)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 4, generator=g, dtype=F64)
    k2 = a @ a.T
    assert ntk.kernel_distance(k2, 5 * k2) == pytest.approx(0.0, abs=1e-12)
    assert ntk.relative_change(k2, 1.5 * k2) == pytest.approx(0.5)
    assert 0 < ntk.kernel_distance(k2, k) < 1
    with pytest.raises(ValueError, match="same shape"):
        ntk.kernel_distance(k2, torch.eye(3, dtype=F64))


# ---------------------------------------------------------------- random features / ridge path


@pytest.mark.parametrize("n, f", [(20, 50), (50, 20)])
def test_ridge_path_matches_direct_solves(n, f):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g, dtype=F64)
    xt = torch.randn(15, 4, generator=g, dtype=F64)
    y = torch.randn(n, 2, generator=g, dtype=F64)
    yt = torch.randn(15, 2, generator=g, dtype=F64)
    phi = ntk.random_features(x, f, seed=1)
    phit = ntk.random_features(xt, f, seed=1)
    ridges = [0.0, 1e-3, 0.1, 10.0]
    path = ntk.ridge_path(phi, y, phit, yt, ridges=ridges)
    for i, r in enumerate(ridges):
        if r == 0:
            w = torch.linalg.pinv(phi) @ y
        else:
            w = torch.linalg.solve(phi.T @ phi + r * torch.eye(f, dtype=F64), phi.T @ y)
        assert path.train_risk[i] == pytest.approx(float(((phi @ w - y) ** 2).mean()), rel=1e-7, abs=1e-12)
        assert path.test_risk[i] == pytest.approx(float(((phit @ w - yt) ** 2).mean()), rel=1e-7)
    assert 0 <= path.best < len(ridges)


def test_random_features_gram_approaches_nngp():
    x = _circle(8)
    phi = ntk.random_features(x, 20000, seed=0, weight_std=1.0)
    # E[relu(w.x) relu(w.x')] with w ~ N(0, I): arc-cosine kernel with K = x.x'
    lim = ntk.analytic(x, depth=1, w_std=2**0.5, b_std=0.0)  # Sigma^(1) = x.x' (d_in = 2)
    assert _rel(phi @ phi.T, lim.nngp / 2) < 0.03


# ---------------------------------------------------------------- callback


def test_ntk_snapshots_with_fit():
    from lossviz import train

    net = ntk.parametrize((2, 64, 1), "standard", seed=0, dtype=F64)
    x = _circle(10)
    y = torch.sin(3 * torch.atan2(x[:, 1], x[:, 0]))[:, None]
    snaps = ntk.NTKSnapshots(x, every=10, targets=y)
    hist = train.fit(
        net,
        lambda out, t: 0.5 * (out - t).pow(2).mean(),
        (x, y),
        steps=30,
        lr=0.5,
        callbacks=[snaps],
        progress=False,
    )
    res = snaps.result()
    assert list(res.steps) == [0, 10, 20, 30] and hist.steps("ntk") == [0, 10, 20, 30]
    assert res.relative_change[0] == 0 and res.relative_change[-1] > 0
    assert res.alignment.shape == (4,) and np.isnan(res.change_alignment[0])
    # snapshots agree with a direct computation at the end of training
    assert _rel(res.kernels[-1], ntk.empirical(net, x).kernel) < 1e-12
    fig = ntk.plot_snapshots(res)
    assert len(fig.data) == 2


# ---------------------------------------------------------------- plots


def test_plots_return_figures():
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    x = _circle(8)
    lim = ntk.analytic(x, depth=2)
    emp = ntk.empirical(_mlp((2, 16, 1), act=nn.ReLU), x)
    assert isinstance(ntk.plot_kernel(lim), go.Figure)
    assert isinstance(emp.plot(backend="matplotlib"), plt.Figure)
    fig = ntk.plot_kernel_slice(
        {"limit": lim.ntk[0], "nets": torch.stack([emp.kernel[0], emp.kernel[0]])}, np.arange(8)
    )
    assert len(fig.data) == 4
    assert isinstance(ntk.plot_spectrum([lim, emp], labels=["a", "b"], backend="matplotlib"), plt.Figure)
    assert len(ntk.plot_spectrum(ntk.eigh(lim)).data) == 1
    plt.close("all")


# ---------------------------------------------------------------- bad input


def test_bad_inputs():
    net = _mlp((3, 8, 1))
    x = torch.randn(4, 3, dtype=F64)
    with pytest.raises(ValueError, match="same feature shape"):
        ntk.empirical(net, x, torch.randn(4, 5, dtype=F64))
    with pytest.raises(ValueError, match="empty"):
        ntk.empirical(net, torch.zeros(0, 3, dtype=F64))
    with pytest.raises(ValueError, match="`output`"):
        ntk.empirical(net, x, output="trace")
    with pytest.raises(ValueError, match="`method`"):
        ntk.empirical(net, x, method="fast")
    with pytest.raises(ValueError, match="no parameters"):
        ntk.empirical(nn.ReLU(), x)
    frozen = _mlp((3, 4, 1)).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        ntk.empirical(frozen, x)
    with pytest.raises(TypeError, match="nn.Module"):
        ntk.empirical(lambda t: t, x)
    with pytest.raises(ValueError, match="input width"):
        ntk.analytic(x, torch.randn(2, 4), depth=1)
    with pytest.raises(ValueError, match="empty"):
        ntk.analytic(torch.zeros(0, 3), depth=1)
    with pytest.raises(ValueError, match="`depth` must be >= 1"):
        ntk.analytic(x, depth=0)
    with pytest.raises(ValueError, match="`w_std` must be > 0"):
        ntk.analytic(x, depth=1, w_std=0.0)
    with pytest.raises(ValueError, match="`w_std` must be > 0"):
        ntk.parametrize((3, 4, 1), "ntk", w_std=-1.0)
    with pytest.raises(ValueError, match="`activation`"):
        ntk.analytic(x, depth=1, activation="tanh")
    with pytest.raises(ValueError, match="`parametrization`"):
        ntk.analytic(x, depth=1, parametrization="mup")
    with pytest.raises(ValueError, match="`parametrization`"):
        ntk.parametrize((3, 4, 1), "ntp")
    with pytest.raises(ValueError, match="widths"):
        ntk.analytic(x, depth=2, parametrization="standard")
    with pytest.raises(ValueError, match="2 hidden widths"):
        ntk.analytic(x, depth=2, parametrization="standard", widths=(3, 4, 5))
    with pytest.raises(ValueError, match="rows"):
        ntk.kernel_regression(torch.eye(3, dtype=F64), torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        ntk.eigh(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="times"):
        ntk.gradient_flow(torch.eye(2, dtype=F64), torch.ones(2, dtype=F64), [-1.0])
    with pytest.raises(ValueError, match="non-finite"):
        ntk.empirical(net, torch.full((2, 3), float("nan"), dtype=F64))


# ---------------------------------------------------------------- lazy/rich two-layer model


def test_centered_two_layer_and_closed_form_gd_match_autograd():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g, dtype=F64) / 5**0.5
    y = torch.randn(30, generator=g, dtype=F64)
    net = ntk.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64)
    assert torch.allclose(net(x), torch.zeros(30, dtype=F64))  # centred at init
    ref = ntk.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64)
    lr = 50.0
    run = ntk.train_two_layer(net, x, y, lr=lr, steps=5, x_test=x[:7], y_test=y[:7], snapshot_at=[0, 5])
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = 0.5 / 9.0 * (ref(x) - y).pow(2).mean()
        losses.append(float(loss))
        loss.backward()
        opt.step()
    assert np.allclose(run.train_loss[:5], losses, rtol=1e-10)
    assert torch.allclose(net.layer.weight, ref.layer.weight, rtol=1e-10, atol=1e-12)
    assert sorted(run.kernels) == [0, 5] and run.steps_run == 5 and not run.stopped_early
    assert ntk.empirical(net, x).method == "structured"
    # the uncentred model trained on shifted targets follows exactly the same path
    unc = ntk.CenteredTwoLayer(5, 40, alpha=3.0, eps=0.1, seed=1, dtype=F64, center=False)
    run2 = ntk.train_two_layer(unc, x, y + unc.initial_output(x), lr=lr, steps=5)
    assert np.allclose(run2.train_loss, run.train_loss, rtol=1e-10)
    assert run.drop_step("train", 1.01) == 0
    run3 = ntk.train_two_layer(
        ntk.CenteredTwoLayer(5, 40, alpha=3.0, seed=1, dtype=F64),
        x,
        y,
        lr=lr,
        steps=5,
        x_test=x[:7],
        y_test=y[:7],
        snapshot_test_fraction=0.999,
    )
    assert run3.drop_step("test", 0.999) in run3.kernels and 5 in run3.kernels
    with pytest.raises(TypeError, match="CenteredTwoLayer"):
        ntk.train_two_layer(nn.Linear(5, 1), x, y, lr=1.0, steps=1)


def test_empirical_works_under_no_grad():
    net = _mlp((3, 8, 1))
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        a = ntk.empirical(net, x, method="structured").kernel
        b = ntk.empirical(net, x, method="jacobian").kernel
    assert _rel(a, b) < 1e-10
