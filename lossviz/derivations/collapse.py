"""Sympy derivations for the neural-collapse track (notebook N01).

* :func:`etf_cosine`: ``K`` unit vectors summing to zero with equal pairwise cosine ``c`` force
  ``c = -1/(K-1)``.
* :func:`imbalanced_ufm`: the per-class optimum of the bias-free MSE unconstrained-feature model
  (Dang et al., "Neural Collapse in Deep Linear Networks: From Balanced to Imbalanced Data", ICML
  2023, arXiv:2301.00437). For a collapsed class ``k`` with orthogonal direction, feature
  ``h_k = b u_k`` and classifier row ``w_k = a u_k`` the objective separates:

      f_k(a, b) = n_k/(2N) (a b - 1)^2 + lambda_W/2 a^2 + lambda_H/2 n_k b^2.

  At a stationary point ``lambda_W a^2 = lambda_H n_k b^2`` (balanced penalties), so with
  ``t = a b``: ``f_k = n_k/(2N)(t-1)^2 + sqrt(lambda_W lambda_H n_k) t``, minimised at
  ``t = 1 - N sqrt(lambda_W lambda_H)/sqrt(n_k)`` (or ``t = 0`` when that is negative).

The unit tests check these expressions against :func:`lossviz.collapse.imbalanced_frame`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

__all__ = ["etf_cosine", "ImbalancedUFM", "imbalanced_ufm"]


def etf_cosine() -> sp.Expr:
    """Solve ``|sum_k u_k|^2 = K + K(K-1)c = 0`` for the common cosine ``c`` (returns ``-1/(K-1)``)."""
    k = sp.Symbol("K", positive=True)
    c = sp.Symbol("c")
    (sol,) = sp.solve(sp.Eq(k + k * (k - 1) * c, 0), c)
    return sp.simplify(sol)


@dataclass(frozen=True)
class ImbalancedUFM:
    """Symbolic optimum of one class of the imbalanced MSE UFM, and numeric versions.

    ``t`` = ``a b`` (shrinkage ``p_k`` before clipping at 0), ``w2 = ||w_k||^2``, ``h2 = ||h_k||^2``
    as sympy expressions in ``n, N, lambda_W, lambda_H``; ``*_fn`` are their ``lambdify``'d
    numpy versions taking ``(n, N, lambda_W, lambda_H)`` (apply ``max(0, .)`` to ``t`` yourself).
    """

    symbols: tuple
    objective: sp.Expr
    t: sp.Expr
    w2: sp.Expr
    h2: sp.Expr
    t_fn: Callable
    w2_fn: Callable
    h2_fn: Callable


def imbalanced_ufm() -> ImbalancedUFM:
    """Derive the per-class optimum of the bias-free MSE UFM (see the module docstring)."""
    n, N, lw, lh, a, b, t = sp.symbols("n N lambda_W lambda_H a b t", positive=True)
    f = n / (2 * N) * (a * b - 1) ** 2 + lw / 2 * a**2 + lh / 2 * n * b**2
    # stationarity: a*df/da - b*df/db = lw a^2 - lh n b^2 = 0
    balance = sp.simplify(a * sp.diff(f, a) - b * sp.diff(f, b))
    assert sp.simplify(balance - (lw * a**2 - lh * n * b**2)) == 0
    a2 = sp.sqrt(lh * n / lw) * t  # from lw a^2 = lh n b^2 and a b = t
    b2 = sp.sqrt(lw / (lh * n)) * t
    reduced = sp.simplify(f.subs({a: sp.sqrt(a2), b: sp.sqrt(b2)}))
    (t_opt,) = sp.solve(sp.diff(reduced, t), t)
    t_opt = sp.simplify(t_opt)
    w2 = sp.simplify(a2.subs(t, t_opt))
    h2 = sp.simplify(b2.subs(t, t_opt))
    args = (n, N, lw, lh)
    return ImbalancedUFM(
        symbols=args,
        objective=f,
        t=t_opt,
        w2=w2,
        h2=h2,
        t_fn=sp.lambdify(args, t_opt, "numpy"),
        w2_fn=sp.lambdify(args, w2, "numpy"),
        h2_fn=sp.lambdify(args, h2, "numpy"),
    )
