r"""The comp-sum loss family and its H-consistency bounds.

Paper: Anqi Mao, Mehryar Mohri, Yutao Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis
and Applications", ICML 2023, arXiv:2304.07288.

With ``u = sum_{k != y} exp(z_k - z_y)`` and ``p_y = 1 / (1 + u)``, the comp-sum loss is
``Phi^q(u)``: ``q = 0`` cross-entropy ``-log p_y``, ``0 < q < 1`` generalized cross-entropy
``(1 - p_y^q) / q``, ``q = 1`` mean absolute error ``1 - p_y``. The paper indexes the family by
``tau = q + 1``. :func:`comp_sum_bound` gives the bound function ``Gamma_q`` of the paper's
Theorem 3.1: ``R_01(h) - R*_01 <= Gamma_q(R_Phi(h) - R*_Phi)`` (complete hypothesis sets, zero
minimizability gaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._result import Result
from .._validate import check_float, check_int
from ._common import (
    check_ignore_index,
    check_pair,
    check_reduction,
    compute_dtype,
    cross_entropy,
    finish,
    pick,
    prepare,
)

__all__ = [
    "comp_sum",
    "comp_sum_bound",
    "comp_sum_bound_inverse",
    "CompSumBound",
    "comp_sum_conditional_regret",
]


def _check_q(q: Any) -> float:
    """``q = tau - 1`` of the paper's ``Phi^tau``, ``tau >= 0``: so ``q >= -1`` (finite)."""
    return check_float(q, "q", minimum=-1.0)


def comp_sum(
    logits: Any, targets: Any, q: float = 0.0, *, reduction: str = "mean", ignore_index: int = -100
) -> torch.Tensor:
    """The comp-sum loss ``Phi^q(sum_{k != y} exp(z_k - z_y))`` (Mao, Mohri, Zhong 2023).

    With ``u = sum_{k != y} exp(z_k - z_y)`` and ``p_y = softmax(z)_y = 1 / (1 + u)``:

    * ``q = -1``: ``Phi(u) = u = 1 / p_y - 1`` (sum-exponential loss; ``-1 < q < 0`` in between);
    * ``q = 0``: ``Phi(u) = log(1 + u) = -log p_y`` (logistic loss / cross-entropy);
    * ``0 < q < 1``: ``Phi(u) = (1 - (1 + u)^{-q}) / q = (1 - p_y^q) / q`` (generalized
      cross-entropy, Zhang & Sabuncu 2018);
    * ``q = 1``: ``Phi(u) = 1 - p_y`` (mean absolute error; its sum over all K labels is the
      constant ``K - 1``).

    Any ``q >= -1`` (the paper's ``tau >= 0``); ``q > 1`` continues the family past MAE.
    The paper indexes the family by ``tau`` with ``Phi^tau``; here ``q = tau - 1`` so that
    ``q`` is the GCE exponent (``tau = 1`` CE, ``tau = 1.5`` GCE with ``q = 0.5``, ``tau = 2``
    MAE). ``(1 - p_y^q) / q`` is evaluated as ``-expm1(q log p_y) / q`` with ``log p_y`` from
    ``log_softmax``: the naive form loses all digits for small ``q`` in float32. It tends to CE
    as ``q -> 0`` with ``Phi^q - CE = -q CE^2 / 2 + O(q^2)`` (tested).

    Integer or soft targets (soft: ``sum_k t_k Phi^q`` of each label). Logits ``(n, K)`` or
    ``(n, K, d1, ...)`` and labels (any integer dtype) ``(n, d1, ...)`` as ``F.cross_entropy``;
    labels equal to ``ignore_index`` (default -100) contribute 0 and are left out of the mean;
    NaN logits propagate. ``q = 0`` calls ``F.cross_entropy``.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import comp_sum
    >>> z, y = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])
    >>> p = float(torch.softmax(z, 1)[0, 0])
    >>> abs(float(comp_sum(z, y, q=1.0)) - (1 - p)) < 1e-6
    True
    """
    q = _check_q(q)
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    if q == 0:
        logits, targets, _ = check_pair(logits, targets)
        return cross_entropy(logits, targets, 1.0, reduction=reduction, ignore_index=ignore_index)
    z, t, valid, shape, logits = prepare(logits, targets, ignore_index=ignore_index)
    cd = compute_dtype(logits.dtype)
    lp = torch.log_softmax(z.to(cd), dim=1)
    loss = pick(-torch.expm1(q * lp) / q, t)
    return finish(loss, valid, shape, reduction, logits.dtype)


def _comp_sum_T(t: np.ndarray, q: float, num_classes: int) -> np.ndarray:
    """The bound function ``T_q(t)`` of Mao, Mohri, Zhong (2023), Theorem 3.1, with ``q = tau - 1``."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if q == 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(t > 0, (1 + t) * np.log1p(t), 0.0)
            b = np.where(t < 1, (1 - t) * np.log1p(-t), 0.0)
        return (a + b) / 2
    if q >= 1:
        return t / (q * num_classes**q)
    r = 1.0 / (1.0 - q)
    with np.errstate(divide="ignore"):
        log_mean = np.logaddexp(r * np.log1p(t), r * np.log1p(-t)) - np.log(2.0)
    if q < 0:  # tau in [0, 1): independent of the number of classes
        return 2.0 ** (-q) * (-np.expm1((1 - q) * log_mean)) / (-q)
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

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Draw with :func:`lossviz.losses.plotting.plot_comp_sum_bounds`."""
        from .plotting import plot_comp_sum_bounds

        return plot_comp_sum_bounds(self, backend=backend, ax=ax, **kw)


def comp_sum_bound(q: float, num_classes: int, t: Any = None) -> CompSumBound:
    r"""The H-consistency bound functions of the comp-sum losses (Mao, Mohri, Zhong 2023, Thm 3.1).

    For complete hypothesis sets and **zero minimizability gaps** the paper proves
    ``R_01(h) - R*_01 <= Gamma_q(R_{Phi^q}(h) - R*_{Phi^q})`` with ``Gamma_q = T_q^{-1}``. (In
    general both sides carry a minimizability gap ``M = R* - E_x[inf_h C(h, x)]``; they vanish
    when the hypothesis set contains the Bayes scores, and this function drops them.) In our
    ``q = tau - 1`` indexing (``n`` = number of classes, ``t`` in [0, 1],
    ``M_r(t) = ((1+t)^r + (1-t)^r) / 2`` with ``r = 1 / (1 - q)``):

    * ``-1 <= q < 0`` (``tau`` in [0, 1), e.g. ``q = -1`` the sum-exponential loss):
      ``T(t) = 2^{-q} (1 - M_r(t)^{1-q}) / (-q)`` (independent of ``n``);
    * ``q = 0`` (CE): ``T(t) = (1+t)/2 log(1+t) + (1-t)/2 log(1-t)``  (so ``Gamma(e) ~ sqrt(2 e)``);
    * ``0 < q < 1`` (GCE): ``T(t) = (M_r(t)^{1-q} - 1) / (q n^q)``;
    * ``q >= 1`` (``q = 1`` MAE): ``T(t) = t / (q n^q)`` (linear, the slope worsens with ``n``).

    The branches are continuous in ``q`` (tested). The bound holds pointwise for the conditional
    regrets, ``T(Delta_01(h, x)) <= Delta_Phi(h, x)``, which the tests check numerically against
    the exact conditional regret for ``n = 2, 3, 5, 10``: it is exact (attained) for ``n = 2`` and
    valid but loose for ``n > 2`` when ``q > 0`` (about 3x at ``n = 10``, ``q = 0.7``).
    ``Gamma`` is computed by scipy's ``brentq``.

    Returns
    -------
    CompSumBound with ``t``, ``T(t)`` and a **log-spaced** ``eps`` grid (201 points) from ``1e-6 T(1)`` to
    ``T(1)`` with ``gamma(eps)`` (for log axes: no ``eps = 0`` point).

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
    top = float(_comp_sum_T(np.array([1.0]), q, num_classes)[0])
    eps = np.geomspace(1e-6 * top, top, 201)
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
    from scipy.optimize import brentq

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


def comp_sum_conditional_regret(p: Any, s: Any, q: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Exact conditional regrets of a prediction: ``(Delta_01, Delta_Phi)`` per row (float64).

    For a conditional label distribution ``p`` (rows on the simplex) and a prediction whose
    softmax is ``s`` (rows on the open simplex; the predicted class is ``argmax s``):

    * ``Delta_01 = max_y p_y - p_{argmax s}``;
    * ``Delta_Phi = sum_y p_y phi_q(s_y) - inf_{s'} sum_y p_y phi_q(s'_y)`` with
      ``phi_q(s) = (1 - s^q) / q`` (``-log s`` at ``q = 0``). The infimum is in closed form:
      ``s' ~ p^{1/(1-q)}`` for ``q < 1``, giving ``(1 - (sum_y p_y^{1/(1-q)})^{1-q}) / q`` (the
      entropy at ``q = 0``); for ``q >= 1`` ``phi_q`` is concave and the infimum is at a vertex,
      ``(1 - max_y p_y) / q``.

    :func:`comp_sum_bound` promises ``T_q(Delta_01) <= Delta_Phi`` for every row.

    Examples
    --------
    >>> import numpy as np
    >>> d01, dphi = comp_sum_conditional_regret(np.array([[0.7, 0.3]]), np.array([[0.4, 0.6]]), 0.0)
    >>> round(float(d01[0]), 3), bool(dphi[0] > comp_sum_bound(0.0, 2, d01).T[0])
    (0.4, True)
    """
    q = _check_q(q)
    p = np.asarray(p, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if p.ndim != 2 or p.shape != s.shape or p.shape[1] < 2:
        raise ValueError(f"`p` and `s` must both be (m, n) with n >= 2, got {p.shape} and {s.shape}")
    for name, v in (("p", p), ("s", s)):
        if not np.all(np.isfinite(v)) or np.any(v < 0) or np.any(np.abs(v.sum(1) - 1) > 1e-9):
            raise ValueError(f"`{name}` rows must be probability vectors (non-negative, summing to 1)")
    if np.any(s <= 0):
        raise ValueError("`s` must be strictly positive (a softmax)")
    rows = np.arange(len(p))
    d01 = p.max(1) - p[rows, s.argmax(1)]
    phi = -np.log(s) if q == 0 else -np.expm1(q * np.log(s)) / q
    risk = (p * phi).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if q == 0:
            best = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
        elif q >= 1:
            best = (1 - p.max(1)) / q
        else:
            best = -np.expm1((1 - q) * np.log((p ** (1 / (1 - q))).sum(1))) / q
    return d01, risk - best
