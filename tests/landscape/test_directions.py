"""lossviz.landscape._directions: Gaussian, filter-normalised, seeded directions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import landscape
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._common import _mlp

F = nn.functional


def test_directions_are_gaussian_not_uniform():
    net = nn.Linear(400, 50)
    d = landscape.random_directions(net, n=1, norm="none", ignore=(), seed=3)
    v = d.flat()[0].double()
    assert abs(float(v.mean())) < 0.02  # uniform [0, 1] would have mean 0.5
    assert float((v < 0).double().mean()) == pytest.approx(0.5, abs=0.02)
    assert float(v.std()) == pytest.approx(1.0, abs=0.02)
    kurt = float(((v - v.mean()) ** 4).mean() / v.var() ** 2)
    assert kurt == pytest.approx(3.0, abs=0.15)  # Gaussian 3, uniform 1.8


def test_filter_normalisation_and_ignore_policy():
    net = BNDropoutNet()
    d = landscape.random_directions(net, n=2, seed=0)
    params = dict(net.named_parameters())
    for vec in d.vectors:
        w, v = params["fc1.weight"].detach(), vec["fc1.weight"]
        assert torch.allclose(v.norm(dim=1), w.norm(dim=1), rtol=1e-5)
        assert not vec["fc1.bias"].any() and not vec["head.bias"].any()
        assert not vec["bn.weight"].any() and not vec["bn.bias"].any()
    d2 = landscape.random_directions(net, n=1, ignore=(), seed=0)
    assert d2[0]["bn.weight"].any() and d2[0]["fc1.bias"].any()
    d3 = landscape.random_directions(net, n=1, ignore=("frozen",), seed=0)
    assert not d3[0]["fc2.bias"].any()  # the frozen parameter of BNDropoutNet
    layer = landscape.random_directions(net, n=1, norm="layer", seed=0)
    assert torch.allclose(layer[0]["fc1.weight"].norm(), params["fc1.weight"].detach().norm(), rtol=1e-5)


def test_directions_seeded_cosine_and_dtype():
    net = _mlp(torch.float64)
    a = landscape.random_directions(net, seed=1)
    b = landscape.random_directions(net, seed=1)
    c = landscape.random_directions(net, seed=2)
    assert all(torch.equal(a[0][k], b[0][k]) for k in a.names)
    assert not torch.equal(a[0]["0.weight"], c[0]["0.weight"])
    assert a[0]["0.weight"].dtype == torch.float64
    assert a.cosine.shape == (2, 2) and np.allclose(np.diag(a.cosine), 1.0)
    assert abs(a.cosine[0, 1]) < 0.5
    with assert_model_unchanged(net):
        landscape.random_directions(net, seed=0)


def test_filter_norm_per_output_unit_for_transposed_weights():
    """HF Conv1D stores (in, out) and ConvTranspose (in, out, k): units are columns (dim 1)."""
    from tests._models import require_transformers

    require_transformers()
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    net = torch.nn.Sequential(Conv1D(6, 4), torch.nn.Tanh(), Conv1D(3, 6))  # nf=6 out, nx=4 in
    net.add_module("up", torch.nn.ConvTranspose1d(3, 5, 2))
    d = landscape.random_directions(net, 1, norm="filter", seed=0)[0]
    for name in ("0.weight", "2.weight", "up.weight"):
        w = dict(net.named_parameters())[name].detach()
        wn = w.movedim(1, 0).reshape(w.shape[1], -1).norm(dim=1)
        dn = d[name].movedim(1, 0).reshape(w.shape[1], -1).norm(dim=1)
        assert torch.allclose(dn, wn, rtol=1e-5), name
        # and not per row: rows of a (in, out) weight are input features
        rows_w, rows_d = w.reshape(w.shape[0], -1).norm(dim=1), d[name].reshape(w.shape[0], -1).norm(dim=1)
        assert not torch.allclose(rows_w, rows_d, rtol=1e-3), name
