"""Tests for lossviz.landscape: each known bug of loss-landscapes / loss-landscape is shown absent."""

from __future__ import annotations

import copy
import importlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.landscape import large_steps
from lossviz.testing import BNDropoutNet, assert_model_unchanged

tr = importlib.import_module("lossviz.landscape.trainability")

F = nn.functional


def _data(n=32, d=4, k=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)


def _mlp(dtype=torch.float32, seed=0, widths=(4, 8, 8, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b, dtype=dtype), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def _direct_loss(model, params, data, loss_fn=F.cross_entropy):
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name])
        return float(loss_fn(m(data[0]), data[1]))


# ---------------------------------------------------------------------------------------- directions


def test_directions_are_gaussian_not_uniform():
    net = nn.Linear(400, 50)
    d = landscape.random_directions(net, n=1, norm="none", ignore=(), seed=3)
    v = d.flat()[0].double()
    assert abs(float(v.mean())) < 0.02  # uniform [0, 1] would have mean 0.5
    assert float((v < 0).double().mean()) == pytest.approx(0.5, abs=0.02)
    assert float(v.std()) == pytest.approx(1.0, abs=0.02)
    kurt = float(((v - v.mean()) ** 4).mean() / v.var() ** 2)
    assert kurt == pytest.approx(3.0, abs=0.15)  # Gaussian 3, uniform 1.8


def test_filter_normalisation_and_ignore_policy():
    net = BNDropoutNet()
    d = landscape.random_directions(net, n=2, seed=0)
    params = dict(net.named_parameters())
    for vec in d.vectors:
        w, v = params["fc1.weight"].detach(), vec["fc1.weight"]
        assert torch.allclose(v.norm(dim=1), w.norm(dim=1), rtol=1e-5)
        assert not vec["fc1.bias"].any() and not vec["head.bias"].any()
        assert not vec["bn.weight"].any() and not vec["bn.bias"].any()
    d2 = landscape.random_directions(net, n=1, ignore=(), seed=0)
    assert d2[0]["bn.weight"].any() and d2[0]["fc1.bias"].any()
    d3 = landscape.random_directions(net, n=1, ignore=("frozen",), seed=0)
    assert not d3[0]["fc2.bias"].any()  # the frozen parameter of BNDropoutNet
    layer = landscape.random_directions(net, n=1, norm="layer", seed=0)
    assert torch.allclose(layer[0]["fc1.weight"].norm(), params["fc1.weight"].detach().norm(), rtol=1e-5)


def test_directions_seeded_cosine_and_dtype():
    net = _mlp(torch.float64)
    a = landscape.random_directions(net, seed=1)
    b = landscape.random_directions(net, seed=1)
    c = landscape.random_directions(net, seed=2)
    assert all(torch.equal(a[0][k], b[0][k]) for k in a.names)
    assert not torch.equal(a[0]["0.weight"], c[0]["0.weight"])
    assert a[0]["0.weight"].dtype == torch.float64
    assert a.cosine.shape == (2, 2) and np.allclose(np.diag(a.cosine), 1.0)
    assert abs(a.cosine[0, 1]) < 0.5
    with assert_model_unchanged(net):
        landscape.random_directions(net, seed=0)


# ---------------------------------------------------------------------------------------- plane / line


@pytest.mark.parametrize("steps", [(5, 3), (3, 7), (4, 6)])
def test_plane_ij_indexing_non_square_and_origin(steps):
    net = _mlp(torch.float64)
    data = _data(dtype=torch.float64)
    res = landscape.plane(net, F.cross_entropy, data, steps=steps, span=(1.0, 0.5))
    na = steps[0] + (steps[0] % 2 == 0)
    nb = steps[1] + (steps[1] % 2 == 0)
    assert res.loss.shape == (na, nb) == (len(res.alphas), len(res.betas))
    i0, j0 = res.origin_index
    assert res.alphas[i0] == 0.0 and res.betas[j0] == 0.0
    base = {k: p.detach() for k, p in net.named_parameters()}
    assert res.loss[i0, j0] == res.origin_loss == _direct_loss(net, base, data)
    d1, d2 = res.directions[0], res.directions[1]
    for i, j in [(0, nb - 1), (na - 1, 0), (1, nb - 2)]:
        p = {k: base[k] + res.alphas[i] * d1[k] + res.betas[j] * d2[k] for k in base}
        assert res.loss[i, j] == pytest.approx(_direct_loss(net, p, data), rel=1e-12)
    assert res.loss.dtype == np.float64


def test_plane_leaves_model_untouched_bn_dropout():
    net = BNDropoutNet()
    x, y = _data()
    with assert_model_unchanged(net):
        res = landscape.plane(net, F.cross_entropy, (x, y), steps=5, metrics={"acc": landscape.accuracy})
        landscape.line(net, F.cross_entropy, (x, y), steps=5)
    assert net.training and not net.fc2.bias.requires_grad
    assert res.metrics["acc"].shape == (5, 5)
    # evaluation in eval mode: the origin equals the eval-mode loss (dropout off, running stats)
    m = copy.deepcopy(net).eval()
    with torch.no_grad():
        assert res.origin_loss == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-6)


def test_plane_workers_agree_and_batches_are_weighted():
    net = _mlp(torch.float64)
    x, y = _data(n=30, dtype=torch.float64)
    dirs = landscape.random_directions(net, seed=4)
    one = landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=7, workers=1)
    two = landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=7, workers=2)
    np.testing.assert_array_equal(one.loss, two.loss)
    batches = [(x[:7], y[:7]), (x[7:], y[7:])]  # unequal batch sizes
    split = landscape.plane(net, F.cross_entropy, batches, dirs, steps=7)
    np.testing.assert_allclose(split.loss, one.loss, rtol=1e-12)


def test_plane_given_directions_flat_and_extent():
    net = _mlp()
    x, y = _data()
    P = sum(p.numel() for p in net.parameters())
    flat = torch.randn(2, P)
    res = landscape.plane(net, F.cross_entropy, (x, y), flat, extent=((-0.5, 1.0), (-1.0, 0.3)), steps=(4, 5))
    assert res.alphas[0] == -0.5 and res.alphas[-1] == 1.0 and 0.0 in res.alphas
    assert res.directions.norm == "given"


def test_line_origin_and_float64():
    net = _mlp(torch.float64)
    data = _data(dtype=torch.float64)
    res = landscape.line(net, F.cross_entropy, data, steps=6, span=2.0)
    assert len(res.alphas) == 7 and res.alphas[res.origin_index] == 0.0
    base = {k: p.detach() for k, p in net.named_parameters()}
    assert res.origin_loss == _direct_loss(net, base, data)


def test_plane_diverged_cells_flagged_and_plotted_without_nan():
    net = _mlp()
    x, y = _data()

    def loss_fn(out, t):
        return F.cross_entropy(out, t) / (out.abs().max() < 4).float()  # inf far from the origin

    dirs = landscape.random_directions(net, norm="none", seed=0)
    res = landscape.plane(net, loss_fn, (x, y), dirs, span=20.0, steps=9)
    assert res.diverged.any() and not res.diverged[res.origin_index]
    for kind in ("contour", "heatmap", "surface"):
        fig = landscape.plot_plane(res, kind=kind)
        z = np.asarray(fig.data[0].z, dtype=float)
        assert np.isfinite(z).all()
        assert any(t.name == "diverged" for t in fig.data)
    fig = landscape.plot_plane(res, backend="matplotlib")
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_orientation_non_square():
    net = _mlp()
    res = landscape.plane(net, F.cross_entropy, _data(), steps=(5, 3))
    fig = landscape.plot_plane(res, kind="heatmap")
    z = np.asarray(fig.data[0].z)
    assert z.shape == (len(res.betas), len(res.alphas))  # rows = y = beta
    np.testing.assert_allclose(z, res.loss.T)
    assert list(fig.data[0].x) == list(res.alphas)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 1}, "steps"),
        ({"span": -1.0}, "span"),
        ({"steps": (5, 1)}, "steps"),
    ],
)
def test_plane_bad_grid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        landscape.plane(_mlp(), F.cross_entropy, _data(), **kwargs)


def test_plane_bad_inputs():
    net = _mlp()
    data = _data()
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, torch.randn(2, 5))
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, [landscape.random_directions(net, 1)[0]])
    bad = [{k: torch.zeros(3) for k, _ in net.named_parameters()}] * 2
    with pytest.raises(ValueError, match="directions"):
        landscape.plane(net, F.cross_entropy, data, bad)
    with pytest.raises(ValueError, match="loss_fn"):
        landscape.plane(net, lambda o, t: F.cross_entropy(o, t, reduction="none"), data, steps=3)
    with pytest.raises(ValueError, match="data"):
        landscape.plane(net, F.cross_entropy, [], steps=3)
    with pytest.raises(ValueError, match="data"):
        landscape.plane(net, F.cross_entropy, (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), steps=3)
    with pytest.raises(TypeError, match="model"):
        landscape.plane("net", F.cross_entropy, data)
    with pytest.raises(ValueError, match="ignore"):
        landscape.random_directions(net, ignore=("weights",))
    with pytest.raises(ValueError, match="norm"):
        landscape.random_directions(net, norm="unit")


# ---------------------------------------------------------------------------------------- interpolate


def test_interpolate_includes_both_ends_and_barrier():
    a, b = _mlp(torch.float64, seed=0), _mlp(torch.float64, seed=1)
    data = _data(dtype=torch.float64)
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.interpolate(
            a, b, F.cross_entropy, data, steps=11, metrics={"acc": landscape.accuracy}
        )
    assert res.alphas[0] == 0.0 and res.alphas[-1] == 1.0 and len(res.alphas) == 11
    pa = {k: p.detach() for k, p in a.named_parameters()}
    pb = {k: p.detach() for k, p in b.named_parameters()}
    assert res.loss[0] == _direct_loss(a, pa, data)
    assert res.loss[-1] == _direct_loss(b, pb, data)
    mid = {k: 0.5 * pa[k] + 0.5 * pb[k] for k in pa}
    assert res.loss[5] == pytest.approx(_direct_loss(a, mid, data), rel=1e-12)
    chord = (1 - res.alphas) * res.loss[0] + res.alphas * res.loss[-1]
    assert res.barrier == pytest.approx(np.max(res.loss - chord))
    assert res.metrics["acc"].shape == (11,)


def test_interpolate_batchnorm_buffers():
    a, b = BNDropoutNet(seed=0), BNDropoutNet(seed=1)
    x, y = _data()
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=3)
        rec = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=3, bn="recompute")
    # midpoint with interpolated buffers
    m = copy.deepcopy(a).eval()
    with torch.no_grad():
        for p, q in zip(m.parameters(), b.parameters()):
            p.copy_(0.5 * p + 0.5 * q)
        m.bn.running_mean.copy_(0.5 * a.bn.running_mean + 0.5 * b.bn.running_mean)
        m.bn.running_var.copy_(0.5 * a.bn.running_var + 0.5 * b.bn.running_var)
        assert res.loss[1] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-6)
        # recomputed statistics = batch statistics of the midpoint network on the data
        h = m.fc1(x)
        m.bn.running_mean.copy_(h.mean(0))
        m.bn.running_var.copy_(h.var(0, unbiased=True))
        assert rec.loss[1] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-5)
    assert a.bn.momentum == 0.1 and rec.bn == "recompute"


def test_interpolate_bad_inputs():
    a = _mlp()
    with pytest.raises(ValueError, match="model_b"):
        landscape.interpolate(a, _mlp(widths=(4, 6, 8, 3)), F.cross_entropy, _data())
    with pytest.raises(ValueError, match="steps"):
        landscape.interpolate(a, _mlp(seed=1), F.cross_entropy, _data(), steps=1)
    with pytest.raises(ValueError, match="bn"):
        landscape.interpolate(a, _mlp(seed=1), F.cross_entropy, _data(), bn="reset")
    with pytest.raises(TypeError, match="model_b"):
        landscape.interpolate(a, None, F.cross_entropy, _data())


# ---------------------------------------------------------------------------------------- weight matching


def test_weight_matching_same_function_and_singular_values():
    a, b = (
        _mlp(torch.float64, seed=0, widths=(4, 16, 12, 3)),
        _mlp(torch.float64, seed=1, widths=(4, 16, 12, 3)),
    )
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.weight_matching(a, b)
    x = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(res.model(x), b(x), atol=1e-10, rtol=0)
    for la, lb in zip(
        [m for m in res.model.modules() if isinstance(m, nn.Linear)],
        [m for m in b.modules() if isinstance(m, nn.Linear)],
    ):
        sa = torch.linalg.svdvals(la.weight.detach())
        sb = torch.linalg.svdvals(lb.weight.detach())
        assert torch.allclose(sa, sb, atol=1e-10)
    assert res.converged and res.objective[-1] >= res.objective[0]
    assert landscape.parameter_distance(a, res.model) <= landscape.parameter_distance(a, b)
    assert landscape.subspace_overlap(b, res.model, layer=0, k=3) < 1.0 + 1e-12
    assert landscape.subspace_overlap(a, a, layer=1, k=3) == pytest.approx(1.0)
    assert all(sorted(p.tolist()) == list(range(len(p))) for p in res.permutations)
    assert all(p.grad is None for p in res.model.parameters())


def test_weight_matching_recovers_a_planted_permutation():
    a = _mlp(torch.float64, seed=0, widths=(5, 10, 7, 2))
    rng = np.random.default_rng(0)
    planted = [rng.permutation(10), rng.permutation(7)]
    b = landscape.permute_mlp(a, planted)
    res = landscape.weight_matching(a, b)
    for (k, p), q in zip(a.named_parameters(), res.model.parameters()):
        assert torch.equal(p, q), k


def test_weight_matching_unsupported_architectures():
    with pytest.raises(ValueError, match="model_a"):
        landscape.weight_matching(BNDropoutNet(), BNDropoutNet(seed=1))

    class Skip(nn.Module):
        def __init__(self, seed):
            super().__init__()
            torch.manual_seed(seed)
            self.l1, self.l2, self.l3 = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.l1(x))
            return self.l3(torch.relu(self.l2(h)) + h)

    with pytest.raises(ValueError, match="model_b"):
        landscape.weight_matching(Skip(0), Skip(1))
    with pytest.raises(ValueError, match="model_b"):
        landscape.weight_matching(_mlp(), _mlp(widths=(4, 6, 8, 3)))
    with pytest.raises(ValueError, match="model"):
        landscape.weight_matching(nn.Linear(3, 2), nn.Linear(3, 2))


# ---------------------------------------------------------------------------------------- trajectory


def test_trajectory_pca_plane_and_origin():
    net = _mlp(torch.float64)
    center = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    P = center.numel()
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(P, generator=g, dtype=torch.float64), torch.randn(P, generator=g, dtype=torch.float64)
    t = torch.linspace(0, 1, 20, dtype=torch.float64)[:, None]
    path = center + (1 - t) * 3 * u + torch.sin(3 * t) * (1 - t) * v  # ends at the model
    with assert_model_unchanged(net):
        res = landscape.trajectory(net, path)
    assert res.coords.shape == (20, 2)
    np.testing.assert_allclose(res.coords[-1], 0.0, atol=1e-10)
    assert res.residual.max() < 1e-8
    assert res.explained_variance.sum() == pytest.approx(1.0)
    assert abs(res.directions.cosine[0, 1]) < 1e-10
    # plane on the PCA directions reproduces the path's end point at the origin
    data = _data(dtype=torch.float64)
    (a0, a1), (b0, b1) = res.extent()
    pl = landscape.plane(net, F.cross_entropy, data, res.directions, extent=((a0, a1), (b0, b1)), steps=5)
    fig = landscape.plot_plane(pl, trajectory=res)
    assert any(tr_.name == "trajectory" for tr_ in fig.data)
    # given directions: least-squares coordinates
    given = landscape.trajectory(net, list(path), directions=res.directions)
    np.testing.assert_allclose(given.coords, res.coords, atol=1e-8)
    dicts = [
        {
            k: row[i : i + p.numel()].reshape(p.shape)
            for (k, p), i in zip(net.named_parameters(), [0, 32, 40, 104, 112, 136])
        }
        for row in path
    ]
    np.testing.assert_allclose(landscape.trajectory(net, dicts).coords, res.coords, atol=1e-8)


def test_trajectory_bad_path():
    net = _mlp()
    with pytest.raises(ValueError, match="path"):
        landscape.trajectory(net, torch.zeros(3, 5))
    with pytest.raises(ValueError, match="path"):
        landscape.trajectory(net, [])


# ---------------------------------------------------------------------------------------- trainability


@pytest.mark.parametrize("fast_tanh", [False, True])
def test_trainability_kernel_matches_autograd(fast_tanh):
    X, Y, W1, W2 = tr._problem(16, 16, 16, seed=0, dtype=torch.float64, device="cpu")
    lr_in = torch.tensor([1.0, 30.0, 100.0], dtype=torch.float64)
    lr_out = torch.tensor([5.0, 10.0, 30.0], dtype=torch.float64)
    steps = 15
    hist = torch.full((steps + 1, 3), float("nan"), dtype=torch.float64)
    tr._train_chunk(X, Y, W1, W2, lr_in, lr_out, steps, math.inf, 1000, hist, fast_tanh)
    for c in range(3):
        w1, w2 = W1.clone().requires_grad_(), W2.clone().requires_grad_()
        for t in range(steps + 1):
            loss = tr.mean_field_loss(X, Y, w1, w2)
            assert float(hist[t, c]) == pytest.approx(loss.item(), rel=1e-9, abs=1e-12), (c, t)
            g1, g2 = torch.autograd.grad(loss, (w1, w2))
            with torch.no_grad():
                w1 -= lr_in[c] * g1
                w2 -= lr_out[c] * g2


def test_trainability_classifies_and_drops_diverged():
    res = landscape.trainability(
        (-1.0, 4.0), (-1.0, 4.0), resolution=12, steps=60, dtype=torch.float64, workers=1
    )
    assert res.converged.shape == (12, 12)
    assert not (res.converged & res.diverged).any()
    assert res.diverged[-1, -1] and not res.diverged[0, 0]
    assert res.cell_steps < 12 * 12 * 60
    assert np.isfinite(res.score).all() and ((res.score >= 0) & (res.score <= 1)).all()
    two = landscape.trainability(
        (-1.0, 4.0), (-1.0, 4.0), resolution=12, steps=60, dtype=torch.float64, workers=2, chunk=16
    )
    np.testing.assert_array_equal(res.converged, two.converged)
    np.testing.assert_array_equal(res.diverged, two.diverged)
    img = landscape.plotting.trainability_image(res)
    assert np.isfinite(img).all()
    fig = landscape.plot_trainability(res)
    assert np.isfinite(np.asarray(fig.data[0].z, dtype=float)).all()
    (x0, x1), (y0, y1) = res.zoom(10)
    assert x1 - x0 == pytest.approx(0.5) and y1 - y0 == pytest.approx(0.5)


def test_box_counting_controls():
    n = 128
    ii, jj = np.mgrid[:n, :n]
    disc = (ii - 60) ** 2 + (jj - 70) ** 2 < 40**2
    assert landscape.box_counting_dimension(disc).dimension < 1.1
    rand = np.random.default_rng(0).random((n, n)) < 0.5
    assert landscape.box_counting_dimension(rand).dimension > 1.9
    with pytest.raises(ValueError, match="outcome"):
        landscape.box_counting_dimension(np.zeros(5, dtype=bool))


def test_trainability_bad_inputs():
    with pytest.raises(ValueError, match="x_range"):
        landscape.trainability((1.0, 0.0))
    with pytest.raises(ValueError, match="resolution"):
        landscape.trainability(resolution=1)
    with pytest.raises(ValueError, match="dtype"):
        landscape.trainability(dtype=torch.float16)


# ---------------------------------------------------------------------------------------- large steps


def test_logistic_gd_matches_autograd_and_perceptron_limit():
    X, y = landscape.separable_cloud(60, seed=1)
    run = landscape.logistic_gd(X, y, [0.5, 1e8], steps=8)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for t in range(8):
        loss = landscape.logistic_loss(X, y, w)
        assert run.loss[0, t] == pytest.approx(loss.item(), rel=1e-12)
        (g,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.5 * g
    assert torch.allclose(run.w[0, -1], w.detach(), rtol=1e-12)
    per = landscape.batch_perceptron(X, y, steps=8)
    cos = F.cosine_similarity(run.w[1, 1:], per.w[0, 1:], dim=-1)
    assert cos.min() > 1 - 1e-9
    assert run.errors.shape == (2, 9) and run.errors[0, 0] == 60  # w0 = 0 misclassifies all


def test_perceptron_tie_rule_is_one_half():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    per = landscape.batch_perceptron(X, y, steps=1)
    # both margins are 0 at v = 0: each point contributes with weight 1/2
    assert torch.allclose(per.w[0, 1], torch.tensor([0.25, -0.25], dtype=torch.float64))


def test_normalized_and_stop_when_separated_and_bad_input():
    X, y = landscape.separable_cloud(100, seed=0)
    run = landscape.logistic_gd(X, y, [1.0, 10.0], steps=10_000, stop_when_separated=True)
    assert (run.steps_to_zero >= 0).all() and run.w.shape[1] == run.steps_to_zero.max() + 1
    nrm = landscape.logistic_gd(X, y, [1.0], steps=10_000, stop_when_separated=True, normalized=True)
    assert nrm.steps_to_zero[0] < run.steps_to_zero[0]
    with pytest.raises(ValueError, match="gammas"):
        landscape.logistic_gd(X, y, [-1.0], steps=3)
    with pytest.raises(ValueError, match="y"):
        landscape.logistic_gd(X, y * 2, [1.0], steps=3)
    with pytest.raises(ValueError, match="steps"):
        landscape.logistic_gd(X, y, [1.0], steps=0)
    assert large_steps.separable_cloud(10, dtype=torch.float32)[0].dtype == torch.float32


def test_trajectory_from_recorder_snapshots():
    from lossviz import data, models, train

    x, y = data.two_moons(64, seed=0)
    net = models.MLP(2, (8,), 2, seed=0)
    rec = train.Recorder(every=5, parameters=True)
    hist = train.fit(net, F.cross_entropy, (x, y), steps=40, lr=0.5, callbacks=[rec], progress=False)
    with assert_model_unchanged(net):
        path = landscape.trajectory(net, hist.values("parameters"), steps=hist.steps("parameters"))
    assert path.coords.shape == (9, 2) and list(path.steps) == list(range(0, 41, 5))
    np.testing.assert_allclose(path.coords[-1], 0.0, atol=1e-6)
    assert path.explained_variance[0] > 0.5


def test_plane_vmap_engine_matches_loop():
    net = BNDropoutNet(dtype=torch.float64)
    x, y = _data(dtype=torch.float64)
    dirs = landscape.random_directions(net, seed=2)
    with assert_model_unchanged(net):
        loop = landscape.plane(
            net,
            F.cross_entropy,
            (x, y),
            dirs,
            steps=(5, 4),
            engine="loop",
            metrics={"acc": landscape.accuracy},
        )
        vm = landscape.plane(
            net,
            F.cross_entropy,
            [(x[:10], y[:10]), (x[10:], y[10:])],
            dirs,
            steps=(5, 4),
            engine="vmap",
            metrics={"acc": landscape.accuracy},
        )
    np.testing.assert_allclose(vm.loss, loop.loss, rtol=1e-12)
    np.testing.assert_allclose(vm.metrics["acc"], loop.metrics["acc"], atol=1e-12)
    assert vm.origin_loss == pytest.approx(loop.origin_loss, rel=1e-14)
    with pytest.raises(ValueError, match="engine"):
        landscape.plane(net, F.cross_entropy, (x, y), dirs, steps=3, engine="jit")
