"""Shared argument checks and numerics for :mod:`lossviz.losses`."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_choice, check_float, check_int, check_labels, check_tensor

REDUCTIONS = ("mean", "sum", "none")
_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype, override: torch.dtype | None = None) -> torch.dtype:
    """The dtype a loss is evaluated in: float32 for half inputs (as autocast does), else ``dtype``."""
    if override is not None:
        return override
    return torch.float32 if dtype in _HALF else dtype


def check_logits(
    logits: Any, name: str = "logits", *, min_classes: int = 2, finite: bool = True
) -> torch.Tensor:
    """Floating ``(n, K)`` tensor with ``K >= min_classes`` (finite entries unless ``finite=False``)."""
    logits = check_tensor(logits, name, ndim=2, floating=True, finite=finite)
    if logits.is_complex():
        raise TypeError(f"`{name}` must be a real floating-point tensor, got {logits.dtype}")
    if logits.shape[1] < min_classes:
        raise ValueError(
            f"`{name}` must have at least {min_classes} classes (columns), got shape {tuple(logits.shape)}"
        )
    return logits


def _compiling() -> bool:
    """Under ``torch.compile`` the data-dependent value checks are skipped (no graph breaks)."""
    return torch.compiler.is_compiling()


def check_ignore_index(ignore_index: Any) -> int:
    return check_int(ignore_index, "ignore_index")


def _integer_labels(targets: torch.Tensor, name: str) -> torch.Tensor:
    if targets.dtype == torch.bool:
        raise TypeError(f"`{name}` must be integer class labels, got dtype torch.bool")
    return targets if targets.dtype == torch.long else targets.long()


def check_targets(
    targets: Any, logits: torch.Tensor, name: str = "targets", *, soft: bool = True
) -> torch.Tensor:
    """Integer labels ``(n,)`` in ``[0, K)`` (any integer dtype, returned as int64) or (if ``soft``)
    a probability matrix ``(n, K)``.

    Soft targets must be non-negative and sum to 1 per row (tolerance ``1e-3`` for half
    precision, ``1e-5`` otherwise).
    """
    n, k = logits.shape
    if not isinstance(targets, torch.Tensor):
        targets = check_tensor(targets, name, finite=False, nonempty=False)
    if targets.is_floating_point():
        if not soft:
            raise TypeError(f"`{name}` must be integer class labels of shape ({n},), got {targets.dtype}")
        return _check_soft(targets, (n, k), name)
    targets = _integer_labels(check_labels(targets, name, n=n, num_classes=k), name)
    return targets


def _check_soft(targets: torch.Tensor, shape: tuple, name: str, logits_name: str = "logits") -> torch.Tensor:
    targets = check_tensor(targets, name, floating=True, nonempty=False)
    if tuple(targets.shape) != tuple(shape):
        raise ValueError(
            f"soft `{name}` must have the shape of the `{logits_name}` {tuple(shape)}, got {tuple(targets.shape)}"
        )
    if _compiling():
        return targets
    if bool((targets < 0).any()):
        raise ValueError(f"soft `{name}` must be non-negative (a probability per class)")
    tol = 1e-3 if targets.dtype in _HALF else 1e-5
    if targets.numel():
        sums = targets.sum(dim=1, dtype=torch.float64)
        worst = float((sums - 1).abs().max())
        if worst > tol:
            raise ValueError(f"soft `{name}` must sum to 1 over classes; the worst row is off by {worst:.3g}")
    return targets


def check_pair(
    logits: Any, targets: Any, *, soft: bool = True, min_classes: int = 2
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """Shape and dtype checks of a classification batch as ``F.cross_entropy`` reads it (no value
    scans, so it costs no device synchronisation).

    ``logits`` is ``(n, K)`` or ``(n, K, d1, ...)`` (the class dimension second); ``targets`` are
    integer labels ``(n,)`` / ``(n, d1, ...)`` of any integer dtype (returned as int64), or soft
    targets of the logits' shape (checked to be probabilities). NaN/inf logits are not refused:
    they propagate as in torch. Returns ``(logits, targets, shape)`` with ``shape`` the
    per-sample output shape ``(n, d1, ...)``.
    """
    if not isinstance(logits, torch.Tensor):
        logits = check_tensor(logits, "logits", finite=False)
    if not logits.is_floating_point():
        raise TypeError(f"`logits` must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(
            f"`logits` must be (n, K) or (n, K, d1, ...) with the classes in dimension 1, "
            f"got shape {tuple(logits.shape)}"
        )
    k = logits.shape[1]
    if k < min_classes:
        raise ValueError(
            f"`logits` must have at least {min_classes} classes (dimension 1), got shape {tuple(logits.shape)}"
        )
    if logits.numel() == 0:
        raise ValueError(f"`logits` must not be empty, got shape {tuple(logits.shape)}")
    shape = (logits.shape[0], *logits.shape[2:])
    if not isinstance(targets, torch.Tensor):
        targets = check_tensor(targets, "targets", finite=False, nonempty=False)
    if targets.is_floating_point() or targets.is_complex():
        if not soft:
            raise TypeError(f"`targets` must be integer class labels of shape {shape}, got {targets.dtype}")
        return logits, _check_soft(targets, tuple(logits.shape), "targets"), shape
    if tuple(targets.shape) != shape:
        raise ValueError(
            f"`targets` must have shape {shape} (integer labels) for `logits` of shape "
            f"{tuple(logits.shape)}, got shape {tuple(targets.shape)}"
        )
    return logits, _integer_labels(targets, "targets"), shape


def _range_error(targets: torch.Tensor, k: int, ignore_index: int) -> ValueError:
    t = targets.reshape(-1)
    bad = t[(t != ignore_index) & ((t < 0) | (t >= k))]
    found = f", found {int(bad[0])}" if bad.numel() else ""
    return ValueError(f"`targets` must be class indices in [0, {k}) (or ignore_index={ignore_index}){found}")


def prepare(
    logits: Any,
    targets: Any,
    *,
    soft: bool = True,
    ignore_index: int = -100,
    min_classes: int = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, tuple[int, ...], torch.Tensor]:
    """:func:`check_pair`, then flatten to ``(N, K)`` rows with the ignored entries masked.

    Returns ``(z, t, valid, shape, logits)``: ``z`` the ``(N, K)`` logits, ``t`` the ``(N,)``
    int64 labels with ignored entries replaced by 0 (or the ``(N, K)`` soft targets), ``valid``
    the ``(N,)`` mask of non-ignored entries (``None`` for soft targets or when nothing is
    ignored), ``shape`` the
    per-sample output shape and the checked original-shape logits. Labels outside ``[0, K)``
    that are not ``ignore_index`` raise a ``ValueError`` naming ``targets``.
    """
    logits, targets, shape = check_pair(logits, targets, soft=soft, min_classes=min_classes)
    k = logits.shape[1]
    z = logits if logits.ndim == 2 else logits.movedim(1, -1).reshape(-1, k)
    if targets.is_floating_point():
        t = targets if targets.ndim == 2 else targets.movedim(1, -1).reshape(-1, k)
        return z, t, None, shape, logits
    t = targets.reshape(-1)
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    if _compiling():  # no data-dependent branch: always the masked form
        valid = t != ignore_index
        return z, torch.where(valid, t, zero), valid, shape, logits
    outside = (t < 0) | (t >= k)
    if not bool(outside.any()):  # the common case: one check, no masking
        return z, t, None, shape, logits
    valid = t != ignore_index
    if bool((outside & valid).any()):
        raise _range_error(targets, k, ignore_index)
    return z, torch.where(valid, t, zero), valid, shape, logits


def cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    tau: float | torch.Tensor,
    *,
    reduction: str,
    ignore_index: int,
) -> torch.Tensor:
    """``F.cross_entropy(logits / tau, targets)`` for checked integer targets (:func:`check_pair`),
    in float32 for half inputs and cast back: the fast path of the CE-equivalent losses.

    On CPU an out-of-range label is caught from torch's own check (no extra pass over the
    labels); on other devices it is checked first (a device-side assert cannot be caught).
    """
    cd = compute_dtype(logits.dtype)
    x = logits if logits.dtype == cd else logits.to(cd)
    if not (isinstance(tau, float) and tau == 1.0):
        x = x / tau
    k = logits.shape[1]
    if targets.is_floating_point():  # probabilities: F.cross_entropy's soft-target form
        return F.cross_entropy(x, targets.to(cd), reduction=reduction).to(logits.dtype)
    if logits.device.type != "cpu" and not _compiling():
        t = targets.reshape(-1)
        if t.numel() and bool((((t < 0) | (t >= k)) & (t != ignore_index)).any()):
            raise _range_error(targets, k, ignore_index)
    try:
        out = F.cross_entropy(x, targets, ignore_index=ignore_index, reduction=reduction)
    except IndexError:
        raise _range_error(targets, k, ignore_index) from None
    return out if out.dtype == logits.dtype else out.to(logits.dtype)


def pick(values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``values[i, t_i]`` for integer labels, ``sum_k t_ik values_ik`` for soft targets."""
    if t.is_floating_point():
        return (t.to(values.dtype) * values).sum(dim=1)
    return values.gather(1, t[:, None]).squeeze(1)


def finish(
    loss: torch.Tensor,
    valid: torch.Tensor | None,
    shape: tuple[int, ...],
    reduction: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Zero the ignored entries, reduce like ``F.cross_entropy`` (mean over non-ignored entries)
    and cast to ``dtype``."""
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if reduction == "mean":
        out = loss.mean() if valid is None else loss.sum() / valid.sum()
    elif reduction == "sum":
        out = loss.sum()
    else:
        out = loss.reshape(shape)
    return out.to(dtype)


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
    return torch.nn.functional.one_hot(targets.long(), logits.shape[1]).to(dtype)


def log_k(k: int) -> float:
    return math.log(k)
