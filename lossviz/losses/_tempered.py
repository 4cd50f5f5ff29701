"""Tempered cross-entropy: the softmax cross-entropy of ``logits / tau``.

Convention: the temperature **divides the logits** inside the softmax; ``tau -> inf`` gives
``log K`` for every input, ``tau -> 0`` gives ``tau * CE -> max_k z_k - z_y`` (tested).
Half-precision inputs are evaluated in float32 and cast back.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import (
    check_logits,
    check_reduction,
    check_targets,
    check_temperature,
    compute_dtype,
    one_hot_like,
    reduce,
)

__all__ = ["tempered_cross_entropy"]


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
