"""StableMax, its cross-entropy and the Softmax Collapse diagnostic.

Paper: Lucas Prieto, Melih Barsbey, Pedro A. M. Mediano, Tolga Birdal, "Grokking at the Edge of
Numerical Stability", ICLR 2025, arXiv:2501.04697.

StableMax replaces ``exp`` in the softmax by the ramp

.. math::

    s(x) = \\begin{cases} x + 1 & x \\ge 0 \\\\ 1 / (1 - x) & x < 0 \\end{cases},
    \\qquad \\mathrm{StableMax}(z)_k = \\frac{s(z_k)}{\\sum_j s(z_j)},

which grows linearly instead of exponentially, so scaling the logits up does not drive the
correct-class probability to exactly 1 in floating point. Softmax Collapse (SC) is the event
that it does for softmax: the float correct-class probability rounds to 1, the loss is exactly 0
and the sample stops contributing to learning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._result import Result
from .._validate import check_choice, check_dtype, check_tensor
from ._common import (
    check_ignore_index,
    check_logits,
    check_reduction,
    check_targets,
    compute_dtype,
    finish,
    pick,
    prepare,
)

__all__ = [
    "log_s",
    "stablemax",
    "log_stablemax",
    "stablemax_cross_entropy",
    "softmax_collapse",
    "SoftmaxCollapse",
]


def log_s(x: torch.Tensor) -> torch.Tensor:
    """``log s(x)``: ``log1p(x)`` for ``x >= 0`` and ``-log1p(-x)`` for ``x < 0`` (smooth, C^1 at 0)."""
    # torch.where, not clamp: clamp's gradient at the boundary x = 0 is 0 in recent torch
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    nonneg = x >= 0
    pos = torch.log1p(torch.where(nonneg, x, zero))
    neg = -torch.log1p(torch.where(nonneg, zero, -x))
    return torch.where(nonneg, pos, neg)


def log_stablemax(logits: Any, *, dim: int = -1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``log StableMax(logits)`` along ``dim``, computed as ``log s(z) - logsumexp(log s(z))``.

    Half-precision inputs are evaluated in float32 (``dtype`` overrides) and cast back. Like
    every loss of :mod:`lossviz.losses`, numpy arrays are accepted (converted, dtype kept).
    """
    logits = check_tensor(logits, "logits", floating=True, finite=False)
    if logits.is_complex():
        raise TypeError(f"`logits` must be a real floating-point tensor, got {logits.dtype}")
    cd = compute_dtype(logits.dtype, check_dtype(dtype))
    ls = log_s(logits.to(cd))
    return (ls - torch.logsumexp(ls, dim=dim, keepdim=True)).to(logits.dtype)


def stablemax(logits: Any, *, dim: int = -1, dtype: torch.dtype | None = None) -> torch.Tensor:
    """StableMax probabilities ``s(z_k) / sum_j s(z_j)`` along ``dim``.

    Parameters
    ----------
    logits : tensor (any shape, floating)
    dim : the class dimension
    dtype : dtype to compute in (default: float32 for half inputs, else the input dtype)

    Returns
    -------
    tensor of the input's shape and dtype; non-negative, sums to 1 along ``dim``, finite for any
    finite input (for logits up to 1e4 no entry underflows to exactly 0 in float32, unlike softmax).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import stablemax
    >>> stablemax(torch.tensor([0.0, 1.0, -1.0]))
    tensor([0.2857, 0.5714, 0.1429])
    """
    return log_stablemax(logits, dim=dim, dtype=dtype).exp()


def stablemax_cross_entropy(
    logits: Any,
    targets: Any,
    *,
    reduction: str = "mean",
    dtype: torch.dtype | None = None,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Cross-entropy with StableMax in place of softmax: ``-sum_k y_k log StableMax(z)_k``.

    Parameters
    ----------
    logits : (n, K) or (n, K, d1, ...) floating tensor (classes in dimension 1); NaN propagates
    targets : (n,) / (n, d1, ...) integer labels (any integer dtype) or soft targets of the
        logits' shape (rows sum to 1)
    reduction : "mean" | "sum" | "none" (the mean is over the non-ignored entries)
    ignore_index : labels equal to it contribute 0 (default -100, as ``F.cross_entropy``)
    dtype : compute dtype. Default float32 for half inputs, else the logits' dtype; the paper
        computes this loss in float64 (pass ``dtype=torch.float64``). The result is cast back to
        the logits' dtype.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import stablemax_cross_entropy
    >>> z = torch.tensor([[1e4, 0.0, -1e4]])
    >>> float(stablemax_cross_entropy(z, torch.tensor([0]))) > 0   # softmax CE would be exactly 0
    True
    """
    reduction = check_reduction(reduction)
    z, t, valid, shape, logits = prepare(logits, targets, ignore_index=check_ignore_index(ignore_index))
    cd = compute_dtype(logits.dtype, check_dtype(dtype))
    if not cd.is_floating_point:
        raise TypeError(f"`dtype` must be a floating dtype, got {cd}")
    ls = log_s(z.to(cd))
    lp = ls - torch.logsumexp(ls, dim=1, keepdim=True)
    return finish(-pick(lp, t), valid, shape, reduction, logits.dtype)


@dataclass(frozen=True, repr=False)
class SoftmaxCollapse(Result):
    """Softmax Collapse diagnostic of a batch of logits.

    Attributes
    ----------
    fraction : fraction of samples in collapse under ``criterion``
    collapsed : (n,) bool tensor, per sample
    prob_one : (n,) bool, the float correct-class softmax probability is exactly 1 (loss == 0)
    grad_zero : (n,) bool, the whole float CE gradient ``softmax(z) - onehot(y)`` is exactly 0
    dtype, criterion : settings
    """

    fraction: float
    collapsed: torch.Tensor
    prob_one: torch.Tensor
    grad_zero: torch.Tensor
    dtype: torch.dtype
    criterion: str


def softmax_collapse(
    logits: Any,
    targets: Any,
    *,
    dtype: torch.dtype | str = torch.float32,
    criterion: str = "probability",
) -> SoftmaxCollapse:
    """Softmax Collapse (SC): which samples' correct-class softmax probability is exactly 1 in ``dtype``.

    Evaluated in floating point of ``dtype`` (float32 by default, the paper's setting) with the
    numerically standard log-sum-exp form: ``p_y = exp(z_y - logsumexp(z))``. When the other
    classes are absorbed (``sum_{k != y} exp(z_k - z_y) < eps / 2``), ``p_y`` rounds to exactly 1,
    the loss is exactly 0 and the correct-class gradient component ``p_y - 1`` is exactly 0.

    Parameters
    ----------
    logits : (n, K) tensor; targets : (n,) integer labels
    dtype : floating dtype in which the softmax is evaluated
    criterion : ``"probability"`` (default; the paper's SC: ``p_y == 1`` exactly, i.e. the loss is
        exactly 0) or ``"gradient"`` (stricter: the whole gradient ``softmax(z) - onehot(y)`` is
        exactly 0, which also needs every other probability to underflow to 0).

    Returns
    -------
    SoftmaxCollapse with the fraction under ``criterion`` and both per-sample masks.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import softmax_collapse
    >>> z = torch.tensor([[40.0, 0.0], [1.0, 0.0]])
    >>> softmax_collapse(z, torch.tensor([0, 0])).fraction
    0.5
    """
    logits = check_logits(logits)
    targets = check_targets(targets, logits, soft=False)
    dtype = check_dtype(dtype, "dtype")
    if dtype is None or not dtype.is_floating_point:
        raise TypeError(f"`dtype` must be a floating dtype, got {dtype}")
    criterion = check_choice(criterion, "criterion", ("probability", "gradient"))
    with torch.no_grad():
        z = logits.detach().to(dtype)
        logp = z - torch.logsumexp(z, dim=1, keepdim=True)
        p = logp.exp()
        p_y = p.gather(1, targets[:, None]).squeeze(1)
        prob_one = p_y == 1
        grad = p - torch.nn.functional.one_hot(targets, z.shape[1]).to(dtype)
        grad_zero = (grad == 0).all(dim=1)
    collapsed = prob_one if criterion == "probability" else grad_zero
    return SoftmaxCollapse(
        fraction=float(collapsed.float().mean()),
        collapsed=collapsed,
        prob_one=prob_one,
        grad_zero=grad_zero,
        dtype=dtype,
        criterion=criterion,
    )
