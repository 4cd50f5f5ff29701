"""lossviz.ntk._empirical: the structured and Jacobian paths agree, fallbacks, model untouched."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lossviz import ntk
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._util import F64, _mlp, _rel

torch.set_num_threads(1)


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


def test_empirical_works_under_no_grad():
    net = _mlp((3, 8, 1))
    x = torch.randn(4, 3, dtype=F64)
    with torch.no_grad():
        a = ntk.empirical(net, x, method="structured").kernel
        b = ntk.empirical(net, x, method="jacobian").kernel
    assert _rel(a, b) < 1e-10


def test_bad_inputs_empirical():
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
    with pytest.raises(ValueError, match="non-finite"):
        ntk.empirical(net, torch.full((2, 3), float("nan"), dtype=F64))


def test_train_mode_dropout_is_refused():
    """REVIEW B9: mode='train' with Dropout gave a random kernel; now a clear ValueError."""
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)).double()
    x = torch.randn(5, 3, dtype=F64)
    with pytest.raises(ValueError, match="Dropout.*random kernel"):
        ntk.empirical(net, x, mode="train")
    with assert_model_unchanged(net):
        a = ntk.empirical(net, x).kernel  # eval mode: Dropout is the identity, deterministic
        b = ntk.empirical(net, x).kernel
    assert torch.equal(a, b)
    ntk.empirical(nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.0), nn.Linear(4, 1)).double(), x, mode="train")


def test_float32_kernel_accumulates_in_float64():
    """~1e5 parameters in float32: the contraction over parameters is accumulated in float64.

    Measured on this net: float32 accumulation gave 1.9e-5 (chunk_size=3) and 1.1e-6
    (chunk_size=16) relative error against the float64 kernel; float64 accumulation 4.5e-8 for both.
    """
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(20, 300),
        torch.nn.Tanh(),
        torch.nn.Linear(300, 300),
        torch.nn.Tanh(),
        torch.nn.Linear(300, 10),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    x = torch.randn(12, 20, generator=g)
    ref = ntk.empirical(copy.deepcopy(net).double(), x.double(), method="jacobian").kernel
    for cs in (3, 12):
        k = ntk.empirical(net, x, method="jacobian", chunk_size=cs).kernel
        assert k.dtype == torch.float32
        assert float((k.double() - ref).abs().max() / ref.abs().max()) < 3e-7, cs


# -- any model, any inputs (issue 13 items 1, 5; REVIEW B7, B10) ---------------------------------


class _TupleOut(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))

    def forward(self, x):
        return self.net(x), x.sum()


class _DictOut(_TupleOut):
    def forward(self, x):
        return {"logits": self.net(x), "aux": x.sum()}


class _Tokens(torch.nn.Module):
    """Embedding + masked mean + head, called as model(input_ids=..., attention_mask=...)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(11, 5)
        self.head = torch.nn.Linear(5, 3)

    def forward(self, input_ids, attention_mask):
        m = attention_mask[..., None].to(self.emb.weight.dtype)
        return self.head((self.emb(input_ids) * m).sum(1) / m.sum(1))


def test_tuple_and_dict_outputs_give_the_tensor_kernel():
    torch.manual_seed(0)
    t = _TupleOut().double()
    d = _DictOut().double()
    d.load_state_dict(t.state_dict())
    x = torch.randn(5, 3, dtype=torch.float64)
    ref = ntk.empirical(t.net, x, output="full", method="jacobian").kernel
    for m in (t, d):
        k = ntk.empirical(m, x, output="full")
        assert torch.allclose(k.kernel, ref, rtol=1e-10, atol=1e-12)
    picked = ntk.empirical(t, x, output_fn=lambda out: out[0][:, :1])
    assert picked.num_outputs == 1


def test_integer_token_ids_and_dict_inputs():
    torch.manual_seed(0)
    net = _Tokens().double()
    ids = torch.randint(0, 11, (4, 6))
    mask = torch.ones_like(ids)
    mask[2, 4:] = 0
    k = ntk.empirical(net, {"input_ids": ids, "attention_mask": mask}, output="full")
    # reference: Jacobians of each sample's outputs w.r.t. the parameters, by hand
    params = dict(net.named_parameters())
    rows = []
    for i in range(4):
        out = net(ids[i : i + 1], mask[i : i + 1])[0]
        rows.append(
            torch.stack(
                [
                    torch.cat(
                        [
                            g.reshape(-1)
                            for g in torch.autograd.grad(out[a], list(params.values()), retain_graph=True)
                        ]
                    )
                    for a in range(3)
                ]
            )
        )
    j = torch.stack(rows)
    ref = torch.einsum("iap,jbp->ijab", j, j)
    assert torch.allclose(k.kernel, ref, rtol=1e-10, atol=1e-12)
    # data (a batch with labels) gives the same kernel; the labels are ignored
    k2 = ntk.empirical(
        net, {"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(4)}, output="full"
    )
    assert torch.allclose(k2.kernel, ref, rtol=1e-10, atol=1e-12)


def test_vmap_unbatchable_model_falls_back_to_one_sample_at_a_time():
    class DataDependent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            if bool((x > 10).any()):  # data-dependent control flow: vmap refuses
                x = x * 0
            return self.lin(x)

    torch.manual_seed(0)
    net = DataDependent().double()
    x = torch.randn(4, 3, dtype=torch.float64)
    k = ntk.empirical(net, x, method="jacobian")
    assert k.diagnostics["per_sample_loop"]
    ref = ntk.empirical(net.lin, x, method="jacobian").kernel
    assert torch.allclose(k.kernel, ref, rtol=1e-12)


def test_wrong_input_width_names_x1():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net(torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"`x1`.*3 input channels"):
        ntk.empirical(net, torch.randn(2, 4, 5, 5))
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"`x1`.*3 input features"):
        ntk.empirical(mlp, torch.randn(2, 5), method="jacobian")


def test_inference_mode_and_non_finite_parameters_give_clear_errors():
    """REVIEW B12, B14: cryptic autograd errors under inference_mode; a NaN kernel for an inf weight."""
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="ntk.empirical.*outside.*inference_mode"):
        ntk.empirical(net, x)
    with torch.no_grad():
        k = ntk.empirical(net, x).kernel  # plain no_grad is fine
    assert torch.isfinite(k).all()
    with torch.no_grad():
        net[2].weight[0, 3] = float("inf")
    with (
        assert_model_unchanged(net),
        pytest.raises(ValueError, match="`model` has non-finite parameters: '2.weight'"),
    ):
        ntk.empirical(net, x)


def test_chunk_size_is_checked():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    for bad, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError)):
        with pytest.raises(exc, match="chunk_size"):
            ntk.empirical(net, torch.randn(4, 3, dtype=torch.float64), chunk_size=bad)
