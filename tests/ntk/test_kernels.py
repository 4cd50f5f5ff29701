"""lossviz.ntk._kernels: kernel regression, gradient flow, eigh, alignment, distances."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossviz import ntk

from ._util import F64, _mlp, _rel

torch.set_num_threads(1)


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


def test_bad_inputs_kernels():
    with pytest.raises(ValueError, match="rows"):
        ntk.kernel_regression(torch.eye(3, dtype=F64), torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        ntk.eigh(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match="times"):
        ntk.gradient_flow(torch.eye(2, dtype=F64), torch.ones(2, dtype=F64), [-1.0])


def test_relative_change_names_a_zero_reference():
    with pytest.raises(ValueError, match="`k_ref` is the zero kernel"):
        ntk.relative_change(torch.zeros(3, 3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))


def test_rbf_kernel_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(4, 3, generator=g, dtype=F64)
    ref = torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * 0.7**2))
    assert torch.allclose(ntk.rbf_kernel(a, b, length=0.7), ref, atol=1e-14)
    with pytest.raises(ValueError, match="length"):
        ntk.rbf_kernel(a, length=-1.0)


def test_rbf_kernel_dtype_shapes_and_errors():
    a = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    k = ntk.rbf_kernel(a)
    assert k.dtype == F64 and torch.allclose(k.diagonal(), torch.ones(5, dtype=F64))
    assert torch.allclose(ntk.rbf_kernel(a[:, 0]), ntk.rbf_kernel(a[:, :1]))
    with pytest.raises(ValueError, match="features"):
        ntk.rbf_kernel(a, a[:, :2])
