"""Tests for lossviz._validate: the argument checks every public function shares."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lossviz import _validate as V


def test_check_labels_returns_int64_and_refuses_bool():
    for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        out = V.check_labels(torch.tensor([0, 2, 1], dtype=dtype), "y", num_classes=3)
        assert out.dtype == torch.int64 and out.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match="`y`.*bool"):
        V.check_labels(torch.tensor([True, False]), "y")


def test_check_autograd_refuses_inference_mode_only():
    V.check_autograd("thing")
    with torch.no_grad():
        V.check_autograd("thing")  # no_grad is fine: lossviz re-enables gradients itself
    with torch.inference_mode(), pytest.raises(RuntimeError, match="thing.*outside.*inference_mode"):
        V.check_autograd("thing")


def test_check_finite_parameters_names_the_parameter():
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    V.check_finite_parameters(net)
    with torch.no_grad():
        net[2].bias[0] = float("nan")
        net[0].weight[1, 1] = float("inf")
    with pytest.raises(
        ValueError, match=r"`model` has non-finite parameters: '0.weight' contains 1 .*1 more"
    ):
        V.check_finite_parameters(net)
    V.check_finite_parameters(nn.ReLU())  # no parameters: nothing to check
