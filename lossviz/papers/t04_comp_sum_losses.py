"""The claim check of T04: the comp-sum H-consistency bound, checked on exact conditional regrets.

Paper: Anqi Mao, Mehryar Mohri, Yutao Zhong, "Cross-Entropy Loss Functions: Theoretical Analysis
and Applications", ICML 2023, arXiv:2304.07288.

Theorem 3.1 bounds the excess 0-1 error by ``Gamma_q`` of the excess comp-sum loss; with zero
minimizability gaps it holds pointwise for the conditional regrets,
``T_q(Delta_01(x)) <= Delta_Phi(x)``. :func:`bound_check` samples conditional label distributions
and predictions (random ones and adversarial ones close to the decision boundary, where the bound
is tight) and compares both sides exactly (:func:`lossviz.losses.comp_sum_conditional_regret`).
The noisy-digits training of the notebook is T03's (:mod:`lossviz.papers.t03_ldr_losses`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._result import Result
from .._validate import check_int
from ..losses import comp_sum_bound, comp_sum_conditional_regret

__all__ = ["regret_samples", "BoundCheck", "bound_check"]


def regret_samples(num_classes: int, num: int = 6000, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(p, s)``: conditional distributions and predicted softmaxes, ``num`` rows each.

    A third random pairs; a third adversarial (the surrogate's optimum ``s ~ p^gamma`` with the
    most likely class and a wrong one made equal, the wrong one barely ahead); a third near-uniform
    predictions with a wrong argmax (where a linear bound is tightest).
    """
    n = check_int(num_classes, "num_classes", minimum=2)
    num = check_int(num, "num", minimum=3)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    m = num // 3
    p = rng.dirichlet(np.full(n, 0.5), size=num)
    p = np.clip(p, 1e-9, None)
    p /= p.sum(1, keepdims=True)
    s = rng.dirichlet(np.ones(n), size=num)
    rows = np.arange(m)
    for block in (1, 2):
        sl = slice(block * m, (block + 1) * m)
        pb = p[sl]
        top = pb.argmax(1)
        wrong = (top + rng.integers(1, n, size=m)) % n
        if block == 1:
            sb = pb ** rng.uniform(0.5, 2.0, size=(m, 1))
            sb /= sb.sum(1, keepdims=True)
            mid = (sb[rows, top] + sb[rows, wrong]) / 2
            sb[rows, top], sb[rows, wrong] = mid * (1 - 1e-9), mid * (1 + 1e-9)
        else:
            sb = np.full((m, n), 1.0 / n)
            sb[rows, wrong] += 1e-6
            sb /= sb.sum(1, keepdims=True)
        s[sl] = sb
    return p, s


@dataclass(frozen=True, repr=False)
class BoundCheck(Result):
    """``T_q(Delta_01) <= Delta_Phi`` on sampled conditional regrets.

    ``violations`` rows where the bound fails (beyond ``1e-9``); ``min_ratio`` the smallest
    ``Delta_Phi / T_q(Delta_01)`` over rows with ``Delta_01 > 0.05`` (1 = attained); ``q``,
    ``num_classes`` of the loss, ``bound_classes`` the ``n`` of the bound function used.
    """

    q: float
    num_classes: int
    bound_classes: int
    violations: int
    min_ratio: float
    num: int


def bound_check(
    q: float, num_classes: int, *, bound_classes: int | None = None, num: int = 6000, seed: int = 0
) -> BoundCheck:
    """Check the bound of :func:`lossviz.losses.comp_sum_bound` on :func:`regret_samples`.

    ``bound_classes`` (default ``num_classes``) lets a control apply the bound function of the
    wrong number of classes, e.g. the two-class MAE bound at ten classes, which must fail.

    Examples
    --------
    >>> bound_check(0.0, 3, num=300).violations
    0
    """
    bound_classes = num_classes if bound_classes is None else bound_classes
    p, s = regret_samples(num_classes, num, seed=seed)
    d01, dphi = comp_sum_conditional_regret(p, s, q)
    t = comp_sum_bound(q, bound_classes, np.clip(d01, 0.0, 1.0)).T
    violations = int(np.sum(t > dphi + 1e-9 * np.maximum(1.0, np.abs(dphi))))
    keep = d01 > 0.05
    ratio = float(np.min(dphi[keep] / t[keep])) if keep.any() else float("nan")
    return BoundCheck(
        q=float(q),
        num_classes=num_classes,
        bound_classes=bound_classes,
        violations=violations,
        min_ratio=ratio,
        num=num,
    )
