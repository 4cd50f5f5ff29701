"""class_mean_gradients and subspace_energy (Papyan's class structure of the outliers)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lossviz import curvature
from lossviz.testing import BNDropoutNet, assert_model_unchanged

from ._helpers import CE, F64, _bn_data, _data, _net


def test_class_mean_gradients_average_to_the_full_gradient():
    net, (x, y) = _net(), _data(30)
    G = curvature.class_mean_gradients(net, CE, (x, y))
    counts = torch.bincount(y, minlength=3).to(F64)
    full = curvature.HessianOperator(net, CE, (x, y)).gradient()
    torch.testing.assert_close((counts[:, None] * G).sum(0) / counts.sum(), full, atol=1e-12, rtol=1e-10)
    # class 1 alone, by autograd on the model copy
    ref = copy.deepcopy(net)
    CE(ref(x[y == 1]), y[y == 1]).backward()
    torch.testing.assert_close(
        G[1], torch.cat([p.grad.reshape(-1) for p in ref.parameters()]), atol=1e-12, rtol=1e-10
    )
    cross = curvature.class_mean_gradients(net, CE, (x, y), cross=True)
    assert cross.shape == (3, 3, 38)
    torch.testing.assert_close(cross[[0, 1, 2], [0, 1, 2]], G)
    with assert_model_unchanged(model := BNDropoutNet()):
        curvature.class_mean_gradients(model, CE, _bn_data(), cross=True)
    with pytest.raises(TypeError, match="integer class labels"):
        curvature.class_mean_gradients(net, nn.functional.mse_loss, (x, torch.randn(30, 3, dtype=F64)))
    with pytest.raises(ValueError, match="no sample of class 1"):
        curvature.class_mean_gradients(net, CE, (x[y != 1], torch.where(y[y != 1] == 2, 2, 0)))


def test_subspace_energy():
    basis = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]], dtype=F64)
    V = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=F64)  # columns
    np.testing.assert_allclose(curvature.subspace_energy(V, basis).numpy(), [1.0, 0.0, 2 / 3], atol=1e-12)
    with pytest.raises(ValueError, match="spanning"):
        curvature.subspace_energy(V, torch.ones(2, 4, dtype=F64))
