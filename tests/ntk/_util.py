"""Helpers shared by the NTK tests."""

from __future__ import annotations

import math

import torch
from torch import nn

F64 = torch.float64


def _mlp(widths, bias=True, act=nn.Tanh, seed=0, dtype=F64):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=bias, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _rel(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def _circle(n, dtype=F64):
    ang = torch.arange(n, dtype=dtype) * 2 * math.pi / n
    return torch.stack([ang.cos(), ang.sin()], 1)
