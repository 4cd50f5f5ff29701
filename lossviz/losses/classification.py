"""Classification loss families with a temperature or shape knob.

* :func:`tempered_cross_entropy` -- softmax cross-entropy of ``logits / tau``.
* :func:`comp_sum` -- the comp-sum family ``Phi^q`` of Anqi Mao, Mehryar Mohri, Yutao Zhong,
  "Cross-Entropy Loss Functions: Theoretical Analysis and Applications", ICML 2023,
  arXiv:2304.07288, and its H-consistency bound functions (:func:`comp_sum_bound`).
* :func:`ldr_kl`, :func:`aldr_kl`, :func:`crammer_singer_hinge` -- the Label Distributionally
  Robust (LDR) family of Dixian Zhu, Yiming Ying, Tianbao Yang, "Label Distributionally Robust
  Losses for Multi-class Classification: Consistency, Robustness and Adaptivity", ICML 2023,
  arXiv:2112.14869.
* :func:`z_loss`, :func:`z_loss_spherical` -- the Z-loss of Alexandre de Brebisson, Pascal
  Vincent, "The Z-loss: a shift and scale invariant classification loss belonging to the
  Spherical Family", 2016, arXiv:1604.08859.

All take logits ``(n, K)`` and integer targets ``(n,)`` (soft ``(n, K)`` targets where noted),
support ``reduction="mean" | "sum" | "none"``, evaluate float16/bfloat16 inputs in float32 and
cast the result back (values and gradients stay finite for logits up to 1e4 in magnitude at
moderate temperatures; a loss value itself may exceed the half-precision range when
``|logits| / tau`` is astronomically large, e.g. ``1e4 / 1e-3``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import brentq

from .._result import Result
from .._validate import check_float, check_int, check_tensor
from ._common import (
    check_logits,
    check_reduction,
    check_targets,
    check_temperature,
    compute_dtype,
    one_hot_like,
    reduce,
)

__all__ = [
    "tempered_cross_entropy",
    "comp_sum",
    "comp_sum_bound",
    "comp_sum_bound_inverse",
    "CompSumBound",
    "crammer_singer_hinge",
    "ldr_kl",
    "ldr_kl_limit",
    "aldr_kl",
    "aldr_kl_lambdas",
    "z_loss",
    "z_scores",
    "spherical_stats",
    "SphericalStats",
    "z_loss_spherical",
]


def _margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``z_k - z_y`` per row (integer targets)."""
    return logits - logits.gather(1, targets[:, None])


# ----------------------------------------------------------------------------- tempered CE


def tempered_cross_entropy(
    logits: Any, targets: Any, tau: float = 1.0, *, reduction: str = "mean"
) -> torch.Tensor:
    """Cross-entropy of the softmax at temperature ``tau``: ``-sum_k y_k log softmax(z / tau)_k``.

    Convention: the temperature **divides the logits** inside the softmax (``tau > 0``); no
    ``tau`` factor outside. Limits (tested): ``tau -> inf`` gives ``log K`` for every input;
    ``tau -> 0`` gives ``tau * CE -> max_k z_k - z_y`` (a hinge without margin), i.e. the
    loss itself grows like ``(max_k z_k - z_y) / tau`` on misclassified points and vanishes on
    correctly classified ones.

    Parameters
    ----------
    logits : (n, K); targets : (n,) integer labels or (n, K) soft targets
    tau : temperature > 0 (finite)
    reduction : "mean" | "sum" | "none"

    Examples
    --------
    >>> import torch, math
    >>> from lossviz.losses import tempered_cross_entropy
    >>> z = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    >>> abs(float(tempered_cross_entropy(z, torch.tensor([1]), tau=1e8)) - math.log(3)) < 1e-7
    True
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits)
    tau = check_temperature(tau)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    lp = torch.log_softmax(logits.to(cd) / tau, dim=1)
    loss = -(one_hot_like(targets, lp, cd) * lp).sum(dim=1)
    return reduce(loss, reduction).to(logits.dtype)


# ----------------------------------------------------------------------------- comp-sum


def _check_q(q: Any) -> float:
    return check_float(q, "q", minimum=0.0, maximum=1.0)


def comp_sum(logits: Any, targets: Any, q: float = 0.0, *, reduction: str = "mean") -> torch.Tensor:
    """The comp-sum loss ``Phi^q(sum_{k != y} exp(z_k - z_y))`` (Mao, Mohri, Zhong 2023).

    With ``u = sum_{k != y} exp(z_k - z_y)`` and ``p_y = softmax(z)_y = 1 / (1 + u)``:

    * ``q = 0``: ``Phi(u) = log(1 + u) = -log p_y`` (logistic loss / cross-entropy);
    * ``0 < q < 1``: ``Phi(u) = (1 - (1 + u)^{-q}) / q = (1 - p_y^q) / q`` (generalized
      cross-entropy, Zhang & Sabuncu 2018);
    * ``q = 1``: ``Phi(u) = 1 - p_y`` (mean absolute error; its sum over all K labels is the
      constant ``K - 1``).

    The paper indexes the family by ``tau`` with ``Phi^tau``; here ``q = tau - 1`` so that
    ``q`` is the GCE exponent (``tau = 1`` CE, ``tau = 1.5`` GCE with ``q = 0.5``, ``tau = 2``
    MAE). ``(1 - p_y^q) / q`` is evaluated as ``-expm1(q log p_y) / q`` with ``log p_y`` from
    ``log_softmax``: the naive form loses all digits for small ``q`` in float32. It tends to CE
    as ``q -> 0`` with ``Phi^q - CE = -q CE^2 / 2 + O(q^2)`` (tested).

    Integer or soft targets (soft: ``sum_k t_k Phi^q`` of each label).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import comp_sum
    >>> z, y = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])
    >>> p = float(torch.softmax(z, 1)[0, 0])
    >>> abs(float(comp_sum(z, y, q=1.0)) - (1 - p)) < 1e-6
    True
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits)
    q = _check_q(q)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    lp = torch.log_softmax(logits.to(cd), dim=1)
    per_class = -lp if q == 0 else -torch.expm1(q * lp) / q
    loss = (one_hot_like(targets, lp, cd) * per_class).sum(dim=1)
    return reduce(loss, reduction).to(logits.dtype)


def _comp_sum_T(t: np.ndarray, q: float, num_classes: int) -> np.ndarray:
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if q == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(t > 0, (1 + t) * np.log1p(t), 0.0)
            b = np.where(t < 1, (1 - t) * np.log1p(-t), 0.0)
        return (a + b) / 2
    if q == 1:
        return t / num_classes
    r = 1.0 / (1.0 - q)
    with np.errstate(divide="ignore"):
        log_mean = np.logaddexp(r * np.log1p(t), r * np.log1p(-t)) - np.log(2.0)
    return np.expm1((1 - q) * log_mean) / (q * num_classes**q)


@dataclass(frozen=True, repr=False)
class CompSumBound(Result):
    """H-consistency bound of a comp-sum loss: ``excess 0-1 error <= Gamma_q(excess Phi^q error)``.

    ``t`` is the 0-1 excess error grid, ``T`` the bound function ``T_q(t)`` (surrogate excess error
    that forces 0-1 excess error ``t``), ``eps`` / ``gamma`` the inverse ``Gamma_q = T_q^{-1}``.
    """

    q: float
    num_classes: int
    t: np.ndarray
    T: np.ndarray
    eps: np.ndarray
    gamma: np.ndarray


def comp_sum_bound(q: float, num_classes: int, t: Any = None) -> CompSumBound:
    """The H-consistency bound functions of the comp-sum losses (Mao, Mohri, Zhong 2023, Thm 3.1).

    For complete hypothesis sets and zero minimizability gaps the paper proves
    ``R_01(h) - R*_01 <= Gamma_q(R_{Phi^q}(h) - R*_{Phi^q})`` with ``Gamma_q = T_q^{-1}`` and, in our
    ``q = tau - 1`` indexing (``n`` = number of classes, ``t`` in [0, 1]):

    * ``q = 0`` (CE): ``T(t) = (1+t)/2 log(1+t) + (1-t)/2 log(1-t)``  (so ``Gamma(e) ~ sqrt(2 e)``);
    * ``0 < q < 1``: ``T(t) = [(((1+t)^{1/(1-q)} + (1-t)^{1/(1-q)}) / 2)^{1-q} - 1] / (q n^q)``;
    * ``q = 1`` (MAE): ``T(t) = t / n`` (linear, but the slope ``1/n`` worsens with ``n``).

    The branches are continuous in ``q`` (tested). ``Gamma`` is computed by scipy's ``brentq``.

    Returns
    -------
    CompSumBound with ``t``, ``T(t)`` and ``eps`` (a grid up to ``T(1)``) with ``gamma(eps)``.

    Examples
    --------
    >>> from lossviz.losses import comp_sum_bound
    >>> b = comp_sum_bound(0.0, 10)
    >>> round(float(b.T[-1]), 4)   # T(1) = log 2 for CE
    0.6931
    """
    q = _check_q(q)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    t = np.linspace(0.0, 1.0, 201) if t is None else np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or np.any(t < 0) or np.any(t > 1) or not np.all(np.isfinite(t)):
        raise ValueError("`t` must be a 1-D array of 0-1 excess errors in [0, 1]")
    T = _comp_sum_T(t, q, num_classes)
    eps = np.linspace(0.0, float(_comp_sum_T(np.array([1.0]), q, num_classes)[0]), len(t))
    gamma = comp_sum_bound_inverse(eps, q, num_classes)
    return CompSumBound(q=q, num_classes=num_classes, t=t, T=T, eps=eps, gamma=gamma)


def comp_sum_bound_inverse(eps: Any, q: float, num_classes: int) -> np.ndarray:
    """``Gamma_q(eps) = T_q^{-1}(eps)`` (1 beyond ``T_q(1)``), by ``scipy.optimize.brentq``.

    Examples
    --------
    >>> from lossviz.losses import comp_sum_bound_inverse
    >>> comp_sum_bound_inverse([0.01], 1.0, 10)   # MAE: Gamma(eps) = K eps
    array([0.1])
    """
    q = _check_q(q)
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    eps = np.atleast_1d(np.asarray(eps, dtype=np.float64))
    top = float(_comp_sum_T(np.array([1.0]), q, num_classes)[0])
    out = np.empty_like(eps)
    for i, e in enumerate(eps):
        if e <= 0:
            out[i] = 0.0
        elif e >= top:
            out[i] = 1.0
        else:
            out[i] = brentq(
                lambda s, e=e: float(_comp_sum_T(np.array([s]), q, num_classes)[0]) - e, 0.0, 1.0, xtol=1e-14
            )
    return out


# ----------------------------------------------------------------------------- LDR family


def _check_margin(margin: Any) -> float:
    return check_float(margin, "margin", minimum=0.0)


def _ldr_scores(logits: torch.Tensor, normalize: bool) -> torch.Tensor:
    if not normalize:
        return logits
    s = F.softplus(logits)
    # rows whose scores all underflow to 0 give a = margin * [k != y] (finite, zero gradient)
    return s / s.mean(dim=1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)


def _ldr_a(logits, targets, margin, normalize):
    """``a_k = margin * [k != y] + f_k - f_y`` (integer targets)."""
    f = _ldr_scores(logits, normalize)
    a = _margins(f, targets)
    return a + margin * (1 - F.one_hot(targets, f.shape[1]).to(f.dtype))


def crammer_singer_hinge(
    logits: Any, targets: Any, *, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Crammer-Singer multi-class hinge ``max(0, max_{k != y} (z_k - z_y + margin))``.

    The ``tau -> 0`` limit of :func:`ldr_kl`.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import crammer_singer_hinge
    >>> float(crammer_singer_hinge(torch.tensor([[2.0, 1.5, 0.0]]), torch.tensor([0])))   # 1.5 - 2 + 1
    0.5
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    margin = _check_margin(margin)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    loss = _ldr_a(logits.to(cd), targets, margin, False).amax(dim=1)
    return reduce(loss, reduction).to(logits.dtype)


def ldr_kl(
    logits: Any,
    targets: Any,
    tau: float = 1.0,
    *,
    margin: float = 1.0,
    normalize: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """LDR-KL loss (Zhu, Ying, Yang 2023): the worst case over label distributions with a KL penalty.

    .. math::

        \\psi_\\tau(z, y) = \\max_{p \\in \\Delta_K} \\sum_k p_k a_k - \\tau\\,\\mathrm{KL}(p \\,\\|\\, 1/K)
                        = \\tau \\log \\frac1K \\sum_k \\exp(a_k / \\tau),
        \\qquad a_k = c\\,[k \\ne y] + z_k - z_y .

    Limits (tested in float64): ``tau -> 0`` gives the Crammer-Singer hinge ``max_k a_k`` with
    ``CS - tau log K <= psi_tau <= CS`` (the ``1/K`` prior puts LDR-KL *below* the hinge);
    ``tau -> inf`` gives the average ``mean_k a_k = mean_k z_k - z_y + c (K-1)/K`` (see
    :func:`ldr_kl_limit`). With ``c = 0`` and ``tau = 1`` it is CE minus ``log K``.

    Parameters
    ----------
    tau : the KL weight (the paper's lambda), > 0
    margin : ``c`` >= 0, the margin added to every wrong class (paper default 1; the authors'
        noisy-label code uses 0.1 with ``normalize=True``)
    normalize : the authors' training form: scores ``softplus(z) / mean_k softplus(z)_k``
        replace the raw logits (bounded scores; no longer shift invariant)

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import ldr_kl, crammer_singer_hinge
    >>> z, y = torch.tensor([[1.0, 0.5, -2.0]], dtype=torch.float64), torch.tensor([0])
    >>> float(crammer_singer_hinge(z, y) - ldr_kl(z, y, tau=1e-4)) < 1e-4 * 1.1
    True
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    tau = check_temperature(tau)
    margin = _check_margin(margin)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    a = _ldr_a(logits.to(cd), targets, margin, normalize)
    k = a.shape[1]
    loss = tau * (torch.logsumexp(a / tau, dim=1) - math.log(k))
    return reduce(loss, reduction).to(logits.dtype)


def ldr_kl_limit(
    logits: Any, targets: Any, which: str = "zero", *, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Closed-form limits of :func:`ldr_kl`: ``which="zero"`` (Crammer-Singer) or ``"inf"`` (mean_k a_k).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import ldr_kl_limit
    >>> z, y = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    >>> float(ldr_kl_limit(z, y, "inf")), float(ldr_kl_limit(z, y, "zero"))
    (-1.0, 0.0)
    """
    if which == "zero":
        return crammer_singer_hinge(logits, targets, margin=margin, reduction=reduction)
    if which != "inf":
        raise ValueError(f"`which` must be 'zero' or 'inf', got {which!r}")
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    margin = _check_margin(margin)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    loss = _ldr_a(logits.to(cd), targets, margin, False).mean(dim=1)
    return reduce(loss, reduction).to(logits.dtype)


def aldr_kl_lambdas(
    logits: Any,
    targets: Any,
    tau0: float = 1.0,
    *,
    alpha: float = 2.0,
    margin: float = 1.0,
    normalize: bool = False,
    iters: int = 50,
) -> torch.Tensor:
    """Per-instance temperatures of the adaptive ALDR-KL loss (no gradient).

    ALDR-KL (Zhu, Ying, Yang 2023) gives every instance its own KL weight ``lambda``, tied to
    ``tau0`` by a quadratic penalty:

    .. math::

        h(\\lambda) = \\lambda \\log \\frac1K \\sum_k e^{a_k/\\lambda}
                     - \\frac{\\alpha \\log K}{2\\tau_0} (\\lambda - \\tau_0)^2 ,

    and uses the stationary point ``h'(lambda) = 0``, which is the authors' update
    ``lambda = tau0 (1 - KL(p_lambda || 1/K) / (alpha log K))`` with ``p_lambda = softmax(a / lambda)``.
    We iterate that fixed point ``iters`` times from ``tau0`` (the authors' code does one step
    per visit of the sample, carrying ``lambda`` across epochs). The stationary point need not
    be the maximiser of ``h`` (we test stationarity, not optimality). ``alpha > 1`` keeps ``lambda >= tau0 (1 - 1/alpha) > 0``. Instances whose
    label distribution is confident/peaked (large KL, e.g. likely noisy labels with a large
    wrong-class score) get *smaller* temperatures.
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    tau0 = check_temperature(tau0, "tau0")
    alpha = check_float(alpha, "alpha", minimum=1.0)
    if alpha <= 1.0:
        raise ValueError(f"`alpha` must be > 1, got {alpha}")
    margin = _check_margin(margin)
    iters = check_int(iters, "iters", minimum=1)
    cd = compute_dtype(logits.dtype)
    with torch.no_grad():
        a = _ldr_a(logits.detach().to(cd), targets, margin, normalize)
        k = a.shape[1]
        lam = torch.full((a.shape[0],), tau0, dtype=cd, device=a.device)
        for _ in range(iters):
            logp = torch.log_softmax(a / lam[:, None], dim=1)
            kl = (logp.exp() * (logp + math.log(k))).sum(dim=1)
            lam = tau0 * (1 - kl / (alpha * math.log(k)))
    return lam


def aldr_kl(
    logits: Any,
    targets: Any,
    tau0: float = 1.0,
    *,
    alpha: float = 2.0,
    margin: float = 1.0,
    normalize: bool = False,
    iters: int = 50,
    reduction: str = "mean",
) -> torch.Tensor:
    """Adaptive LDR-KL: :func:`ldr_kl` at the per-instance temperature of :func:`aldr_kl_lambdas`.

    Returns ``lambda_i LDR(a_i; lambda_i) - alpha log K / (2 tau0) (lambda_i - tau0)^2``; the
    temperatures are treated as constants in the backward pass (envelope theorem at the
    stationary point).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import aldr_kl
    >>> z = torch.randn(8, 5, dtype=torch.float64)
    >>> aldr_kl(z, torch.arange(8) % 5, tau0=1.0, alpha=2.0, reduction="none").shape
    torch.Size([8])
    """
    reduction = check_reduction(reduction)
    lam = aldr_kl_lambdas(logits, targets, tau0, alpha=alpha, margin=margin, normalize=normalize, iters=iters)
    cd = compute_dtype(logits.dtype)
    a = _ldr_a(logits.to(cd), targets, margin, normalize)
    k = a.shape[1]
    loss = lam * (torch.logsumexp(a / lam[:, None], dim=1) - math.log(k))
    loss = loss - alpha * math.log(k) / (2 * float(tau0)) * (lam - float(tau0)) ** 2
    return reduce(loss, reduction).to(logits.dtype)


# ----------------------------------------------------------------------------- Z-loss


def _check_ab(a: Any, b: Any) -> tuple[float, float]:
    return check_float(a, "a", positive=True), check_float(b, "b")


def z_scores(logits: Any) -> torch.Tensor:
    """Row-wise standardised logits ``(z - mean_k z) / std_k z`` (population std; 0 for constant rows).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import z_scores
    >>> z_scores(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[-1.2247,  0.0000,  1.2247]])
    """
    logits = check_logits(logits)
    cd = compute_dtype(logits.dtype)
    z = logits.to(cd)
    mu = z.mean(dim=1, keepdim=True)
    var = (z - mu).pow(2).mean(dim=1, keepdim=True)
    return _standardize(z - mu, var).to(logits.dtype)


def _standardize(centred: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``centred / sqrt(var)``; rows with ``var == 0`` (constant logits) give 0 with zero gradient."""
    ok = var > 0
    sd = torch.where(ok, var, torch.ones_like(var)).sqrt()
    return torch.where(ok, centred / sd, torch.zeros_like(centred))


def _z_loss_from_zc(zc: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return F.softplus(a * (b - zc)) / a


def z_loss(
    logits: Any, targets: Any, *, a: float = 1.0, b: float = 2.0, reduction: str = "mean"
) -> torch.Tensor:
    """Z-loss (de Brebisson & Vincent 2016): ``L = softplus(a (b - z_y)) / a``, ``z = (o - mean o) / std o``.

    ``mean``/``std`` are over the K logits of a sample (population std). Invariant to shifting a
    row of logits by a constant and to scaling all logits by ``s > 0`` (tested with hypothesis).
    ``a > 0`` sets the sharpness and ``b`` the target standardised score; since
    ``z_y <= sqrt(K - 1)``, a ``b`` beyond ``sqrt(K - 1)`` never lets the loss saturate.
    The paper tunes ``a`` and ``b`` per task; our defaults ``a = 1, b = 2`` are a neutral choice.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import z_loss
    >>> z, y = torch.randn(4, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    >>> bool(torch.allclose(z_loss(z, y), z_loss(7 * z + 3, y)))   # shift and scale invariant
    True
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    a, b = _check_ab(a, b)
    reduction = check_reduction(reduction)
    cd = compute_dtype(logits.dtype)
    z = z_scores(logits.to(cd))
    loss = _z_loss_from_zc(z.gather(1, targets[:, None]).squeeze(1), a, b)
    return reduce(loss, reduction).to(logits.dtype)


@dataclass(frozen=True, repr=False)
class SphericalStats(Result):
    """Class-count-free summaries of a linear output layer ``o = W h + bias`` (W: K x d).

    ``colsum = 1^T W`` (d,), ``gram = W^T W`` (d, d), ``wtb = W^T bias`` (d,), ``bsum = sum bias``,
    ``bsq = ||bias||^2``, ``num_classes = K``.
    """

    colsum: torch.Tensor
    gram: torch.Tensor
    wtb: torch.Tensor
    bsum: torch.Tensor
    bsq: torch.Tensor
    num_classes: int


def spherical_stats(weight: Any, bias: Any = None) -> SphericalStats:
    """Precompute :class:`SphericalStats` of ``W`` (K, d) and optional ``bias`` (K,) (cost O(K d^2), once)."""
    weight = check_tensor(weight, "weight", ndim=2, floating=True)
    k, d = weight.shape
    if bias is None:
        bias = torch.zeros(k, dtype=weight.dtype, device=weight.device)
    bias = check_tensor(bias, "bias", ndim=1, floating=True)
    if bias.shape[0] != k:
        raise ValueError(f"`bias` must have K={k} entries, got {bias.shape[0]}")
    return SphericalStats(
        colsum=weight.sum(0),
        gram=weight.T @ weight,
        wtb=weight.T @ bias,
        bsum=bias.sum(),
        bsq=bias @ bias,
        num_classes=k,
    )


def z_loss_spherical(
    h: Any,
    weight: Any,
    targets: Any,
    *,
    bias: Any = None,
    stats: SphericalStats | None = None,
    a: float = 1.0,
    b: float = 2.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Z-loss of ``o = h W^T + bias`` computed without forming the K outputs (spherical family).

    The Z-loss depends on ``o`` only through ``o_y``, ``sum_k o_k`` and ``sum_k o_k^2``, and for a
    linear layer ``sum_k o_k = (1^T W) h + sum bias`` and
    ``sum_k o_k^2 = h^T (W^T W) h + 2 (W^T bias) . h + ||bias||^2``. With the ``d x d`` summaries
    of :func:`spherical_stats` precomputed, each sample costs O(d^2), independent of K; the
    gradient with respect to ``h`` (and, through the summaries, to ``W``) follows by autograd
    and equals the naive one (tested to 1e-10 in float64).

    Parameters
    ----------
    h : (n, d) features; weight : (K, d) (as ``nn.Linear.weight``); targets : (n,)
    bias : (K,) or None; stats : precomputed :class:`SphericalStats` (else computed here)

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import spherical_stats, z_loss, z_loss_spherical
    >>> W, h = torch.randn(1000, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    >>> y = torch.tensor([1, 20, 300, 999])
    >>> stats = spherical_stats(W)   # once per weight matrix
    >>> bool(torch.allclose(z_loss_spherical(h, W, y, stats=stats), z_loss(h @ W.T, y)))
    True
    """
    h = check_tensor(h, "h", ndim=2, floating=True)
    # no O(K d) finiteness scan of W here: the cost must not grow with K (spherical_stats checks it)
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=False)
    if weight.shape[1] != h.shape[1]:
        raise ValueError(f"`weight` must have d={h.shape[1]} columns, got shape {tuple(weight.shape)}")
    k = weight.shape[0]
    targets = check_targets(targets, torch.empty(h.shape[0], k, device="meta"), soft=False)
    a, b = _check_ab(a, b)
    reduction = check_reduction(reduction)
    if stats is None:
        stats = spherical_stats(weight, bias)
    elif not isinstance(stats, SphericalStats) or stats.num_classes != k:
        raise ValueError("`stats` must be the SphericalStats of this `weight`")
    bias_y = 0.0 if bias is None else bias[targets]
    o_y = (h * weight[targets]).sum(1) + bias_y
    s1 = h @ stats.colsum + stats.bsum
    s2 = ((h @ stats.gram) * h).sum(1) + 2 * (h @ stats.wtb) + stats.bsq
    mu = s1 / k
    var = (s2 / k - mu**2).clamp_min(0)
    zc = _standardize(o_y - mu, var)
    return reduce(_z_loss_from_zc(zc, a, b), reduction)
