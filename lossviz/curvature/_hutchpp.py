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

On a flat spectrum the sketch captures little and Hutch++ spends a third of its budget for
nothing (measured: GPT-2 standard error 15.7 against Hutchinson's 9.6 at equal budget), so the
default is *adaptive* (in the spirit of D. Persson, A. Cortinovis, D. Kressner, "Improved
variants of the Hutch++ algorithm for trace estimation", SIAM J. Matrix Anal. Appl. 2022,
arXiv:2109.10659): the sketch vectors are the first Hutchinson probes, the next probes are
multiplied *undeflated* (``H g_i``; the deflated quadratic forms follow algebraically once
``Q^T H Q`` is known), and before the last third is spent the two estimators' standard errors are
predicted from what was computed:

* Hutchinson at the full budget: ``s_H / sqrt(m)``, with ``s_H`` the sample standard deviation of
  the ``z_i^T H z_i`` seen so far;
* Hutch++: at most ``sqrt(2 mean_i ||(I - QQ^T) H g_i||^2 / g)`` (for Rademacher or Gaussian
  probes the deflated form has variance ``<= 2 ||(I-QQ^T) H (I-QQ^T)||_F^2 <= 2 ||(I-QQ^T) H||_F^2``).

If Hutch++ is not predicted to be better, the last third goes into more Hutchinson probes and
the result *is* Hutchinson's estimate with the same ``m`` probes (same seed: identical numbers);
otherwise it finishes Hutch++ with ``Q^T H Q``.

Memory: probes are generated and consumed ``block`` at a time (each drawn in float64 on the CPU,
then cast to the operator's dtype); Hutch++ keeps the sketch, ``s x n`` entries in the operator's
dtype (``s = m // 3``, capped by ``sketch_bytes``), orthonormalised in place. Peak beyond the
operator's own graph: ``s n itemsize`` for the sketch plus a few vectors (ResNet-18 in float32, 99
products, a 12-vector sketch: 1.28 GB peak-RSS growth including the gradient graph, against 5.9 GB
for the probes alone before; benchmarks/curvature.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_dtype, check_int
from ._base import CurvatureOperator
from ._operator import ParamSelection, _operator

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
    estimator : str
        The estimate returned: ``"hutch++"`` or ``"hutchinson"`` (adaptive Hutch++ may fall back).
    diagnostics : dict
        Hutch++: ``sketch_size`` (orthonormal sketch directions kept) and the two predicted
        standard errors the adaptive choice compared.
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
    estimator: str = ""
    diagnostics: dict = field(default_factory=dict)


def _rows_dot(X: torch.Tensor, Y: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """Row-wise dot products ``x_i . y_i`` in float64, over float64 copies of 64k-entry chunks.

    Measured on ResNet-18's 11.2M entries: 0.09 s, exact to 1e-11, against 0.42 s for
    ``sum(X * Y, dtype=float64)`` and 0.71 s for a full float64 copy (a float32 ``dot`` takes
    0.03 s but is off by 2e-5 relative).
    """
    out = torch.zeros(X.shape[0], dtype=torch.float64, device=X.device)
    for i in range(X.shape[0]):
        x, y = X[i], Y[i]
        if x.dtype == torch.float64:
            out[i] = torch.dot(x, y)
            continue
        acc = torch.zeros((), dtype=torch.float64, device=X.device)
        for a in range(0, x.shape[0], chunk):
            acc += torch.dot(x[a : a + chunk].to(torch.float64), y[a : a + chunk].to(torch.float64))
        out[i] = acc
    return out


def _cross(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """``Y X^T`` (shape ``(len(Y), len(X))``) in the inputs' dtype (the probe dtype), as float64.

    Per probe this costs ``O(s n)``; a float64 copy of the sketch per probe was measured at 14x
    the cost of the product itself for a diagonal operator, so pass ``probe_dtype=torch.float64``
    for float64 contractions.
    """
    return (Y @ X.T).to(torch.float64)


def _orthonormalise_rows(Y: torch.Tensor, chunk_bytes: int = 1 << 24) -> torch.Tensor:
    """Orthonormal rows spanning the rows of ``Y`` (in place; returns a view of its first ``r`` rows).

    Two passes of Gram-matrix orthonormalisation (``Y Y^T = U L U^T``, ``Q = L^{-1/2} U^T Y``, the
    second pass restoring orthogonality lost in the first), with the Gram matrix and each column
    chunk in float64; directions with ``L < (1e3 eps)^2 max L`` (rank deficiency, noise) are
    dropped. No ``n x s`` float64 copy: memory is ``Y`` plus one chunk.
    """
    s, n = Y.shape
    step = max(1, chunk_bytes // (8 * max(s, 1)))
    tiny = (1e3 * torch.finfo(Y.dtype).eps) ** 2
    for _ in range(2):
        G = torch.zeros(Y.shape[0], Y.shape[0], dtype=torch.float64, device=Y.device)
        for a in range(0, n, step):
            c = Y[:, a : a + step].to(torch.float64)
            G += c @ c.T
        L, U = torch.linalg.eigh(G)
        keep = L > tiny * max(float(L[-1]), 1e-300)
        T = (U[:, keep] / L[keep].sqrt()).T  # (r, s)
        r = int(keep.sum())
        if r == 0:
            return Y[:0]
        for a in range(0, n, step):
            c = Y[:, a : a + step].to(torch.float64)
            Y[:r, a : a + step] = (T @ c).to(Y.dtype)
        Y = Y[:r]
    return Y


def trace(
    model: nn.Module | CurvatureOperator,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    data: Any = None,
    *,
    method: str = "hutch++",
    matvecs: int = 99,
    adaptive: bool = True,
    distribution: str = "rademacher",
    seed: int = 0,
    block: int | None = None,
    probe_dtype: torch.dtype | str | None = None,
    sketch_bytes: int = 1 << 29,
    matrix: str | None = None,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> TraceResult:
    r"""Estimate ``tr(A)`` of the Hessian (or ``matrix``) with ``matvecs`` matrix-vector products.

    Hutchinson: ``tr(A) ~ (1/m) sum_i z_i^T A z_i`` with independent random ``z_i``
    (``E z z^T = I``); its variance is ``2 (||A||_F^2 - sum_i A_ii^2) / m`` for Rademacher vectors.

    Hutch++ (default; Meyer, Musco, Musco & Woodruff, "Hutch++: Optimal Stochastic Trace
    Estimation", SOSA 2021, arXiv:2010.09649): with ``m`` products split in thirds, sketch
    ``Q = orth(A S)`` with ``S`` of ``s = m/3`` random columns, then

    .. math::

        \widehat{\mathrm{tr}}(A) = \mathrm{tr}(Q^T A Q)
          + \frac{1}{g} \sum_i g_i^T (I - QQ^T) A (I - QQ^T) g_i ,

    exact on the top ``s`` eigen-directions and Hutchinson on the rest: error ``O(||A||_* / m)``
    instead of ``O(||A||_F / sqrt(m))`` when the spectrum decays.

    Parameters
    ----------
    method : ``"hutch++"`` (default) or ``"hutchinson"``
    matvecs : int
        Budget of products (Hutch++ needs at least 3).
    adaptive : bool
        Hutch++ only (default ``True``): decide before the last third of the budget whether the
        sketch pays, and else finish as Hutchinson with all ``m`` probes (see the module
        docstring): at equal budget the default is then never predicted worse than Hutchinson.
        ``result.estimator`` says which estimate was returned, ``result.diagnostics`` the two
        predicted standard errors. ``False``: the classical fixed thirds.
    distribution : ``"rademacher"`` (default) or ``"gaussian"``
    block : int, optional
        Probes generated and multiplied together (default :meth:`HessianOperator.default_block`:
        1 on CPU, where batching was measured slower); memory holds one block.
    probe_dtype : torch.dtype, optional
        dtype of the probes and the sketch (default: the operator's, e.g. float32 for a float32
        model; the quadratic forms are always summed in float64).
    sketch_bytes : int
        Memory cap of the Hutch++ sketch (default 512 MiB): ``s = min(m // 3, sketch_bytes //
        (n itemsize))``, the rest of the budget goes to the Hutchinson part. ResNet-18 (11.2M
        parameters, float32) gets ``s = 12``.
    matrix : ``"hessian"`` (default), ``"ggn"`` or ``"fisher"``
        Which curvature matrix (:func:`curvature_operator`); ignored for an operator.
    """
    op = _operator(model, loss_fn, data, params, dtype, mode, matrix=matrix)
    method = check_choice(method, "method", ("hutch++", "hutchinson"))
    distribution = check_choice(distribution, "distribution", ("rademacher", "gaussian"))
    m = check_int(matvecs, "matvecs", minimum=3 if method == "hutch++" else 2)
    seed = check_int(seed, "seed", minimum=0)
    block = op.default_block() if block is None else check_int(block, "block", minimum=1)
    sketch_bytes = check_int(sketch_bytes, "sketch_bytes", minimum=1)
    pdtype = check_dtype(probe_dtype, "probe_dtype") or op.dtype
    if not pdtype.is_floating_point:
        raise TypeError(f"`probe_dtype` must be a floating dtype, got {pdtype}")
    before = op.matvecs
    rows = op.probes(m, seed, distribution, block=1, dtype=pdtype)  # one probe row at a time

    def take(k):  # the next k probes (k <= block): a block's memory at most
        return next(rows) if k == 1 else torch.cat([next(rows) for _ in range(k)])

    def products(Z):  # Z has at most `block` rows, generated here (no input validation pass)
        return op._matmat(Z.to(op.dtype)).to(pdtype)

    def forms(Z, HZ) -> list[float]:
        return _rows_dot(Z, HZ).tolist()

    hutch: list[float] = []  # z_i^T A z_i for every probe z_i, in stream order
    diagnostics: dict[str, Any] = {}
    if method == "hutchinson":
        for i0 in range(0, m, block):
            Z = take(min(block, m - i0))
            hutch.extend(forms(Z, products(Z)))
        samples, low, estimator = np.array(hutch), 0.0, "hutchinson"
    else:
        itemsize = torch.empty((), dtype=pdtype, device="meta").element_size()
        s = max(1, min(m // 3, sketch_bytes // max(1, op.size * itemsize)))
        Y = torch.empty(s, op.size, dtype=pdtype, device=op.device)
        for i0 in range(0, s, block):  # the sketch Y = A S: the first s probes (Hutchinson samples too)
            Z = take(min(block, s - i0))
            HZ = products(Z)
            hutch.extend(forms(Z, HZ))
            Y[i0 : i0 + Z.shape[0]] = HZ
            del Z, HZ
        Q = _orthonormalise_rows(Y)  # (r, n), r <= s, in Y's memory
        r = Q.shape[0]
        g = m - s - r  # a rank-deficient sketch (r < s) leaves products for more probes
        a_parts, c_parts, res2, hg = [], [], [], []
        for i0 in range(0, g, block):  # the next g probes, multiplied undeflated
            Z = take(min(block, g - i0))
            HZ = products(Z)
            h = forms(Z, HZ)
            hutch.extend(h)
            hg.extend(h)
            a = _cross(Q, Z)  # (b, r): Q g_i
            c = _cross(Q, HZ)  # (b, r): Q A g_i
            a_parts.append(a)
            c_parts.append(c)
            res2.extend((_rows_dot(HZ, HZ) - (c * c).sum(1)).clamp_min(0).tolist())
            del Z, HZ
        se_hutch = float(np.std(hutch, ddof=1) / math.sqrt(m)) if len(hutch) > 1 else math.inf
        se_pp = math.sqrt(2.0 * float(np.mean(res2)) / g)
        diagnostics = {
            "sketch_size": r,
            "predicted_se_hutchinson": se_hutch,
            "predicted_se_hutchpp_bound": se_pp,
        }
        if adaptive and not se_pp < se_hutch:
            # the sketch does not pay: the last s products go to Hutchinson probes from the same
            # stream, so the estimate equals trace(method="hutchinson") with this seed and budget
            del Q, Y
            while len(hutch) < m:
                Z = take(min(block, m - len(hutch)))
                hutch.extend(forms(Z, products(Z)))
            samples, low, estimator = np.array(hutch), 0.0, "hutchinson"
        else:
            M = torch.zeros(r, r, dtype=torch.float64, device=op.device)
            for i0 in range(0, r, block):  # Q^T A Q, one block of sketch directions at a time
                HQ = products(Q[i0 : i0 + block])
                M[:, i0 : i0 + HQ.shape[0]] = _cross(Q, HQ).T
            M = 0.5 * (M + M.T)
            low = float(torch.diagonal(M).sum())
            # deflated forms g^T (I-P) A (I-P) g = g^T A g - 2 a.c + a^T M a  (a = Q g, c = Q A g)
            A_, C_ = torch.cat(a_parts), torch.cat(c_parts)
            defl = torch.tensor(hg, dtype=torch.float64, device=op.device) - 2 * (A_ * C_).sum(1)
            defl = defl + ((A_ @ M) * A_).sum(1)
            samples, estimator = defl.cpu().numpy(), "hutch++"
    est = low + float(samples.mean())
    se = float(samples.std(ddof=1) / math.sqrt(len(samples))) if len(samples) > 1 else math.inf
    return TraceResult(
        est,
        se,
        op.matvecs - before,
        method,
        distribution,
        seed,
        samples,
        low,
        op.size,
        estimator=estimator,
        diagnostics=diagnostics,
    )
