"""Tests for lossviz.collapse._metrics (nc_metrics: NC1-NC4, invariances, bad input, dtypes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lossviz import collapse

from ._helpers import ALL, F64, TOL, random_data


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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.integers(2, 6))
def test_relabelling_changes_no_metric(seed, k):
    x, y, w, b = random_data(seed, k=k, d=k + 2)
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
    x, y, _, _ = random_data(seed)
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
    x, y, _, _ = random_data(3)
    a = collapse.nc_metrics(x, y)
    b = collapse.nc_metrics(x + offset, y)
    for name in ("nc1", "trace_ratio", "cdnv", "equinorm", "etf_distance"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-6), name
    assert b.ncc_accuracy == a.ncc_accuracy


def test_bad_inputs():
    x, y, w, b = random_data(0)
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
    x, y, w, b = random_data(1, dtype=torch.float32)
    m = collapse.nc_metrics(x, y, torch.nn.Linear(6, 4))
    assert m.means.dtype == F64  # statistics always in float64
    m64 = collapse.nc_metrics(x.double(), y)
    assert m.nc1 == pytest.approx(m64.nc1, rel=1e-5)
    r = collapse.fit_ufm([4, 4], 3, dtype=torch.float32, max_iter=50)
    assert r.features.dtype == torch.float32


def test_degenerate_inputs_raise_instead_of_reading_as_collapse():
    # all class means equal: Sigma_B = 0, NC1 would be 0 ("perfect collapse") for useless features
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    y = torch.arange(4).repeat(10)
    x = x - collapse.class_means(x, y)[y]  # every class mean is exactly 0
    with pytest.raises(ValueError, match="`features`.*coincide"):
        collapse.nc_metrics(x, y)
    with pytest.raises(ValueError, match="`features`.*coincide"):
        collapse.nc_metrics(torch.ones(8, 3, dtype=F64) * 7.0, torch.arange(2).repeat(4))
    with pytest.raises(ValueError, match="`features`.*coincide"):
        collapse.vci(torch.ones(8, 3, dtype=F64), torch.arange(2).repeat(4))
    assert collapse.vci(x, y).value > 0.99  # means equal up to rounding: VCI reads "no class information"
    # two of four means equal is still defined (rank 2 instead of 3)
    x2, y2, _, _ = random_data(0)
    x2 = x2.clone()
    x2[y2 == 1] += collapse.class_means(x2, y2)[0] - collapse.class_means(x2, y2)[1]
    m = collapse.nc_metrics(x2, y2)
    assert m.rank_between == 2 and m.nc1 > 0


def test_nc_metrics_plot_is_the_gram_of_centred_means():
    x, y, w, b = random_data(2)
    m = collapse.nc_metrics(x, y, (w, b), global_mean="weighted")
    fig = m.plot()
    c = m.means - m.global_mean_vector
    assert np.allclose(np.asarray(fig.data[0].z), _cos(c))


def _cos(v):
    from lossviz.stats import cosine_matrix

    return cosine_matrix(v)


def test_equal_class_means_in_float32_raise_instead_of_a_huge_or_zero_nc1():
    # class means removed in float32 leave ~1e-8 residuals: rounding, not a class signal
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(1))
    y = torch.arange(3).repeat(20)
    for k in range(3):
        x[y == k] -= x[y == k].mean(0)
    with pytest.raises(ValueError, match="`features`.*coincide"):
        collapse.nc_metrics(x, y)


def test_a_single_class_names_labels():
    x = torch.randn(6, 3, dtype=F64)
    with pytest.raises(ValueError, match="`labels` must hold at least two classes"):
        collapse.nc_metrics(x, torch.zeros(6, dtype=torch.long))
