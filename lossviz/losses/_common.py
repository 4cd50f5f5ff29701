"""Shared argument checks and numerics for :mod:`lossviz.losses`."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._validate import check_choice, check_float, check_labels, check_tensor

REDUCTIONS = ("mean", "sum", "none")
_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype, override: torch.dtype | None = None) -> torch.dtype:
    """The dtype a loss is evaluated in: float32 for half inputs (as autocast does), else ``dtype``."""
    if override is not None:
        return override
    return torch.float32 if dtype in _HALF else dtype


def check_logits(logits: Any, name: str = "logits", *, min_classes: int = 2) -> torch.Tensor:
    """Floating ``(n, K)`` tensor with finite entries and ``K >= min_classes``."""
    logits = check_tensor(logits, name, ndim=2, floating=True)
    if logits.shape[1] < min_classes:
        raise ValueError(
            f"`{name}` must have at least {min_classes} classes (columns), got shape {tuple(logits.shape)}"
        )
    return logits


def check_targets(
    targets: Any, logits: torch.Tensor, name: str = "targets", *, soft: bool = True
) -> torch.Tensor:
    """Integer labels ``(n,)`` in ``[0, K)`` or (if ``soft``) a probability matrix ``(n, K)``.

    Soft targets must be non-negative and sum to 1 per row (tolerance ``1e-3`` for half
    precision, ``1e-5`` otherwise).
    """
    n, k = logits.shape
    if isinstance(targets, torch.Tensor) and targets.is_floating_point():
        if not soft:
            raise TypeError(f"`{name}` must be integer class labels of shape ({n},), got {targets.dtype}")
        targets = check_tensor(targets, name, ndim=2, floating=True)
        if tuple(targets.shape) != (n, k):
            raise ValueError(
                f"soft `{name}` must have the shape of the logits {(n, k)}, got {tuple(targets.shape)}"
            )
        if bool((targets < 0).any()):
            raise ValueError(f"soft `{name}` must be non-negative (a probability per class)")
        tol = 1e-3 if targets.dtype in _HALF else 1e-5
        sums = targets.sum(dim=1, dtype=torch.float64)
        worst = float((sums - 1).abs().max())
        if worst > tol:
            raise ValueError(f"soft `{name}` must sum to 1 over classes; the worst row is off by {worst:.3g}")
        return targets
    targets = check_labels(targets, name, n=n, num_classes=k)
    return targets


def check_reduction(reduction: Any) -> str:
    return check_choice(reduction, "reduction", REDUCTIONS)


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def check_temperature(tau: Any, name: str = "tau", *, n: int | None = None) -> float | torch.Tensor:
    """A positive finite float, or (when ``n`` is given) also a positive tensor of shape ``(n,)``."""
    if isinstance(tau, torch.Tensor) and tau.numel() != 1:
        if n is None:
            raise TypeError(f"`{name}` must be a positive number, got {tuple(tau.shape)}-shaped tensor")
        tau = check_tensor(tau, name, ndim=1, floating=True)
        if tau.shape[0] != n:
            raise ValueError(f"`{name}` must have one temperature per sample ({n}), got {tau.shape[0]}")
        if bool((tau <= 0).any()):
            raise ValueError(f"`{name}` must be > 0 everywhere, got min {float(tau.min()):.3g}")
        return tau
    if isinstance(tau, torch.Tensor) and tau.requires_grad:
        check_float(tau.detach(), name, positive=True)
        return tau
    return check_float(tau, name, positive=True)


def one_hot_like(
    targets: torch.Tensor, logits: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Integer labels -> one-hot in ``dtype`` (soft targets pass through, cast)."""
    dtype = dtype or logits.dtype
    if targets.is_floating_point():
        return targets.to(dtype)
    return torch.nn.functional.one_hot(targets, logits.shape[1]).to(dtype)


def log_k(k: int) -> float:
    return math.log(k)
