"""lossviz.curvature against the exact Hessian of small float64 models.

The reference Hessian is computed independently of lossviz: ``torch.func.hessian`` of a flat
function over *all samples at once* (the mean over samples), so a library that summed batch
Hessians, or averaged batch means without sample weights, fails these tests.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lossviz import curvature
from lossviz.testing import BNDropoutNet, assert_model_unchanged

F64 = torch.float64
CE = nn.functional.cross_entropy


def _net(seed=0, dtype=F64, width=5):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 3)).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return net


def _data(n=23, seed=1, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def _batches(x, y, sizes=(4, 12, 7)):
    out, i = [], 0
    for s in sizes:
        out.append((x[i : i + s], y[i : i + s]))
        i += s
    return out


def _reference_hessian(model, loss_fn, x, y, names=None, train=False):
    """Independent reference: torch.func.hessian of the mean loss over all samples."""
    model = copy.deepcopy(model).train(train)
    named = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = list(named) if names is None else names
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    theta = torch.cat([named[n].reshape(-1) for n in names])

    def f(t):
        state = dict(named)
        state.update({n: c.view(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)})
        state.update({k: v.clone() for k, v in bufs.items()})
        return loss_fn(torch.func.functional_call(model, state, (x,)), y)

    return torch.func.hessian(f)(theta), theta


# ------------------------------------------------------------------------------------------
# Hessian-vector products and the exact Hessian
# ------------------------------------------------------------------------------------------


def test_exact_hessian_matches_torch_func_hessian():
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    res = curvature.exact_hessian(net, CE, (x, y))
    assert res.matrix.dtype == F64
    assert res.matrix.shape == H_ref.shape == (38, 38)
    torch.testing.assert_close(res.matrix, H_ref, atol=1e-12, rtol=1e-10)
    assert res.asymmetry < 1e-12
    assert res.loss == pytest.approx(float(CE(net(x), y).detach()), rel=1e-12)
    assert torch.allclose(res.eigenvalues, torch.linalg.eigvalsh(H_ref), atol=1e-10)


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


# ------------------------------------------------------------------------------------------
# Eigenvalues
# ------------------------------------------------------------------------------------------


def test_top_eigenvalues_match_exact_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam, U = torch.linalg.eigh(H_ref)
    top = curvature.top_eigenvalues(net, CE, _batches(x, y, (10, 30)), k=3, seed=0)
    np.testing.assert_allclose(top.eigenvalues, lam.flip(0)[:3].numpy(), rtol=1e-9, atol=1e-11)
    assert top.all_converged
    assert np.all(top.residual_norms < 1e-8)
    assert top.matvecs > 3
    overlap = (top.eigenvectors[:, 0] @ U[:, -1]).abs()
    assert overlap > 1 - 1e-8
    low = curvature.top_eigenvalues(net, CE, (x, y), k=2, which="SA")
    np.testing.assert_allclose(low.eigenvalues, lam[:2].numpy(), rtol=1e-9, atol=1e-11)
    assert low.eigenvalues[0] < 0  # a tanh network at a random point has negative curvature
    lm = curvature.top_eigenvalues(net, CE, (x, y), k=1, which="LM")
    assert lm.eigenvalues[0] == pytest.approx(float(lam.abs().max()), rel=1e-9)


def test_top_eigenvalues_reports_non_convergence_instead_of_lying():
    net, (x, y) = _net(width=8), _data(40)
    with pytest.warns(RuntimeWarning, match="converged for only"):
        bad = curvature.top_eigenvalues(net, CE, (x, y), k=3, maxiter=1, ncv=4, tol=1e-14)
    assert not bad.all_converged
    assert np.isnan(bad.eigenvalues).any() or not bad.converged.all()


def test_top_eigenvalues_seed_and_operator_reuse():
    net, (x, y) = _net(width=8), _data(40)
    op = curvature.hessian_operator(net, CE, (x, y))
    a = curvature.top_eigenvalues(op, k=2, seed=5)
    b = curvature.top_eigenvalues(op, k=2, seed=5)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert a.matvecs == b.matvecs
    warm = curvature.top_eigenvalues(op, k=1, v0=a.eigenvectors[:, 0])
    assert warm.matvecs < a.matvecs
    with pytest.raises(ValueError, match="either a HessianOperator alone"):
        curvature.top_eigenvalues(op, CE, (x, y))


# ------------------------------------------------------------------------------------------
# Trace
# ------------------------------------------------------------------------------------------


def test_hutchpp_is_exact_when_the_sketch_spans_everything():
    net, (x, y) = _net(), _data()
    H_ref, _ = _reference_hessian(net, CE, x, y)
    n = H_ref.shape[0]
    res = curvature.trace(net, CE, (x, y), matvecs=3 * n, seed=0)
    assert res.trace == pytest.approx(float(H_ref.trace()), rel=1e-10, abs=1e-10)
    assert res.standard_error < 1e-10
    assert res.matvecs == 3 * n
    assert res.method == "hutch++"


@pytest.mark.parametrize("method,m", [("hutchinson", 400), ("hutch++", 60)])
def test_trace_estimators_are_unbiased_within_their_standard_error(method, m):
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    exact = float(H_ref.trace())
    z = []
    for seed in range(6):
        r = curvature.trace(net, CE, (x, y), method=method, matvecs=m, seed=seed)
        assert r.matvecs == m
        assert r.standard_error > 0
        z.append((r.trace - exact) / r.standard_error)
    z = np.array(z)
    assert np.all(np.abs(z) < 5), z
    # the standard error is not absurdly large either: the errors are not all tiny compared with it
    assert np.abs(z).max() > 0.05, z


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    exact = float(H_ref.trace())
    errs = {m: [] for m in ("hutch++", "hutchinson")}
    for seed in range(5):
        for method in errs:
            errs[method].append(
                abs(curvature.trace(net, CE, (x, y), method=method, matvecs=30, seed=seed).trace - exact)
            )
    assert np.mean(errs["hutch++"]) < np.mean(errs["hutchinson"])


def test_trace_seeded():
    net, (x, y) = _net(), _data()
    a = curvature.trace(net, CE, (x, y), seed=3, matvecs=9)
    b = curvature.trace(net, CE, (x, y), seed=3, matvecs=9)
    c = curvature.trace(net, CE, (x, y), seed=4, matvecs=9)
    assert a.trace == b.trace and a.trace != c.trace


# ------------------------------------------------------------------------------------------
# Lanczos and stochastic Lanczos quadrature
# ------------------------------------------------------------------------------------------


def test_lanczos_quadrature_reproduces_moments():
    net, (x, y) = _net(width=8), _data(40)
    H, _ = _reference_hessian(net, CE, x, y)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(0), dtype=F64)
    m = 6
    lz = curvature.lanczos(lambda u: H @ u, v, m)
    assert lz.orthogonality_loss < 1e-12
    theta, tau = lz.ritz()
    u = v / v.norm()
    for p in range(2 * m):  # Gauss quadrature with m nodes is exact up to degree 2m - 1
        exact = float(u @ torch.linalg.matrix_power(H, p) @ u)
        assert np.sum(tau * theta**p) == pytest.approx(exact, rel=1e-7, abs=1e-9), p


def test_lanczos_breakdown_on_low_rank_start():
    A = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=F64))
    lz = curvature.lanczos(lambda u: A @ u, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=F64), 4)
    assert lz.breakdown and len(lz.alpha) == 2
    np.testing.assert_allclose(np.sort(lz.ritz()[0]), [2.0, 3.0], atol=1e-12)


def test_spectral_density_matches_exact_spectrum():
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam = torch.linalg.eigvalsh(H_ref)
    n = H_ref.shape[0]
    dens = curvature.spectral_density(net, CE, (x, y), num_probes=20, steps=n, seed=0)
    assert dens.matvecs <= 20 * n
    assert dens.orthogonality_loss < 1e-10
    spread = float(lam.max() - lam.min())
    # with n steps every probe's quadrature has the exact eigenvalues as nodes; only the weights
    # are random (mean 1/n each)
    w1 = dens.wasserstein(lam)
    assert w1 < 0.05 * spread, (w1, spread)
    assert dens.trace_estimate == pytest.approx(float(lam.sum()), abs=5 * dens.trace_standard_error + 1e-9)
    np.testing.assert_allclose(sum(w.sum() for w in dens.weights) / 20, 1.0)
    grid, phi = dens.density()
    assert np.trapezoid(phi, grid) == pytest.approx(1.0, rel=1e-3)
    # few steps: extreme eigenvalue still found (Lanczos converges at the edges first)
    short = curvature.spectral_density(net, CE, (x, y), num_probes=2, steps=15, seed=1)
    assert short.all_nodes.max() == pytest.approx(float(lam.max()), rel=1e-6)
    assert short.matvecs == 2 * 15


# ------------------------------------------------------------------------------------------
# The model is sacred
# ------------------------------------------------------------------------------------------


def _bn_data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


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


# ------------------------------------------------------------------------------------------
# Sharpness tracking during training
# ------------------------------------------------------------------------------------------


def test_sharpness_tracker_with_fit():
    from lossviz import train

    net = _net(width=8)
    x, y = _data(40)
    tracker = curvature.SharpnessTracker(CE, (x, y), every=5, k=2, seed=0)
    hist = train.fit(net, CE, (x, y), steps=12, lr=0.5, callbacks=[tracker], progress=False)
    res = tracker.result()
    # every 5 steps and at the final step (fit passes final=True to callbacks that accept it)
    assert res.steps.tolist() == [0, 5, 10, 12]
    assert res.eigenvalues.shape == (4, 2)
    assert res.converged.all()
    assert hist.steps("sharpness") == [0, 5, 10, 12]
    assert hist.values("sharpness") == pytest.approx(res.sharpness.tolist())
    assert res.matvecs > 0
    # the recorded value is the top eigenvalue at that step: check the last one by replaying
    net2 = _net(width=8)
    train.fit(net2, CE, (x, y), steps=12, lr=0.5, progress=False)
    lam = torch.linalg.eigvalsh(curvature.exact_hessian(net2, CE, (x, y)).matrix)
    assert res.sharpness[-1] == pytest.approx(float(lam[-1]), rel=1e-8)
    fig = curvature.plot_sharpness(res, lr=0.5)
    assert len(fig.data) == 1


# ------------------------------------------------------------------------------------------
# Second-order methods near saddles and the scalar network
# ------------------------------------------------------------------------------------------


def _saddle(eps=0.01):
    return lambda p: p[0] ** 2 / 2 + eps * (p[1] ** 4 / 4 - p[1] ** 2 / 2)


def test_newton_goes_to_the_saddle_and_sfn_escapes():
    f = _saddle()
    newton = curvature.second_order_path(f, [1.5, 3e-4], method="newton", steps=30)
    assert newton.grad_norms[-1] < 1e-8 and newton.min_eigenvalues[-1] < 0
    sfn = curvature.second_order_path(f, [1.5, 3e-4], method="sfn", steps=60)
    assert sfn.min_eigenvalues[-1] > 0
    assert sfn.values[-1] == pytest.approx(-0.01 / 4, rel=1e-6)
    assert np.all(np.diff(sfn.values) <= 1e-15)  # Armijo: monotone
    gd = curvature.second_order_path(f, [1.5, 3e-4], method="gd", lr=1.0, steps=60)
    assert gd.values[-1] > sfn.values[-1] + 0.001  # GD is still on the plateau
    assert sfn.steps_to(-0.99 * 0.01 / 4) < 30
    assert gd.steps_to(-0.99 * 0.01 / 4) is None


def test_newton_on_a_quadratic_is_one_step():
    A = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=F64)
    b = torch.tensor([1.0, -1.0], dtype=F64)
    path = curvature.second_order_path(
        lambda p: 0.5 * p @ A @ p - b @ p, [5.0, 5.0], method="newton", steps=1
    )
    np.testing.assert_allclose(path.points[-1], torch.linalg.solve(A, b).numpy(), atol=1e-12)


def test_gradient_flow_solution_matches_ode_and_exact_hessian():
    from scipy.integrate import solve_ivp

    y = 5.0
    for w0 in ([0.8, 1.5, 2.9], [3.0, 1.2, 1.4, 0.7], [2.0, 2.0, 2.0]):
        w0 = np.array(w0)
        w_star, sharp = curvature.gradient_flow_solution(w0, y)
        assert np.prod(w_star) == pytest.approx(y, rel=1e-12)
        np.testing.assert_allclose(w_star**2 - w_star[0] ** 2, w0**2 - w0[0] ** 2, atol=1e-10)

        def rhs(t, w):
            p = np.prod(w)
            return -(p - y) * p / w

        sol = solve_ivp(rhs, (0, 200), w0, rtol=1e-12, atol=1e-12, method="DOP853")
        np.testing.assert_allclose(sol.y[:, -1], w_star, atol=1e-6)
        net = curvature.ScalarNetwork(w_star)
        data = (torch.ones(1, 1, dtype=F64), torch.full((1, 1), y, dtype=F64))
        mse_half = lambda out, t: 0.5 * ((out - t) ** 2).mean()  # noqa: E731
        lam = curvature.exact_hessian(net, mse_half, data).eigenvalues
        assert float(lam[-1]) == pytest.approx(sharp, rel=1e-10)
        assert float(lam[:-1].abs().max()) < 1e-9 * sharp  # on the minimiser manifold: rank one


def test_gradient_flow_solution_bad_input():
    with pytest.raises(ValueError, match="sign"):
        curvature.gradient_flow_solution([1.0, -1.0], 5.0)
    with pytest.raises(ValueError, match="non-zero"):
        curvature.gradient_flow_solution([1.0, 0.0], 5.0)


# ------------------------------------------------------------------------------------------
# Bad input and drawing
# ------------------------------------------------------------------------------------------


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
    with pytest.raises(ValueError, match="x0.*non-finite"):
        curvature.second_order_path(_saddle(), [math.nan, 0.0])
    with pytest.raises(ValueError, match="method"):
        curvature.second_order_path(_saddle(), [1.0, 0.0], method="bfgs")


def test_plots_return_figures():
    import matplotlib.figure
    import plotly.graph_objects as go

    net, (x, y) = _net(width=8), _data(40)
    dens = curvature.spectral_density(net, CE, (x, y), num_probes=2, steps=10)
    lam = curvature.exact_hessian(net, CE, (x, y)).eigenvalues
    assert isinstance(curvature.plot_spectrum(dens, lam), go.Figure)
    assert isinstance(curvature.plot_spectrum(dens, lam, backend="matplotlib"), matplotlib.figure.Figure)
    path = curvature.second_order_path(_saddle(), [1.0, 1e-3], method="sfn", steps=5)
    f = lambda X, Y: X**2 / 2 + 0.01 * (Y**4 / 4 - Y**2 / 2)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(curvature.plot_paths_2d(f, {"sfn": path}), matplotlib.figure.Figure)
    assert isinstance(curvature.plot_paths_2d(f, {"sfn": path}, backend="plotly"), go.Figure)
    with pytest.raises(ValueError, match="paths"):
        curvature.plot_paths_2d(f, {"bad": np.zeros((3, 3))})


# ------------------------------------------------------------------------------------------
# Class-mean gradients and subspace energy
# ------------------------------------------------------------------------------------------


def test_class_mean_gradients_average_to_the_full_gradient():
    net, (x, y) = _net(), _data(30)
    G = curvature.class_mean_gradients(net, CE, (x, y))
    counts = torch.bincount(y, minlength=3).to(F64)
    full = curvature.HessianOperator(net, CE, (x, y)).gradient()
    torch.testing.assert_close((counts[:, None] * G).sum(0) / counts.sum(), full, atol=1e-12, rtol=1e-10)
    # class 1 alone, by autograd on the model copy
    ref = copy.deepcopy(net)
    CE(ref(x[y == 1]), y[y == 1]).backward()
    torch.testing.assert_close(
        G[1], torch.cat([p.grad.reshape(-1) for p in ref.parameters()]), atol=1e-12, rtol=1e-10
    )
    cross = curvature.class_mean_gradients(net, CE, (x, y), cross=True)
    assert cross.shape == (3, 3, 38)
    torch.testing.assert_close(cross[[0, 1, 2], [0, 1, 2]], G)
    with assert_model_unchanged(model := BNDropoutNet()):
        curvature.class_mean_gradients(model, CE, _bn_data(), cross=True)
    with pytest.raises(TypeError, match="integer class labels"):
        curvature.class_mean_gradients(net, nn.functional.mse_loss, (x, torch.randn(30, 3, dtype=F64)))
    with pytest.raises(ValueError, match="no sample of class 1"):
        curvature.class_mean_gradients(net, CE, (x[y != 1], torch.where(y[y != 1] == 2, 2, 0)))


def test_subspace_energy():
    basis = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=F64)
    V = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=F64)  # columns
    np.testing.assert_allclose(curvature.subspace_energy(V, basis).numpy(), [1.0, 0.0, 2 / 3], atol=1e-12)
    with pytest.raises(ValueError, match="spanning"):
        curvature.subspace_energy(V, torch.ones(2, 4, dtype=F64))


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_adaptive_lanczos_matches_exact_spectrum(which):
    net, (x, y) = _net(width=8), _data(40)
    H_ref, _ = _reference_hessian(net, CE, x, y)
    lam = torch.linalg.eigvalsh(H_ref).numpy()
    want = {"LA": lam[::-1][:3], "SA": lam[:3], "LM": lam[np.argsort(-np.abs(lam))][:3]}[which]
    res = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, method="lanczos", seed=0)
    assert res.method == "lanczos"
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-9, atol=1e-11)
    assert res.all_converged
    # the recurrence residuals are the true ones (full re-orthogonalisation)
    V = res.eigenvectors
    true_res = (H_ref @ V - V * torch.as_tensor(res.eigenvalues)).norm(dim=0).numpy()
    np.testing.assert_allclose(res.residual_norms, true_res, atol=1e-9)
    eig = curvature.top_eigenvalues(net, CE, (x, y), k=3, which=which, seed=0)
    assert res.matvecs < eig.matvecs


def test_adaptive_lanczos_reports_non_convergence():
    net, (x, y) = _net(width=8), _data(40)
    with pytest.warns(RuntimeWarning, match="did not reach"):
        res = curvature.top_eigenvalues(net, CE, (x, y), k=2, method="lanczos", maxiter=3, tol=1e-12)
    assert not res.all_converged
    verified = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", verify=True)
    assert verified.all_converged and verified.residual_norms[0] < 1e-8
    with pytest.raises(ValueError, match="method"):
        curvature.top_eigenvalues(net, CE, (x, y), method="power")


def test_adaptive_lanczos_gap_stop_is_accurate_and_cheaper():
    net, (x, y) = _net(width=8), _data(40)
    lam = torch.linalg.eigvalsh(_reference_hessian(net, CE, x, y)[0]).numpy()
    res_stop = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", tol=1e-6, seed=1)
    gap_stop = curvature.top_eigenvalues(net, CE, (x, y), k=1, method="lanczos", tol=1e-6, stop="gap", seed=1)
    assert gap_stop.matvecs <= res_stop.matvecs
    assert abs(gap_stop.eigenvalues[0] - lam[-1]) <= 1e-6 * lam[-1]
    assert gap_stop.all_converged
    with pytest.raises(ValueError, match="stop"):
        curvature.top_eigenvalues(net, CE, (x, y), method="lanczos", stop="never")


# ------------------------------------------------------------------------------------------
# Property: the Hessian does not depend on how the data are split into batches
# ------------------------------------------------------------------------------------------


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


def test_sharpness_tracker_warm_start_saves_products():
    net, (x, y) = _net(width=8), _data(40)
    cold = curvature.SharpnessTracker(CE, (x, y), warm_start=False)
    warm = curvature.SharpnessTracker(CE, (x, y), method="lanczos")
    for step in range(3):
        cold(step, net, None)
        warm(step, net, None)
    np.testing.assert_allclose(warm.result().sharpness, cold.result().sharpness, rtol=1e-8)
    assert warm.result().matvecs < cold.result().matvecs


def test_adaptive_lanczos_grows_its_basis():
    net, (x, y) = _net(width=8), _data(40)
    lam = torch.linalg.eigvalsh(_reference_hessian(net, CE, x, y)[0]).numpy()
    res = curvature.top_eigenvalues(net, CE, (x, y), k=6, method="lanczos", tol=1e-11, seed=2)
    assert res.matvecs > 16  # more steps than the first allocation of the Krylov basis
    np.testing.assert_allclose(res.eigenvalues, lam[::-1][:6], rtol=1e-9, atol=1e-11)
    assert res.all_converged
