"""Sympy derivations for the temperature / loss-function track (notebooks T01, T03, T04).

* :func:`info_nce_gradient` (T01): the gradient of InfoNCE with respect to the similarities,
  ``dL/ds_j = softmax(s/tau)_j / tau`` for negatives and ``-(1 - softmax(s/tau)_p) / tau`` for the
  positive (Wang & Liu, "Understanding the Behaviour of Contrastive Loss", CVPR 2021,
  arXiv:2012.09740).
* :func:`comp_sum_family` (T04): ``Phi^q(p) = (1 - p^q) / q`` of the comp-sum losses (Mao, Mohri,
  Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis and Applications", ICML 2023,
  arXiv:2304.07288), its ``q -> 0`` limit ``-log p`` and first-order term ``-q log(p)^2 / 2``.
* :func:`z_score_max` (T05): the largest standardised score a class can reach among ``K``,
  ``sqrt(K - 1)`` (logits ``(x, 0, ..., 0)``), so a Z-loss target ``b`` above it never saturates
  (de Brebisson & Vincent, "The Z-loss: a shift and scale invariant classification loss belonging
  to the Spherical Family", 2016, arXiv:1604.08859).
* :func:`ldr_limits` (T03): the ``tau -> 0`` and ``tau -> inf`` limits of the two-class LDR-KL
  ``tau log((e^{a_1/tau} + e^{a_2/tau}) / 2)`` (Zhu, Ying, Yang, "Label Distributionally Robust
  Losses for Multi-class Classification", ICML 2023, arXiv:2112.14869).

The unit tests check each lambdified expression against :mod:`lossviz.losses`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

__all__ = [
    "z_score_max",
    "InfoNCEGradient",
    "info_nce_gradient",
    "CompSum",
    "comp_sum_family",
    "LDRLimits",
    "ldr_limits",
]


@dataclass(frozen=True)
class InfoNCEGradient:
    """InfoNCE with one positive ``s_p`` and ``m`` negatives ``s_1..s_m``, and its gradient.

    ``loss`` and ``grad`` (list: d/ds_p, then d/ds_j) are sympy expressions;
    ``weights`` are the claimed closed forms ``exp(s_j/tau) / Z / tau``; ``grad_fn(s_p, *s, tau)``
    is the lambdified gradient (numpy), ``relative_penalty_fn(*s, tau)`` the penalty over negatives
    ``|dL/ds_j| / |dL/ds_p| = exp(s_j/tau) / sum_k exp(s_k/tau)``.
    """

    symbols: tuple
    loss: sp.Expr
    grad: list
    weights: list
    grad_fn: Callable
    relative_penalty_fn: Callable


def info_nce_gradient(m: int = 3) -> InfoNCEGradient:
    """Differentiate InfoNCE with ``m`` negatives and simplify against the softmax weights."""
    tau = sp.Symbol("tau", positive=True)
    sp_ = sp.Symbol("s_p", real=True)
    s = sp.symbols(f"s_1:{m + 1}", real=True)
    z = sp.exp(sp_ / tau) + sum(sp.exp(si / tau) for si in s)
    loss = -sp.log(sp.exp(sp_ / tau) / z)
    grad = [sp.simplify(sp.diff(loss, v)) for v in (sp_, *s)]
    weights = [-(1 - sp.exp(sp_ / tau) / z) / tau] + [sp.exp(si / tau) / z / tau for si in s]
    for g, w in zip(grad, weights):
        assert sp.simplify(g - w) == 0, "InfoNCE gradient does not match the softmax weights"
    rel = [sp.simplify(grad[j + 1] / -grad[0]) for j in range(m)]
    return InfoNCEGradient(
        symbols=(sp_, *s, tau),
        loss=loss,
        grad=grad,
        weights=weights,
        grad_fn=sp.lambdify((sp_, *s, tau), grad, "numpy"),
        relative_penalty_fn=sp.lambdify((*s, tau), rel, "numpy"),
    )


@dataclass(frozen=True)
class CompSum:
    """``Phi^q(p) = (1 - p^q)/q`` with its ``q -> 0`` limit and first-order expansion in ``q``."""

    symbols: tuple
    phi: sp.Expr
    limit_q0: sp.Expr
    first_order: sp.Expr
    phi_fn: Callable
    first_order_fn: Callable


def comp_sum_family() -> CompSum:
    """Derive the comp-sum family in terms of the true-class probability ``p``."""
    p = sp.Symbol("p", positive=True)
    q = sp.Symbol("q", positive=True)
    phi = (1 - p**q) / q
    lim = sp.limit(phi, q, 0)
    series = sp.series(phi, q, 0, 2).removeO()
    first = sp.simplify(series - lim)
    return CompSum(
        symbols=(p, q),
        phi=phi,
        limit_q0=sp.simplify(lim),
        first_order=sp.simplify(first / q),
        phi_fn=sp.lambdify((p, q), phi, "numpy"),
        first_order_fn=sp.lambdify(p, sp.simplify(first / q), "numpy"),
    )


@dataclass(frozen=True)
class LDRLimits:
    """Two-class LDR-KL ``tau log((e^{a1/tau} + e^{a2/tau})/2)`` and its limits in ``tau``."""

    symbols: tuple
    loss: sp.Expr
    limit_zero: sp.Expr
    limit_inf: sp.Expr
    loss_fn: Callable


def ldr_limits() -> LDRLimits:
    """Limits of the two-class LDR-KL for ``a1 > a2`` (``tau -> 0``: max; ``tau -> inf``: mean)."""
    tau = sp.Symbol("tau", positive=True)
    a2 = sp.Symbol("a_2", real=True)
    d = sp.Symbol("d", positive=True)  # a1 = a2 + d > a2
    a1 = a2 + d
    loss = tau * sp.log((sp.exp(a1 / tau) + sp.exp(a2 / tau)) / 2)
    # factor out the max so sympy sees the tau -> 0 limit: tau log((1 + e^{-d/tau})/2) + a1
    stable = a1 + tau * sp.log((1 + sp.exp(-d / tau)) / 2)
    assert sp.simplify(sp.expand_log(sp.exp(loss / tau) - sp.exp(stable / tau), force=True)) == 0
    lim0 = sp.limit(stable - a1, tau, 0, "+") + a1
    liminf = sp.limit(stable, tau, sp.oo)
    a1s = sp.Symbol("a_1", real=True)
    # the numeric loss uses the max-shifted form for any order of a1, a2: exp never overflows
    # (the plain form gives inf/nan for a/tau > ~709, i.e. at small tau)
    m = sp.Max(a1s, a2)
    shifted = m + tau * sp.log((sp.exp((a1s - m) / tau) + sp.exp((a2 - m) / tau)) / 2)
    return LDRLimits(
        symbols=(a1s, a2, tau),
        loss=loss.subs(d, a1s - a2),
        limit_zero=sp.simplify(lim0.subs(d, a1s - a2)),
        limit_inf=sp.simplify(liminf.subs(d, a1s - a2)),
        loss_fn=sp.lambdify((a1s, a2, tau), shifted, "numpy"),
    )


def z_score_max() -> tuple[sp.Symbol, sp.Expr]:
    """``(K, z_max)``: the z-score of the one nonzero logit of ``(x, 0, ..., 0)``, ``x > 0``.

    That is the maximum over all logit vectors (by Cauchy-Schwarz), ``sqrt(K - 1)``.
    """
    k = sp.Symbol("K", positive=True, integer=True)
    x = sp.Symbol("x", positive=True)
    mean = x / k
    var = (x - mean) ** 2 / k + (k - 1) * mean**2 / k
    z = sp.simplify((x - mean) / sp.sqrt(sp.factor(var)))
    return k, sp.simplify(sp.powdenest(z, force=True))
