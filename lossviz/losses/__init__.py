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
    dro_objective,
    dro_optimal_temperature,
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
from .plots import (
    LossSurface,
    MarginCurves,
    logit_surface,
    margin_curves,
    margin_widget,
    penalty_widget,
    plot_comp_sum_bounds,
    plot_loss_surface,
    plot_margin_curves,
    plot_penalty_distribution,
    surface_widget,
)
from .stablemax import SoftmaxCollapse, log_stablemax, softmax_collapse, stablemax, stablemax_cross_entropy

__all__ = [
    "aldr_kl",
    "aldr_kl_lambdas",
    "comp_sum",
    "comp_sum_bound",
    "comp_sum_bound_inverse",
    "CompSumBound",
    "crammer_singer_hinge",
    "dro_objective",
    "dro_optimal_temperature",
    "info_nce",
    "info_nce_from_similarities",
    "ldr_kl",
    "ldr_kl_limit",
    "log_stablemax",
    "logit_surface",
    "LossSurface",
    "margin_curves",
    "margin_widget",
    "MarginCurves",
    "Mixup",
    "mixup",
    "negative_weights",
    "nt_xent_similarities",
    "penalty_distribution",
    "penalty_widget",
    "PenaltyDistribution",
    "plot_comp_sum_bounds",
    "plot_loss_surface",
    "plot_margin_curves",
    "plot_penalty_distribution",
    "robust_contrastive_loss",
    "soft_cross_entropy",
    "softmax_collapse",
    "SoftmaxCollapse",
    "spherical_stats",
    "SphericalStats",
    "stablemax",
    "stablemax_cross_entropy",
    "surface_widget",
    "tempered_cross_entropy",
    "tolerance",
    "uniformity",
    "z_loss",
    "z_loss_spherical",
    "z_scores",
]
