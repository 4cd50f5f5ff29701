"""Loss families with a temperature (track T): classification losses, contrastive losses, mixup.

Conventions
-----------
Every classification loss reads its inputs as ``F.cross_entropy`` does, so it drops into a
training loop: logits ``(n, K)`` or ``(n, K, d1, ...)`` (classes in dimension 1, e.g. a language
model's ``(B, V, T)``), integer targets ``(n,)`` / ``(n, d1, ...)`` of any integer dtype (soft
targets of the logits' shape where the paper uses them), as torch tensors or numpy arrays;
``ignore_index=-100`` entries contribute 0 and are left out of ``reduction="mean"`` (``"sum"``,
``"none"`` as in torch); NaN logits propagate (no error). The CE-equivalent settings
(``tempered_cross_entropy``, ``comp_sum(q=0)``, ``soft_cross_entropy``) call ``F.cross_entropy``
(within 1.15x of its time, no ``torch.compile`` graph breaks: ``benchmarks/losses_drop_in.py``).
Half-precision inputs are evaluated in float32 and the result is cast back; losses stay finite
with logits up to 1e4 in magnitude in float16, bfloat16, float32 and float64 (a value beyond
float16's range, 65504, e.g. a ``reduction="sum"`` at ``tau=0.1``, rounds to inf in float16
like any float16 number: use bfloat16 or float32 there). The temperature divides the logits (or similarities) inside the softmax; its limits
``tau -> 0`` and ``tau -> inf`` are tested against the closed forms.

Modules (private; import from this face)
----------------------------------------
``_tempered``
    tempered cross-entropy.
``_comp_sum``
    comp-sum losses and their H-consistency bounds (Mao, Mohri, Zhong 2023).
``_ldr``
    LDR-KL, ALDR-KL and the Crammer-Singer hinge (Zhu, Ying, Yang 2023).
``_z_loss``
    the Z-loss and its spherical-family computation (de Brebisson, Vincent 2016).
``_contrastive``
    InfoNCE, hardness-aware weights, uniformity/tolerance, the Wasserstein uniformity metric
    (Fang et al. 2024), the robust contrastive loss with
    individual temperatures (Wang & Liu 2021; Wang & Isola 2020; Qiu et al. 2023).
``_stablemax``
    StableMax and the Softmax Collapse diagnostic (Prieto et al. 2025).
``_mixup``
    mixup batches and soft-target cross-entropy (Zhang et al. 2018).
``_pass_at_n``
    exact pass@N in log space and the DCO loss (Chen et al. 2025).
``_half_mse``
    the half squared error of the kernel and sharpness papers (per sample, summed over outputs).
``_views``
    analytic views: loss surfaces over 3-class logits, loss against the margin.
``plotting``
    ``plot_*`` functions (``backend=``, ``ax=``) and live widgets.

The paper set-ups of the T notebooks (latent classes, contrastive and noisy-label training)
live in :mod:`lossviz.papers` (``t01_contrastive_temperature``, ``t03_ldr_losses``).
"""

from __future__ import annotations

from .._deprecate import moved
from ._comp_sum import (
    CompSumBound,
    comp_sum,
    comp_sum_bound,
    comp_sum_bound_inverse,
    comp_sum_conditional_regret,
)
from ._contrastive import (
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
    wasserstein_uniformity,
)
from ._ensloss import ensloss, ensloss_derivatives, integrate_derivatives
from ._half_mse import half_mse
from ._ldr import aldr_kl, aldr_kl_lambdas, crammer_singer_hinge, ldr_kl, ldr_kl_limit
from ._mixup import Mixup, mixup, soft_cross_entropy
from ._moved import MOVED as _MOVED
from ._pass_at_n import dco_loss, dco_weight, log_pass_at_n, pass_at_n
from ._spectral_decoupling import spectral_decoupling
from ._stablemax import SoftmaxCollapse, log_stablemax, softmax_collapse, stablemax, stablemax_cross_entropy
from ._tempered import tempered_cross_entropy
from ._tempnet import TempNet, kl_dro_loss, kl_to_uniform
from ._triplet import triplet_loss
from ._views import LossSurface, MarginCurves, logit_surface, margin_curves
from ._z_loss import SphericalStats, spherical_stats, z_loss, z_loss_spherical, z_scores
from .plotting import (
    margin_widget,
    penalty_widget,
    plot_comp_sum_bounds,
    plot_loss_surface,
    plot_margin_curves,
    plot_penalty_distribution,
    surface_widget,
)

__all__ = [
    "aldr_kl",
    "aldr_kl_lambdas",
    "comp_sum",
    "comp_sum_bound",
    "comp_sum_bound_inverse",
    "comp_sum_conditional_regret",
    "CompSumBound",
    "crammer_singer_hinge",
    "dco_loss",
    "dco_weight",
    "dro_objective",
    "dro_optimal_temperature",
    "ensloss",
    "ensloss_derivatives",
    "info_nce",
    "kl_dro_loss",
    "kl_to_uniform",
    "info_nce_from_similarities",
    "integrate_derivatives",
    "ldr_kl",
    "ldr_kl_limit",
    "log_pass_at_n",
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
    "pass_at_n",
    "penalty_distribution",
    "penalty_widget",
    "PenaltyDistribution",
    "plot_comp_sum_bounds",
    "plot_loss_surface",
    "plot_margin_curves",
    "plot_penalty_distribution",
    "plotting",
    "robust_contrastive_loss",
    "soft_cross_entropy",
    "softmax_collapse",
    "SoftmaxCollapse",
    "spectral_decoupling",
    "half_mse",
    "spherical_stats",
    "SphericalStats",
    "stablemax",
    "stablemax_cross_entropy",
    "surface_widget",
    "tempered_cross_entropy",
    "TempNet",
    "tolerance",
    "triplet_loss",
    "uniformity",
    "wasserstein_uniformity",
    "z_loss",
    "z_loss_spherical",
    "z_scores",
]

# moved to the paper layer (0.2); the old names go in 0.3
__getattr__ = moved(__name__, _MOVED)
