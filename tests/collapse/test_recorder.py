"""Tests for lossviz.collapse._recorder (CollapseRecorder, a train.Callback)."""

from __future__ import annotations

import pytest
import torch

from lossviz import collapse
from lossviz.testing import BNDropoutNet, assert_model_unchanged


def test_collapse_recorder_with_fit_and_model_unchanged():
    from lossviz import train

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    x = torch.randn(3, 4, generator=g)[y] * 3 + torch.randn(60, 4, generator=g)
    net = BNDropoutNet(4, 8, 3)
    rec = collapse.CollapseRecorder(x, y, every=5)
    with assert_model_unchanged(net):
        rec(0, net, 0.0, None)
    hist = train.fit(
        net, torch.nn.functional.cross_entropy, (x, y), steps=10, lr=0.1, callbacks=[rec], progress=False
    )
    assert rec.steps == [0, 5, 10]
    assert len(rec.history["nc1"]) == 3 and len(rec.means) == 3 and len(rec.classifiers) == 3
    assert hist.steps("nc/nc1") == [5, 10]  # step 0 was recorded by the direct call above
    fig = collapse.plot_metrics(rec)
    assert len(fig.data) >= 5
    assert collapse.plot_metrics(rec, backend="matplotlib") is not None


def test_collapse_recorder_records_the_final_step():
    from lossviz import models, train

    x, y = torch.randn(30, 4, generator=torch.Generator().manual_seed(1)), torch.arange(3).repeat(10)
    rec = collapse.CollapseRecorder(x, y, every=5)
    assert isinstance(rec, train.Callback)
    hist = train.fit(
        models.MLP(4, (8,), 3, seed=0),
        torch.nn.functional.cross_entropy,
        (x, y),
        steps=7,
        callbacks=[rec],
        progress=False,
    )
    assert rec.steps == [0, 5, 7] and hist.steps("nc/nc1") == [0, 5, 7]
    assert len(rec.result()["nc1"]) == 3
    only_at = collapse.CollapseRecorder(x, y, every=None, at=[2], final=False)
    train.fit(
        models.MLP(4, (8,), 3, seed=0),
        torch.nn.functional.cross_entropy,
        (x, y),
        steps=7,
        callbacks=[only_at],
        progress=False,
    )
    assert only_at.steps == [2]
    assert rec.plot().layout.xaxis.title.text == "step"


def test_recorder_on_convolution_features_needs_pool():
    """Conv feature maps are pooled as the user says, never flattened silently."""
    from lossviz import train

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3))
    head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = torch.nn.Sequential(net, head)
    x, y = torch.randn(12, 1, 7, 7), torch.arange(12) % 3
    rec = collapse.CollapseRecorder(x, y, layer="0.2", classifier=None, capture="output", pool="mean")
    train.fit(model, torch.nn.functional.cross_entropy, (x, y), steps=1, callbacks=[rec], progress=False)
    assert rec.steps == [0, 1] and len(rec.means[0]) == 3 and rec.means[0].shape[1] == 3
    bad = collapse.CollapseRecorder(x, y, layer="0.2", classifier=None, capture="output")
    with pytest.raises(ValueError, match="pool"):
        bad(0, model, 0.0, None)
