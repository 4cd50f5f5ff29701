r"""The Label Distributionally Robust (LDR) losses: LDR-KL, its adaptive ALDR-KL, and the
Crammer-Singer hinge (the ``tau -> 0`` limit).

Paper: Dixian Zhu, Yiming Ying, Tianbao Yang, "Label Distributionally Robust Losses for
Multi-class Classification: Consistency, Robustness and Adaptivity", ICML 2023, arXiv:2112.14869.

With ``a_k = c [k != y] + z_k - z_y``,
``psi_tau(z, y) = max_p sum_k p_k a_k - tau KL(p || 1/K) = tau log mean_k exp(a_k / tau)``.

Every loss here reads its inputs as ``F.cross_entropy`` does: logits ``(n, K)`` or
``(n, K, d1, ...)``, integer labels of any integer dtype ``(n,)`` / ``(n, d1, ...)``; labels
equal to ``ignore_index`` (default -100) contribute 0 and are left out of the mean; NaN logits
propagate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_float, check_int
from ._common import (
    check_ignore_index,
    check_reduction,
    check_temperature,
    compute_dtype,
    finish,
    prepare,
)

__all__ = ["crammer_singer_hinge", "ldr_kl", "ldr_kl_limit", "aldr_kl", "aldr_kl_lambdas"]


def _margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``z_k - z_y`` per row (integer targets)."""
    return logits - logits.gather(1, targets[:, None])


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return value


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


def _ldr_rows(logits, targets, margin, normalize, reduction, ignore_index):
    """Validate the common arguments; the rows ``a`` (compute dtype) and what :func:`finish` needs."""
    margin = _check_margin(margin)
    reduction = check_reduction(reduction)
    normalize = _check_bool(normalize, "normalize")
    z, t, valid, shape, logits = prepare(
        logits, targets, soft=False, ignore_index=check_ignore_index(ignore_index)
    )
    a = _ldr_a(z.to(compute_dtype(logits.dtype)), t, margin, normalize)
    return a, (valid, shape, reduction, logits.dtype)


def crammer_singer_hinge(
    logits: Any, targets: Any, *, margin: float = 1.0, reduction: str = "mean", ignore_index: int = -100
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
    a, rest = _ldr_rows(logits, targets, margin, False, reduction, ignore_index)
    return finish(a.amax(dim=1), *rest)


def ldr_kl(
    logits: Any,
    targets: Any,
    tau: float = 1.0,
    *,
    margin: float = 1.0,
    normalize: bool = False,
    reduction: str = "mean",
    ignore_index: int = -100,
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
    tau = check_temperature(tau)
    a, rest = _ldr_rows(logits, targets, margin, normalize, reduction, ignore_index)
    loss = tau * (torch.logsumexp(a / tau, dim=1) - math.log(a.shape[1]))
    return finish(loss, *rest)


def ldr_kl_limit(
    logits: Any,
    targets: Any,
    which: str = "zero",
    *,
    margin: float = 1.0,
    reduction: str = "mean",
    ignore_index: int = -100,
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
        return crammer_singer_hinge(
            logits, targets, margin=margin, reduction=reduction, ignore_index=ignore_index
        )
    if which != "inf":
        raise ValueError(f"`which` must be 'zero' or 'inf', got {which!r}")
    a, rest = _ldr_rows(logits, targets, margin, False, reduction, ignore_index)
    return finish(a.mean(dim=1), *rest)


def aldr_kl_lambdas(
    logits: Any,
    targets: Any,
    tau0: float = 1.0,
    *,
    alpha: float = 2.0,
    margin: float = 1.0,
    normalize: bool = False,
    iters: int = 50,
    ignore_index: int = -100,
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
    z, t, valid, shape, logits, tau0, alpha, margin, normalize, iters = _aldr_args(
        logits, targets, tau0, alpha, margin, normalize, iters, ignore_index
    )
    lam = _aldr_lambdas(z, t, tau0, alpha, margin, normalize, iters)
    if valid is not None:
        lam = torch.where(valid, lam, torch.full_like(lam, tau0))
    return lam.reshape(shape)


def _aldr_args(logits, targets, tau0, alpha, margin, normalize, iters, ignore_index):
    tau0 = check_temperature(tau0, "tau0")
    if isinstance(tau0, torch.Tensor):
        tau0 = float(tau0.detach())
    alpha = check_float(alpha, "alpha", minimum=1.0)
    if alpha <= 1.0:
        raise ValueError(f"`alpha` must be > 1, got {alpha}")
    margin = _check_margin(margin)
    iters = check_int(iters, "iters", minimum=1)
    normalize = _check_bool(normalize, "normalize")
    z, t, valid, shape, logits = prepare(
        logits, targets, soft=False, ignore_index=check_ignore_index(ignore_index)
    )
    return z, t, valid, shape, logits, tau0, alpha, margin, normalize, iters


def _aldr_lambdas(z, t, tau0, alpha, margin, normalize, iters):
    cd = compute_dtype(z.dtype)
    with torch.no_grad():
        a = _ldr_a(z.detach().to(cd), t, margin, normalize)
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
    ignore_index: int = -100,
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
    z, t, valid, shape, logits, tau0, alpha, margin, normalize, iters = _aldr_args(
        logits, targets, tau0, alpha, margin, normalize, iters, ignore_index
    )
    lam = _aldr_lambdas(z, t, tau0, alpha, margin, normalize, iters)
    cd = compute_dtype(logits.dtype)
    a = _ldr_a(z.to(cd), t, margin, normalize)
    k = a.shape[1]
    loss = lam * (torch.logsumexp(a / lam[:, None], dim=1) - math.log(k))
    loss = loss - alpha * math.log(k) / (2 * tau0) * (lam - tau0) ** 2
    return finish(loss, valid, shape, reduction, logits.dtype)
