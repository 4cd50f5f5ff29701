"""Loss families with a temperature (track T): classification losses, contrastive losses, mixup.

Every classification loss takes logits of shape ``(n, K)`` and integer targets ``(n,)`` (soft
targets ``(n, K)`` where the paper uses them), supports ``reduction="mean" | "sum" | "none"``,
evaluates half-precision inputs in float32 (cast back, as autocast does) and stays finite with
logits up to 1e4 in magnitude in float16, bfloat16, float32 and float64.

Modules: :mod:`.classification` (tempered CE, comp-sum, LDR, Z-loss), :mod:`.contrastive`
(InfoNCE, hardness-aware weights, uniformity/tolerance, robust contrastive loss),
:mod:`.stablemax` (StableMax, Softmax Collapse), :mod:`.mixup`, :mod:`.plots` (analytic views).
"""

from __future__ import annotations

from .classification import (
    CompSumBound,
    SphericalStats,
    aldr_kl,
    aldr_kl_lambdas,
    comp_sum,
    comp_sum_bound,
    comp_sum_bound_inverse,
    crammer_singer_hinge,
    ldr_kl,
    ldr_kl_limit,
    spherical_stats,
    tempered_cross_entropy,
    z_loss,
    z_loss_spherical,
    z_scores,
)
from .contrastive import (
    PenaltyDistribution,
    info_nce,
    info_nce_from_similarities,
    negative_weights,
    nt_xent_similarities,
    penalty_distribution,
    robust_contrastive_loss,
    tolerance,
    uniformity,
)
from .mixup import Mixup, mixup, soft_cross_entropy
from .stablemax import SoftmaxCollapse, log_stablemax, softmax_collapse, stablemax, stablemax_cross_entropy

__all__ = [
    "CompSumBound",
    "SphericalStats",
    "aldr_kl",
    "aldr_kl_lambdas",
    "comp_sum",
    "comp_sum_bound",
    "comp_sum_bound_inverse",
    "crammer_singer_hinge",
    "ldr_kl",
    "ldr_kl_limit",
    "spherical_stats",
    "tempered_cross_entropy",
    "z_loss",
    "z_loss_spherical",
    "z_scores",
    "PenaltyDistribution",
    "info_nce",
    "info_nce_from_similarities",
    "negative_weights",
    "nt_xent_similarities",
    "penalty_distribution",
    "robust_contrastive_loss",
    "tolerance",
    "uniformity",
    "Mixup",
    "mixup",
    "soft_cross_entropy",
    "SoftmaxCollapse",
    "log_stablemax",
    "softmax_collapse",
    "stablemax",
    "stablemax_cross_entropy",
]
