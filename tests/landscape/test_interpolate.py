"""lossviz.landscape._interpolate: both end points, the barrier, BatchNorm buffers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._common import _data, _direct_loss, _mlp

F = nn.functional


def test_interpolate_includes_both_ends_and_barrier():
    a, b = _mlp(torch.float64, seed=0), _mlp(torch.float64, seed=1)
    data = _data(dtype=torch.float64)
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.interpolate(
            a, b, F.cross_entropy, data, steps=11, metrics={"acc": landscape.accuracy_metric}
        )
    assert res.alphas[0] == 0.0 and res.alphas[-1] == 1.0 and len(res.alphas) == 11
    pa = {k: p.detach() for k, p in a.named_parameters()}
    pb = {k: p.detach() for k, p in b.named_parameters()}
    assert res.loss[0] == _direct_loss(a, pa, data)
    assert res.loss[-1] == _direct_loss(b, pb, data)
    mid = {k: 0.5 * pa[k] + 0.5 * pb[k] for k in pa}
    assert res.loss[5] == pytest.approx(_direct_loss(a, mid, data), rel=1e-12)
    chord = (1 - res.alphas) * res.loss[0] + res.alphas * res.loss[-1]
    assert res.barrier == pytest.approx(np.max(res.loss - chord))
    assert res.metrics["acc"].shape == (11,)


def test_interpolate_batchnorm_buffers():
    a, b = BNDropoutNet(seed=0), BNDropoutNet(seed=1)
    x, y = _data()
    with assert_model_unchanged(a), assert_model_unchanged(b):
        res = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=3)
        rec = landscape.interpolate(a, b, F.cross_entropy, (x, y), steps=3, bn="recompute")
    # midpoint with interpolated buffers
    m = copy.deepcopy(a).eval()
    with torch.no_grad():
        for p, q in zip(m.parameters(), b.parameters()):
            p.copy_(0.5 * p + 0.5 * q)
        m.bn.running_mean.copy_(0.5 * a.bn.running_mean + 0.5 * b.bn.running_mean)
        m.bn.running_var.copy_(0.5 * a.bn.running_var + 0.5 * b.bn.running_var)
        assert res.loss[1] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-6)
        # recomputed statistics = batch statistics of the midpoint network on the data
        h = m.fc1(x)
        m.bn.running_mean.copy_(h.mean(0))
        m.bn.running_var.copy_(h.var(0, unbiased=True))
        assert rec.loss[1] == pytest.approx(float(F.cross_entropy(m(x), y)), rel=1e-5)
    assert a.bn.momentum == 0.1 and rec.bn == "recompute"
    # the end points are the end models themselves, with their own statistics (REVIEW F)
    with torch.no_grad():
        own_a = float(F.cross_entropy(copy.deepcopy(a).eval()(x), y))
        own_b = float(F.cross_entropy(copy.deepcopy(b).eval()(x), y))
    assert rec.loss[0] == pytest.approx(own_a, rel=1e-6) and rec.loss[-1] == pytest.approx(own_b, rel=1e-6)
    assert res.loss[0] == pytest.approx(own_a, rel=1e-6)


def test_interpolate_bad_inputs():
    a = _mlp()
    with pytest.raises(ValueError, match="model_b"):
        landscape.interpolate(a, _mlp(widths=(4, 6, 8, 3)), F.cross_entropy, _data())
    with pytest.raises(ValueError, match="steps"):
        landscape.interpolate(a, _mlp(seed=1), F.cross_entropy, _data(), steps=1)
    with pytest.raises(ValueError, match="bn"):
        landscape.interpolate(a, _mlp(seed=1), F.cross_entropy, _data(), bn="reset")
    with pytest.raises(TypeError, match="model_b"):
        landscape.interpolate(a, None, F.cross_entropy, _data())


def test_non_finite_end_models_are_named():
    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    data = (torch.randn(8, 2), torch.randn(8, 1))
    with torch.no_grad():
        b.bias[0] = float("nan")
    with pytest.raises(ValueError, match="`model_b` has non-finite parameters"):
        landscape.interpolate(a, b, torch.nn.functional.mse_loss, data, steps=3)
    with pytest.raises(ValueError, match="`model_a` has non-finite parameters"):
        landscape.interpolate(b, a, torch.nn.functional.mse_loss, data, steps=3)
