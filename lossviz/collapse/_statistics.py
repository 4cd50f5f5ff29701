r"""Class statistics of features in one streaming pass: counts, class means, global mean,
within- and between-class covariances (float64), and :func:`class_means`.

Batches are merged with the pairwise update of Chan, Golub & LeVeque, "Algorithms for computing
the sample variance: analysis and recommendations", The American Statistician 37 (1983)
(first as a Stanford report, 1979), so there is no catastrophic cancellation of
:math:`E[hh^\top]-\mu\mu^\top`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_choice, check_int, check_tensor
from ._checks import F64, GLOBAL_MEANS, check_counts, check_features, check_labels, chunks

__all__ = ["ClassStatistics", "class_statistics", "class_means"]


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
        p = self.counts.to(F64) / self.counts.sum()
        c = self.means - (p[:, None] * self.means).sum(0)
        return (c * p[:, None]).T @ c

    def total(self) -> torch.Tensor:
        """Total covariance ``(1/N) sum_i (h_i - m)(h_i - m)^T`` (``m`` the sample mean)."""
        return self.within + self.between_weighted()


def _iter_batches(features, labels, batch_size):
    if isinstance(features, torch.Tensor) or isinstance(features, np.ndarray):
        features = check_features(features)
        if labels is None:
            raise TypeError("`labels` is required when `features` is a tensor")
        lab = check_tensor(labels, "labels", ndim=1, floating=False, nonempty=False)
        if lab.shape[0] != features.shape[0]:
            raise ValueError(
                f"`features` and `labels` have different lengths: {features.shape[0]} feature rows "
                f"but {lab.shape[0]} labels"
            )
        for sl in chunks(features.shape[0], batch_size):
            yield features[sl], lab[sl]
        return
    if labels is not None:
        raise TypeError(
            "pass either `features` and `labels` tensors, or an iterable of (features, labels) batches"
        )
    for i, batch in enumerate(features):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise TypeError(f"`features` batch {i} must be a pair (features, labels)")
        f = check_features(batch[0], f"features (batch {i})")
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
    check_choice(global_mean, "global_mean", GLOBAL_MEANS)
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
        f = f.detach().to(F64)
        dev = f.device
        if counts is None:
            counts = torch.zeros(k_now, dtype=torch.int64, device=dev)
            means = torch.zeros(k_now, d, dtype=F64, device=dev)
            scatter = torch.zeros(d, d, dtype=F64, device=dev)
        elif k_now > counts.shape[0]:
            extra = k_now - counts.shape[0]
            counts = torch.cat([counts, counts.new_zeros(extra)])
            means = torch.cat([means, means.new_zeros(extra, d)])
        if not y.numel():
            continue
        y = y.to(dev)
        cb = torch.bincount(y, minlength=k_now)
        sb = torch.zeros(k_now, d, dtype=F64, device=dev).index_add_(0, y, f)
        present = cb > 0
        mb = torch.where(present[:, None], sb / cb.clamp_min(1)[:, None].to(F64), means)
        r = f - mb[y]
        scatter += r.T @ r
        n_new = counts + cb
        delta = mb - means
        w = torch.where(present, counts.to(F64) * cb.to(F64) / n_new.clamp_min(1).to(F64), 0.0)
        scatter += (delta * w[:, None]).T @ delta
        means = means + delta * torch.where(present, cb.to(F64) / n_new.clamp_min(1).to(F64), 0.0)[:, None]
        counts = n_new
    if counts is None:
        raise ValueError("`features` is empty: no batches")
    k = counts.shape[0]
    if k < 2:
        raise ValueError(f"neural-collapse statistics need at least two classes, got {k}")
    check_counts(counts)
    n = counts.sum().to(F64)
    if global_mean == "unweighted":
        mu_g = means.mean(0)
    else:
        mu_g = (counts.to(F64)[:, None] * means).sum(0) / n
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


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    r"""Class means :math:`\mu_k = \frac1{n_k}\sum_{y_i=k} h_i` of ``features`` (rows), ``(K, d)``.

    Differentiable (autograd flows through ``index_add``) and in the dtype and on the device of
    ``features``, so it serves both as a statistic and inside a training objective. Every class
    ``0..K-1`` must have at least one sample (``ValueError`` naming ``labels`` otherwise). For
    float64 statistics of large or streamed data use :func:`class_statistics`.

    Parameters
    ----------
    features : (N, d) floating tensor.
    labels : (N,) integer tensor of classes ``0..K-1``.
    num_classes : int, optional; defaults to ``max(labels) + 1``.

    Examples
    --------
    >>> import torch
    >>> class_means(torch.tensor([[0.0, 1.0], [2.0, 1.0], [5.0, 5.0]]), torch.tensor([0, 0, 1]))
    tensor([[1., 1.],
            [5., 5.]])
    """
    features = check_tensor(features, "features", ndim=2, floating=True, finite=True)
    labels, k = check_labels(labels, features.shape[0], num_classes)
    labels = labels.to(features.device)
    counts = torch.bincount(labels, minlength=k)
    check_counts(counts)
    sums = torch.zeros(k, features.shape[1], dtype=features.dtype, device=features.device).index_add(
        0, labels, features
    )
    return sums / counts.to(features.dtype)[:, None]
