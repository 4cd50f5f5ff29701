"""Tests for lossviz.papers.n05_long_tailed (the between-class regulariser)."""

from __future__ import annotations

import pytest
import torch

from lossviz import collapse
from lossviz.papers import n05_long_tailed as n05

from ..collapse._helpers import F64


def test_between_class_penalty_hand_case_and_gradient():
    y = torch.arange(3).repeat(2)
    etf = collapse.simplex_etf(3)
    assert float(n05.between_class_penalty(etf[y], y)) == pytest.approx(0.0, abs=1e-12)
    # means (1,0), (1,0)+eps... : two equal means at (1,0),(1,0) and (-2,0): centred (1/3,0)x2, (-2/3,0)
    m = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-2.0, 0.0]], dtype=F64, requires_grad=True)
    r = n05.between_class_penalty(m[y], y)
    # cosines: (0,1) -> 1, (0,2),(1,2) -> -1; relu(1 + 1/2)^2 = 2.25 for 2 of 6 ordered pairs
    assert float(r.detach()) == pytest.approx(2.25 * 2 / 6)
    r.backward()
    assert m.grad is not None and torch.isfinite(m.grad).all()
    with pytest.raises(ValueError, match="no samples"):
        n05.between_class_penalty(m[y].detach(), torch.tensor([0, 0, 2, 2, 0, 2]))


def test_old_name_is_a_deprecation_alias():
    from lossviz import collapse

    with pytest.warns(DeprecationWarning, match="n05_long_tailed"):
        assert collapse.between_class_penalty is n05.between_class_penalty


def test_train_long_tailed_is_seeded_and_averages():
    kw = dict(num_classes=4, dim=6, n_max=20, n_test=10, hidden=(8,), steps=30, minority=[2, 3])
    a = n05.train_long_tailed(10, 1.0, 0, **kw)
    b = n05.train_long_tailed(10, 1.0, 0, **kw)
    assert a.balanced_acc == b.balanced_acc and a.angle == b.angle
    assert a.counts[0] == 20 and a.counts[-1] == 2 and a.cosines.shape == (4, 4)
    assert 0.0 <= a.angle <= 180.0 and 0.0 <= a.balanced_acc <= 1.0
    c = n05.train_long_tailed(10, 0.0, 1, within=1.0, **kw)
    avg = n05.average_runs([a, c])
    assert avg["angle"] == pytest.approx((a.angle + c.angle) / 2) and avg["seeds"] == (0, 1)
    with pytest.raises(ValueError, match="empty"):
        n05.average_runs([])
