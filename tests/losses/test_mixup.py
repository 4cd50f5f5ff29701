"""Tests for mixup (lossviz.losses._mixup): integer label dtypes, soft cross-entropy conventions."""

from __future__ import annotations

import pytest
import torch

import lossviz.losses as L


@pytest.mark.parametrize("label_dtype", [torch.int8, torch.int16, torch.int32, torch.uint8])
def test_mixup_accepts_any_integer_label_dtype(label_dtype):
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 3
    ref = L.mixup(x, y, 3, seed=0)
    got = L.mixup(x, y.to(label_dtype), 3, seed=0)
    assert torch.equal(got.targets, ref.targets) and torch.equal(got.x, ref.x)
    assert got.y_a.dtype == torch.long
    with pytest.raises(TypeError, match="`y`"):
        L.mixup(x, y > 0, 3, seed=0)


def test_train_mixup_accepts_int32_labels():
    from lossviz import models
    from lossviz.papers import n03_mixup

    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    y = torch.arange(12) % 3
    a = n03_mixup.train_mixup(models.MLP(2, (8,), 3, seed=0), x, y, 3, steps=3, seed=1)
    b = n03_mixup.train_mixup(models.MLP(2, (8,), 3, seed=0), x, y.to(torch.int32), 3, steps=3, seed=1)
    assert a == b


def test_soft_cross_entropy_soft_targets_with_spatial_dims():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 3, generator=g)
    t = torch.softmax(torch.randn(2, 4, 3, generator=g), dim=1)
    torch.testing.assert_close(L.soft_cross_entropy(z, t), torch.nn.functional.cross_entropy(z, t))
