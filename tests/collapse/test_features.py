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


# -- features of any layer of any model (issue 13 item 3; REVIEW B7, F) -------------------------


class _Seq(torch.nn.Module):
    """Token model with a (B, T, d) hidden layer, called with input_ids and attention_mask."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(13, 6)
        self.body = torch.nn.Linear(6, 6)
        self.head = torch.nn.Linear(6, 3)

    def forward(self, input_ids, attention_mask=None):
        return {"logits": self.head(torch.tanh(self.body(self.emb(input_ids))))}


def test_features_streamed_over_a_loader_equal_all_at_once_and_default_layer():
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    net = BNDropoutNet(dtype=F64)
    x, y = torch.randn(30, 4), torch.arange(30) % 3  # float32 data, float64 model: cast
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with assert_model_unchanged(net):
        h, labels = collapse.features(net, loader)  # default: input of the last Linear ("head")
        ref = collapse.feature_extractor(net, "head")(x)
    assert h.dtype == F64 and torch.equal(labels, y)
    assert torch.allclose(h, ref, rtol=1e-6, atol=0)
    m = collapse.nc_metrics(h, labels)
    assert m.nc1 >= 0


def test_sequence_features_need_pool_and_respect_the_mask():
    torch.manual_seed(0)
    net = _Seq()
    ids = torch.randint(0, 13, (4, 5))
    mask = torch.ones(4, 5, dtype=torch.long)
    mask[1, 3:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0])}
    with pytest.raises(ValueError, match="pool"):
        collapse.features(net, batch)
    hidden = torch.tanh(net.body(net.emb(ids))).detach()
    mean, _ = collapse.features(net, batch, pool="mean")
    assert torch.allclose(mean[1], hidden[1, :3].mean(0)) and torch.allclose(mean[0], hidden[0].mean(0))
    last, _ = collapse.features(net, batch, pool="last")
    assert torch.allclose(last[1], hidden[1, 2]) and torch.allclose(last[0], hidden[0, 4])
    flat, _ = collapse.features(net, batch, pool="flatten")
    none, _ = collapse.features(net, batch, pool="none")
    assert flat.shape == (4, 30) and none.shape == (4, 5, 6)
    with pytest.raises(ValueError, match="pool"):
        collapse.feature_extractor(net, "head")({"input_ids": ids})


def test_wrong_layer_lists_every_module_and_wrong_width_names_the_argument():
    net = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(25)], torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"its 26 submodules are: 0, 1, 2, .*, 24, 25$"):
        collapse.features(net, (torch.randn(3, 4), torch.zeros(3)), layer="lm_nope")
    with pytest.raises(ValueError, match=r"`data`.*expects 4 input features"):
        collapse.features(net, (torch.randn(3, 7), torch.zeros(3)))
    with pytest.raises(ValueError, match=r"`x`.*expects 4 input features"):
        collapse.feature_extractor(net)(torch.randn(3, 7))
