"""Shared data for the neural-collapse tests."""

from __future__ import annotations

import torch

F64 = torch.float64

TOL = 1e-8


def random_data(seed, n_per=12, k=4, d=6, spread=0.5, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(k, d, generator=g, dtype=F64)
    y = torch.arange(k).repeat_interleave(n_per)
    x = means[y] + spread * torch.randn(len(y), d, generator=g, dtype=F64)
    perm = torch.randperm(len(y), generator=g)
    w = torch.randn(k, d, generator=g, dtype=F64)
    b = torch.randn(k, generator=g, dtype=F64)
    return x[perm].to(dtype), y[perm], w, b


ALL = (
    "nc1",
    "trace_ratio",
    "cdnv",
    "equinorm",
    "equiangularity",
    "etf_distance",
    "equinorm_classifier",
    "equiangularity_classifier",
    "etf_distance_classifier",
    "self_duality",
    "ncc_mismatch",
    "bias_collapse",
)
