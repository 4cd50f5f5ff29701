"""Tests for lossviz.collapse._ufm (UFM solvers and the reduced geometry objective)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz import collapse

from ._helpers import F64


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


def test_fit_ufm_leaves_the_global_rng_alone_and_is_seeded():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = collapse.fit_ufm([3, 3], 3, max_iter=20, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    b = collapse.fit_ufm([3, 3], 3, max_iter=20, seed=4)
    assert torch.equal(a.features, b.features) and torch.equal(a.classifier, b.classifier)
    fig = a.plot()
    assert fig.layout.xaxis.title.text and len(fig.data) == 6  # 2 means, 2 classifier rows, 2 target
