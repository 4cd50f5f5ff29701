r"""Stochastic trace estimation: Hutch++ (default) and Hutchinson's estimator.

Hutchinson (M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
Laplacian smoothing splines", Communications in Statistics - Simulation and Computation 18(3),
1989): ``tr(H) ~ (1/m) sum_i z_i^T H z_i`` with ``E z z^T = I``, variance ``2 ||H||_F^2 / m`` for
Rademacher ``z``.

Hutch++ (R. A. Meyer, C. Musco, C. Musco, D. P. Woodruff, "Hutch++: Optimal Stochastic Trace
Estimation", Symposium on Simplicity in Algorithms (SOSA) 2021, arXiv:2010.09649): with ``m``
products split in thirds, sketch ``Q = orth(H S)`` with ``m/3`` random columns ``S``, then

.. math::

    \widehat{\mathrm{tr}}(H) = \mathrm{tr}(Q^T H Q)
      + \frac{3}{m} \sum_i g_i^T (I - QQ^T) H (I - QQ^T) g_i ,

exact on the top ``m/3`` eigen-directions and Hutchinson on the deflated rest: error
``O(||H||_* / m)`` instead of ``O(||H||_F / \sqrt{m})``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_int
from ._operator import HessianOperator, ParamSelection, _operator

__all__ = ["TraceResult", "trace"]


@dataclass(frozen=True, repr=False)
class TraceResult(Result):
    r"""A stochastic estimate of ``tr(H)``.

    Attributes
    ----------
    trace : float
        The estimate.
    standard_error : float
        Standard error of the stochastic part (Hutchinson: ``std(z^T H z) / sqrt(m)``; Hutch++:
        the same for the deflated remainder, the low-rank part being exact given the sketch).
    matvecs : int
        Hessian-vector products used.
    method, distribution, seed : the settings.
    samples : np.ndarray
        The individual quadratic forms of the stochastic part.
    low_rank_part : float
        Hutch++ only: ``tr(Q^T H Q)`` of the sketch (0 for Hutchinson).
    """

    trace: float
    standard_error: float
    matvecs: int
    method: str
    distribution: str
    seed: int
    samples: np.ndarray
    low_rank_part: float
    num_params: int


def trace(
    model: nn.Module | HessianOperator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    *,
    method: str = "hutch++",
    matvecs: int = 99,
    distribution: str = "rademacher",
    seed: int = 0,
    block: int | None = None,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> TraceResult:
    r"""Estimate ``tr(H)`` with ``matvecs`` Hessian-vector products.

    Hutchinson: ``tr(H) ~ (1/m) sum_i z_i^T H z_i`` with independent random ``z_i``
    (``E z z^T = I``); its variance is ``2 ||H||_F^2 / m`` for Rademacher vectors.

    Hutch++ (default; Meyer, Musco, Musco & Woodruff, "Hutch++: Optimal Stochastic Trace
    Estimation", SOSA 2021, arXiv:2010.09649): with ``m`` products split in thirds, sketch
    ``Q = orth(H S)`` with ``S`` of ``m/3`` random columns, then

    .. math::

        \widehat{\mathrm{tr}}(H) = \mathrm{tr}(Q^T H Q)
          + \frac{3}{m} \sum_i g_i^T (I - QQ^T) H (I - QQ^T) g_i ,

    exact on the top ``m/3`` eigen-directions and Hutchinson on the rest: error
    ``O(||H||_* / m)`` instead of ``O(||H||_F / sqrt(m))``.

    Parameters
    ----------
    method : ``"hutch++"`` (default) or ``"hutchinson"``
    matvecs : int
        Budget of Hessian-vector products (Hutch++ needs at least 3).
    distribution : ``"rademacher"`` (default) or ``"gaussian"``
    block : int, optional
        Products computed together in one vmapped backward pass (default
        :meth:`HessianOperator.default_block`: 1 on CPU, where batching was measured slower).
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    method = check_choice(method, "method", ("hutch++", "hutchinson"))
    distribution = check_choice(distribution, "distribution", ("rademacher", "gaussian"))
    m = check_int(matvecs, "matvecs", minimum=3 if method == "hutch++" else 2)
    seed = check_int(seed, "seed", minimum=0)
    block = op.default_block() if block is None else check_int(block, "block", minimum=1)
    before = op.matvecs
    if method == "hutchinson":
        Z = op.random_vectors(m, seed, distribution)
        HZ = op.matmat(Z, block=block)
        samples = (Z * HZ).sum(1).to(torch.float64).cpu().numpy()
        low = 0.0
    else:
        s = m // 3
        g = m - 2 * s
        R = op.random_vectors(s + g, seed, distribution)
        S, G = R[:s], R[s:]
        Y = op.matmat(S, block=block)  # rows H s_i
        Q, _ = torch.linalg.qr(Y.T.to(torch.float64))  # (n, s), orthonormal in float64
        HQ = op.matmat(Q.T.to(op.dtype), block=block).to(torch.float64)  # rows H q_i
        low = float((Q.T * HQ).sum())
        G64 = G.to(torch.float64)
        Gp = G64 - (G64 @ Q) @ Q.T  # rows (I - QQ^T) g_i
        HGp = op.matmat(Gp.to(op.dtype), block=block).to(torch.float64)
        samples = (Gp * HGp).sum(1).cpu().numpy()
    est = low + float(samples.mean())
    se = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.inf
    return TraceResult(est, se, op.matvecs - before, method, distribution, seed, samples, low, op.size)
