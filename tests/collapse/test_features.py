"""Tests for lossviz.collapse._features (feature_extractor)."""

from __future__ import annotations

import pytest
import torch

from lossviz import collapse
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._helpers import F64


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
