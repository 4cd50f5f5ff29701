"""Tests for lossviz.collapse._vci (the Variability Collapse Index)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lossviz import collapse

from ._helpers import F64, random_data


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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_vci_invariant_to_invertible_linear_maps(seed):
    x, y, _, _ = random_data(seed, n_per=15, k=4, d=5)
    g = torch.Generator().manual_seed(seed + 7)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=F64))
    s = torch.exp(torch.empty(5, dtype=F64).uniform_(-2, 2, generator=g))
    q2, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=F64))
    a = q @ torch.diag(s) @ q2  # condition number <= e^4
    v1 = collapse.vci(x, y).value
    v2 = collapse.vci(x @ a.T, y).value
    assert abs(v1 - v2) < 1e-9


def test_nc1_is_not_invariant_to_diagonal_scaling_but_vci_is():
    x, y, _, _ = random_data(5, n_per=30, k=4, d=6, spread=2.0)
    d = torch.tensor([10.0, 1, 1, 0.1, 1, 3], dtype=F64)
    assert abs(collapse.nc_metrics(x * d, y).nc1 / collapse.nc_metrics(x, y).nc1 - 1) > 0.1
    assert collapse.vci(x * d, y).value == pytest.approx(collapse.vci(x, y).value, abs=1e-10)


def test_vci_with_dead_units_and_shuffled_labels():
    x, y, _, _ = random_data(2, n_per=50, k=4, d=6, spread=0.3)
    dead = torch.cat([x, torch.zeros(len(y), 3, dtype=F64)], 1)
    assert collapse.vci(dead, y).value == pytest.approx(collapse.vci(x, y).value, abs=1e-10)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert collapse.vci(x, shuffled).value > 0.8
    assert collapse.vci(x, y).value < 0.1
