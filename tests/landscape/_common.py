"""Shared helpers of the landscape tests (small data, a small MLP, a direct loss reference)."""

from __future__ import annotations

import copy

import torch
from torch import nn

F = nn.functional


def _data(n=32, d=4, k=3, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randint(0, k, (n,), generator=g)


def _mlp(dtype=torch.float32, seed=0, widths=(4, 8, 8, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b, dtype=dtype), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def _direct_loss(model, params, data, loss_fn=F.cross_entropy):
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(params[name])
        return float(loss_fn(m(data[0]), data[1]))
