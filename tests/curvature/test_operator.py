"""HessianOperator and hvp: sample weighting, parameter selection, dtypes, modes, the model is sacred."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import curvature
from lossviz.data import collate
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._helpers import CE, F64, _batches, _bn_data, _data, _net, _reference_hessian


@pytest.mark.parametrize("cache_graph", [True, False])
def test_hvp_is_sample_weighted_over_unequal_batches(cache_graph):
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    v = torch.randn(H_ref.shape[0], generator=torch.Generator().manual_seed(3), dtype=F64)
    op = curvature.HessianOperator(net, CE, _batches(x, y), cache_graph=cache_graph)
    hv = op.matvec(v)
    torch.testing.assert_close(hv, H_ref @ v, atol=1e-12, rtol=1e-10)
    # a sum over batches (the original loss-landscape bug) would be 3x off; an unweighted mean of
    # batch means would differ too
    summed = sum(curvature.hvp(net, CE, b, v) for b in _batches(x, y))
    assert not torch.allclose(summed, hv, rtol=1e-3)
    assert op.matvecs == 1
    V = torch.randn(5, op.size, generator=torch.Generator().manual_seed(4), dtype=F64)
    torch.testing.assert_close(op.matmat(V, block=2), V @ H_ref, atol=1e-12, rtol=1e-10)
    assert op.matvecs == 6


def test_hvp_dict_form_and_shapes():
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    v = {n: torch.ones_like(p) for n, p in net.named_parameters()}
    out = curvature.hvp(net, CE, (x, y), v)
    assert set(out) == set(v)
    flat = torch.cat([out[n].reshape(-1) for n, _ in net.named_parameters()])
    torch.testing.assert_close(flat, H_ref @ torch.ones(38, dtype=F64), atol=1e-12, rtol=1e-10)


def test_params_selection_gives_sub_block_and_skips_frozen():
    net, (x, y) = _net(), _data()
    names = [n for n, _ in net.named_parameters()]
    H_full = curvature.exact_hessian(net, CE, (x, y)).matrix
    sub = curvature.exact_hessian(net, CE, (x, y), params=["2.weight", "2.bias"])
    assert sub.names == ("2.weight", "2.bias")
    torch.testing.assert_close(sub.matrix, H_full[20:, 20:], atol=1e-12, rtol=1e-10)
    pred = curvature.exact_hessian(net, CE, (x, y), params=lambda n, p: n.endswith("weight"))
    assert pred.names == ("0.weight", "2.weight")
    idx = list(range(15)) + list(range(20, 35))
    torch.testing.assert_close(pred.matrix, H_full[idx][:, idx], atol=1e-12, rtol=1e-10)
    frozen = copy.deepcopy(net)
    frozen[0].bias.requires_grad_(False)
    assert curvature.HessianOperator(frozen, CE, (x, y)).names == [n for n in names if n != "0.bias"]


def test_dtype_propagation():
    net32, (x, y) = _net(dtype=torch.float32), _data(dtype=torch.float32)
    op32 = curvature.HessianOperator(net32, CE, (x, y))
    assert op32.matvec(torch.ones(op32.size)).dtype == torch.float32
    r32 = curvature.top_eigenvalues(net32, CE, (x, y), k=1)
    assert r32.eigenvectors.dtype == torch.float32
    # float64 option on a float32 model: float64 results agreeing with the float64 reference
    H = curvature.exact_hessian(net32, CE, (x, y), dtype=torch.float64)
    assert H.matrix.dtype == F64
    H_ref, _ = _reference_hessian(_net(dtype=torch.float32).double(), CE, x.double(), y)
    torch.testing.assert_close(H.matrix, H_ref, atol=1e-10, rtol=1e-8)
    assert next(net32.parameters()).dtype == torch.float32
    assert curvature.trace(net32, CE, (x, y), dtype="float64", matvecs=6).samples.dtype == np.float64


@pytest.mark.parametrize(
    "call",
    [
        lambda m, d: curvature.hvp(m, CE, d, torch.ones(curvature.HessianOperator(m, CE, d).size)),
        lambda m, d: curvature.exact_hessian(m, CE, d),
        lambda m, d: curvature.top_eigenvalues(m, CE, d, k=2),
        lambda m, d: curvature.top_eigenvalues(m, CE, d, k=2, method="lanczos", which="SA"),
        lambda m, d: curvature.trace(m, CE, d, matvecs=9),
        lambda m, d: curvature.trace(m, CE, d, matvecs=9, method="hutchinson", dtype=torch.float64),
        lambda m, d: curvature.spectral_density(m, CE, d, num_probes=2, steps=5),
        lambda m, d: curvature.SharpnessTracker(CE, d)(0, m, 1.0),
        lambda m, d: curvature.HessianOperator(m, CE, d, cache_graph=False).matmat(
            torch.ones(2, curvature.HessianOperator(m, CE, d).size)
        ),
    ],
)
@pytest.mark.parametrize("train", [True, False])
def test_model_unchanged(call, train):
    model = BNDropoutNet(train=train)
    with assert_model_unchanged(model):
        call(model, _bn_data())


def test_eval_mode_is_used_by_default_and_frozen_params_are_skipped():
    model = BNDropoutNet(train=True)
    x, y = _bn_data()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    H_ref, _ = _reference_hessian(model, CE, x, y, names=names, train=False)
    H = curvature.exact_hessian(model, CE, (x, y))
    assert "fc2.bias" not in H.names
    torch.testing.assert_close(H.matrix, H_ref.float(), atol=1e-5, rtol=1e-4)


def test_train_mode_refuses_dropout_and_handles_batchnorm():
    x, y = _bn_data()
    with pytest.raises(ValueError, match="mode.*Dropout"):
        curvature.HessianOperator(BNDropoutNet(), CE, (x, y), mode="train")
    model = BNDropoutNet(dtype=F64)
    model.drop.p = 0.0
    x = x.double()
    H_ref, _ = _reference_hessian(model, CE, x, y, names=["fc1.weight", "head.weight"], train=True)
    with assert_model_unchanged(model):
        H = curvature.exact_hessian(model, CE, (x, y), params=["fc1.weight", "head.weight"], mode="train")
    torch.testing.assert_close(H.matrix, H_ref, atol=1e-10, rtol=1e-8)
    H_eval = curvature.exact_hessian(model, CE, (x, y), params=["fc1.weight", "head.weight"])
    assert not torch.allclose(H.matrix, H_eval.matrix)  # batch statistics really were used


def test_bad_input_messages_name_the_argument():
    net, (x, y) = _net(), _data()
    with pytest.raises(TypeError, match="model"):
        curvature.exact_hessian("not a model", CE, (x, y))
    with pytest.raises(TypeError, match="loss_fn"):
        curvature.HessianOperator(net, "ce", (x, y))
    with pytest.raises(ValueError, match="loss_fn.*scalar"):
        curvature.hvp(net, lambda o, t: (o - 1).pow(2).sum(1), (x, y), torch.ones(38, dtype=F64))
    with pytest.raises(ValueError, match="data.*empty"):
        curvature.HessianOperator(net, CE, [])
    with pytest.raises(ValueError, match="vector.*38"):
        curvature.hvp(net, CE, (x, y), torch.ones(37, dtype=F64))
    with pytest.raises(ValueError, match="vector"):
        curvature.hvp(net, CE, (x, y), {"0.weight": torch.ones(5, 3)})
    with pytest.raises(ValueError, match="`k`"):
        curvature.top_eigenvalues(net, CE, (x, y), k=38)
    with pytest.raises(ValueError, match="which"):
        curvature.top_eigenvalues(net, CE, (x, y), which="BE")
    with pytest.raises(ValueError, match="method"):
        curvature.trace(net, CE, (x, y), method="exact")
    with pytest.raises(ValueError, match="matvecs"):
        curvature.trace(net, CE, (x, y), matvecs=2)
    with pytest.raises(ValueError, match="params.*no parameter 'nope'"):
        curvature.HessianOperator(net, CE, (x, y), params=["nope"])
    with pytest.raises(ValueError, match="params"):
        curvature.HessianOperator(net, CE, (x, y), params=lambda n, p: False)
    with pytest.raises(ValueError, match="mode"):
        curvature.HessianOperator(net, CE, (x, y), mode="inference")
    with pytest.raises(ValueError, match="max_params"):
        curvature.exact_hessian(net, CE, (x, y), max_params=10)
    with pytest.raises(ValueError, match="steps"):
        curvature.spectral_density(net, CE, (x, y), steps=0)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=22), min_size=0, max_size=5, unique=True))
def test_hvp_invariant_to_batch_partition(cuts):
    net, (x, y) = _net(seed=3), _data(23, seed=4)
    edges = [0, *sorted(cuts), 23]
    batches = [(x[a:b], y[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    v = torch.linspace(-1, 1, 38, dtype=F64)
    whole = curvature.hvp(net, CE, (x, y), v)
    for cache in (True, False):
        split = curvature.HessianOperator(net, CE, batches, cache_graph=cache).matvec(v)
        torch.testing.assert_close(split, whole, atol=1e-12, rtol=1e-10)


def test_batch_loss_gives_the_same_hessian_as_loss_fn():
    """The one loss evaluator: a ``train.batch_loss(fn)`` objective enters like ``loss_fn``."""
    from lossviz import train

    net, (x, y) = _net(), _data()
    full = train.batch_loss(lambda model, batch: CE(model(batch[0]), batch[1]))
    H = curvature.exact_hessian(net, full, (x, y)).matrix
    H_ref, _ = _reference_hessian(net, CE, x, y)
    torch.testing.assert_close(H, H_ref, atol=1e-10, rtol=1e-8)
    split = curvature.HessianOperator(net, full, _batches(x, y))
    v = torch.linspace(-1, 1, split.size, dtype=F64)
    torch.testing.assert_close(split.matvec(v), H_ref @ v, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(split.loss(), CE(net(x), y), atol=1e-12, rtol=1e-10)
    with pytest.raises(ValueError, match="loss_fn.*scalar"):
        curvature.hvp(net, train.batch_loss(lambda m, b: m(b[0]).sum(0)), (x, y), v)


def test_inference_mode_and_non_finite_parameters_give_clear_errors():
    """REVIEW B12, B14: cryptic autograd errors under inference_mode; ARPACK -9999 for an inf weight."""
    net, data = _net(), _data()
    v = torch.ones(sum(p.numel() for p in net.parameters()), dtype=F64)
    with torch.inference_mode():
        with pytest.raises(RuntimeError, match="outside.*inference_mode"):
            curvature.hvp(net, CE, data, v)
        with pytest.raises(RuntimeError, match="outside.*inference_mode"):
            curvature.top_eigenvalues(net, CE, data, k=1)
    with torch.no_grad():
        hv = curvature.hvp(net, CE, data, v)  # plain no_grad is fine
    assert torch.isfinite(hv).all()
    with torch.no_grad():
        net[0].weight[1, 2] = float("inf")
    with assert_model_unchanged(net):
        with pytest.raises(ValueError, match="`model` has non-finite parameters: '0.weight'"):
            curvature.top_eigenvalues(net, CE, data, k=1)
        with pytest.raises(ValueError, match="`model` has non-finite parameters: '0.weight'"):
            curvature.hvp(net, CE, data, v)


# -- data of any form, streamed (issue 13 items 1, 2; REVIEW B4, B7) -----------------------------


def test_hvp_streamed_over_a_dataloader_equals_all_at_once():
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    x, y = torch.randn(70, 5), torch.randint(0, 3, (70,))
    ce = torch.nn.functional.cross_entropy
    v = torch.randn(sum(p.numel() for p in net.parameters()))
    full = curvature.hvp(net, ce, (x, y), v)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 16, 16, 16, 16, 6
    op = curvature.HessianOperator(net, ce, loader)
    assert op.batches.streaming and op.batches._placed is None
    streamed = op.matvec(v)
    resident = curvature.HessianOperator(net, ce, collate(loader, resident=True)).matvec(v)
    for got in (streamed, resident):
        assert float((got - full).norm() / full.norm()) < 1e-6


def test_float32_data_for_a_float64_model_and_wrong_width_names_data():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x, y = torch.randn(12, 3), torch.randn(12, 1)
    mse = torch.nn.functional.mse_loss
    r = curvature.top_eigenvalues(net, mse, (x, y), k=1)
    r64 = curvature.top_eigenvalues(net, mse, (x.double(), y.double()), k=1)
    assert abs(r.eigenvalues[0] - r64.eigenvalues[0]) < 1e-10 * abs(r64.eigenvalues[0])
    with pytest.raises(ValueError, match=r"`data`.*expects 3 input features"):
        curvature.top_eigenvalues(net, mse, (torch.randn(12, 4), y), k=1)
