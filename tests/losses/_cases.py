"""Shared cases for the tests of lossviz.losses."""

from __future__ import annotations

import torch

import lossviz.losses as L

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _data(n=32, k=5, scale=3.0, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, k, generator=g, dtype=torch.float64) * scale).to(dtype)
    y = torch.randint(0, k, (n,), generator=g)
    return z, y


# every classification loss with integer targets, as (name, callable(z, y))
LOSSES = {
    "tempered_ce": lambda z, y, **kw: L.tempered_cross_entropy(z, y, 1.0, **kw),
    "comp_sum_q0": lambda z, y, **kw: L.comp_sum(z, y, 0.0, **kw),
    "gce": lambda z, y, **kw: L.comp_sum(z, y, 0.7, **kw),
    "mae": lambda z, y, **kw: L.comp_sum(z, y, 1.0, **kw),
    "ldr_kl": lambda z, y, **kw: L.ldr_kl(z, y, 1.0, **kw),
    "ldr_kl_normalized": lambda z, y, **kw: L.ldr_kl(z, y, 1.0, margin=0.1, normalize=True, **kw),
    "aldr_kl": lambda z, y, **kw: L.aldr_kl(z, y, 1.0, **kw),
    "crammer_singer": lambda z, y, **kw: L.crammer_singer_hinge(z, y, **kw),
    "z_loss": lambda z, y, **kw: L.z_loss(z, y, **kw),
    "stablemax_ce": lambda z, y, **kw: L.stablemax_cross_entropy(z, y, **kw),
    "soft_ce": lambda z, y, **kw: L.soft_cross_entropy(z, y, **kw),
}
