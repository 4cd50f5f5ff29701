"""lossviz.papers.n07_uniformity_metric: the N07 toy (synthetic dimensional collapse, property tests)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lossviz import losses
from lossviz.papers import n07_uniformity_metric as n07

torch.set_num_threads(1)


def test_collapsed_embeddings_are_seeded_unit_rows_and_leave_the_global_rng_alone():
    state = torch.random.get_rng_state()
    a = n07.collapsed_embeddings(16, 0.25, n=50, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, n07.collapsed_embeddings(16, 0.25, n=50, seed=1))
    assert bool((a[:, 12:] == 0).all()) and bool((a[:, :12] != 0).all())
    assert torch.allclose(a.norm(dim=1), torch.ones(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="eta"):
        n07.collapsed_embeddings(4, 1.0)


def test_closed_form_and_curves_at_small_m():
    assert n07.closed_form_w2(0.5) ** 2 == pytest.approx(2 - math.sqrt(2))
    c = n07.metric_curves((4,), (0.0, 0.25, 0.5), n=4000, seed=0)
    assert c.w2.shape == (1, 3) and np.all(np.diff(c.w2[0]) > 0)
    assert np.abs(c.w2[0] ** 2 - n07.closed_form_w2(c.etas) ** 2).max() < 0.01
    assert c.eigenvalues[0][2].shape == (4,) and c.eigenvalues[0][2][-2:].max() < 1e-12


def test_property_changes_small():
    p = n07.property_changes(8, n=300, seed=0)
    assert abs(p["instance cloning"][0]) < 1e-9 and p["instance cloning"][1] > 0
    for k in ("feature cloning", "feature baby"):
        assert abs(p[k][1]) < 1e-9 and p[k][0] > 0.3
    for k in ("row permutation", "column permutation", "rotation"):
        assert max(abs(p[k][0]), abs(p[k][1])) < 1e-9
    z = n07.collapsed_embeddings(8, 0.0, n=300, seed=0)
    assert p["rotation"][0] == pytest.approx(0.0, abs=1e-9) and losses.wasserstein_uniformity(z) < 0.2


def test_claim_statistics_reuses_curves_and_checks_them():
    c = n07.metric_curves((8, 32, 256), n07.ETAS, n=300, seed=2)
    a = n07.claim_statistics(2, n=300, curves=c)
    b = n07.claim_statistics(2, n=300)
    for k in ("w2_rise", "lu_rise", "closed_form_gap_m8", "baseline_w2_m256"):
        assert a[k] == pytest.approx(b[k], abs=1e-12)
    with pytest.raises(ValueError, match="curves"):
        n07.claim_statistics(2, n=300, curves=n07.metric_curves((8,), n07.ETAS, n=300, seed=2))
