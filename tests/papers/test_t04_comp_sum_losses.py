"""Tests for lossviz.papers.t04_comp_sum_losses (the bound check and its control)."""

from __future__ import annotations

import numpy as np
import pytest

from lossviz.papers import t04_comp_sum_losses as T


def test_samples_are_distributions():
    p, s = T.regret_samples(4, 30, seed=1)
    assert p.shape == s.shape == (30, 4)
    np.testing.assert_allclose(p.sum(1), 1)
    np.testing.assert_allclose(s.sum(1), 1)


@pytest.mark.parametrize("q", [0.0, 0.7, 1.0])
def test_bound_holds_and_is_attained_for_two_classes(q):
    c = T.bound_check(q, 2, num=900)
    assert c.violations == 0 and c.min_ratio < 1.01
    assert T.bound_check(q, 10, num=900).violations == 0


def test_the_two_class_mae_bound_fails_at_ten_classes():
    assert T.bound_check(1.0, 10, bound_classes=2, num=3000).violations > 0
