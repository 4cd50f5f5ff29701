"""Contrastive losses with a temperature: InfoNCE / NT-Xent, its hardness-aware weights,
uniformity and tolerance, and the DRO-based robust contrastive loss with individual temperatures.

Papers:

* Feng Wang, Huaping Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021,
  arXiv:2012.09740 (hardness-aware weights, uniformity-tolerance dilemma).
* Tongzhou Wang, Phillip Isola, "Understanding Contrastive Representation Learning through
  Alignment and Uniformity on the Hypersphere", ICML 2020, arXiv:2005.10242 (uniformity).
* Fang, Li, Sun & Wang, "Rethinking The Uniformity Metric in Self-Supervised Learning", ICLR 2024,
  arXiv:2403.00642 (Wasserstein uniformity metric).
* Zi-Hao Qiu, Quanqi Hu, Zhuoning Yuan, Denny Zhou, Lijun Zhang, Tianbao Yang, "Not All Semantics
  are Created Equal: Contrastive Self-supervised Learning with Automatic Temperature
  Individualization", ICML 2023, arXiv:2305.11965 (robust contrastive loss, iSogCLR).

Conventions: similarities are cosine similarities of L2-normalised embeddings
(``normalize=True``); the temperature divides the similarities, ``exp(s / tau)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._result import Result
from .._validate import check_float, check_labels, check_tensor
from ._common import check_reduction, check_temperature, compute_dtype, reduce

__all__ = [
    "info_nce",
    "info_nce_from_similarities",
    "negative_weights",
    "nt_xent_similarities",
    "PenaltyDistribution",
    "penalty_distribution",
    "uniformity",
    "wasserstein_uniformity",
    "tolerance",
    "robust_contrastive_loss",
    "dro_objective",
    "dro_optimal_temperature",
]


def _check_views(z1: Any, z2: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z1 = check_tensor(z1, "z1", ndim=2, floating=True)
    z2 = check_tensor(z2, "z2", ndim=2, floating=True)
    if z1.shape != z2.shape:
        raise ValueError(
            f"`z1` and `z2` must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError(
            f"`z1` and `z2` need at least 2 samples per view (one positive and negatives), got {z1.shape[0]}"
        )
    return z1, z2


def nt_xent_similarities(z1: Any, z2: Any, *, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``2N x 2N`` similarity matrix of two views and the positive index of every anchor.

    Rows/columns ``0..N-1`` are view 1, ``N..2N-1`` view 2; the diagonal (self-similarity) is
    set to ``-inf`` so it never counts as a negative. Anchor ``i``'s positive is ``i + N`` (mod 2N).
    """
    z1, z2 = _check_views(z1, z2)
    z = torch.cat([z1, z2], dim=0)
    if normalize:
        z = F.normalize(z, dim=1)
    n = z1.shape[0]
    sim = z @ z.T
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    pos = torch.cat([torch.arange(n, 2 * n, device=z.device), torch.arange(0, n, device=z.device)])
    return sim, pos


def info_nce_from_similarities(
    similarities: Any, positives: Any = None, tau: float = 0.1, *, reduction: str = "mean"
) -> torch.Tensor:
    """InfoNCE ``-log( exp(s_ip / tau) / sum_k exp(s_ik / tau) )`` from a similarity matrix.

    Parameters
    ----------
    similarities : (n, m) similarities of anchor i to candidate k (``-inf`` entries are excluded)
    positives : (n,) column of each anchor's positive (default ``i``: the diagonal)
    tau : temperature > 0 (divides the similarities)

    Its gradient (Wang & Liu 2021, Eq. 3-4; tested) is
    ``dL/ds_ij = P_ij / tau`` for negatives ``j`` and ``dL/ds_ip = -(1 - P_ip) / tau`` for the
    positive, with ``P = softmax(s_i / tau)``: negatives are penalised in proportion to
    ``exp(s_ij / tau)``, see :func:`negative_weights`.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import info_nce_from_similarities
    >>> s = torch.tensor([[1.0, 0.0, 0.0]])
    >>> round(float(info_nce_from_similarities(s, torch.tensor([0]), tau=1.0)), 4)   # log(e + 2) - 1
    0.5514
    """
    sim = check_tensor(similarities, "similarities", ndim=2, floating=True, finite=False)
    if bool(torch.isnan(sim).any()) or bool((sim == float("inf")).any()):
        raise ValueError("`similarities` must not contain NaN or +inf")
    n, m = sim.shape
    if positives is None:
        if m < n:
            raise ValueError(
                f"with `positives=None` the `similarities` matrix needs at least n={n} columns, got shape {(n, m)}"
            )
        positives = torch.arange(n, device=sim.device)
    positives = check_labels(positives, "positives", n=n, num_classes=m)
    tau = check_temperature(tau)
    reduction = check_reduction(reduction)
    cd = compute_dtype(sim.dtype)
    lp = torch.log_softmax(sim.to(cd) / tau, dim=1)
    loss = -lp.gather(1, positives[:, None]).squeeze(1)
    return reduce(loss, reduction).to(sim.dtype)


def info_nce(
    z1: Any, z2: Any, tau: float = 0.1, *, normalize: bool = True, reduction: str = "mean"
) -> torch.Tensor:
    """NT-Xent / InfoNCE of two views (SimCLR form): every one of the 2N embeddings is an anchor.

    For anchor ``i`` the positive is the other view of the same sample and the negatives are the
    other ``2N - 2`` embeddings; loss ``-log( e^{s_ip/tau} / sum_{k != i} e^{s_ik/tau} )``,
    averaged over the 2N anchors for ``reduction="mean"`` (``"none"`` gives the 2N values, view 1
    first).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import info_nce
    >>> z = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    >>> bool(info_nce(z, z, tau=0.1) < info_nce(z, torch.randn(8, 4), tau=0.1))
    True
    """
    z1, z2 = _check_views(z1, z2)
    cd = compute_dtype(z1.dtype)  # half inputs: similarities and loss in float32, cast back
    sim, pos = nt_xent_similarities(z1.to(cd), z2.to(cd), normalize=normalize)
    return info_nce_from_similarities(sim, pos, tau, reduction=reduction).to(z1.dtype)


def negative_weights(similarities: Any, tau: float, *, dim: int = -1) -> torch.Tensor:
    """Hardness-aware weights over negatives: ``r_j = exp(s_j / tau) / sum_k exp(s_k / tau)``.

    ``similarities`` holds the anchor's similarities to its negatives only; the result is the
    relative penalty ``|dL/ds_j| / |dL/ds_pos|`` of Wang & Liu (2021), a softmax with temperature:
    small ``tau`` concentrates the penalty on the hardest (most similar) negatives, large ``tau``
    spreads it uniformly.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import negative_weights
    >>> negative_weights(torch.tensor([0.9, 0.0, -0.9]), tau=0.1).argmax().item()   # the hardest
    0
    """
    s = check_tensor(similarities, "similarities", floating=True)
    tau = check_temperature(tau)
    return torch.softmax(s / tau, dim=dim)


@dataclass(frozen=True, repr=False)
class PenaltyDistribution(Result):
    """Relative penalty over a set of negative similarities at one or more temperatures.

    ``similarities`` (m,), ``taus`` (t,), ``weights`` (t, m) rows summing to 1, ``entropy`` (t,)
    in nats (``log m`` is uniform).
    """

    similarities: np.ndarray
    taus: np.ndarray
    weights: np.ndarray
    entropy: np.ndarray

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw with :func:`lossviz.losses.plotting.plot_penalty_distribution`."""
        from .plotting import plot_penalty_distribution

        return plot_penalty_distribution(self, backend=backend, ax=ax, **kw)


def penalty_distribution(taus: Any, similarities: Any = None) -> PenaltyDistribution:
    """Weights of :func:`negative_weights` for each temperature in ``taus`` (float64, analytic).

    ``similarities`` defaults to 201 evenly spaced values in [-1, 1] (cosine similarities).
    Cheap enough for live widgets (microseconds per temperature).

    Examples
    --------
    >>> from lossviz.losses import penalty_distribution
    >>> pd = penalty_distribution([0.05, 1.0])
    >>> bool(pd.entropy[0] < pd.entropy[1])
    True
    """
    taus = np.atleast_1d(np.asarray(taus, dtype=np.float64))
    if taus.ndim != 1 or not np.all(np.isfinite(taus)) or np.any(taus <= 0):
        raise ValueError(f"`taus` must be positive finite temperatures, got {taus}")
    s = np.linspace(-1.0, 1.0, 201) if similarities is None else np.asarray(similarities, dtype=np.float64)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)):
        raise ValueError("`similarities` must be a 1-D array of at least 2 finite values")
    logits = s[None, :] / taus[:, None]
    logits = logits - logits.max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(w > 0, w * np.log(w), 0.0), axis=1)
    return PenaltyDistribution(similarities=s, taus=taus, weights=w, entropy=ent)


def uniformity(z: Any, *, t: float = 2.0, normalize: bool = True) -> float:
    """Uniformity of Wang & Isola (2020): ``log mean_{i<j} exp(-t ||z_i - z_j||^2)`` (lower = more uniform).

    Computed in float64 over all pairs of rows of ``z`` (L2-normalised first by default).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import uniformity
    >>> uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))   # antipodal: log exp(-2 * 4)
    -8.0
    """
    z = check_tensor(z, "z", ndim=2, floating=True)
    if z.shape[0] < 2:
        raise ValueError("`z` needs at least 2 rows")
    t = check_float(t, "t", positive=True)
    z = z.detach().to(torch.float64)
    if normalize:
        z = F.normalize(z, dim=1)
    d2 = torch.pdist(z).pow(2)
    return float(torch.logsumexp(-t * d2, dim=0) - math.log(d2.numel()))


def wasserstein_uniformity(z: Any, *, normalize: bool = True) -> float:
    r"""Wasserstein uniformity metric of Fang, Li, Sun & Wang (ICLR 2024, arXiv:2403.00642); lower = more uniform.

    The 2-Wasserstein distance between a Gaussian fitted to the (L2-normalised) embeddings and
    ``N(0, I/m)``, the Gaussian that a uniform distribution on the unit sphere of ``R^m`` approaches
    as ``m`` grows:

    .. math::

        W_2 = \sqrt{\|\mu\|^2 + 1 + \operatorname{tr}\Sigma - \tfrac{2}{\sqrt m}\operatorname{tr}\Sigma^{1/2}}

    with the mean ``mu`` and the **population** covariance ``Sigma`` (divided by ``N``, no Bessel
    correction) of the ``N`` rows, ``tr Sigma^{1/2}`` from the eigenvalues of ``Sigma`` (round-off
    negatives clipped to 0); float64. In ``[0, sqrt 2]`` for normalised rows (``sqrt 2``: every row
    the same point). Unlike :func:`uniformity` (Wang & Isola) it does not change when instances are
    cloned and it does change when features are cloned or zero features appended (both change
    ``m``); it grows with dimensional collapse: with ``z`` isotropic on a ``(1 - eta) m``-dimensional
    subspace, ``W_2^2 = 2 - 2 sqrt(1 - eta)`` (when ``N >> m``; the sample covariance's eigenvalue
    spread biases it upwards otherwise).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import wasserstein_uniformity
    >>> round(wasserstein_uniformity(torch.eye(4)) ** 2, 6)   # the 4 axes: mean (1/4, ..., 1/4), W2^2 = 1/2
    0.5
    >>> round(wasserstein_uniformity(torch.ones(5, 3)), 6)   # collapsed to a point: sqrt(2)
    1.414214
    """
    z = check_tensor(z, "z", ndim=2, floating=True)
    if z.shape[0] < 2:
        raise ValueError("`z` needs at least 2 rows")
    z = z.detach().to(torch.float64)
    if normalize:
        z = F.normalize(z, dim=1)
    m = z.shape[1]
    mu = z.mean(dim=0)
    zc = z - mu
    cov = zc.T @ zc / z.shape[0]
    ev = torch.linalg.eigvalsh((cov + cov.T) / 2).clamp(min=0.0)
    w2 = float(mu @ mu) + 1.0 + float(ev.sum()) - 2.0 / math.sqrt(m) * float(ev.sqrt().sum())
    return math.sqrt(max(w2, 0.0))


def tolerance(z: Any, labels: Any, *, normalize: bool = True) -> float:
    """Tolerance of Wang & Liu (2021): mean cosine similarity of pairs ``i != j`` with the same label.

    High tolerance = semantically similar samples stay close (float64).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import tolerance
    >>> tolerance(torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]]), torch.tensor([0, 0, 1])) > 0.99
    True
    """
    z = check_tensor(z, "z", ndim=2, floating=True)
    labels = check_labels(labels, "labels", n=z.shape[0])
    z = z.detach().to(torch.float64)
    if normalize:
        z = F.normalize(z, dim=1)
    sim = z @ z.T
    same = labels[:, None] == labels[None, :]
    same &= ~torch.eye(len(labels), dtype=torch.bool, device=z.device)
    if not bool(same.any()):
        raise ValueError("`labels` has no class with two or more samples")
    return float(sim[same].mean())


def robust_contrastive_loss(
    z1: Any,
    z2: Any,
    tau: Any,
    *,
    rho: float = 0.1,
    normalize: bool = True,
    reduction: str = "mean",
) -> torch.Tensor:
    """DRO-based robust contrastive loss with individualised temperatures (Qiu et al. 2023).

    For each of the 2N anchors ``i`` (both views; anchor ``i`` and ``i + N`` share the sample's
    temperature ``tau_i``), with ``a_ij = s_ij - s_ip`` over its ``2N - 2`` negatives ``j``:

    .. math::

        L_i(\\tau_i) = \\tau_i \\log \\frac{1}{|N_i|} \\sum_{j \\in N_i} e^{a_{ij} / \\tau_i} + \\tau_i \\rho ,

    the dual of ``max_p sum_j p_j a_ij`` over distributions with ``KL(p || uniform) <= rho``.
    Minimising over ``tau_i`` gives ``dL_i/dtau_i = rho - KL(p_i || uniform)`` with
    ``p_i = softmax(a_i / tau_i)``: anchors whose negatives are spread out (frequent semantics,
    many look-alikes) need larger ``tau_i``. Pass ``tau`` as a tensor with ``requires_grad=True``
    to get that gradient by autograd.

    Parameters
    ----------
    z1, z2 : (N, d) two views; tau : (N,) positive temperatures (or one float)
    rho : DRO radius (KL budget) >= 0

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import robust_contrastive_loss
    >>> z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    >>> tau = torch.full((6,), 0.5, requires_grad=True)
    >>> robust_contrastive_loss(z1, z2, tau, rho=0.1).backward()
    >>> tau.grad.shape   # (rho - KL) per sample, averaged over its two anchors
    torch.Size([6])
    """
    z1, z2 = _check_views(z1, z2)
    n = z1.shape[0]
    tau = check_temperature(tau, n=n)
    rho = check_float(rho, "rho", minimum=0.0)
    reduction = check_reduction(reduction)
    cd = compute_dtype(z1.dtype)  # half inputs: similarities and loss in float32, cast back
    sim, pos = nt_xent_similarities(z1.to(cd), z2.to(cd), normalize=normalize)
    if isinstance(tau, torch.Tensor) and tau.dtype != cd and tau.dtype in (torch.float16, torch.bfloat16):
        tau = tau.to(cd)
    s_pos = sim.gather(1, pos[:, None])
    mask = torch.ones_like(sim, dtype=torch.bool)
    mask.fill_diagonal_(False)
    mask.scatter_(1, pos[:, None], False)
    a = (sim - s_pos).masked_fill(~mask, 0.0)  # finite everywhere, so d(a/t)/dt has no inf * 0
    t = tau.repeat(2)[:, None] if isinstance(tau, torch.Tensor) and tau.ndim == 1 else tau
    num_neg = 2 * n - 2
    scaled = (a / t).masked_fill(~mask, float("-inf"))
    loss = t * (torch.logsumexp(scaled, dim=1, keepdim=True) - math.log(num_neg)) + t * rho
    return reduce(loss.squeeze(1), reduction).to(z1.dtype)


def _kl_uniform(a: np.ndarray, tau: float) -> float:
    z = a / tau
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    nz = p > 0
    return float(np.sum(p[nz] * np.log(p[nz] * a.size)))


def dro_objective(a: Any, taus: Any, rho: float) -> np.ndarray:
    """The per-anchor dual ``tau log mean_j exp(a_j / tau) + tau rho`` for each ``tau`` (float64).

    ``a`` are the anchor's ``s_ij - s_ip`` over its negatives. Minimising over ``tau`` gives the
    DRO value ``max {sum_j p_j a_j : KL(p || uniform) <= rho}`` (Qiu et al. 2023).
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    taus = np.atleast_1d(np.asarray(taus, dtype=np.float64))
    if a.size < 2 or not np.all(np.isfinite(a)):
        raise ValueError("`a` must hold at least 2 finite values")
    if np.any(taus <= 0) or not np.all(np.isfinite(taus)):
        raise ValueError("`taus` must be positive and finite")
    rho = check_float(rho, "rho", minimum=0.0)
    z = a[None, :] / taus[:, None]
    m = z.max(axis=1, keepdims=True)
    lme = (m + np.log(np.mean(np.exp(z - m), axis=1, keepdims=True))).ravel()
    return taus * lme + taus * rho


def dro_optimal_temperature(a: Any, rho: float, *, bounds: tuple[float, float] = (1e-4, 1e4)) -> float:
    """The minimiser over ``tau`` of :func:`dro_objective`: the root of ``KL(softmax(a/tau) || uniform) = rho``.

    ``KL`` decreases in ``tau``; the root is found with scipy's ``brentq`` inside ``bounds``
    (returns a bound when the root lies outside, e.g. ``rho`` larger than ``KL`` at the lower bound).

    Examples
    --------
    >>> import numpy as np
    >>> from lossviz.losses import dro_optimal_temperature
    >>> many = np.r_[np.zeros(200), -np.ones(758)]   # many look-alike negatives
    >>> few = np.r_[np.zeros(10), -np.ones(948)]
    >>> dro_optimal_temperature(many, 0.1) > dro_optimal_temperature(few, 0.1)
    True
    """
    from scipy.optimize import brentq

    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size < 2 or not np.all(np.isfinite(a)):
        raise ValueError("`a` must hold at least 2 finite values")
    rho = check_float(rho, "rho", positive=True)
    lo, hi = (check_float(b, "bounds", positive=True) for b in bounds)
    f = lambda t: _kl_uniform(a, t) - rho  # noqa: E731
    if f(lo) <= 0:
        return lo
    if f(hi) >= 0:
        return hi
    return math.exp(brentq(lambda lt: f(math.exp(lt)), math.log(lo), math.log(hi), xtol=1e-12))
