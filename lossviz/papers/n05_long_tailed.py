r"""N05: a between-class regulariser against minority collapse on long-tailed data.

Reference: Xuantong Liu, Jianfeng Zhang, Tianyang Hu, He Cao, Lujia Pan & Yuan Yao, "Inducing
Neural Collapse in Deep Long-tailed Learning", AISTATS 2023 (PMLR 206), arXiv:2302.12453.
Minority collapse: Cong Fang, Hangfeng He, Qi Long & Weijie J. Su, "Exploring Deep Neural
Networks via Layer-Peeled Model: Minority Collapse in Imbalanced Training", PNAS 118 (2021),
arXiv:2101.12699.

:func:`between_class_penalty` is a **stand-in** for the paper's between-class regulariser with
the same intent (push the centred class means apart, towards a simplex ETF, whatever the class
sizes); the paper's exact formula could not be checked when this was written.
"""

from __future__ import annotations

import torch

from .._validate import check_choice, check_tensor
from ..collapse import class_means
from ..collapse._checks import GLOBAL_MEANS

__all__ = ["between_class_penalty"]


def between_class_penalty(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int | None = None,
    *,
    global_mean: str = "unweighted",
) -> torch.Tensor:
    r"""Differentiable penalty pushing centred class means apart (towards a simplex ETF).

    .. math::
        R = \frac{1}{K(K-1)}\sum_{k\ne j}\operatorname{relu}\Big(\cos(\mu_k-\mu_G,\ \mu_j-\mu_G)
        + \frac{1}{K-1}\Big)^2,

    computed from the batch's class means (every class must be present). It is zero when every
    pair of centred means is at least as far apart as in a simplex ETF and grows when minority
    classes collapse together. With ``global_mean="unweighted"`` (default) majority classes do
    not dominate ``mu_G``.

    This is a stand-in for the between-class regulariser of Liu et al. (AISTATS 2023; see the
    module docstring), with the same intent: separate class means under imbalance.

    >>> from lossviz.collapse import simplex_etf
    >>> m = simplex_etf(4)
    >>> float(between_class_penalty(m.repeat(3, 1), torch.arange(4).repeat(3))) < 1e-20
    True
    """
    features = check_tensor(features, "features", ndim=2, floating=True)
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
    means = class_means(features, labels, num_classes)  # checks `labels`: every class present
    k = means.shape[0]
    mu_g = means.mean(0) if global_mean == "unweighted" else features.mean(0)
    c = means - mu_g
    u = c / c.norm(dim=1, keepdim=True).clamp_min(torch.finfo(c.dtype).eps)
    cos = u @ u.T
    off = ~torch.eye(k, dtype=torch.bool, device=features.device)
    return torch.relu(cos[off] + 1.0 / (k - 1)).square().mean()
