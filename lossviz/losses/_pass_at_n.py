r"""pass@N of a sampling classifier and the Direct Coverage Optimization (DCO) loss, in log space.

Paper: Feng Chen, Allan Raventos, Nan Cheng, Surya Ganguli, Shaul Druckmann, "Rethinking
Fine-Tuning when Scaling Test-Time Compute: Limiting Confidence Improves Mathematical
Reasoning", NeurIPS 2025, arXiv:2502.07154.

A model that answers by *sampling* ``N`` times from ``softmax(z / tau)`` and is scored as
correct when any sample is the target has, on one item with ``p = softmax(z / tau)_y``,

.. math:: \mathrm{pass@}N = 1 - (1 - p)^N

(exact: the ``N`` samples are independent). The DCO loss of that item is its negative log,
``-log(1 - (1 - p)^N)``; for ``N = 1`` it is the cross-entropy ``-log p``. Its gradient with
respect to the logits is the cross-entropy gradient times

.. math:: F(N, p) = \frac{N p (1 - p)^{N - 1}}{1 - (1 - p)^N}

(:func:`dco_weight`): ``F(1, p) = 1``, and for ``N > 1`` items the model already solves with
high confidence stop contributing, which limits confidence.

Numerics: everything is computed from ``log p = z_y - logsumexp(z)`` and the log failure rate
``l = log(-log(1 - p))``, read off the other answers' mass ``logsumexp_{k != y}(z) - logsumexp(z)``
when ``p > 1/2`` and from ``log p`` otherwise (``l = log p + p/2`` once ``p < 1.5e-8``), so
neither ``p -> 0`` nor ``p -> 1`` loses precision and no clamp is needed: with
``s = N exp(l) = -N log(1 - p)``, pass@N is ``-expm1(-s)`` and the DCO loss
``-log(1 - exp(-s))`` (two-branch ``log1mexp``; ``-log s + s/2`` for tiny ``s``). The loss and
its gradient are finite for all finite logits (tested at ``|z| = 1e4`` in float32 and float64).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validate import check_int
from ._common import (
    check_ignore_index,
    check_reduction,
    check_temperature,
    compute_dtype,
    finish,
    prepare,
)

__all__ = ["pass_at_n", "log_pass_at_n", "dco_loss", "dco_weight"]

_LN2 = math.log(2.0)


def _check_n(n: Any, name: str = "n") -> int:
    if isinstance(n, bool):
        raise TypeError(f"`{name}` must be a positive integer (the number of samples), got {n!r}")
    if isinstance(n, float) and n.is_integer():
        n = int(n)
    return check_int(n, name, minimum=1)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x <= 0`` (Maechler's two branches; ``x = 0`` gives ``-inf``)."""
    near = x > -_LN2
    # evaluate each branch only where it is accurate, on a safe input elsewhere (no NaN gradients)
    a = torch.where(near, x, torch.full_like(x, -1.0))
    b = torch.where(near, torch.full_like(x, -1.0), x)
    return torch.where(near, torch.log(-torch.expm1(a)), torch.log1p(-torch.exp(b)))


def _llq_from_logp(logp: torch.Tensor) -> torch.Tensor:
    """``log(-log(1 - p))`` from ``log p`` for ``p <= 1/2`` (``logp + p/2`` once ``p < 1.5e-8``)."""
    tiny = logp < -18.0
    a = torch.where(tiny, logp, torch.full_like(logp, -1.0))
    b = torch.where(tiny, torch.full_like(logp, -1.0), logp)
    return torch.where(tiny, a + torch.exp(a) / 2, torch.log(-torch.log1p(-torch.exp(b))))


def _log_probs(z: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p_y, log(-log(1 - p_y)))`` per row of ``z`` (N, K) for integer labels ``t`` (N,).

    The second is the log of the failure "rate" ``-log(1 - p)``: with it pass@N is
    ``1 - exp(-N exp(.))`` without ever forming ``1 - p`` (which rounds to 1 for tiny ``p``).
    """
    lse = torch.logsumexp(z, dim=1)
    zy = z.gather(1, t[:, None]).squeeze(1)
    logp = zy - lse
    mask = torch.zeros_like(z, dtype=torch.bool).scatter_(1, t[:, None], True)
    lse_other = torch.logsumexp(z.masked_fill(mask, -math.inf), dim=1)
    big = logp > -_LN2  # p > 1/2: log(1 - p) read off the other answers' mass, <= -log 2 < 0
    direct = torch.where(big, lse_other - lse, torch.full_like(logp, -1.0))
    llq = torch.where(
        big, torch.log(-direct), _llq_from_logp(torch.where(big, torch.full_like(logp, -1.0), logp))
    )
    return logp, llq


def _log_pass(llq: torch.Tensor, n: int) -> torch.Tensor:
    """``log(1 - (1 - p)^n) = log(1 - exp(-s))``, ``s = n exp(llq)``, stable for all ``s >= 0``."""
    u = llq + math.log(n)  # log s
    tiny = u < -18.0  # s < 1.5e-8: log(1 - e^-s) = log s - s/2 + O(s^2)
    a = torch.where(tiny, u, torch.full_like(u, -1.0))
    b = torch.where(tiny, torch.full_like(u, 0.0), u)
    return torch.where(tiny, a - torch.exp(a) / 2, _log1mexp(-torch.exp(b)))


def _pass(llq: torch.Tensor, n: int) -> torch.Tensor:
    """``1 - (1 - p)^n = -expm1(-n exp(llq))``."""
    return -torch.expm1(-torch.exp(llq + math.log(n)))


def _prepared(logits, targets, tau, ignore_index):
    ignore_index = check_ignore_index(ignore_index)
    z, t, valid, shape, logits = prepare(logits, targets, soft=False, ignore_index=ignore_index)
    tau = check_temperature(tau, "tau")
    cd = compute_dtype(logits.dtype)
    z = z.to(cd)
    if not (isinstance(tau, float) and tau == 1.0):
        z = z / tau
    return z, t, valid, shape, logits


def log_pass_at_n(
    logits: Any,
    targets: Any,
    n: int,
    *,
    tau: float = 1.0,
    reduction: str = "none",
    ignore_index: int = -100,
) -> torch.Tensor:
    """``log pass@N = log(1 - (1 - p_y)^N)`` per item, ``p = softmax(logits / tau)`` (log space).

    Default ``reduction="none"`` (a per-item log probability); ``"mean"``/``"sum"`` reduce the
    *log* values (use :func:`pass_at_n` for the mean pass@N). Inputs as :func:`pass_at_n`.
    """
    n = _check_n(n)
    reduction = check_reduction(reduction)
    z, t, valid, shape, logits = _prepared(logits, targets, tau, ignore_index)
    _, llq = _log_probs(z, t)
    return finish(_log_pass(llq, n), valid, shape, reduction, logits.dtype)


def pass_at_n(
    logits: Any,
    targets: Any,
    n: int | Sequence[int],
    *,
    tau: float = 1.0,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Exact pass@N of sampling ``N`` answers from ``softmax(logits / tau)``: ``1 - (1 - p_y)^N``.

    Chen et al. 2025 (arXiv:2502.07154). ``p_y`` is the probability of the target answer; the
    ``N`` samples are independent, so this is the exact probability that at least one is correct
    (no Monte Carlo). ``pass@1 = p_y``, the accuracy of sampling (not the argmax accuracy).

    Parameters
    ----------
    logits : ``(n_items, K)`` or ``(n_items, K, d1, ...)`` floating tensor or array
        Classes (answers) in dimension 1, as ``F.cross_entropy`` reads them.
    targets : integer labels ``(n_items,)`` / ``(n_items, d1, ...)``
        The correct answer of each item (any integer dtype).
    n : int >= 1, or a sequence of them
        Number of samples ``N``. A sequence gives one result per ``N`` stacked in dimension 0.
    tau : float > 0
        Sampling temperature (divides the logits); default 1 (sampling from the model as is).
    reduction : ``"mean"`` (default) | ``"sum"`` | ``"none"``
        Over items; ``ignore_index`` entries are left out of the mean.
    ignore_index : int
        Target value that marks an item to skip (default -100).

    Computed as ``-expm1(N log(1 - p_y))`` with ``log(1 - p_y)`` taken from the logits directly
    (module docstring), so it is accurate for ``p_y`` near 0 and near 1 and for ``N`` up to
    ``1e12``. Half-precision logits are evaluated in float32 and the result cast back; use
    float64 logits when differences below ``1e-7`` matter.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import pass_at_n
    >>> z = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    >>> pass_at_n(z, torch.tensor([1]), [1, 2, 4])      # 1 - 0.75**N
    tensor([0.2500, 0.4375, 0.6836], dtype=torch.float64)
    """
    if isinstance(n, torch.Tensor):
        n = n.item() if n.ndim == 0 else n.tolist()
    multi = isinstance(n, (Sequence, np.ndarray)) and not isinstance(n, str)
    ns = [_check_n(v, "n[i]") for v in n] if multi else [_check_n(n)]
    if multi and not ns:
        raise ValueError("`n` must not be an empty sequence")
    reduction = check_reduction(reduction)
    z, t, valid, shape, logits = _prepared(logits, targets, tau, ignore_index)
    _, llq = _log_probs(z, t)
    outs = [finish(_pass(llq, k), valid, shape, reduction, logits.dtype) for k in ns]
    return torch.stack(outs) if multi else outs[0]


def dco_loss(
    logits: Any,
    targets: Any,
    n: int,
    *,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Direct Coverage Optimization loss ``-log(1 - (1 - p_y)^N)`` (Chen et al. 2025).

    The negative log pass@N of each item at sampling temperature 1 (:func:`pass_at_n`), a
    drop-in for ``F.cross_entropy`` (same inputs, ``reduction``, ``ignore_index``). ``n`` is the
    number of samples the model is trained for (the paper's ``N``; no default, since it is the
    method's one knob). ``n = 1`` is the cross-entropy, equal to it up to rounding (tested to
    ``1e-12`` in float64). Its gradient is the cross-entropy gradient times :func:`dco_weight`,
    which vanishes for confidently solved items when ``n > 1``.

    Stable in log space without clamps: finite loss and gradients for any finite logits
    (``p_y -> 0`` gives ``-log(N p_y)``, ``p_y -> 1`` gives 0).

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from lossviz.losses import dco_loss
    >>> z, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0])
    >>> bool(torch.allclose(dco_loss(z, y, 1), F.cross_entropy(z, y)))
    True
    >>> bool(dco_loss(z, y, 16) < dco_loss(z, y, 1))
    True
    """
    n = _check_n(n)
    return -log_pass_at_n(logits, targets, n, reduction=reduction, ignore_index=ignore_index)


def dco_weight(p: Any, n: int) -> torch.Tensor:
    """``F(N, p) = N p (1 - p)^(N - 1) / (1 - (1 - p)^N)``: DCO's gradient over CE's gradient.

    ``p`` is the target probability (a float, array or tensor in ``[0, 1]``); ``F(1, p) = 1``,
    ``F(N, 0) = 1`` (the limit) and ``F(N, 1) = 0`` for ``N > 1``. Computed in log space.

    Examples
    --------
    >>> from lossviz.losses import dco_weight
    >>> round(float(dco_weight(0.5, 16)), 9)
    0.000244144
    """
    n = _check_n(n)
    if not isinstance(p, torch.Tensor):
        p = torch.as_tensor(p, dtype=torch.float64, device="cpu")
    if not p.is_floating_point():
        p = p.to(torch.float64)
    if bool(((p < 0) | (p > 1) | torch.isnan(p)).any()):
        raise ValueError("`p` must be probabilities in [0, 1]")
    ps = p.clamp(min=torch.finfo(p.dtype).tiny, max=0.5)
    logp = torch.log(ps)
    llq = torch.where(p > 0.5, torch.log(-torch.log1p(-p.clamp(min=0.5, max=1.0))), _llq_from_logp(logp))
    logp = torch.where(p > 0.5, torch.log(p.clamp(min=0.5)), logp)
    # log F = log N + log p + (N - 1) log(1 - p) - log pass@N, with log(1 - p) = -exp(llq)
    out = torch.exp(math.log(n) + logp - (n - 1) * torch.exp(llq) - _log_pass(llq, n))
    out = torch.where(p == 1, torch.zeros_like(out) if n > 1 else torch.ones_like(out), out)
    return torch.where(p == 0, torch.ones_like(out), out)
