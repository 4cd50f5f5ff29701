r"""Neural collapse: class statistics, NC1-NC4 metrics, VCI, target geometries and UFM solvers.

Neural collapse (Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase
of deep learning training", PNAS 2020, arXiv:2008.08186) is the state reached late in training
where

* **NC1** the penultimate features of each class collapse to their class mean,
* **NC2** the centred class means form a simplex equiangular tight frame (ETF),
* **NC3** the classifier rows align with the centred class means (self-duality),
* **NC4** the classifier acts as a nearest-class-centre (NCC) rule.

Conventions (every one is an explicit argument here)
----------------------------------------------------
Features are rows: ``features`` has shape ``(N, d)``; a classifier ``W`` has shape ``(K, d)``.
All statistics are accumulated in float64 whatever the input dtype.

* class means :math:`\mu_k = \frac{1}{n_k}\sum_{y_i=k} h_i` (:func:`class_means`);
* global mean ``global_mean="unweighted"`` (default, Papyan et al.):
  :math:`\mu_G = \frac1K\sum_k \mu_k`; ``"weighted"``: :math:`\mu_G = \frac1N\sum_i h_i`
  (repositories disagree; on balanced data they coincide);
* within-class covariance :math:`\Sigma_W = \frac1N\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`;
* between-class covariance :math:`\Sigma_B = \frac1K\sum_k (\mu_k-\mu_G)(\mu_k-\mu_G)^\top`;
* **NC1** :math:`= \frac1K \operatorname{Tr}(\Sigma_W \Sigma_B^+)`, with the pseudo-inverse taken on
  the top ``K-1`` eigenvectors of :math:`\Sigma_B` (its rank for the unweighted mean), dropping
  eigenvalues below ``rcond`` times the largest. It is computed as a sum of squares of
  projected residuals, so it is never negative (a float32 ``pinv`` of a near-singular matrix is
  how other code gets negative NC1). When all class means coincide (:math:`\Sigma_B = 0`) NC1 is
  undefined and :func:`nc_metrics` raises a ``ValueError`` instead of reporting 0 (which would
  read as perfect collapse);
* alternatives: ``trace_ratio`` :math:`=\operatorname{Tr}\Sigma_W/\operatorname{Tr}\Sigma_B` and the
  class-distance normalised variance (CDNV) of Galanti, Gyorgy & Hutter, "On the Role of Neural
  Collapse in Transfer Learning" (ICLR 2022, arXiv:2112.15121), averaged over pairs of classes;
* **NC4** ``ncc_mismatch`` is the fraction of samples on which the classifier's prediction
  differs from the nearest (uncentred) class mean. What some code calls "NC4", the bias
  :math:`b \approx -W\mu_G` (up to a common shift), is a separate metric here: ``bias_collapse``.

Where things live
-----------------
``_statistics`` (:func:`class_statistics`, :func:`class_means`), ``_metrics`` (:func:`nc_metrics`),
``_vci`` (:func:`vci`, Xu & Liu 2023), ``_frames`` (target geometries: :func:`simplex_etf`,
:func:`orthogonal_frame`, the imbalanced orthogonal frame with class-dependent norms
:func:`imbalanced_frame`, :func:`frame_distance`, :func:`minority_collapse`), ``_ufm``
(unconstrained-feature-model solvers :func:`fit_ufm`, :func:`ufm_geometry_loss`), ``_features``
(:func:`features` of any layer of any model, streamed over a loader, and
:func:`feature_extractor`), ``_recorder`` (:class:`CollapseRecorder`, a
:class:`lossviz.train.Callback`) and :mod:`lossviz.collapse.plotting`. Paper set-ups moved to
:mod:`lossviz.papers`: ``train_mixup``/``mixup_geometry`` (N03), ``fit_perturbed_ufm`` (N02),
``between_class_penalty`` (N05); the old names here still work for one release with a
``DeprecationWarning``.

Examples
--------
>>> import torch
>>> from lossviz import collapse
>>> means = collapse.simplex_etf(4, 6, dtype=torch.float64)
>>> labels = torch.arange(4).repeat(10)
>>> m = collapse.nc_metrics(means[labels], labels, classifier=means)
>>> round(m.nc1, 12), round(m.etf_distance, 12), m.ncc_mismatch
(0.0, 0.0, 0.0)
"""

from .._deprecate import moved
from . import plotting  # noqa: F401  (lossviz.collapse.plotting, not in __all__: one name per family)
from ._features import feature_extractor, features
from ._frames import (
    ImbalancedFrame,
    MinorityCollapse,
    frame_distance,
    imbalanced_frame,
    minority_collapse,
    orthogonal_frame,
    simplex_etf,
)
from ._metrics import NCMetrics, nc_metrics
from ._recorder import CollapseRecorder
from ._statistics import ClassStatistics, class_means, class_statistics
from ._ufm import UFMResult, fit_ufm, ufm_geometry_loss
from ._vci import VCIResult, vci
from .plotting import plot_angles, plot_frame, plot_gram, plot_imbalanced_frame, plot_metrics

__all__ = [
    "ClassStatistics",
    "class_statistics",
    "class_means",
    "NCMetrics",
    "nc_metrics",
    "VCIResult",
    "vci",
    "simplex_etf",
    "orthogonal_frame",
    "ImbalancedFrame",
    "imbalanced_frame",
    "frame_distance",
    "MinorityCollapse",
    "minority_collapse",
    "UFMResult",
    "fit_ufm",
    "ufm_geometry_loss",
    "feature_extractor",
    "features",
    "CollapseRecorder",
    "plot_metrics",
    "plot_frame",
    "plot_gram",
    "plot_imbalanced_frame",
    "plot_angles",
]

__getattr__ = moved(
    __name__,
    {
        "train_mixup": "lossviz.papers.n03_mixup:train_mixup",
        "MixupGeometry": "lossviz.papers.n03_mixup:MixupGeometry",
        "mixup_geometry": "lossviz.papers.n03_mixup:mixup_geometry",
        "PerturbedUFMResult": "lossviz.papers.n02_perturbation:PerturbedUFMResult",
        "fit_perturbed_ufm": "lossviz.papers.n02_perturbation:fit_perturbed_ufm",
        "between_class_penalty": "lossviz.papers.n05_long_tailed:between_class_penalty",
    },
)
