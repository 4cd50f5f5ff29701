"""lossviz.landscape._metrics: the accuracy metric, its old name, and the shared evaluator."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lossviz import _model, landscape, train
from lossviz.landscape import _metrics

from ._common import _data, _mlp

F = nn.functional


def test_accuracy_metric_logits_and_single_output():
    out = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0]])
    assert float(landscape.accuracy_metric(out, torch.tensor([0, 1, 0]))) == pytest.approx(2 / 3)
    single = torch.tensor([[1.0], [-2.0], [0.5], [-0.1]])
    assert float(landscape.accuracy_metric(single, torch.tensor([1.0, -1.0, -1.0, 0.0]))) == 0.75
    assert float(landscape.accuracy_metric(single.reshape(-1), torch.tensor([1, 0, 1, 0]))) == 1.0


def test_old_accuracy_name_warns_and_forwards():
    with pytest.warns(DeprecationWarning, match="accuracy_metric"):
        fn = landscape.accuracy
    assert fn is landscape.accuracy_metric
    # the training-curve metric of the same old name is a different thing and keeps its meaning
    x, y = _data()
    assert callable(train.accuracy(x, y))


def test_evaluate_without_metrics_is_mean_loss():
    net = _mlp()
    x, y = _data()
    batches = _model.collate([(x[:10], y[:10]), (x[10:], y[10:])])
    with torch.no_grad():
        loss, vals = _metrics.evaluate(net, F.cross_entropy, batches, {})
        ref = _model.mean_loss(net, F.cross_entropy, batches)
        whole = F.cross_entropy(net(x), y)
    assert vals == {} and float(loss) == float(ref)
    assert float(loss) == pytest.approx(float(whole), rel=1e-6)
    with torch.no_grad():
        loss2, vals2 = _metrics.evaluate(net, F.cross_entropy, batches, {"acc": landscape.accuracy_metric})
    assert float(loss2) == pytest.approx(float(loss), rel=1e-7)
    assert float(vals2["acc"]) == pytest.approx(float((net(x).argmax(-1) == y).double().mean()))


def test_metrics_checked():
    net, (x, y) = _mlp(), _data()
    with pytest.raises(TypeError, match="metrics"):
        landscape.line(net, F.cross_entropy, (x, y), steps=3, metrics=[landscape.accuracy_metric])
    with pytest.raises(TypeError, match=r"metrics\['acc'\]"):
        landscape.line(net, F.cross_entropy, (x, y), steps=3, metrics={"acc": 1})
    with pytest.raises(ValueError, match=r"metrics\['vec'\]"):
        landscape.line(net, F.cross_entropy, (x, y), steps=3, metrics={"vec": lambda o, t: o.sum(1)})
    bl = train.batch_loss(lambda m, b: F.cross_entropy(m(b[0]), b[1]))
    with pytest.raises(TypeError, match="batch_loss"):
        landscape.line(net, bl, (x, y), steps=3, metrics={"acc": landscape.accuracy_metric})


def test_batch_loss_on_a_line_equals_the_plain_loss():
    net, (x, y) = _mlp(), _data()
    bl = train.batch_loss(lambda m, b: F.cross_entropy(m(b[0]), b[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = landscape.line(net, bl, (x, y), steps=5, seed=1, workers=1)
    b = landscape.line(net, F.cross_entropy, (x, y), steps=5, seed=1, workers=1)
    assert a.loss.tolist() == pytest.approx(b.loss.tolist(), rel=1e-7)
    with pytest.raises(ValueError, match="engine"):
        landscape.line(net, bl, (x, y), steps=3, engine="vmap")
