"""The claim check of T02: learned temperatures of frequent vs rare semantics, by a permutation test.

Paper: Zi-Hao Qiu, Quanqi Hu, Zhuoning Yuan, Denny Zhou, Lijun Zhang, Tianbao Yang, "Not All
Semantics are Created Equal: Contrastive Self-supervised Learning with Automatic Temperature
Individualization", ICML 2023, arXiv:2305.11965.

The set-up (latent classes, the robust contrastive loss with per-sample temperatures) is T01's
(:mod:`lossviz.papers.t01_contrastive_temperature`). Here: the statistic of the claim, the ratio
of the mean learned temperature of frequent-class anchors to that of rare-class anchors, and its
permutation test (random relabelling of which anchors count as frequent, group sizes kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_int, check_tensor

__all__ = ["temperature_ratio", "PermutationTest", "permutation_test"]


def temperature_ratio(temperatures, frequent) -> float:
    """``mean tau_i over frequent anchors / mean tau_i over the others`` (float64)."""
    t = check_tensor(temperatures, "temperatures", ndim=1, floating=True).detach().to(torch.float64).cpu()
    m = torch.as_tensor(frequent, device="cpu")
    if m.dtype != torch.bool or m.shape != t.shape:
        raise ValueError(f"`frequent` must be a bool mask of shape {tuple(t.shape)}")
    if not (bool(m.any()) and bool((~m).any())):
        raise ValueError("`frequent` must mark some anchors and leave some unmarked")
    return float(t[m].mean() / t[~m].mean())


@dataclass(frozen=True, repr=False)
class PermutationTest(Result):
    """One-sided permutation test of the temperature ratio.

    ``ratio`` observed; ``null`` (num,) ratios under random relabelling; ``p_value`` =
    ``(1 + #{null >= ratio}) / (1 + num)``; ``null_quantile_99`` the 99th percentile of ``null``.
    """

    ratio: float
    null: np.ndarray
    p_value: float
    null_quantile_99: float


def permutation_test(temperatures, frequent, *, num: int = 2000, seed: int = 0) -> PermutationTest:
    """Is the frequent/rare temperature ratio larger than random groups of the same sizes give?

    Examples
    --------
    >>> import torch
    >>> t = torch.cat([torch.full((20,), 2.0), torch.full((20,), 1.0)]) + 0.01 * torch.arange(40.0)
    >>> test = permutation_test(t, torch.arange(40) < 20, num=500)
    >>> test.p_value < 0.01
    True
    """
    num = check_int(num, "num", minimum=1)
    seed = check_int(seed, "seed", minimum=0)
    ratio = temperature_ratio(temperatures, frequent)
    t = temperatures.detach().to(torch.float64).cpu()
    m = torch.as_tensor(frequent, device="cpu")
    g = torch.Generator().manual_seed(seed)
    n, k = len(t), int(m.sum())
    null = np.empty(num)
    for i in range(num):
        perm = torch.randperm(n, generator=g, device=g.device)
        null[i] = float(t[perm[:k]].mean() / t[perm[k:]].mean())
    p = (1 + int((null >= ratio).sum())) / (1 + num)
    return PermutationTest(ratio=ratio, null=null, p_value=p, null_quantile_99=float(np.quantile(null, 0.99)))
