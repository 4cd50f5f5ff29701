"""Shared helpers of the curvature tests: small float64 models, data, an independent Hessian.

The reference Hessian is computed independently of lossviz: ``torch.func.hessian`` of a flat
function over *all samples at once* (the mean over samples), so a library that summed batch
Hessians, or averaged batch means without sample weights, fails these tests.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

F64 = torch.float64
CE = nn.functional.cross_entropy


def _net(seed=0, dtype=F64, width=5):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 3)).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    return net


def _data(n=23, seed=1, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def _batches(x, y, sizes=(4, 12, 7)):
    out, i = [], 0
    for s in sizes:
        out.append((x[i : i + s], y[i : i + s]))
        i += s
    return out


def _reference_hessian(model, loss_fn, x, y, names=None, train=False):
    """Independent reference: torch.func.hessian of the mean loss over all samples."""
    model = copy.deepcopy(model).train(train)
    named = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = list(named) if names is None else names
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    theta = torch.cat([named[n].reshape(-1) for n in names])

    def f(t):
        state = dict(named)
        state.update({n: c.view(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)})
        state.update({k: v.clone() for k, v in bufs.items()})
        return loss_fn(torch.func.functional_call(model, state, (x,)), y)

    return torch.func.hessian(f)(theta), theta


def _bn_data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)
