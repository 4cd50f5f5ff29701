r"""Neural collapse: class statistics, NC1-NC4 metrics, VCI, target geometries and UFM solvers.

Neural collapse (Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase
of deep learning training", 2020, arXiv:2008.08186) is the state reached late in training where

* **NC1** the penultimate features of each class collapse to their class mean,
* **NC2** the centred class means form a simplex equiangular tight frame (ETF),
* **NC3** the classifier rows align with the centred class means (self-duality),
* **NC4** the classifier acts as a nearest-class-centre (NCC) rule.

Conventions (CONVENTIONS.md section 4; every one is an explicit argument here)
------------------------------------------------------------------------------
Features are rows: ``features`` has shape ``(N, d)``; a classifier ``W`` has shape ``(K, d)``.
All statistics are accumulated in float64 whatever the input dtype.

* class means :math:`\mu_k = \frac{1}{n_k}\sum_{y_i=k} h_i`;
* global mean ``global_mean="unweighted"`` (default, Papyan et al.):
  :math:`\mu_G = \frac1K\sum_k \mu_k`; ``"weighted"``: :math:`\mu_G = \frac1N\sum_i h_i`
  (repositories disagree; on balanced data they coincide);
* within-class covariance :math:`\Sigma_W = \frac1N\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`;
* between-class covariance :math:`\Sigma_B = \frac1K\sum_k (\mu_k-\mu_G)(\mu_k-\mu_G)^\top`;
* **NC1** :math:`= \frac1K \operatorname{Tr}(\Sigma_W \Sigma_B^+)`, with the pseudo-inverse taken on
  the top ``K-1`` eigenvectors of :math:`\Sigma_B` (its rank for the unweighted mean), dropping
  eigenvalues below ``rcond`` times the largest. It is computed as a sum of squares of
  projected residuals, so it is never negative (a float32 ``pinv`` of a near-singular matrix is
  how other code gets negative NC1);
* alternatives: ``trace_ratio`` :math:`=\operatorname{Tr}\Sigma_W/\operatorname{Tr}\Sigma_B` and the
  class-distance normalised variance (CDNV) of Galanti, Gyorgy & Hutter, "On the Role of Neural
  Collapse in Transfer Learning" (2022, arXiv:2112.15121), averaged over pairs of classes;
* **NC4** ``ncc_mismatch`` is the fraction of samples on which the classifier's prediction
  differs from the nearest (uncentred) class mean. What some code calls "NC4", the bias
  :math:`b \approx -W\mu_G` (up to a common shift), is a separate metric here: ``bias_collapse``.

The Variability Collapse Index is in :func:`vci`; target geometries (simplex ETF, orthogonal
frame, the imbalanced orthogonal frame with class-dependent norms) in :func:`simplex_etf`,
:func:`orthogonal_frame`, :func:`imbalanced_frame`; unconstrained-feature-model solvers in
:func:`fit_ufm` and :func:`ufm_geometry_loss`.

Example
-------
>>> import torch
>>> from lossviz import collapse
>>> means = collapse.simplex_etf(4, 6, dtype=torch.float64)
>>> labels = torch.arange(4).repeat(10)
>>> m = collapse.nc_metrics(means[labels], labels, classifier=means)
>>> round(m.nc1, 12), round(m.etf_distance, 12), m.ncc_mismatch
(0.0, 0.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ._model import eval_mode
from ._result import Result
from ._validate import check_choice, check_float, check_int, check_module, check_tensor

__all__ = [
    "ClassStatistics",
    "class_statistics",
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
    "between_class_penalty",
    "UFMResult",
    "fit_ufm",
    "ufm_geometry_loss",
    "PerturbedUFMResult",
    "fit_perturbed_ufm",
    "feature_extractor",
    "train_mixup",
    "MixupGeometry",
    "mixup_geometry",
    "CollapseRecorder",
    "plot_metrics",
    "plot_frame",
    "plot_gram",
]

_F64 = torch.float64
_CACHE_BYTES = 256 * 2**20  # nc_metrics keeps float64 copies of the chunks up to this size
_BLOCK_ROWS = 1024  # rows per block of nc_metrics' element-wise pass (fits in L2/L3)
_GLOBAL_MEANS = ("unweighted", "weighted")


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_features(features: Any, name: str = "features") -> torch.Tensor:
    features = check_tensor(features, name, ndim=2, floating=True, finite=True)
    return features


def _check_labels(
    labels: Any, n: int, num_classes: int | None, name: str = "labels"
) -> tuple[torch.Tensor, int]:
    labels = check_tensor(labels, name, ndim=1, floating=False, nonempty=False)
    if labels.shape[0] != n:
        raise ValueError(
            f"`features` and `{name}` have different lengths: {n} feature rows but {labels.shape[0]} labels"
        )
    if n and int(labels.min()) < 0:
        raise ValueError(f"`{name}` must be non-negative class indices, found {int(labels.min())}")
    top = int(labels.max()) + 1 if n else 0
    if num_classes is None:
        num_classes = top
    else:
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        if top > num_classes:
            raise ValueError(f"`{name}` contains class {top - 1} but num_classes={num_classes}")
    if num_classes < 2:
        raise ValueError(f"neural-collapse statistics need at least two classes, got {num_classes}")
    return labels, num_classes


def _check_counts(counts: torch.Tensor, name: str = "labels") -> None:
    empty = [int(k) for k in torch.nonzero(counts == 0).flatten()]
    if empty:
        raise ValueError(
            f"class(es) {empty} have no samples in `{name}`; class means are undefined "
            "(pass data with every class present, or relabel the classes to 0..K-1)"
        )


def _chunks(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def _as_classifier(classifier: Any, k: int, d: int, name: str = "classifier"):
    """Return ``(W, b)`` in float64 (``b`` may be ``None``) from a Linear, a tensor or a pair."""
    if classifier is None:
        return None, None
    if isinstance(classifier, nn.Linear):
        w, b = classifier.weight, classifier.bias
    elif isinstance(classifier, (tuple, list)) and len(classifier) == 2:
        w, b = classifier
    else:
        w, b = classifier, None
    w = check_tensor(w, f"{name} weight", ndim=2, floating=True)
    if tuple(w.shape) != (k, d):
        raise ValueError(
            f"`{name}` weight must have shape (num_classes, feature_dim) = ({k}, {d}), got {tuple(w.shape)}"
        )
    if b is not None:
        b = check_tensor(b, f"{name} bias", ndim=1, floating=True)
        if b.shape[0] != k:
            raise ValueError(f"`{name}` bias must have {k} entries (one per class), got {b.shape[0]}")
        b = b.detach().to(_F64)
    return w.detach().to(_F64), b


def _offdiag_mean(m: torch.Tensor) -> float:
    k = m.shape[0]
    mask = ~torch.eye(k, dtype=torch.bool, device=m.device)
    return float(m[mask].mean())


def _cv(x: torch.Tensor) -> float:
    mean = x.mean()
    if float(mean) == 0.0:
        return float("nan")
    return float(x.std(unbiased=False) / mean)


def _cosines(v: torch.Tensor) -> torch.Tensor:
    norms = v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    u = v / norms
    return u @ u.T


def _etf_gram(k: int, dtype=_F64, device=None) -> torch.Tensor:
    return torch.eye(k, dtype=dtype, device=device) - torch.full((k, k), 1.0 / k, dtype=dtype, device=device)


def _normalized_gram_distance(v: torch.Tensor, target_gram: torch.Tensor) -> float:
    g = v @ v.T
    gn = g.norm()
    if float(gn) == 0.0:
        return float("nan")
    return float((g / gn - target_gram / target_gram.norm()).norm())


# ----------------------------------------------------------------------------------------------
# class statistics (one streaming pass)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ClassStatistics(Result):
    """First and second moments of features per class (float64).

    Attributes
    ----------
    counts : (K,) int64 tensor of class sizes ``n_k``.
    means : (K, d) class means ``mu_k``.
    global_mean : (d,) ``mu_G`` according to ``global_mean_kind``.
    within : (d, d) ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``.
    between : (d, d) ``Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T``.
    global_mean_kind : ``"unweighted"`` or ``"weighted"``.
    num_batches : number of batches the single streaming pass consumed.
    """

    counts: torch.Tensor
    means: torch.Tensor
    global_mean: torch.Tensor
    within: torch.Tensor
    between: torch.Tensor
    global_mean_kind: str
    num_batches: int

    @property
    def num_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    def between_weighted(self) -> torch.Tensor:
        """Sample-weighted between-class covariance ``sum_k (n_k/N)(mu_k - m)(mu_k - m)^T``.

        ``m`` is the sample-weighted global mean, so ``within + between_weighted() = total``.
        """
        p = self.counts.to(_F64) / self.counts.sum()
        c = self.means - (p[:, None] * self.means).sum(0)
        return (c * p[:, None]).T @ c

    def total(self) -> torch.Tensor:
        """Total covariance ``(1/N) sum_i (h_i - m)(h_i - m)^T`` (``m`` the sample mean)."""
        return self.within + self.between_weighted()


def _iter_batches(features, labels, batch_size):
    if isinstance(features, torch.Tensor) or isinstance(features, np.ndarray):
        features = _check_features(features)
        if labels is None:
            raise TypeError("`labels` is required when `features` is a tensor")
        lab = check_tensor(labels, "labels", ndim=1, floating=False, nonempty=False)
        if lab.shape[0] != features.shape[0]:
            raise ValueError(
                f"`features` and `labels` have different lengths: {features.shape[0]} feature rows "
                f"but {lab.shape[0]} labels"
            )
        for sl in _chunks(features.shape[0], batch_size):
            yield features[sl], lab[sl]
        return
    if labels is not None:
        raise TypeError(
            "pass either `features` and `labels` tensors, or an iterable of (features, labels) batches"
        )
    for i, batch in enumerate(features):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"`features` batch {i} must be a pair (features, labels)")
        f = _check_features(batch[0], f"features (batch {i})")
        y = check_tensor(batch[1], f"labels (batch {i})", ndim=1, floating=False, nonempty=False)
        if y.shape[0] != f.shape[0]:
            raise ValueError(
                f"`features` batch {i}: {f.shape[0]} feature rows but {y.shape[0]} labels (different lengths)"
            )
        yield f, y


def class_statistics(
    features: torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]],
    labels: torch.Tensor | None = None,
    *,
    num_classes: int | None = None,
    global_mean: str = "unweighted",
    batch_size: int = 8192,
) -> ClassStatistics:
    r"""Class means, global mean, within- and between-class covariances in one streaming pass.

    Batches are merged with the pairwise update of Chan, Golub & LeVeque (1979): each batch's
    class means and within-class scatter are computed around the batch's own class means and
    combined exactly, so there is no catastrophic cancellation of
    :math:`E[hh^\top] - \mu\mu^\top`. Everything is float64.

    Parameters
    ----------
    features : (N, d) tensor, or an iterable of ``(features_batch, labels_batch)`` pairs
        (then ``labels`` must be ``None``; the iterable is consumed once).
    labels : (N,) integer tensor of classes ``0..K-1``.
    num_classes : int, optional
        ``K``; defaults to ``max(label) + 1``. Every class must have at least one sample.
    global_mean : ``"unweighted"`` (mean of class means, default) or ``"weighted"`` (sample mean).
    batch_size : chunk size when ``features`` is one tensor (bounds the float64 memory).

    Returns
    -------
    ClassStatistics

    Example
    -------
    >>> import torch
    >>> st = class_statistics(torch.tensor([[0.0], [2.0], [10.0]]), torch.tensor([0, 0, 1]))
    >>> st.means.flatten().tolist(), st.within.item()
    ([1.0, 10.0], 0.6666666666666666)
    """
    check_choice(global_mean, "global_mean", _GLOBAL_MEANS)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    counts = means = scatter = None
    nb = 0
    d = None
    for f, y in _iter_batches(features, labels, batch_size):
        nb += 1
        if d is None:
            d = f.shape[1]
        elif f.shape[1] != d:
            raise ValueError(f"`features` batch {nb - 1} has width {f.shape[1]}, earlier batches {d}")
        if y.numel() and int(y.min()) < 0:
            raise ValueError(f"`labels` must be non-negative class indices, found {int(y.min())}")
        k_b = int(y.max()) + 1 if y.numel() else 0
        k_now = max(k_b, 0 if counts is None else counts.shape[0])
        if num_classes is not None:
            if k_b > num_classes:
                raise ValueError(f"`labels` contains class {k_b - 1} but num_classes={num_classes}")
            k_now = num_classes
        f = f.detach().to(_F64)
        dev = f.device
        if counts is None:
            counts = torch.zeros(k_now, dtype=torch.int64, device=dev)
            means = torch.zeros(k_now, d, dtype=_F64, device=dev)
            scatter = torch.zeros(d, d, dtype=_F64, device=dev)
        elif k_now > counts.shape[0]:
            extra = k_now - counts.shape[0]
            counts = torch.cat([counts, counts.new_zeros(extra)])
            means = torch.cat([means, means.new_zeros(extra, d)])
        if not y.numel():
            continue
        y = y.to(dev)
        cb = torch.bincount(y, minlength=k_now)
        sb = torch.zeros(k_now, d, dtype=_F64, device=dev).index_add_(0, y, f)
        present = cb > 0
        mb = torch.where(present[:, None], sb / cb.clamp_min(1)[:, None].to(_F64), means)
        r = f - mb[y]
        scatter += r.T @ r
        n_new = counts + cb
        delta = mb - means
        w = torch.where(present, counts.to(_F64) * cb.to(_F64) / n_new.clamp_min(1).to(_F64), 0.0)
        scatter += (delta * w[:, None]).T @ delta
        means = means + delta * torch.where(present, cb.to(_F64) / n_new.clamp_min(1).to(_F64), 0.0)[:, None]
        counts = n_new
    if counts is None:
        raise ValueError("`features` is empty: no batches")
    k = counts.shape[0]
    if k < 2:
        raise ValueError(f"neural-collapse statistics need at least two classes, got {k}")
    _check_counts(counts)
    n = counts.sum().to(_F64)
    if global_mean == "unweighted":
        mu_g = means.mean(0)
    else:
        mu_g = (counts.to(_F64)[:, None] * means).sum(0) / n
    c = means - mu_g
    return ClassStatistics(
        counts=counts,
        means=means,
        global_mean=mu_g,
        within=scatter / n,
        between=c.T @ c / k,
        global_mean_kind=global_mean,
        num_batches=nb,
    )


# ----------------------------------------------------------------------------------------------
# NC metrics
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class NCMetrics(Result):
    """Neural-collapse metrics (see the module docstring for the definitions).

    Metrics that need a classifier or logits are ``None`` when neither was given.
    ``means`` are the (uncentred) class means and ``global_mean_vector`` the ``mu_G`` used;
    ``rank_between`` is the number of ``Sigma_B`` eigen-directions NC1 was computed on.
    """

    nc1: float
    trace_ratio: float
    cdnv: float
    equinorm: float
    equiangularity: float
    etf_distance: float
    equinorm_classifier: float | None
    equiangularity_classifier: float | None
    etf_distance_classifier: float | None
    self_duality: float | None
    ncc_mismatch: float | None
    bias_collapse: float | None
    accuracy: float | None
    ncc_accuracy: float
    num_classes: int
    num_samples: int
    counts: torch.Tensor
    means: torch.Tensor
    global_mean_vector: torch.Tensor
    global_mean: str
    rank_between: int
    rcond: float

    def scalars(self) -> dict[str, float]:
        """The scalar metrics as a dict (``None`` entries dropped)."""
        names = (
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
            "accuracy",
            "ncc_accuracy",
        )
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


def nc_metrics(
    features: torch.Tensor,
    labels: torch.Tensor,
    classifier: nn.Linear | torch.Tensor | tuple[torch.Tensor, torch.Tensor | None] | None = None,
    logits: torch.Tensor | None = None,
    *,
    num_classes: int | None = None,
    global_mean: str = "unweighted",
    rcond: float = 1e-10,
    batch_size: int = 16384,
) -> NCMetrics:
    r"""Neural-collapse metrics NC1-NC4 and their common alternatives, in float64.

    Two linear passes over the samples (``O(N d K)``, chunked so memory stays bounded): class
    sums and squared norms first, then one matrix product per chunk with
    :math:`[Q, M^\top, W^\top]` (``Q`` a whitened basis of the span of :math:`\Sigma_B`), from which
    the projected residuals :math:`Q^\top(h_i-\mu_{y_i})`, the squared residual norms
    :math:`\|h_i\|^2-2h_i^\top\mu_{y_i}+\|\mu_{y_i}\|^2` (clamped at 0) and the logits follow. All in
    float64 (float32 chunks are converted once and kept while they fit in 256 MiB); residual
    quantities are accurate to about ``1e-16`` relative to the squared feature norms.

    Parameters
    ----------
    features : (N, d) floating tensor (penultimate features, one row per sample).
    labels : (N,) integer tensor, classes ``0..K-1``; every class must be present.
    classifier : ``nn.Linear`` (K outputs), a ``(K, d)`` weight tensor, or a pair ``(W, b)``.
        Enables ``self_duality``, the classifier equinorm/equiangularity, ``bias_collapse`` and
        (if ``logits`` is not given) ``ncc_mismatch``.
    logits : (N, K) tensor, optional; the predictions for ``ncc_mismatch`` (wins over the
        classifier's own logits ``H W^T + b``).
    num_classes : int, optional; defaults to ``max(labels) + 1``.
    global_mean : ``"unweighted"`` (default; Papyan et al.) or ``"weighted"``.
    rcond : eigenvalues of :math:`\Sigma_B` below ``rcond * max`` are outside its span for NC1.
    batch_size : rows per chunk.

    Returns
    -------
    NCMetrics with

    * ``nc1`` :math:`\frac1K\operatorname{Tr}(\Sigma_W\Sigma_B^+)` (>= 0),
    * ``trace_ratio`` :math:`\operatorname{Tr}\Sigma_W/\operatorname{Tr}\Sigma_B`,
    * ``cdnv`` mean over pairs ``k != j`` of :math:`(\sigma_k^2+\sigma_j^2)/(2\|\mu_k-\mu_j\|^2)`,
      :math:`\sigma_k^2` the mean squared distance of class ``k`` to its mean,
    * ``equinorm`` coefficient of variation (std/mean) of :math:`\|\mu_k-\mu_G\|`,
      ``equinorm_classifier`` the same for :math:`\|w_k\|`,
    * ``equiangularity`` mean over ``k != j`` of :math:`|\cos(\mu_k-\mu_G,\mu_j-\mu_G)+1/(K-1)|`,
    * ``etf_distance`` :math:`\|G/\|G\|_F - (I-\mathbf{1}\mathbf{1}^\top/K)/\sqrt{K-1}\|_F` with
      :math:`G` the Gram matrix of the centred means (``etf_distance_classifier`` for ``W``),
    * ``self_duality`` (NC3) :math:`\|W/\|W\|_F - M/\|M\|_F\|_F^2`, ``M`` the centred means,
    * ``ncc_mismatch`` (NC4) fraction of samples where ``argmax`` logits differs from the
      nearest class mean,
    * ``bias_collapse`` :math:`\|P(b+W\mu_G)\|/\sqrt{\frac1K\sum_k(w_k\cdot(\mu_k-\mu_G))^2}/\sqrt K`,
      ``P`` removing the common shift (0 when the bias makes the classifier an NCC rule),
    * ``accuracy`` of the logits and ``ncc_accuracy`` of the nearest-class-mean rule.

    References
    ----------
    Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep
    learning training", PNAS 2020, arXiv:2008.08186.

    Example
    -------
    >>> import torch
    >>> h = torch.tensor([[1.0, 0.0], [1.2, 0.0], [-1.0, 0.0], [-1.2, 0.0]], dtype=torch.float64)
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> round(nc_metrics(h, y).nc1, 6)   # Sw = 0.01 on axis 0, Sb = 1.21 -> 0.01/1.21/2
    0.004132
    """
    features = check_tensor(features, "features", ndim=2, floating=True, finite=False)  # checked in pass 1
    n, d = features.shape
    labels, k = _check_labels(labels, n, num_classes)
    check_choice(global_mean, "global_mean", _GLOBAL_MEANS)
    rcond = check_float(rcond, "rcond", minimum=0.0, maximum=1.0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    dev = features.device
    labels = labels.to(dev)
    w, b = _as_classifier(classifier, k, d)
    if w is not None:
        w, b = w.to(dev), (None if b is None else b.to(dev))
    if logits is not None:
        logits = check_tensor(logits, "logits", ndim=2, floating=True)
        if tuple(logits.shape) != (n, k):
            raise ValueError(f"`logits` must have shape (N, K) = ({n}, {k}), got {tuple(logits.shape)}")

    # pass 1: counts and class sums (float64; finite input <=> finite sums)
    counts = torch.bincount(labels, minlength=k)
    _check_counts(counts)
    sums = torch.zeros(k, d, dtype=_F64, device=dev)
    cache: list[torch.Tensor] = []
    keep_cache = n * d * 8 <= _CACHE_BYTES and features.dtype != _F64
    for sl in _chunks(n, batch_size):
        h = features[sl].detach().to(_F64)
        sums.index_add_(0, labels[sl], h)
        if keep_cache:
            cache.append(h)
    if not bool(torch.isfinite(sums).all()):
        bad = int((~torch.isfinite(features)).sum())
        raise ValueError(f"`features` contains {bad} non-finite value(s) (NaN or inf)")
    cf = counts.to(_F64)
    means = sums / cf[:, None]
    mu_g = means.mean(0) if global_mean == "unweighted" else sums.sum(0) / n
    c = means - mu_g  # centred means (K, d)

    # whitened basis of span(Sigma_B), Sigma_B = C^T C / K
    _, s, vh = torch.linalg.svd(c, full_matrices=False)
    ev = s.square() / k
    keep = (ev > rcond * ev[0]) if float(ev[0]) > 0 else torch.zeros_like(ev, dtype=torch.bool)
    r = min(int(keep.sum()), k - 1)
    q = vh[:r].T / ev[:r].sqrt()  # (d, r): ||x^T q||^2 = x^T Sb^+ x for x in span(Sb)

    # pass 2: one matrix product per chunk gives projections, centred-mean inner products and
    # logits. Everything is centred on mu_g first and the within-class residual h - mu_y is formed
    # explicitly, so a large common offset (features shifted far from the origin) cannot cancel
    # digits: ||h||^2 - 2 h.mu_y + ||mu_y||^2 would lose (||h|| / ||h - mu_y||)^2 in relative error.
    blocks = [q, c.T] + ([w.T] if (w is not None and logits is None) else [])
    basis = torch.cat(blocks, dim=1)
    cq = c @ q
    c_sq = c.square().sum(1)
    logit_offset = None
    if w is not None and logits is None:
        logit_offset = mu_g @ w.T + (0.0 if b is None else b)
    proj_sq = torch.zeros((), dtype=_F64, device=dev)
    class_sq = torch.zeros(k, dtype=_F64, device=dev)
    mismatch = correct = ncc_correct = 0
    for i, sl in enumerate(_chunks(n, batch_size)):
        chunk = cache[i] if keep_cache else features[sl].detach().to(_F64)
        # the element-wise work runs on cache-sized blocks: 2-5x faster than on 16k-row chunks
        for j in range(0, chunk.shape[0], _BLOCK_ROWS):
            rows = slice(sl.start + j, min(sl.stop, sl.start + j + _BLOCK_ROWS))
            h = chunk[j : j + _BLOCK_ROWS] - mu_g  # a fresh tensor: safe to modify below
            y = labels[rows]
            z = h @ basis
            if r:
                proj_sq += (z[:, :r] - cq[y]).square().sum()
            ncc = (c_sq[None, :] - 2.0 * z[:, r : r + k]).argmin(1)
            ncc_correct += int((ncc == y).sum())
            class_sq.index_add_(0, y, torch.linalg.vector_norm(h.sub_(c[y]), dim=1).square())
            if logits is not None or w is not None:
                zl = logits[rows].detach().to(_F64) if logits is not None else z[:, r + k :] + logit_offset
                pred = zl.argmax(1)
                mismatch += int((pred != ncc).sum())
                correct += int((pred == y).sum())
    del cache

    nc1 = float(proj_sq) / n / k
    tr_sb = float(c.square().sum()) / k
    tr_sw = float(class_sq.sum()) / n
    trace_ratio = tr_sw / tr_sb if tr_sb > 0 else float("inf")
    var_k = class_sq / cf
    dist2 = torch.cdist(means, means).square()
    off = ~torch.eye(k, dtype=torch.bool, device=dev)
    if bool((dist2[off] > 0).all()):
        cdnv = float(((var_k[:, None] + var_k[None, :]) / (2.0 * dist2.masked_fill(~off, 1.0)))[off].mean())
    else:
        cdnv = float("inf")
    etf = _etf_gram(k, device=dev)
    out: dict[str, Any] = dict(
        nc1=nc1,
        trace_ratio=trace_ratio,
        cdnv=cdnv,
        equinorm=_cv(c.norm(dim=1)),
        equiangularity=_offdiag_mean((_cosines(c) + 1.0 / (k - 1)).abs()),
        etf_distance=_normalized_gram_distance(c, etf),
        equinorm_classifier=None,
        equiangularity_classifier=None,
        etf_distance_classifier=None,
        self_duality=None,
        ncc_mismatch=None,
        bias_collapse=None,
        accuracy=None,
        ncc_accuracy=ncc_correct / n,
    )
    if logits is not None or w is not None:
        out["ncc_mismatch"] = mismatch / n
        out["accuracy"] = correct / n
    if w is not None:
        out["equinorm_classifier"] = _cv(w.norm(dim=1))
        out["equiangularity_classifier"] = _offdiag_mean((_cosines(w) + 1.0 / (k - 1)).abs())
        out["etf_distance_classifier"] = _normalized_gram_distance(w, etf)
        wn, cn = w.norm(), c.norm()
        out["self_duality"] = float((w / wn - c / cn).square().sum()) if wn > 0 and cn > 0 else float("nan")
        v = w @ mu_g + (0.0 if b is None else b)
        v = v - v.mean()
        scale = math.sqrt(float((w * c).sum(1).square().mean()))
        out["bias_collapse"] = float(v.norm()) / math.sqrt(k) / scale if scale > 0 else float("nan")
    return NCMetrics(
        **out,
        num_classes=k,
        num_samples=n,
        counts=counts,
        means=means,
        global_mean_vector=mu_g,
        global_mean=global_mean,
        rank_between=r,
        rcond=rcond,
    )


# ----------------------------------------------------------------------------------------------
# VCI
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class VCIResult(Result):
    r"""Variability Collapse Index and its parts.

    ``value = 1 - explained / rank_between`` with ``explained`` :math:`=\operatorname{Tr}(\Sigma_T^+\Sigma_B)`.
    ``float(result)`` gives ``value``.
    """

    value: float
    explained: float
    rank_between: int
    rank_total: int
    num_classes: int
    num_samples: int
    rcond: float

    def __float__(self) -> float:
        return self.value


def vci(
    features: torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]],
    labels: torch.Tensor | None = None,
    *,
    num_classes: int | None = None,
    rcond: float = 1e-10,
    batch_size: int = 8192,
) -> VCIResult:
    r"""Variability Collapse Index (VCI) of Xu & Liu.

    .. math::
        \mathrm{VCI} = 1 - \frac{\operatorname{Tr}(\Sigma_T^{+}\Sigma_B)}{\operatorname{rank}(\Sigma_B)},

    with the total covariance :math:`\Sigma_T = \frac1N\sum_i (h_i-\bar h)(h_i-\bar h)^\top` and
    the sample-weighted between-class covariance
    :math:`\Sigma_B = \sum_k \frac{n_k}{N}(\mu_k-\bar h)(\mu_k-\bar h)^\top` (so
    :math:`\Sigma_T = \Sigma_W + \Sigma_B`). :math:`\operatorname{Tr}(\Sigma_T^+\Sigma_B)` is the
    variance of the centred one-hot labels (whitened by class frequency) explained by a
    least-squares linear probe on the features, which is why VCI is invariant to every invertible
    linear map of the features (NC1 is not). VCI is 0 for collapsed features and near 1 when the
    features carry no linear information about the labels.

    ``Sigma_T^+`` is a Hermitian pseudo-inverse (eigen-decomposition, eigenvalues below
    ``rcond * max`` dropped): dead units make ``Sigma_T`` singular. ``rank(Sigma_B)`` is the
    numerical rank (same ``rcond``), normally ``K - 1``.

    Parameters
    ----------
    features, labels, num_classes, batch_size : as in :func:`class_statistics`.
    rcond : relative eigenvalue cut-off for the pseudo-inverse and the rank.

    References
    ----------
    Jing Xu & Haoxiong Liu, "Quantifying the Variability Collapse of Neural Networks", ICML 2023,
    arXiv:2306.03440.

    Example
    -------
    >>> import torch
    >>> h = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0]])
    >>> round(vci(h, torch.tensor([0, 0, 1, 1])).value, 12)   # collapsed: 0
    0.0
    """
    rcond = check_float(rcond, "rcond", minimum=0.0, maximum=1.0)
    st = class_statistics(
        features, labels, num_classes=num_classes, global_mean="weighted", batch_size=batch_size
    )
    p = st.counts.to(_F64) / st.counts.sum()
    c = (st.means - st.global_mean) * p.sqrt()[:, None]  # Sigma_B = c^T c
    total = st.within + c.T @ c
    total = 0.5 * (total + total.T)
    evals, evecs = torch.linalg.eigh(total)
    top = float(evals[-1])
    keep = evals > rcond * top if top > 0 else torch.zeros_like(evals, dtype=torch.bool)
    proj = (c @ evecs[:, keep]) / evals[keep].sqrt()
    explained = float(proj.square().sum())
    sv = torch.linalg.svdvals(c)
    rank_b = int((sv.square() > rcond * float(sv[0]) ** 2).sum()) if float(sv[0]) > 0 else 0
    if rank_b == 0:
        raise ValueError("all class means coincide: rank(Sigma_B) = 0 and VCI is undefined")
    return VCIResult(
        value=1.0 - explained / rank_b,
        explained=explained,
        rank_between=rank_b,
        rank_total=int(keep.sum()),
        num_classes=st.num_classes,
        num_samples=st.num_samples,
        rcond=rcond,
    )


# ----------------------------------------------------------------------------------------------
# target geometries
# ----------------------------------------------------------------------------------------------


def simplex_etf(
    num_classes: int, dim: int | None = None, *, dtype: torch.dtype = _F64, device=None
) -> torch.Tensor:
    r"""A simplex equiangular tight frame: ``K`` unit rows with pairwise cosine ``-1/(K-1)``.

    Rows are :math:`\sqrt{K/(K-1)}\,(e_k - \mathbf 1/K)` expressed in an orthonormal basis of the
    ``(K-1)``-dimensional subspace orthogonal to :math:`\mathbf 1`, padded with zeros to ``dim``
    (default ``K - 1``; must be ``>= K - 1``). They sum to zero.

    >>> m = simplex_etf(3)
    >>> [round(v, 6) for v in (m @ m.T)[0].tolist()]
    [1.0, -0.5, -0.5]
    """
    k = check_int(num_classes, "num_classes", minimum=2)
    dim = k - 1 if dim is None else check_int(dim, "dim", minimum=k - 1)
    p = _etf_gram(k) * math.sqrt(k / (k - 1))
    evals, evecs = torch.linalg.eigh(_etf_gram(k))
    basis = evecs[:, evals > 0.5]  # (K, K-1) orthonormal basis of 1^perp
    m = p @ basis
    out = torch.zeros(k, dim, dtype=_F64)
    out[:, : k - 1] = m
    return out.to(dtype=dtype, device=device)


def orthogonal_frame(
    num_classes: int, dim: int | None = None, *, dtype: torch.dtype = _F64, device=None
) -> torch.Tensor:
    """``K`` orthonormal rows (the first ``K`` standard basis vectors of ``R^dim``, ``dim >= K``).

    The optimum of the bias-free MSE unconstrained-feature model on balanced data.
    """
    k = check_int(num_classes, "num_classes", minimum=1)
    dim = k if dim is None else check_int(dim, "dim", minimum=k)
    return torch.eye(k, dim, dtype=dtype, device=device)


@dataclass(frozen=True, repr=False)
class ImbalancedFrame(Result):
    r"""Closed-form optimum of the bias-free MSE UFM on imbalanced data (depth 1).

    ``feature_norms[k] = ||h_k||``, ``classifier_norms[k] = ||w_k||``, ``shrink[k] = p_k``;
    means (and classifier rows) are mutually orthogonal; classes with ``p_k = 0`` have collapsed
    to zero (minority collapse). ``threshold`` is the class size below which that happens.
    """

    counts: tuple[int, ...]
    shrink: np.ndarray
    feature_norms: np.ndarray
    classifier_norms: np.ndarray
    threshold: float
    lambda_W: float
    lambda_H: float

    @property
    def collapsed(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.nonzero(self.shrink == 0)[0])

    def feature_gram(self) -> np.ndarray:
        return np.diag(self.feature_norms**2)

    def classifier_gram(self) -> np.ndarray:
        return np.diag(self.classifier_norms**2)


def imbalanced_frame(
    counts: Sequence[int], lambda_W: float, lambda_H: float | None = None
) -> ImbalancedFrame:
    r"""Target geometry of the imbalanced bias-free MSE UFM (Dang et al. 2023, Theorem for depth 1).

    For :math:`\min_{W,H} \frac{1}{2N}\|WH-Y\|_F^2 + \frac{\lambda_W}{2}\|W\|_F^2 + \frac{\lambda_H}{2}\|H\|_F^2`
    (penalty on ``H`` summed over samples; ``H`` has one column per sample, ``d >= K``), the
    optimum has collapsed features, mutually orthogonal class means and classifier rows, and

    .. math::
        p_k = \max\Big(0,\ 1 - \frac{N\sqrt{\lambda_W\lambda_H}}{\sqrt{n_k}}\Big),\quad
        \|h_k\|^2 = p_k\sqrt{\frac{\lambda_W}{\lambda_H n_k}},\quad
        \|w_k\|^2 = p_k\sqrt{\frac{\lambda_H n_k}{\lambda_W}},

    so with :math:`\lambda_W=\lambda_H=\lambda`: :math:`\|h_k\|^2 = p_k/\sqrt{n_k}`,
    :math:`\|w_k\|^2 = p_k\sqrt{n_k}`. Classes with :math:`n_k \le N^2\lambda_W\lambda_H` collapse to
    zero (minority collapse). The derivation (per class, AM-GM on the two penalties, then a
    scalar quadratic) is in :mod:`lossviz.derivations.collapse`.

    References
    ----------
    Hien Dang, Tho Tran, Stanley Osher, Hung Tran-The, Nhat Ho & Tan Nguyen, "Neural Collapse in
    Deep Linear Networks: From Balanced to Imbalanced Data", ICML 2023, arXiv:2301.00437.

    Example
    -------
    >>> t = imbalanced_frame([200, 100, 50, 25], 5e-3)
    >>> bool((np.diff(t.feature_norms) > 0).all())   # smaller classes have LONGER features here
    True
    """
    counts = tuple(check_int(c, "counts[i]", minimum=1) for c in counts)
    if len(counts) < 2:
        raise ValueError(f"`counts` needs at least two classes, got {len(counts)}")
    lw = check_float(lambda_W, "lambda_W", positive=True)
    lh = lw if lambda_H is None else check_float(lambda_H, "lambda_H", positive=True)
    n = np.asarray(counts, dtype=np.float64)
    total = n.sum()
    p = np.maximum(0.0, 1.0 - total * math.sqrt(lw * lh) / np.sqrt(n))
    return ImbalancedFrame(
        counts=counts,
        shrink=p,
        feature_norms=np.sqrt(p * np.sqrt(lw / (lh * n))),
        classifier_norms=np.sqrt(p * np.sqrt(lh * n / lw)),
        threshold=float(total**2 * lw * lh),
        lambda_W=lw,
        lambda_H=lh,
    )


def frame_distance(
    vectors: torch.Tensor, target: str | torch.Tensor | np.ndarray = "etf", *, center: bool = False
) -> float:
    r"""Distance of ``K`` vectors (rows) to a target geometry, through their Gram matrix.

    * ``target="etf"``: :math:`\|G/\|G\|_F - G_{ETF}/\|G_{ETF}\|_F\|_F` with
      :math:`G_{ETF} = I - \mathbf 1\mathbf 1^\top/K` (scale-free);
    * ``target="orthogonal"``: the same with :math:`I` (scale-free);
    * a ``(K, K)`` Gram matrix (e.g. ``ImbalancedFrame.feature_gram()``): the relative distance
      :math:`\|G - G^*\|_F/\|G^*\|_F`, which checks the norms too.

    ``center=True`` subtracts the mean row first (use it for class means).
    """
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(_F64)
    if center:
        v = v - v.mean(0)
    k = v.shape[0]
    if isinstance(target, str):
        check_choice(target, "target", ("etf", "orthogonal"))
        tg = _etf_gram(k, device=v.device) if target == "etf" else torch.eye(k, dtype=_F64, device=v.device)
        return _normalized_gram_distance(v, tg)
    tg = check_tensor(target, "target", ndim=2, floating=True).to(_F64).to(v.device)
    if tuple(tg.shape) != (k, k):
        raise ValueError(f"`target` Gram matrix must have shape ({k}, {k}), got {tuple(tg.shape)}")
    return float((v @ v.T - tg).norm() / tg.norm())


@dataclass(frozen=True, repr=False)
class MinorityCollapse(Result):
    """Angles (degrees) between classifier (or mean) vectors; the smallest among ``minority``."""

    min_angle: float
    pair: tuple[int, int]
    angles: np.ndarray
    minority: tuple[int, ...]


def minority_collapse(vectors: torch.Tensor | nn.Linear, minority: Sequence[int]) -> MinorityCollapse:
    r"""Minority-collapse diagnostic: the smallest angle between the vectors of minority classes.

    Under strong imbalance the classifier rows of minority classes collapse towards one
    direction (Fang, He, Long & Su, "Exploring Deep Neural Networks via Layer-Peeled Model:
    Minority Collapse in Imbalanced Training", PNAS 2021, arXiv:2101.12699): their pairwise angles
    shrink from :math:`\arccos(-1/(K-1))` towards 0.

    Parameters
    ----------
    vectors : ``(K, d)`` rows (classifier weights or centred means) or an ``nn.Linear``.
    minority : indices of the minority classes (at least two).
    """
    if isinstance(vectors, nn.Linear):
        vectors = vectors.weight
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(_F64)
    k = v.shape[0]
    minority = tuple(check_int(i, "minority[i]", minimum=0, maximum=k - 1) for i in minority)
    if len(set(minority)) < 2:
        raise ValueError(f"`minority` needs at least two distinct classes, got {minority}")
    ang = torch.rad2deg(torch.arccos(_cosines(v).clamp(-1.0, 1.0))).cpu().numpy()
    best, pair = math.inf, (minority[0], minority[1])
    for a in range(len(minority)):
        for b in range(a + 1, len(minority)):
            i, j = minority[a], minority[b]
            if ang[i, j] < best:
                best, pair = float(ang[i, j]), (i, j)
    return MinorityCollapse(min_angle=best, pair=pair, angles=ang, minority=minority)


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

    This is a stand-in for the between-class regulariser of Liu, Zhang, Hu, Cao, Pan & Yao,
    "Inducing Neural Collapse in Deep Long-tailed Learning", AISTATS 2023, arXiv:2302.12453
    (same intent: separate class means under imbalance); their exact formula was not available
    to us when this was written.

    >>> m = simplex_etf(4)
    >>> float(between_class_penalty(m.repeat(3, 1), torch.arange(4).repeat(3))) < 1e-20
    True
    """
    features = check_tensor(features, "features", ndim=2, floating=True)
    labels, k = _check_labels(labels, features.shape[0], num_classes)
    check_choice(global_mean, "global_mean", _GLOBAL_MEANS)
    labels = labels.to(features.device)
    counts = torch.bincount(labels, minlength=k)
    _check_counts(counts)
    sums = torch.zeros(k, features.shape[1], dtype=features.dtype, device=features.device).index_add(
        0, labels, features
    )
    means = sums / counts.to(features.dtype)[:, None]
    mu_g = means.mean(0) if global_mean == "unweighted" else features.mean(0)
    c = means - mu_g
    u = c / c.norm(dim=1, keepdim=True).clamp_min(torch.finfo(c.dtype).eps)
    cos = u @ u.T
    off = ~torch.eye(k, dtype=torch.bool, device=features.device)
    return torch.relu(cos[off] + 1.0 / (k - 1)).square().mean()


# ----------------------------------------------------------------------------------------------
# unconstrained feature models
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class UFMResult(Result):
    """A solved unconstrained-feature model.

    ``features`` is ``H`` (N, d); ``weights`` the head matrices ``(W_1, ..., W_L)`` (``W_L`` is
    the classifier, shape (K, d)); ``bias`` the classifier bias or ``None``;
    ``layer_features[l]`` the features entering layer ``l + 1`` (``layer_features[0] = H``).
    Diagnostics: final ``loss`` (full objective), ``grad_norm`` (max-abs gradient), L-BFGS
    ``iterations``, ``converged`` (``grad_norm <= tol``).
    """

    features: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    bias: torch.Tensor | None
    labels: torch.Tensor
    counts: tuple[int, ...]
    loss_name: str
    depth: int
    lambda_W: float
    lambda_H: float
    feature_penalty: str
    loss: float
    grad_norm: float
    iterations: int
    converged: bool
    seed: int

    @property
    def classifier(self) -> torch.Tensor:
        return self.weights[-1]

    @property
    def layer_features(self) -> tuple[torch.Tensor, ...]:
        out = [self.features]
        h = self.features
        for w in self.weights[:-1]:
            h = h @ w.T
            out.append(h)
        return tuple(out)

    def metrics(self, layer: int = -1, **kw) -> NCMetrics:
        """:func:`nc_metrics` of the features entering the classifier (``layer=-1``) or layer ``l``."""
        feats = self.layer_features[layer]
        clf = (self.classifier, self.bias) if layer in (-1, self.depth - 1) else None
        return nc_metrics(feats, self.labels, clf, **kw)

    def class_means(self, layer: int = -1) -> torch.Tensor:
        feats = self.layer_features[layer]
        k = len(self.counts)
        return (
            torch.zeros(k, feats.shape[1], dtype=feats.dtype).index_add_(0, self.labels, feats)
            / torch.tensor(self.counts, dtype=feats.dtype)[:, None]
        )


def _ufm_data_loss(z: torch.Tensor, y: torch.Tensor, k: int, loss: str) -> torch.Tensor:
    if loss == "ce":
        return torch.nn.functional.cross_entropy(z, y)
    onehot = torch.nn.functional.one_hot(y, k).to(z.dtype)
    return 0.5 * (z - onehot).square().sum(1).mean()


def fit_ufm(
    counts: Sequence[int],
    dim: int,
    *,
    loss: str = "ce",
    depth: int = 1,
    lambda_W: float = 5e-3,
    lambda_H: float | None = None,
    feature_penalty: str = "sum",
    bias: bool = False,
    init_scale: float = 1.0,
    max_iter: int = 2000,
    tol: float = 1e-9,
    seed: int = 0,
    dtype: torch.dtype = _F64,
    device=None,
) -> UFMResult:
    r"""Solve an unconstrained-feature model (UFM) with a deep linear head by full-batch L-BFGS.

    .. math::
        \min_{H, W_1..W_L}\ \frac1N\sum_i \ell(W_L\cdots W_1 h_i + b, y_i)
        + \frac{\lambda_W}{2}\sum_l\|W_l\|_F^2 + \frac{\lambda_H}{2}\,c\,\|H\|_F^2,

    with :math:`\ell` cross-entropy (``loss="ce"``) or :math:`\frac12\|z - e_y\|^2` (``"mse"``),
    and :math:`c = 1` (``feature_penalty="sum"``, the convention of Dang et al. and of the
    closed form in :func:`imbalanced_frame`) or :math:`c = 1/N` (``"mean"``). The bias, if any,
    is not penalised. Hidden widths equal ``dim``.

    L-BFGS with a strong-Wolfe line search in float64 (Adam is not accurate enough to check
    geometry to 1e-3; tiny initial scales start at the saddle at zero, hence ``init_scale=1``).
    The features ``H`` are built by :class:`lossviz.models.UFM` with this ``seed``.

    Parameters
    ----------
    counts : class sizes ``n_k`` (samples are ordered by class).
    dim : feature width ``d`` (>= K for the MSE orthogonal frame).
    loss, depth, lambda_W, lambda_H (default ``lambda_W``), feature_penalty, bias : the model.
    init_scale, seed : initialisation. max_iter, tol : L-BFGS budget and gradient tolerance.

    References
    ----------
    Dang, Tran, Osher, Tran-The, Ho & Nguyen, "Neural Collapse in Deep Linear Networks: From
    Balanced to Imbalanced Data", ICML 2023, arXiv:2301.00437.

    Example
    -------
    >>> r = fit_ufm([10, 10, 10], 4, loss="ce", lambda_W=1e-2, max_iter=300)
    >>> r.metrics().nc1 < 1e-6
    True
    """
    from .models import UFM

    counts = tuple(check_int(c, "counts[i]", minimum=1) for c in counts)
    k = len(counts)
    if k < 2:
        raise ValueError(f"`counts` needs at least two classes, got {len(counts)}")
    dim = check_int(dim, "dim", minimum=1)
    check_choice(loss, "loss", ("ce", "mse"))
    depth = check_int(depth, "depth", minimum=1)
    lw = check_float(lambda_W, "lambda_W", minimum=0.0)
    lh = lw if lambda_H is None else check_float(lambda_H, "lambda_H", minimum=0.0)
    check_choice(feature_penalty, "feature_penalty", ("sum", "mean"))
    init_scale = check_float(init_scale, "init_scale", positive=True)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol", positive=True)
    seed = check_int(seed, "seed", minimum=0)
    n = sum(counts)
    y = torch.repeat_interleave(torch.arange(k, device=device), torch.tensor(counts, device=device))
    model = UFM(
        n, dim, k, depth=depth, bias=bias, init_scale=init_scale, dtype=dtype, device=device, seed=seed
    )
    params = [p for p in model.parameters()]
    hscale = 1.0 if feature_penalty == "sum" else 1.0 / n

    def objective():
        z = model()
        val = _ufm_data_loss(z, y, k, loss)
        val = val + 0.5 * lh * hscale * model.H.square().sum()
        for layer in model.layers:
            val = val + 0.5 * lw * layer.weight.square().sum()
        return val

    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=int(max_iter * 1.25) + 10,
        tolerance_grad=tol,
        tolerance_change=1e-16,
        history_size=100,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        v = objective()
        v.backward()
        return v

    opt.step(closure)
    iterations = int(opt.state[params[0]].get("n_iter", 0))
    opt.zero_grad()
    final = objective()
    grads = torch.autograd.grad(final, params)
    gnorm = max(float(g.abs().max()) for g in grads)
    with torch.no_grad():
        weights = tuple(layer.weight.detach().clone() for layer in model.layers)
        b = model.layers[-1].bias
        return UFMResult(
            features=model.H.detach().clone(),
            weights=weights,
            bias=None if b is None else b.detach().clone(),
            labels=y,
            counts=counts,
            loss_name=loss,
            depth=depth,
            lambda_W=lw,
            lambda_H=lh,
            feature_penalty=feature_penalty,
            loss=float(final),
            grad_norm=gnorm,
            iterations=iterations,
            converged=gnorm <= max(tol, 1e-7),
            seed=seed,
        )


def ufm_geometry_loss(
    means: torch.Tensor | np.ndarray,
    *,
    depth: int = 1,
    lambda_: float = 5e-3,
    n_per_class: int = 1,
    loss: str = "ce",
) -> tuple[float, float]:
    r"""Reduced UFM objective of a class-mean geometry, minimised over its overall scale.

    For balanced classes whose logits are :math:`z_i = s\,G_{y_i}` with the pattern
    :math:`G = MM^\top` (``M`` the unit-scale means, rows), the cheapest factorisation of the
    ``K x N`` logit matrix :math:`Z` into ``depth`` weight matrices and ``H`` (all with penalty
    :math:`\lambda/2\|\cdot\|_F^2`, ``H`` summed over samples) costs
    :math:`\frac{(L+1)\lambda}{2}\sum_i\sigma_i(Z)^{2/(L+1)}` with :math:`\sigma_i(Z) = s\sqrt n\,\sigma_i(G)`.
    Returns ``(objective, best_scale)`` from a bounded scalar minimisation over ``s``.
    Comparing geometries (simplex ETF vs "cross-polytope") shows why deep heads with CE prefer
    low-rank configurations (Garrod & Keating, "The Persistence of Neural Collapse Despite
    Low-Rank Bias", 2024, arXiv:2410.23169).
    """
    from scipy.optimize import minimize_scalar

    m = torch.as_tensor(means, dtype=_F64)
    m = check_tensor(m, "means", ndim=2, floating=True)
    depth = check_int(depth, "depth", minimum=1)
    lam = check_float(lambda_, "lambda_", positive=True)
    n = check_int(n_per_class, "n_per_class", minimum=1)
    check_choice(loss, "loss", ("ce", "mse"))
    g = m @ m.T
    k = g.shape[0]
    sv = torch.linalg.svdvals(g).numpy()
    y = torch.arange(k)
    p = 2.0 / (depth + 1)

    def f(log_s: float) -> float:
        s = math.exp(log_s)
        data = float(_ufm_data_loss(s * g, y, k, loss))
        return data + (depth + 1) * lam / 2 * float(np.sum((s * math.sqrt(n) * sv) ** p))

    res = minimize_scalar(f, bounds=(-12.0, 8.0), method="bounded", options={"xatol": 1e-10})
    return float(res.fun), math.exp(float(res.x))


@dataclass(frozen=True, repr=False)
class PerturbedUFMResult(Result):
    """Optimum of the perturbed UFM: classifier ``weight`` (K, d), ``features`` H (N, d) = H(W).

    Diagnostics: objective ``loss``, ``grad_norm`` (max-abs gradient in W), L-BFGS
    ``iterations``, ``converged``.
    """

    weight: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    lambda_W: float
    lambda_H: float
    beta: float
    loss: float
    grad_norm: float
    iterations: int
    converged: bool


def fit_perturbed_ufm(
    h0: torch.Tensor,
    labels: torch.Tensor,
    *,
    beta: float,
    lambda_W: float = 1e-2,
    lambda_H: float = 1e-2,
    num_classes: int | None = None,
    max_iter: int = 500,
    tol: float = 1e-10,
) -> PerturbedUFMResult:
    r"""Solve the UFM whose features must stay near given features ``H0`` (float64, L-BFGS on W).

    .. math::
        \min_{W,H}\ \frac{1}{2N}\|WH-Y\|_F^2+\frac{\lambda_W}{2}\|W\|_F^2
        +\frac{\lambda_H}{2N}\|H\|_F^2+\frac{\beta}{2N}\|H-H_0\|_F^2

    (features as columns of ``H``; ``Y`` one-hot). For fixed ``W`` the optimal features are
    :math:`H(W)=(W^\top W+(\lambda_H+\beta)I)^{-1}(W^\top Y+\beta H_0)`, so ``H`` is eliminated
    exactly and L-BFGS (strong Wolfe) runs on ``W`` alone, started from the ridge classifier of
    ``H0``. ``beta`` is the vicinity strength: ``beta -> infinity`` keeps ``H = H0``,
    ``beta = 0`` is the plain UFM (full collapse).

    The form of the objective follows Tirer, Huang & Niles-Weed, "Perturbation Analysis of Neural
    Collapse", ICML 2023, arXiv:2210.16658 (their model regularises the features towards
    ``H0``; our normalisation of each term is stated above).
    """
    h0 = check_tensor(h0, "h0", ndim=2, floating=True)
    n, d = h0.shape
    labels, k = _check_labels(labels, n, num_classes)
    beta = check_float(beta, "beta", minimum=0.0)
    lw = check_float(lambda_W, "lambda_W", positive=True)
    lh = check_float(lambda_H, "lambda_H", minimum=0.0)
    if lh + beta <= 0:
        raise ValueError("`lambda_H + beta` must be > 0 for H(W) to be unique")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    tol = check_float(tol, "tol", positive=True)
    h0t = h0.detach().to(_F64).T  # (d, N)
    dev = h0t.device
    y = torch.nn.functional.one_hot(labels.to(dev), k).to(_F64).T  # (K, N)
    eye = torch.eye(d, dtype=_F64, device=dev)

    def features_of(w):
        return torch.linalg.solve(w.T @ w + (lh + beta) * eye, w.T @ y + beta * h0t)

    def objective(w):
        h = features_of(w)
        return (
            0.5 / n * (w @ h - y).square().sum()
            + 0.5 * lw * w.square().sum()
            + 0.5 * lh / n * h.square().sum()
            + 0.5 * beta / n * (h - h0t).square().sum()
        )

    w0 = y @ h0t.T @ torch.linalg.inv(h0t @ h0t.T + n * lw * eye)
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        v = objective(w)
        v.backward()
        return v

    opt.step(closure)
    iterations = int(opt.state[w].get("n_iter", 0))
    final = objective(w)
    (g,) = torch.autograd.grad(final, [w])
    gnorm = float(g.abs().max())
    with torch.no_grad():
        wf = w.detach().clone()
        return PerturbedUFMResult(
            weight=wf,
            features=features_of(wf).T.contiguous(),
            labels=labels,
            lambda_W=lw,
            lambda_H=lh,
            beta=beta,
            loss=float(final),
            grad_norm=gnorm,
            iterations=iterations,
            converged=gnorm <= max(tol, 1e-8),
        )


# ----------------------------------------------------------------------------------------------
# feature extraction and a training callback
# ----------------------------------------------------------------------------------------------


def _resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError("`layer` is not a submodule of `model`")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a submodule name or an nn.Module, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n]
        raise ValueError(f"`layer`={layer!r} is not a submodule of the model; available: {names[:20]}")
    return modules[layer]


def feature_extractor(
    model: nn.Module, layer: str | nn.Module, *, capture: str = "input", batch_size: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``extract(x) -> features`` that reads a layer's input or output with a hook.

    The forward hook is registered only while ``extract`` runs and removed in ``finally``; the
    model runs in eval mode under ``torch.no_grad()`` and every submodule's ``.training`` flag is
    restored afterwards, so the model is unchanged (parameters, grads, buffers, modes).

    Parameters
    ----------
    model : the network.
    layer : submodule name (``"head"``) or the submodule itself.
    capture : ``"input"`` (default: the input of ``layer``, e.g. the penultimate features when
        ``layer`` is the classifier) or ``"output"``.
    batch_size : optional chunking of ``x``.

    Example
    -------
    >>> from lossviz.testing import BNDropoutNet
    >>> net = BNDropoutNet()
    >>> feats = feature_extractor(net, "head")(torch.zeros(5, 4))
    >>> tuple(feats.shape)
    (5, 8)
    """
    check_module(model, "model", need_params=False)
    check_choice(capture, "capture", ("input", "output"))
    module = _resolve_layer(model, layer)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)

    def extract(x: torch.Tensor) -> torch.Tensor:
        x = check_tensor(x, "x")
        store: list[torch.Tensor] = []

        def hook(mod, inputs, output):
            t = inputs[0] if capture == "input" else output
            store.append(t.detach().clone())

        handle = module.register_forward_hook(hook)
        try:
            with eval_mode(model), torch.no_grad():
                chunks = [x] if batch_size is None else list(torch.split(x, batch_size))
                for xb in chunks:
                    model(xb)
        finally:
            handle.remove()
        if not store:
            raise RuntimeError(f"layer {layer!r} was not called in the forward pass")
        return torch.cat(store).flatten(1)

    return extract


def train_mixup(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    *,
    loss: str = "ce",
    mix: bool = True,
    alpha: float = 1.0,
    steps: int = 2000,
    lr: float = 2e-3,
    weight_decay: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """Train ``model`` **in place** full-batch with mixup (AdamW + cosine schedule), as in N03.

    Every step draws a fresh mix with :func:`lossviz.losses.mixup` (one ``lambda ~ Beta(alpha,
    alpha)`` per sample, a random partner) and minimises ``loss="ce"`` (soft-target
    cross-entropy) or ``"mse"`` (``0.5 * ||z - t||^2`` summed over classes, mean over samples) on the
    mixed soft targets; ``mix=False`` trains on the clean data (the no-mixup control). Like
    :func:`lossviz.train.fit`, this changes the model's parameters on purpose; it restores
    ``.training`` flags and leaves no ``.grad``. Returns the loss per step.

    Set-up of Fisher, Meng & Papyan, "Pushing Boundaries: Mixup's Influence on Neural Collapse",
    ICLR 2024, arXiv:2402.06171.
    """
    from .losses import mixup, soft_cross_entropy

    check_module(model, "model")
    x = check_tensor(x, "x", ndim=2, floating=True)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    y, _ = _check_labels(y, x.shape[0], num_classes, "y")
    check_choice(loss, "loss", ("ce", "mse"))
    steps = check_int(steps, "steps", minimum=1)
    lr = check_float(lr, "lr", positive=True)
    weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    onehot = torch.nn.functional.one_hot(y, num_classes).to(x.dtype)
    losses = []
    from tqdm.auto import tqdm

    with eval_mode(model, True):
        try:
            for _ in tqdm(range(steps), disable=not progress, leave=False, desc=f"mixup {loss}"):
                opt.zero_grad(set_to_none=True)
                if mix:
                    m = mixup(x, y, num_classes, alpha=alpha, generator=gen)
                    xb, tb = m.x, m.targets
                else:
                    xb, tb = x, onehot
                out = model(xb)
                val = soft_cross_entropy(out, tb) if loss == "ce" else 0.5 * (out - tb).square().sum(1).mean()
                val.backward()
                opt.step()
                sched.step()
                losses.append(float(val.detach()))
        finally:
            for p in params:
                p.grad = None
    return losses


@dataclass(frozen=True, repr=False)
class MixupGeometry(Result):
    r"""Where the features of cross-class mixes sit relative to the class means.

    Per mix ``(i, j)`` of samples from classes ``a != b`` with weight ``lam`` on ``i``:
    ``features`` (M, d), ``logits`` (M, K), ``class_a``, ``class_b``, ``lam``;
    ``logit_gap`` :math:`|z_a - z_b|`; ``segment_distance`` the distance of the feature to the
    segment :math:`[\mu_a, \mu_b]` divided by :math:`\|\mu_a-\mu_b\|`; ``radial``
    :math:`\|h-\mu_G\|/\|(\mu_a+\mu_b)/2-\mu_G\|`. ``means`` are the class means of the clean
    features, ``accuracy`` the clean training accuracy. Medians are properties.
    """

    features: torch.Tensor
    logits: torch.Tensor
    class_a: torch.Tensor
    class_b: torch.Tensor
    lam: torch.Tensor
    logit_gap: np.ndarray
    segment_distance: np.ndarray
    radial: np.ndarray
    means: torch.Tensor
    clean_features: torch.Tensor
    accuracy: float
    lam_range: tuple[float, float]

    @property
    def median_gap(self) -> float:
        return float(np.median(self.logit_gap))

    @property
    def median_segment_distance(self) -> float:
        return float(np.median(self.segment_distance))

    @property
    def median_radial(self) -> float:
        return float(np.median(self.radial))


def mixup_geometry(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: str | nn.Module = "head",
    *,
    capture: str = "input",
    lam_range: tuple[float, float] = (0.4, 0.6),
    num_mixes: int = 3000,
    seed: int = 0,
) -> MixupGeometry:
    """Measure the features of cross-class mixes ``lam x_i + (1 - lam) x_j`` (``lam`` uniform in
    ``lam_range``, classes of ``i`` and ``j`` different) against the clean class means.

    Features are read with :func:`feature_extractor` (input of ``layer`` by default) in eval
    mode; the model is left unchanged. Pairs are drawn with ``seed``. See :class:`MixupGeometry`.
    """
    check_module(model, "model")
    x = check_tensor(x, "x", ndim=2, floating=True)
    y, k = _check_labels(y, x.shape[0], None, "y")
    lo, hi = (check_float(v, "lam_range[i]", minimum=0.0, maximum=1.0) for v in lam_range)
    if not lo <= hi:
        raise ValueError(f"`lam_range` must be (low, high) with low <= high, got {lam_range}")
    num_mixes = check_int(num_mixes, "num_mixes", minimum=1)
    gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    extract = feature_extractor(model, layer, capture=capture)
    n = x.shape[0]
    i = torch.randint(0, n, (num_mixes,), generator=gen).to(x.device)
    j = torch.randint(0, n, (num_mixes,), generator=gen).to(x.device)
    lam = (lo + (hi - lo) * torch.rand(num_mixes, generator=gen, dtype=_F64)).to(x.device)
    keep = y[i] != y[j]
    i, j, lam = i[keep], j[keep], lam[keep]
    if not len(i):
        raise ValueError("no cross-class pairs were drawn; are all labels equal?")
    xm = lam[:, None].to(x.dtype) * x[i] + (1 - lam[:, None].to(x.dtype)) * x[j]
    with eval_mode(model), torch.no_grad():
        logits_clean = model(x)
        logits = model(xm)
    h = extract(x).to(_F64)
    hm = extract(xm).to(_F64)
    _check_counts(torch.bincount(y, minlength=k), "y")
    means = torch.zeros(k, h.shape[1], dtype=_F64, device=h.device).index_add_(0, y, h)
    means = means / torch.bincount(y, minlength=k).to(_F64)[:, None]
    mu_g = means.mean(0)
    a, b = y[i], y[j]
    za = logits.gather(1, a[:, None]).squeeze(1)
    zb = logits.gather(1, b[:, None]).squeeze(1)
    ma, mb = means[a], means[b]
    seg = mb - ma
    t = (((hm - ma) * seg).sum(1) / seg.square().sum(1)).clamp(0.0, 1.0)
    dist = (hm - (ma + t[:, None] * seg)).norm(dim=1) / seg.norm(dim=1)
    radial = (hm - mu_g).norm(dim=1) / ((ma + mb) / 2 - mu_g).norm(dim=1)
    return MixupGeometry(
        features=hm,
        logits=logits.detach(),
        class_a=a,
        class_b=b,
        lam=lam,
        logit_gap=(za - zb).abs().double().cpu().numpy(),
        segment_distance=dist.cpu().numpy(),
        radial=radial.cpu().numpy(),
        means=means,
        clean_features=h,
        accuracy=float((logits_clean.argmax(1) == y).double().mean()),
        lam_range=(lo, hi),
    )


@dataclass
class CollapseRecorder:
    """Training callback (for :func:`lossviz.train.fit`) recording NC metrics and class means.

    Called as ``recorder(step, model, loss, history, final=False)``; records when ``step`` is in
    ``at`` or a multiple of ``every`` (and at the final step). Features are read with
    :func:`feature_extractor` (input of ``layer`` by default, i.e. penultimate features when
    ``layer`` is the classifier); the classifier is the submodule named ``classifier`` (an
    ``nn.Linear``) or ``None``. Metrics go to ``self.history`` (name -> list) and, if given, the
    training ``History`` under ``"nc/<name>"``; class means (and classifier weights) are kept in
    ``self.means`` / ``self.classifiers`` when ``keep_means``.
    """

    x: torch.Tensor
    y: torch.Tensor
    layer: str | nn.Module = "head"
    classifier: str | None = "head"
    every: int | None = 1
    at: Sequence[int] = ()
    capture: str = "input"
    global_mean: str = "unweighted"
    keep_means: bool = True
    steps: list[int] = field(default_factory=list)
    history: dict[str, list[float]] = field(default_factory=dict)
    means: list[torch.Tensor] = field(default_factory=list)
    classifiers: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self):
        self.x = check_tensor(self.x, "x")
        self.y = check_tensor(self.y, "y", ndim=1, floating=False)
        if self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"`x` has {self.x.shape[0]} rows but `y` has {self.y.shape[0]} labels")
        if self.every is not None:
            self.every = check_int(self.every, "every", minimum=1)
        self.at = {check_int(s, "at[i]", minimum=0) for s in self.at}
        check_choice(self.global_mean, "global_mean", _GLOBAL_MEANS)

    def wants(self, step: int, final: bool = False) -> bool:
        return step in self.at or (self.every is not None and (step % self.every == 0 or final))

    def __call__(
        self, step: int, model: nn.Module, loss: float | None = None, history=None, final: bool = False
    ):
        if not self.wants(step, final) or (self.steps and self.steps[-1] == step):
            return None
        feats = feature_extractor(model, self.layer, capture=self.capture)(self.x)
        clf = None
        if self.classifier is not None:
            clf = _resolve_layer(model, self.classifier)
            if not isinstance(clf, nn.Linear):
                raise TypeError(f"`classifier`={self.classifier!r} must name an nn.Linear")
        m = nc_metrics(feats, self.y, clf, global_mean=self.global_mean)
        self.steps.append(step)
        for name, value in m.scalars().items():
            self.history.setdefault(name, []).append(value)
            if history is not None:
                history.record(f"nc/{name}", step, value)
        if self.keep_means:
            self.means.append(m.means.clone())
            if clf is not None:
                self.classifiers.append(clf.weight.detach().to(_F64).clone())
        return None


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------


def plot_metrics(
    steps: Sequence[float] | CollapseRecorder,
    metrics: dict[str, Sequence[float]] | None = None,
    *,
    names: Sequence[str] | None = None,
    log_x: bool = False,
    backend: str = "plotly",
    title: str = "Neural-collapse metrics",
):
    """Metrics over training on a log y-axis. Pass a :class:`CollapseRecorder` or ``(steps, dict)``."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    if isinstance(steps, CollapseRecorder):
        steps, metrics = steps.steps, steps.history
    if metrics is None:
        raise TypeError("`metrics` (a dict name -> values) is required unless a CollapseRecorder is given")
    names = (
        list(names) if names is not None else [k for k in metrics if k not in ("accuracy", "ncc_accuracy")]
    )
    for nm in names:
        if nm not in metrics:
            raise ValueError(f"no metric {nm!r}; available: {sorted(metrics)}")
    xs = list(steps)
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for nm in names:
            vals = np.asarray(metrics[nm], dtype=float)
            ax.plot(xs, np.where(vals > 0, vals, np.nan), marker="o", ms=3, label=nm)
        ax.set_yscale("log")
        if log_x:
            ax.set_xscale("symlog")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(fontsize=8)
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    for nm in names:
        vals = [v if v is not None and v > 0 else None for v in metrics[nm]]
        fig.add_trace(go.Scatter(x=xs, y=vals, mode="lines+markers", name=nm))
    fig.update_yaxes(type="log", title="metric (log)")
    fig.update_xaxes(type="log" if log_x else "linear", title="step")
    fig.update_layout(title=title, height=380)
    return fig


def _aligned_target(c: torch.Tensor, target: str) -> torch.Tensor:
    """The target frame rotated (orthogonal Procrustes) onto the centred means ``c`` and scaled."""
    from scipy.linalg import orthogonal_procrustes

    k, d = c.shape
    if target == "etf":
        if d < k - 1:
            raise ValueError(f"a simplex ETF of {k} classes needs width >= {k - 1}, features have {d}")
        t = simplex_etf(k, d)
    else:
        if d < k:
            raise ValueError(f"an orthogonal frame of {k} classes needs width >= {k}, features have {d}")
        t = orthogonal_frame(k, d)
    r, _ = orthogonal_procrustes(t.numpy(), c.numpy())
    scale = float(c.norm(dim=1).mean())
    return torch.from_numpy(t.numpy() @ r) * scale


def plot_frame(
    means: torch.Tensor,
    classifier: torch.Tensor | None = None,
    *,
    target: str | None = "etf",
    center: bool = True,
    dims: int = 2,
    class_names: Sequence[str] | None = None,
    backend: str = "plotly",
    title: str = "Class means and classifier",
):
    """Class means (and classifier rows) as arrows in 2-D/3-D, with the target frame drawn.

    Wider vectors are projected on their top principal directions (PCA of the stacked centred
    means, classifier rows and target). The target (``"etf"``, ``"orthogonal"`` or ``None``) is
    rotated onto the means by orthogonal Procrustes and scaled to their mean norm; classifier
    rows are rescaled to the same mean norm.
    """
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    dims = check_int(dims, "dims", minimum=2, maximum=3)
    if target is not None:
        check_choice(target, "target", ("etf", "orthogonal"))
    c = check_tensor(means, "means", ndim=2, floating=True).detach().to(_F64).cpu()
    if center:
        c = c - c.mean(0)
    k, d = c.shape
    groups = {"means": c}
    if classifier is not None:
        w = check_tensor(classifier, "classifier", ndim=2, floating=True).detach().to(_F64).cpu()
        if tuple(w.shape) != (k, d):
            raise ValueError(f"`classifier` must have shape {(k, d)} like `means`, got {tuple(w.shape)}")
        wn = float(w.norm(dim=1).mean())
        groups["classifier"] = w * (float(c.norm(dim=1).mean()) / wn if wn > 0 else 1.0)
    if target is not None:
        groups["target"] = _aligned_target(c, target)
    stacked = torch.cat(list(groups.values()))
    if d > dims:
        _, _, vh = torch.linalg.svd(stacked, full_matrices=False)
        basis = vh[:dims].T
    else:
        basis = torch.eye(d, dims, dtype=_F64)
    proj = {g: (v @ basis).numpy() for g, v in groups.items()}
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    styles = {"means": ("solid", 4), "classifier": ("dash", 2), "target": ("dot", 2)}
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(5, 5))
        ax = fig.add_subplot(111, projection="3d" if dims == 3 else None)
        for g, pts in proj.items():
            ls = {"solid": "-", "dash": "--", "dot": ":"}[styles[g][0]]
            for i in range(k):
                seg = np.stack([np.zeros(dims), pts[i]])
                ax.plot(*seg.T, ls, color=f"C{i % 10}", lw=styles[g][1] / 1.5, label=g if i == 0 else None)
        ax.set_title(title)
        ax.legend(fontsize=8)
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    for g, pts in proj.items():
        dash, width = styles[g]
        for i in range(k):
            xs = [0.0, float(pts[i, 0])]
            ys = [0.0, float(pts[i, 1])]
            common = dict(
                mode="lines+markers",
                name=f"{g} {names[i]}",
                legendgroup=g,
                line=dict(color=palette[i % 10], dash=dash, width=width),
                marker=dict(size=[0, 6]),
            )
            if dims == 3:
                fig.add_trace(go.Scatter3d(x=xs, y=ys, z=[0.0, float(pts[i, 2])], **common))
            else:
                fig.add_trace(go.Scatter(x=xs, y=ys, **common))
    if dims == 2:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, height=450, width=520)
    return fig


def plot_gram(
    vectors: torch.Tensor,
    *,
    normalize: bool = True,
    center: bool = False,
    class_names: Sequence[str] | None = None,
    backend: str = "plotly",
    title: str = "Gram matrix",
):
    """Heatmap of the Gram (cosine when ``normalize``) matrix of ``K`` vectors (rows)."""
    check_choice(backend, "backend", ("plotly", "matplotlib"))
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(_F64).cpu()
    if center:
        v = v - v.mean(0)
    g = (_cosines(v) if normalize else v @ v.T).numpy()
    names = list(class_names) if class_names is not None else [str(i) for i in range(v.shape[0])]
    if backend == "matplotlib":
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4.5, 4))
        im = ax.imshow(g, cmap="RdBu_r", vmin=-1 if normalize else None, vmax=1 if normalize else None)
        fig.colorbar(im, ax=ax)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(title)
        plt.close(fig)
        return fig
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=g,
            x=names,
            y=names,
            colorscale="RdBu",
            reversescale=True,
            zmin=-1 if normalize else None,
            zmax=1 if normalize else None,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=400, width=450)
    return fig
