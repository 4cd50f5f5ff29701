"""GGNOperator and EmpiricalFisherOperator against independent exact matrices and curvlinops."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import curvature
from lossviz.testing import assert_model_unchanged

from ._helpers import CE, F64, _batches, _data, _net

MSE = nn.functional.mse_loss


def _functional(model, x):
    model = copy.deepcopy(model).eval()
    named = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = list(named)
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    theta = torch.cat([named[n].reshape(-1) for n in names])

    def f(t):
        state = {n: c.view(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)}
        state.update(bufs)
        return torch.func.functional_call(model, state, (x,))

    return f, theta


def _reference_ggn(model, loss_fn, x, y):
    """J^T (d^2 loss / d f^2) J over all samples at once (torch.func.jacrev / hessian)."""
    f, theta = _functional(model, x)
    out = f(theta)
    J = torch.func.jacrev(f)(theta).reshape(out.numel(), -1)
    Hf = torch.func.hessian(lambda o: loss_fn(o.reshape(out.shape), y))(out.reshape(-1))
    return J.T @ Hf @ J


def _reference_fisher(model, loss_fn, x, y):
    """(1/n) sum_i grad l_i grad l_i^T with l_i the loss of sample i alone."""
    f, theta = _functional(model, x)

    def losses(t):
        o = f(t)
        return torch.stack([loss_fn(o[i : i + 1], y[i : i + 1]) for i in range(x.shape[0])])

    G = torch.func.jacrev(losses)(theta)
    return G.T @ G / x.shape[0]


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("matrix", ["ggn", "fisher"])
def test_dense_matches_the_exact_matrix_over_batches(matrix, loss):
    net, (x, y) = _net(), _data()
    loss_fn = CE
    if loss == "mse":
        loss_fn, y = MSE, torch.randn(x.shape[0], 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    ref = (_reference_ggn if matrix == "ggn" else _reference_fisher)(net, loss_fn, x, y)
    for data, cache in (((x, y), None), (_batches(x, y), None), (_batches(x, y), True)):
        op = curvature.curvature_operator(net, loss_fn, data, matrix=matrix, cache_graph=cache)
        assert op.matrix == matrix
        A = op.dense()
        assert float((A - ref).abs().max()) < 1e-10 * float(ref.abs().max())
    # PSD, unlike the Hessian of this net
    assert float(torch.linalg.eigvalsh(ref)[0]) > -1e-10 * float(ref.abs().max())


def test_ggn_equals_the_hessian_for_a_linear_model():
    g = torch.Generator().manual_seed(0)
    net = nn.Linear(3, 2).double()
    x, y = torch.randn(10, 3, dtype=F64, generator=g), torch.randint(0, 2, (10,), generator=g)
    G = curvature.curvature_operator(net, CE, (x, y), matrix="ggn").dense()
    H = curvature.exact_hessian(net, CE, (x, y)).matrix
    assert float((G - H).abs().max()) < 1e-12


@pytest.mark.parametrize("matrix", ["ggn", "fisher"])
def test_estimators_accept_matrix(matrix):
    net, (x, y) = _net(width=6), _data(30)
    ref = (_reference_ggn if matrix == "ggn" else _reference_fisher)(net, CE, x, y)
    ev = torch.linalg.eigvalsh(ref)
    top = curvature.top_eigenvalues(net, CE, (x, y), k=2, matrix=matrix, seed=0)
    assert top.all_converged
    assert np.allclose(top.eigenvalues, ev.flip(0)[:2].numpy(), rtol=1e-8)
    n = ref.shape[0]
    tr = curvature.trace(net, CE, (x, y), matrix=matrix, matvecs=3 * n, seed=0)
    assert tr.trace == pytest.approx(float(ref.trace()), rel=1e-9)
    sd = curvature.spectral_density(net, CE, (x, y), matrix=matrix, num_probes=2, steps=n, seed=0)
    assert sd.settings["matrix"] == matrix
    assert sd.all_nodes.max() == pytest.approx(float(ev[-1]), rel=1e-6)
    op = curvature.curvature_operator(net, CE, (x, y), matrix=matrix)
    with pytest.raises(ValueError, match="matrix"):
        curvature.trace(op, matrix="hessian")
    with pytest.raises(ValueError, match="matrix"):
        curvature.trace(net, CE, (x, y), matrix="gauss-newton")


def test_sharpness_tracker_matrix():
    net, (x, y) = _net(width=6), _data(30)
    ref = _reference_ggn(net, CE, x, y)
    tr = curvature.SharpnessTracker(CE, (x, y), matrix="ggn")
    tr(0, net)
    assert tr.result().sharpness[0] == pytest.approx(float(torch.linalg.eigvalsh(ref)[-1]), rel=1e-8)


def test_fisher_rejects_a_loss_that_is_not_a_per_sample_mean():
    net, (x, y) = _net(), _data()

    def summed(o, t):
        return nn.functional.cross_entropy(o, t, reduction="sum")

    with pytest.raises(ValueError, match="mean of per-sample losses"):
        curvature.curvature_operator(net, summed, (x, y), matrix="fisher").matvec(torch.ones(38, dtype=F64))


def test_ggn_and_fisher_leave_the_model_unchanged(bn_model):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    for matrix in ("ggn", "fisher"):
        with assert_model_unchanged(bn_model):
            curvature.top_eigenvalues(bn_model, CE, (x, y), matrix=matrix, seed=0)
            curvature.trace(bn_model, CE, (x, y), matrix=matrix, matvecs=6, seed=0)


class _SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, padding=1, stride=2)
        self.fc = nn.Linear(6 * 4 * 4, 3)

    def forward(self, x):
        h = torch.tanh(self.conv1(x))
        h = torch.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def test_against_curvlinops_on_a_small_cnn():
    curvlinops = pytest.importorskip("curvlinops")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        cnn = _SmallCNN().double()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 1, 8, 8, dtype=F64, generator=g), torch.randint(0, 3, (24,), generator=g)
    data = [(x[:10], y[:10]), (x[10:], y[10:])]
    params = [p for p in cnn.parameters()]
    n = sum(p.numel() for p in params)
    V = torch.randn(n, 4, dtype=F64, generator=g)
    for matrix, cls in (("ggn", curvlinops.GGNLinearOperator), ("fisher", curvlinops.EFLinearOperator)):
        theirs = cls(cnn, nn.CrossEntropyLoss(), params, data, check_deterministic=False)
        ref = torch.as_tensor(theirs @ V)
        ours = curvature.curvature_operator(cnn, CE, data, matrix=matrix).matmat(V.T).T
        assert float((ours - ref).abs().max()) < 1e-10 * float(ref.abs().max()), matrix
