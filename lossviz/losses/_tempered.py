"""Tempered cross-entropy: the softmax cross-entropy of ``logits / tau``.

Convention: the temperature **divides the logits** inside the softmax; ``tau -> inf`` gives
``log K`` for every input, ``tau -> 0`` gives ``tau * CE -> max_k z_k - z_y`` (tested).
Half-precision inputs are evaluated in float32 and cast back.
"""

from __future__ import annotations

from typing import Any

import torch

from ._common import check_ignore_index, check_pair, check_reduction, check_temperature, cross_entropy

__all__ = ["tempered_cross_entropy"]


def tempered_cross_entropy(
    logits: Any, targets: Any, tau: float = 1.0, *, reduction: str = "mean", ignore_index: int = -100
) -> torch.Tensor:
    """Cross-entropy of the softmax at temperature ``tau``: ``-sum_k y_k log softmax(z / tau)_k``.

    Convention: the temperature **divides the logits** inside the softmax (``tau > 0``); no
    ``tau`` factor outside. Limits (tested): ``tau -> inf`` gives ``log K`` for every input;
    ``tau -> 0`` gives ``tau * CE -> max_k z_k - z_y`` (a hinge without margin), i.e. the
    loss itself grows like ``(max_k z_k - z_y) / tau`` on misclassified points and vanishes on
    correctly classified ones.

    Parameters
    ----------
    logits : (n, K) or (n, K, d1, ...) (classes in dimension 1, as ``F.cross_entropy``)
    targets : (n,) / (n, d1, ...) integer labels (any integer dtype) or soft targets of the
        logits' shape
    tau : temperature > 0 (finite)
    reduction : "mean" | "sum" | "none" (``"mean"`` averages over the non-ignored entries)
    ignore_index : labels equal to it contribute 0 and are left out of the mean (default -100,
        as ``F.cross_entropy``)

    A drop-in for ``F.cross_entropy`` at ``tau = 1`` (it calls it on ``logits / tau``): NaN logits
    propagate, half inputs are evaluated in float32 and the result is cast back.

    Examples
    --------
    >>> import torch, math
    >>> from lossviz.losses import tempered_cross_entropy
    >>> z = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    >>> abs(float(tempered_cross_entropy(z, torch.tensor([1]), tau=1e8)) - math.log(3)) < 1e-7
    True
    """
    logits, targets, _ = check_pair(logits, targets)
    tau = check_temperature(tau)
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    return cross_entropy(logits, targets, tau, reduction=reduction, ignore_index=ignore_index)
