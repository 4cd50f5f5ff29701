"""Tests for lossviz.collapse (neural-collapse metrics, VCI, targets, UFM solvers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lossviz import collapse
from lossviz.testing import BNDropoutNet, assert_model_unchanged

F64 = torch.float64
TOL = 1e-8


def _random_data(seed, n_per=12, k=4, d=6, spread=0.5, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(k, d, generator=g, dtype=F64)
    y = torch.arange(k).repeat_interleave(n_per)
    x = means[y] + spread * torch.randn(len(y), d, generator=g, dtype=F64)
    perm = torch.randperm(len(y), generator=g)
    w = torch.randn(k, d, generator=g, dtype=F64)
    b = torch.randn(k, generator=g, dtype=F64)
    return x[perm].to(dtype), y[perm], w, b


ALL = (
    "nc1",
    "trace_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "etf_distance",
    "equinorm_classifier",
    "equiangularity_classifier",
    "etf_distance_classifier",
    "self_duality",
    "ncc_mismatch",
    "bias_collapse",
)


# ---------------------------------------------------------------------------- exact ETF


@pytest.mark.parametrize("k,d", [(2, 3), (3, 2), (5, 8), (10, 10)])
def test_exact_etf_gives_zero_for_every_metric(k, d):
    etf = collapse.simplex_etf(k, d)
    shift = torch.linspace(-1.0, 2.0, d, dtype=F64)
    y = torch.arange(k).repeat(7)
    feats = 3.0 * etf[y] + shift  # translated, scaled ETF
    w = 0.7 * etf
    b = -(w @ shift) + 0.3  # NCC rule up to a common shift
    m = collapse.nc_metrics(feats, y, (w, b))
    for name in ALL:
        assert abs(getattr(m, name)) < TOL, (name, getattr(m, name))
    assert m.rank_between == k - 1
    assert m.accuracy == 1.0 and m.ncc_accuracy == 1.0
    assert collapse.frame_distance(etf, "etf") < TOL
    assert abs(collapse.vci(feats, y).value) < TOL


def test_simplex_etf_geometry():
    for k in (2, 3, 7):
        m = collapse.simplex_etf(k, k + 2)
        g = m @ m.T
        assert torch.allclose(torch.diag(g), torch.ones(k, dtype=F64), atol=1e-12)
        off = g[~torch.eye(k, dtype=torch.bool)]
        assert torch.allclose(off, torch.full_like(off, -1.0 / (k - 1)), atol=1e-12)
        assert m.sum(0).abs().max() < 1e-12
    o = collapse.orthogonal_frame(3, 5)
    assert torch.equal(o @ o.T, torch.eye(3, dtype=F64))
    assert collapse.frame_distance(o, "orthogonal") < TOL
    assert collapse.frame_distance(o, "etf") > 0.1
    with pytest.raises(ValueError, match="dim"):
        collapse.simplex_etf(4, 2)


# ---------------------------------------------------------------------------- hand-computed cases


def test_hand_computed_nc1_trace_ratio_cdnv():
    h = torch.tensor([[1.0, 0.0], [1.2, 0.0], [-1.0, 0.0], [-1.2, 0.0]], dtype=F64)
    y = torch.tensor([0, 0, 1, 1])
    m = collapse.nc_metrics(h, y)
    # Sw = diag(0.01, 0), Sb = diag(1.21, 0): NC1 = 0.01 / 1.21 / 2
    assert m.nc1 == pytest.approx(0.01 / 1.21 / 2, rel=1e-12)
    assert m.trace_ratio == pytest.approx(0.01 / 1.21, rel=1e-12)
    # CDNV: (0.01 + 0.01) / (2 * 2.2^2)
    assert m.cdnv == pytest.approx(0.02 / (2 * 4.84), rel=1e-12)
    assert m.equinorm == pytest.approx(0.0, abs=1e-12)
    assert m.rank_between == 1


def test_hand_computed_square_means():
    # four classes at the corners of a square (centred already): cos 0 (adjacent), -1 (opposite)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=F64)
    y = torch.arange(4).repeat(3)
    m = collapse.nc_metrics(c[y], y, c.clone())
    assert m.equiangularity == pytest.approx(4 / 9, rel=1e-12)  # (8 * 1/3 + 4 * 2/3) / 12
    s3, s8 = math.sqrt(3), math.sqrt(8)
    d2 = 4 * (1 / s8 - 3 / (4 * s3)) ** 2 + 8 * (1 / (4 * s3)) ** 2 + 4 * (-1 / s8 + 1 / (4 * s3)) ** 2
    assert m.etf_distance == pytest.approx(math.sqrt(d2), rel=1e-12)
    assert m.self_duality == pytest.approx(0.0, abs=1e-14)
    # classifier rotated by 90 degrees: every row differs by (-1, 1)/2 after normalisation
    rot = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [1.0, 0.0]], dtype=F64)
    m2 = collapse.nc_metrics(c[y], y, rot)
    assert m2.self_duality == pytest.approx(2.0, rel=1e-12)
    # bias (1, 0, 0, 0) with mu_G = 0: centred (3, -1, -1, -1)/4 has norm sqrt(3)/2; scale 1
    m3 = collapse.nc_metrics(c[y], y, (c.clone(), torch.tensor([1.0, 0, 0, 0], dtype=F64)))
    assert m3.bias_collapse == pytest.approx(math.sqrt(3) / 4, rel=1e-12)
    # classifier norms 1, 1, 1, 3: CV = std / mean = (sqrt(3)/2 ... ) computed by hand
    w = c.clone()
    w[3] *= 3
    norms = np.array([1.0, 1, 1, 3])
    assert collapse.nc_metrics(c[y], y, w).equinorm_classifier == pytest.approx(norms.std() / norms.mean())


def test_hand_computed_ncc_mismatch():
    h = torch.tensor([[0.0], [1.0], [4.0], [5.0]], dtype=F64)  # means 0.5 and 4.5, boundary 2.5
    y = torch.tensor([0, 0, 1, 1])
    logits = torch.tensor([[1.0, 0], [0, 1.0], [0, 1.0], [0, 1.0]], dtype=F64)  # sample 1 mispredicted
    m = collapse.nc_metrics(h, y, logits=logits)
    assert m.ncc_mismatch == 0.25
    assert m.accuracy == 0.75
    assert m.ncc_accuracy == 1.0
    # a classifier whose boundary is at 3.5: w = (-1, 1), b = (3.5, 0) -> 5 - 3.5 ... predicts 1 iff h > 3.5
    m2 = collapse.nc_metrics(
        h, y, (torch.tensor([[-1.0], [1.0]], dtype=F64), torch.tensor([3.5, -3.5], dtype=F64))
    )
    assert m2.ncc_mismatch == 0.0
    m3 = collapse.nc_metrics(
        h, y, (torch.tensor([[-1.0], [1.0]], dtype=F64), torch.tensor([0.5, -0.5], dtype=F64))
    )
    assert m3.ncc_mismatch == 0.25  # boundary at 0.5: sample h=1 goes to class 1, NCC says 0


def test_hand_computed_vci_and_class_statistics():
    h = torch.tensor([[0.0], [2.0], [10.0], [12.0]], dtype=F64)
    y = torch.tensor([0, 0, 1, 1])
    # Sigma_W = 1, Sigma_B = 25, Sigma_T = 26 -> VCI = 1 - 25/26
    r = collapse.vci(h, y)
    assert r.value == pytest.approx(1 / 26, rel=1e-12)
    assert r.rank_between == 1
    st3 = collapse.class_statistics(torch.tensor([[0.0], [2.0], [10.0]], dtype=F64), torch.tensor([0, 0, 1]))
    assert st3.means.flatten().tolist() == [1.0, 10.0]
    assert st3.global_mean.item() == 5.5
    assert st3.between.item() == pytest.approx(20.25)
    assert st3.within.item() == pytest.approx(2 / 3)
    stw = collapse.class_statistics(
        torch.tensor([[0.0], [2.0], [10.0]], dtype=F64), torch.tensor([0, 0, 1]), global_mean="weighted"
    )
    assert stw.global_mean.item() == pytest.approx(4.0)
    assert stw.between.item() == pytest.approx((9 + 36) / 2)


def test_streaming_equals_one_shot_and_nc1_equals_dense_formula():
    x, y, w, b = _random_data(3, n_per=40, k=5, d=7)
    one = collapse.class_statistics(x, y, batch_size=10**6)
    batches = [(x[i : i + 13], y[i : i + 13]) for i in range(0, len(y), 13)]
    stream = collapse.class_statistics(iter(batches))
    small = collapse.class_statistics(x, y, batch_size=7)
    assert stream.num_batches == len(batches)
    for s in (stream, small):
        assert torch.allclose(s.means, one.means, atol=1e-12)
        assert torch.allclose(s.within, one.within, atol=1e-11)
        assert torch.allclose(s.between, one.between, atol=1e-11)
    # direct two-pass dense reference (numpy)
    xn, yn = x.numpy(), y.numpy()
    mu = np.stack([xn[yn == k].mean(0) for k in range(5)])
    r = xn - mu[yn]
    sw = r.T @ r / len(yn)
    c = mu - mu.mean(0)
    sb = c.T @ c / 5
    assert np.allclose(one.within.numpy(), sw, atol=1e-11)
    assert np.allclose(one.total().numpy(), np.cov(xn.T, bias=True), atol=1e-10)
    ref = np.trace(sw @ np.linalg.pinv(sb, rcond=1e-8, hermitian=True)) / 5
    m = collapse.nc_metrics(x, y, batch_size=11)
    assert m.nc1 == pytest.approx(ref, rel=1e-8)
    assert m.trace_ratio == pytest.approx(np.trace(sw) / np.trace(sb), rel=1e-10)


@pytest.mark.parametrize("source", ["classifier", "logits"])
def test_nc_metrics_do_not_depend_on_chunk_or_block_boundaries(source):
    # N = 2500 spans three of the 1024-row blocks; batch sizes split blocks unevenly
    g = torch.Generator().manual_seed(5)
    means = 3.0 * torch.randn(4, 12, generator=g, dtype=F64)
    y = torch.randint(0, 4, (2500,), generator=g)
    x = (means[y] + torch.randn(2500, 12, generator=g, dtype=F64)).float()
    w, b = torch.randn(4, 12, generator=g, dtype=F64), torch.randn(4, generator=g, dtype=F64)
    kw = dict(classifier=(w, b)) if source == "classifier" else dict(logits=x.double() @ w.T + b)
    ref = collapse.nc_metrics(x, y, batch_size=10**6, **kw)
    assert ref.accuracy is not None and 0.0 < ref.accuracy < 1.0
    for bs in (7, 1000, 1024, 1500):
        m = collapse.nc_metrics(x, y, batch_size=bs, **kw)
        for name in (*ALL, "accuracy", "ncc_accuracy", "ncc_mismatch"):
            if getattr(ref, name) is None:  # classifier geometry needs the weights, not logits
                assert source == "logits" and getattr(m, name) is None
                continue
            assert getattr(m, name) == pytest.approx(getattr(ref, name), rel=1e-10, abs=1e-14), (bs, name)


def test_nc1_never_negative_for_near_singular_float32():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 64, generator=g)
    means = base + 1e-4 * torch.randn(10, 64, generator=g)  # nearly identical means
    y = torch.arange(10).repeat(50)
    x = (means[y] + 1e-2 * torch.randn(500, 64, generator=g)).float()
    m = collapse.nc_metrics(x, y)
    assert m.nc1 >= 0 and math.isfinite(m.nc1)
    assert m.means.dtype == F64


# ---------------------------------------------------------------------------- invariances (hypothesis)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.integers(2, 6))
def test_relabelling_changes_no_metric(seed, k):
    x, y, w, b = _random_data(seed, k=k, d=k + 2)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(seed + 1))
    inv = torch.argsort(perm)
    m1 = collapse.nc_metrics(x, y, (w, b))
    # new label of class j is perm[j]; classifier row perm[j] must be old row j
    m2 = collapse.nc_metrics(x, perm[y], (w[inv], b[inv]))
    for name in (*ALL, "accuracy", "ncc_accuracy"):
        assert getattr(m2, name) == pytest.approx(getattr(m1, name), rel=1e-9, abs=1e-12), name
    assert collapse.vci(x, perm[y]).value == pytest.approx(collapse.vci(x, y).value, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(1e-3, 1e3), gm=st.sampled_from(["unweighted", "weighted"]))
# found by hypothesis in CI: ||h||^2 - 2 h.mu + ||mu||^2 lost digits when the shift dwarfs the spread
@example(seed=141, scale=1e-3, gm="unweighted")
def test_scaling_and_translating_features_leaves_nc1(seed, scale, gm):
    x, y, _, _ = _random_data(seed)
    shift = torch.randn(x.shape[1], generator=torch.Generator().manual_seed(seed), dtype=F64)
    a = collapse.nc_metrics(x, y, global_mean=gm)
    b = collapse.nc_metrics(scale * x + shift, y, global_mean=gm)
    for name in ("nc1", "trace_ratio", "cdnv", "equinorm", "equiangularity", "etf_distance"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-9), name


@pytest.mark.parametrize("offset", [1e6, 1e8])
def test_far_offset_features_keep_within_class_scatter(offset):
    """Features far from the origin (offset up to 4e7 x the spread) give the same metrics.

    The within-class scatter must be formed from h - mu_y, not from ||h||^2 - 2 h.mu_y + ||mu_y||^2,
    which cancels (offset / spread)^2 in relative terms: 2e-4 wrong at 1e6, 2x wrong at 1e8.
    """
    x, y, _, _ = _random_data(3)
    a = collapse.nc_metrics(x, y)
    b = collapse.nc_metrics(x + offset, y)
    for name in ("nc1", "trace_ratio", "cdnv", "equinorm", "etf_distance"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-6), name
    assert b.ncc_accuracy == a.ncc_accuracy


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_vci_invariant_to_invertible_linear_maps(seed):
    x, y, _, _ = _random_data(seed, n_per=15, k=4, d=5)
    g = torch.Generator().manual_seed(seed + 7)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=F64))
    s = torch.exp(torch.empty(5, dtype=F64).uniform_(-2, 2, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=F64))
    a = q @ torch.diag(s) @ q2  # condition number <= e^4
    v1 = collapse.vci(x, y).value
    v2 = collapse.vci(x @ a.T, y).value
    assert abs(v1 - v2) < 1e-9


def test_nc1_is_not_invariant_to_diagonal_scaling_but_vci_is():
    x, y, _, _ = _random_data(5, n_per=30, k=4, d=6, spread=2.0)
    d = torch.tensor([10.0, 1, 1, 0.1, 1, 3], dtype=F64)
    assert abs(collapse.nc_metrics(x * d, y).nc1 / collapse.nc_metrics(x, y).nc1 - 1) > 0.1
    assert collapse.vci(x * d, y).value == pytest.approx(collapse.vci(x, y).value, abs=1e-10)


def test_vci_with_dead_units_and_shuffled_labels():
    x, y, _, _ = _random_data(2, n_per=50, k=4, d=6, spread=0.3)
    dead = torch.cat([x, torch.zeros(len(y), 3, dtype=F64)], 1)
    assert collapse.vci(dead, y).value == pytest.approx(collapse.vci(x, y).value, abs=1e-10)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert collapse.vci(x, shuffled).value > 0.8
    assert collapse.vci(x, y).value < 0.1


# ---------------------------------------------------------------------------- imbalanced targets vs a direct optimum


def _direct_ufm_optimum(counts, lam, d, seed=0):
    """Minimise (1/2N)||W H - Y||^2 + lam/2 ||W||^2 + lam/2 ||H||^2 over all entries with scipy."""
    from scipy.optimize import minimize

    k = len(counts)
    n = sum(counts)
    y = np.repeat(np.arange(k), counts)
    Y = np.eye(k)[:, y]  # (K, N)
    rng = np.random.default_rng(seed)
    z0 = rng.standard_normal(k * d + d * n)

    def f(z):
        W = z[: k * d].reshape(k, d)
        H = z[k * d :].reshape(d, n)
        R = W @ H - Y
        val = 0.5 / n * (R**2).sum() + lam / 2 * (W**2).sum() + lam / 2 * (H**2).sum()
        gW = R @ H.T / n + lam * W
        gH = W.T @ R / n + lam * H
        return val, np.concatenate([gW.ravel(), gH.ravel()])

    res = minimize(
        f, z0, jac=True, method="L-BFGS-B", options={"maxiter": 20000, "gtol": 1e-12, "ftol": 1e-15}
    )
    W = res.x[: k * d].reshape(k, d)
    H = res.x[k * d :].reshape(d, n)
    means = np.stack([H[:, y == j].mean(1) for j in range(k)])
    return W, H.T, means, y


@pytest.mark.parametrize("lam", [5e-3, 5.5e-2])
def test_imbalanced_frame_matches_direct_scipy_optimum(lam):
    counts = (16, 8, 4, 2)
    W, H, means, y = _direct_ufm_optimum(counts, lam, d=5)
    target = collapse.imbalanced_frame(counts, lam)
    assert np.allclose(np.linalg.norm(means, axis=1), target.feature_norms, atol=2e-4)
    assert np.allclose(np.linalg.norm(W, axis=1), target.classifier_norms, atol=2e-4)
    assert collapse.frame_distance(torch.from_numpy(means), torch.from_numpy(target.feature_gram())) < 1e-3
    if lam == 5.5e-2:
        assert target.collapsed == (3,)  # n = 2 < N^2 lam^2 = 2.72 < 4: only the smallest class dies
        assert np.linalg.norm(means[3]) < 1e-5 and np.linalg.norm(W[3]) < 1e-5
    else:
        assert target.collapsed == ()
    m = collapse.nc_metrics(torch.from_numpy(H[:, :5]), torch.from_numpy(y))
    assert m.trace_ratio < 1e-6  # features collapsed to their means


def test_imbalanced_frame_matches_sympy_derivation():
    from lossviz.derivations.collapse import etf_cosine, imbalanced_ufm

    d = imbalanced_ufm()
    counts = np.array([200, 100, 50, 25], dtype=float)
    for lw, lh in [(5e-3, 5e-3), (1e-3, 4e-3)]:
        t = collapse.imbalanced_frame(counts.astype(int), lw, lh)
        n_tot = counts.sum()
        p = np.maximum(0, d.t_fn(counts, n_tot, lw, lh))
        assert np.allclose(t.shrink, p, rtol=1e-12)
        alive = p > 0
        assert np.allclose(t.feature_norms[alive] ** 2, d.h2_fn(counts, n_tot, lw, lh)[alive], rtol=1e-12)
        assert np.allclose(t.classifier_norms[alive] ** 2, d.w2_fn(counts, n_tot, lw, lh)[alive], rtol=1e-12)
    import sympy as sp

    kk = sp.Symbol("K", positive=True)
    assert sp.simplify(etf_cosine() + 1 / (kk - 1)) == 0


# ---------------------------------------------------------------------------- UFM solvers


def test_fit_ufm_ce_balanced_gives_etf_and_matches_reduced_objective():
    r = collapse.fit_ufm([10] * 4, 6, loss="ce", lambda_W=5e-3, seed=1, max_iter=800)
    assert r.converged, r.grad_norm
    m = r.metrics()
    assert m.nc1 < 1e-6 and m.etf_distance < 1e-4 and m.self_duality < 1e-4 and m.ncc_mismatch == 0
    obj, _ = collapse.ufm_geometry_loss(collapse.simplex_etf(4), depth=1, lambda_=5e-3, n_per_class=10)
    assert r.loss == pytest.approx(obj, rel=1e-6)


def test_fit_ufm_mse_imbalanced_matches_closed_form():
    counts = (40, 20, 10, 5)
    r = collapse.fit_ufm(counts, 5, loss="mse", lambda_W=5e-3, seed=0, max_iter=3000, tol=1e-11)
    t = collapse.imbalanced_frame(counts, 5e-3)
    assert np.allclose(r.class_means().norm(dim=1).numpy(), t.feature_norms, rtol=1e-3)
    assert np.allclose(r.classifier.norm(dim=1).numpy(), t.classifier_norms, rtol=1e-3)
    assert r.features.dtype == F64


def test_cross_polytope_beats_etf_for_deep_ce_heads():
    k = 6
    etf = collapse.simplex_etf(k)
    cp = torch.cat([torch.eye(3, dtype=F64), -torch.eye(3, dtype=F64)])
    for depth, etf_wins in [(1, True), (3, False)]:
        le, _ = collapse.ufm_geometry_loss(etf, depth=depth, lambda_=5e-3, n_per_class=10)
        lc, _ = collapse.ufm_geometry_loss(cp, depth=depth, lambda_=5e-3, n_per_class=10)
        assert (le < lc) == etf_wins, (depth, le, lc)


# ---------------------------------------------------------------------------- models are sacred


def test_feature_extractor_leaves_model_unchanged_and_removes_hook():
    net = BNDropoutNet(dtype=F64)
    x = torch.randn(20, 4, dtype=F64)
    with assert_model_unchanged(net):
        feats = collapse.feature_extractor(net, "head")(x)
        out = collapse.feature_extractor(net, net.fc2, capture="output", batch_size=7)(x)
    assert feats.dtype == F64 and out.dtype == F64
    assert len(net.head._forward_hooks) == 0 and len(net.fc2._forward_hooks) == 0
    assert net.training  # restored
    net.eval()
    with torch.no_grad():
        assert torch.allclose(feats, net.features(x))
    with pytest.raises(ValueError, match="not a submodule"):
        collapse.feature_extractor(net, "nope")


def test_collapse_recorder_with_fit_and_model_unchanged():
    from lossviz import train

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    x = torch.randn(3, 4, generator=g)[y] * 3 + torch.randn(60, 4, generator=g)
    net = BNDropoutNet(4, 8, 3)
    rec = collapse.CollapseRecorder(x, y, every=5)
    with assert_model_unchanged(net):
        rec(0, net, 0.0, None)
    hist = train.fit(
        net, torch.nn.functional.cross_entropy, (x, y), steps=10, lr=0.1, callbacks=[rec], progress=False
    )
    assert rec.steps == [0, 5, 10]
    assert len(rec.history["nc1"]) == 3 and len(rec.means) == 3 and len(rec.classifiers) == 3
    assert hist.steps("nc/nc1") == [5, 10]  # step 0 was recorded by the direct call above
    fig = collapse.plot_metrics(rec)
    assert len(fig.data) >= 5
    assert collapse.plot_metrics(rec, backend="matplotlib") is not None


# ---------------------------------------------------------------------------- plots


def test_plots_return_figures():
    import plotly.graph_objects as go

    c = collapse.simplex_etf(4, 6) + 0.05
    for dims in (2, 3):
        fig = collapse.plot_frame(c, classifier=2 * c, target="etf", dims=dims)
        assert isinstance(fig, go.Figure) and len(fig.data) == 12
    assert collapse.plot_frame(
        collapse.orthogonal_frame(3), target="orthogonal", center=False, backend="matplotlib"
    )
    fig = collapse.plot_gram(c, center=True)
    assert np.allclose(np.asarray(fig.data[0].z)[0, 1], -1 / 3)
    assert collapse.plot_gram(c, backend="matplotlib") is not None
    assert collapse.minority_collapse(c - 0.05, [1, 2, 3]).min_angle == pytest.approx(
        math.degrees(math.acos(-1 / 3))
    )


def test_minority_collapse_angle():
    w = torch.tensor([[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 1.0]], dtype=F64)
    r = collapse.minority_collapse(w, [1, 2, 3])
    assert r.min_angle == pytest.approx(0.0, abs=1e-6) and r.pair == (1, 2)
    with pytest.raises(ValueError, match="two distinct"):
        collapse.minority_collapse(w, [1, 1])


def test_between_class_penalty_hand_case_and_gradient():
    y = torch.arange(3).repeat(2)
    etf = collapse.simplex_etf(3)
    assert float(collapse.between_class_penalty(etf[y], y)) == pytest.approx(0.0, abs=1e-12)
    # means (1,0), (1,0)+eps... : two equal means at (1,0),(1,0) and (-2,0): centred (1/3,0)x2, (-2/3,0)
    m = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-2.0, 0.0]], dtype=F64, requires_grad=True)
    r = collapse.between_class_penalty(m[y], y)
    # cosines: (0,1) -> 1, (0,2),(1,2) -> -1; relu(1 + 1/2)^2 = 2.25 for 2 of 6 ordered pairs
    assert float(r.detach()) == pytest.approx(2.25 * 2 / 6)
    r.backward()
    assert m.grad is not None and torch.isfinite(m.grad).all()
    with pytest.raises(ValueError, match="no samples"):
        collapse.between_class_penalty(m[y].detach(), torch.tensor([0, 0, 2, 2, 0, 2]))


def test_fit_perturbed_ufm_stationarity_and_limits():
    x, y, _, _ = _random_data(4, n_per=10, k=3, d=4, spread=1.0)
    x = x / x.square().sum(1).mean().sqrt()
    r = collapse.fit_perturbed_ufm(x, y, beta=0.1, lambda_W=1e-2, lambda_H=1e-2)
    assert r.converged, r.grad_norm
    # independent check: the full objective's gradient in (W, H) vanishes at the returned point
    n = len(y)
    w = r.weight.clone().requires_grad_(True)
    h = r.features.T.clone().requires_grad_(True)
    Y = torch.nn.functional.one_hot(y, 3).to(F64).T
    obj = (
        0.5 / n * (w @ h - Y).square().sum()
        + 0.5e-2 * w.square().sum()
        + 0.5e-2 / n * h.square().sum()
        + 0.05 / n * (h - x.T).square().sum()
    )
    gw, gh = torch.autograd.grad(obj, [w, h])
    assert gw.abs().max() < 1e-7 and gh.abs().max() < 1e-9
    assert obj.item() == pytest.approx(r.loss, rel=1e-10)
    nc0 = collapse.nc_metrics(x, y).nc1
    far = collapse.fit_perturbed_ufm(x, y, beta=1e4)
    near = collapse.fit_perturbed_ufm(x, y, beta=1e-4)
    assert collapse.nc_metrics(far.features, y).nc1 == pytest.approx(nc0, rel=1e-2)
    assert collapse.nc_metrics(near.features, y).nc1 < 1e-6 * nc0
    with pytest.raises(ValueError, match="different lengths"):
        collapse.fit_perturbed_ufm(x, y[:-1], beta=1.0)
    with pytest.raises(ValueError, match="lambda_H \\+ beta"):
        collapse.fit_perturbed_ufm(x, y, beta=0.0, lambda_H=0.0)


def test_mixup_geometry_on_a_linear_map_and_model_unchanged():
    # identity "body": the feature of a mix is the mix of the inputs; with every input at its class
    # mean and lam = 1/2 each mix sits exactly at the midpoint of the segment between two means.
    net = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(2, 3, dtype=F64))
    pts = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]], dtype=F64)
    y = torch.arange(3).repeat(2)
    x = pts[y]
    with assert_model_unchanged(net):
        g = collapse.mixup_geometry(net, x, y, "1", lam_range=(0.5, 0.5), num_mixes=200)
    mids = (pts[g.class_a] + pts[g.class_b]) / 2
    assert torch.allclose(g.features, mids)
    assert np.allclose(g.segment_distance, 0.0) and np.allclose(g.radial, 1.0)
    z = net(mids).detach()
    gap = (z.gather(1, g.class_a[:, None]) - z.gather(1, g.class_b[:, None])).abs().squeeze(1)
    assert np.allclose(g.logit_gap, gap.numpy())
    bn = BNDropoutNet()
    xb = torch.randn(30, 4)
    yb = torch.arange(3).repeat(10)
    with assert_model_unchanged(bn):
        gb = collapse.mixup_geometry(bn, xb, yb, "head", num_mixes=100, seed=1)
    assert gb.features.shape[1] == 8 and (gb.class_a != gb.class_b).all()
    assert 0.4 <= float(gb.lam.min()) and float(gb.lam.max()) <= 0.6


def test_train_mixup_trains_and_leaves_no_grad():
    from lossviz import models

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    x = 4 * torch.randn(3, 5, generator=g)[y] + torch.randn(60, 5, generator=g)
    net = models.MLP(5, (16,), 3, seed=0)
    net.eval()
    losses = collapse.train_mixup(net, x, y, 3, steps=60, lr=1e-2, seed=0)
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in net.parameters()) and not net.training
    base = collapse.train_mixup(
        models.MLP(5, (16,), 3, seed=0), x, y, 3, mix=False, loss="mse", steps=60, lr=1e-2
    )
    assert base[-1] < base[0]


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs():
    x, y, w, b = _random_data(0)
    with pytest.raises(ValueError, match="different lengths"):
        collapse.nc_metrics(x, y[:-1])
    with pytest.raises(ValueError, match="different lengths"):
        collapse.class_statistics(x[:-1], y)
    y_gap = y.clone()
    y_gap[y_gap == 2] = 3
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no samples"):
        collapse.nc_metrics(x, y_gap)
    with pytest.raises(ValueError, match=r"\[2\]"):
        collapse.vci(x, y_gap)
    with pytest.raises(ValueError, match="at least two classes"):
        collapse.nc_metrics(x, torch.zeros_like(y))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        collapse.nc_metrics(bad, y)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        collapse.class_statistics(bad, y)
    with pytest.raises(ValueError, match=r"shape \(num_classes, feature_dim\) = \(4, 6\)"):
        collapse.nc_metrics(x, y, w[:, :5])
    with pytest.raises(ValueError, match="bias must have 4"):
        collapse.nc_metrics(x, y, (w, b[:3]))
    with pytest.raises(ValueError, match="logits"):
        collapse.nc_metrics(x, y, logits=torch.zeros(len(y), 3, dtype=F64))
    with pytest.raises(ValueError, match="global_mean"):
        collapse.nc_metrics(x, y, global_mean="mean")
    with pytest.raises(TypeError, match="integer"):
        collapse.nc_metrics(x, y.double())
    with pytest.raises(ValueError, match="num_classes=3"):
        collapse.nc_metrics(x, y, num_classes=3)
    with pytest.raises(ValueError, match="counts"):
        collapse.imbalanced_frame([10], 1e-3)
    with pytest.raises(ValueError, match="loss"):
        collapse.fit_ufm([3, 3], 2, loss="hinge")
    with pytest.raises(TypeError, match="nn.Module"):
        collapse.feature_extractor("model", "head")


def test_dtype_propagation():
    x, y, w, b = _random_data(1, dtype=torch.float32)
    m = collapse.nc_metrics(x, y, torch.nn.Linear(6, 4))
    assert m.means.dtype == F64  # statistics always in float64
    m64 = collapse.nc_metrics(x.double(), y)
    assert m.nc1 == pytest.approx(m64.nc1, rel=1e-5)
    r = collapse.fit_ufm([4, 4], 3, dtype=torch.float32, max_iter=50)
    assert r.features.dtype == torch.float32
