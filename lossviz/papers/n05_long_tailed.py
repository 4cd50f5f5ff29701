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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor
from ..collapse import class_means, minority_collapse
from ..collapse._checks import GLOBAL_MEANS
from ..data import gaussian_mixture
from ..models import MLP
from ..stats import cosine_matrix
from ..train import fit

__all__ = ["between_class_penalty", "LongTailedRun", "train_long_tailed", "average_runs"]


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


@dataclass(frozen=True, repr=False)
class LongTailedRun(Result):
    """One N05 training run: balanced test accuracy, per-class test accuracy, the smallest angle
    (degrees) between the classifier rows of the ``minority`` classes, the cosines of all
    classifier rows, the training class sizes and the settings."""

    balanced_acc: float
    per_class: np.ndarray
    angle: float
    cosines: np.ndarray
    counts: tuple[int, ...]
    ratio: float
    lam: float
    within: float
    seed: int


def train_long_tailed(
    ratio: float,
    lam: float,
    seed: int,
    *,
    num_classes: int = 10,
    dim: int = 32,
    n_max: int = 200,
    n_test: int = 100,
    hidden: Sequence[int] = (64, 64, 32),
    steps: int = 800,
    weight_decay: float = 3e-2,
    within: float = 0.0,
    minority: Sequence[int] | None = None,
    device=None,
) -> LongTailedRun:
    r"""Train the N05 set-up once: Gaussian classes with exponential imbalance ``ratio``, an MLP with
    a bias-free linear classifier, full-batch SGD (momentum 0.9, lr 0.1) with ``weight_decay``,
    cross-entropy plus ``lam`` times :func:`between_class_penalty` of the penultimate features of
    the same forward pass (and ``within`` times a within-class spread term, normalised by the
    between-class spread). Evaluated on a balanced test set with the same class means.

    ``minority`` defaults to the smaller half of the classes.
    """
    k = check_int(num_classes, "num_classes", minimum=3)
    lam = check_float(lam, "lam", minimum=0.0)
    within = check_float(within, "within", minimum=0.0)
    minority = tuple(range(k // 2, k)) if minority is None else tuple(minority)
    tr = gaussian_mixture(n_max, k, dim, imbalance=ratio, separation=1.0, noise=1.0, seed=seed, device=device)
    te = gaussian_mixture(n_test, k, dim, means=tr.info["means"], noise=1.0, seed=seed + 1000, device=device)
    net = MLP(dim, tuple(hidden), k, head_bias=False, seed=seed).to(device=tr.x.device)
    tap = {}
    hook = net.head.register_forward_hook(lambda mod, inp, out: tap.__setitem__("h", inp[0]))

    def regularizer(model):
        h = tap["h"]
        r = lam * between_class_penalty(h, tr.y, k) if lam else h.new_zeros(())
        if within:
            means = class_means(h, tr.y, k)
            r = r + within * (h - means[tr.y]).square().sum(1).mean() / means.var(0).sum()
        return r

    try:
        fit(
            net,
            torch.nn.functional.cross_entropy,
            (tr.x, tr.y),
            steps=steps,
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=weight_decay,
            regularizer=regularizer if (lam or within) else None,
            seed=seed,
            progress=False,
        )
    finally:
        hook.remove()
    with torch.no_grad():
        pred = net.eval()(te.x).argmax(1)
    per_class = np.array([(pred[te.y == c] == c).double().mean().item() for c in range(k)])
    w = net.head.weight.detach()
    return LongTailedRun(
        balanced_acc=float(per_class.mean()),
        per_class=per_class,
        angle=minority_collapse(w, minority).min_angle,
        cosines=cosine_matrix(w),
        counts=tuple(int(c) for c in tr.info["counts"]),
        ratio=float(ratio),
        lam=lam,
        within=within,
        seed=int(seed),
    )


def average_runs(runs: Sequence[LongTailedRun]) -> dict:
    """Seed average of several :class:`LongTailedRun` of one setting (accuracies, angle, cosines)."""
    if not runs:
        raise ValueError("`runs` is empty")
    return {
        "balanced_acc": float(np.mean([r.balanced_acc for r in runs])),
        "angle": float(np.mean([r.angle for r in runs])),
        "per_class": np.mean([r.per_class for r in runs], 0),
        "cosines": np.mean([r.cosines for r in runs], 0),
        "counts": runs[0].counts,
        "seeds": tuple(r.seed for r in runs),
    }
