"""Tests for lossviz.papers.t02_individual_temperatures (ratio and permutation test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lossviz.papers import t02_individual_temperatures as T


def test_ratio_and_permutation_test():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(60, generator=g, dtype=torch.float64) + 0.5
    frequent = torch.arange(60) < 15
    assert T.temperature_ratio(t * torch.where(frequent, 2.0, 1.0), frequent) > 1.5
    null = T.permutation_test(t, frequent, num=400, seed=1)  # no effect: p is not small
    assert null.p_value > 0.01 and null.null.shape == (400,)
    eff = T.permutation_test(t * torch.where(frequent, 2.0, 1.0), frequent, num=400, seed=1)
    assert eff.p_value == pytest.approx(1 / 401) and eff.ratio > eff.null_quantile_99
    again = T.permutation_test(t, frequent, num=400, seed=1)
    np.testing.assert_array_equal(again.null, null.null)  # same seed, same null


def test_bad_masks():
    t = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="frequent"):
        T.temperature_ratio(t, torch.tensor([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="frequent"):
        T.temperature_ratio(t, torch.ones(4, dtype=torch.bool))
