r"""The Z-loss and its spherical-family computation for a linear output layer.

Paper: Alexandre de Brebisson, Pascal Vincent, "The Z-loss: a shift and scale invariant
classification loss belonging to the Spherical Family", 2016, arXiv:1604.08859.

``L = softplus(a (b - z_y)) / a`` of the standardised logits ``z = (o - mean o) / std o``. It
depends on the outputs only through ``o_y``, ``sum_k o_k`` and ``sum_k o_k^2``, so for
``o = W h + bias`` the loss costs O(d^2) per sample with the ``d x d`` summaries of
:func:`spherical_stats`, independent of the number of classes K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .._result import Result
from .._validate import check_float, check_tensor
from ._common import (
    check_ignore_index,
    check_logits,
    check_reduction,
    compute_dtype,
    finish,
    prepare,
)

__all__ = ["z_loss", "z_scores", "spherical_stats", "SphericalStats", "z_loss_spherical"]


def _check_ab(a: Any, b: Any) -> tuple[float, float]:
    return check_float(a, "a", positive=True), check_float(b, "b")


def z_scores(logits: Any) -> torch.Tensor:
    """Row-wise standardised logits ``(z - mean_k z) / std_k z`` (population std; 0 for constant rows).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import z_scores
    >>> z_scores(torch.tensor([[1.0, 2.0, 3.0]]))
    tensor([[-1.2247,  0.0000,  1.2247]])
    """
    logits = check_logits(logits, finite=False)
    cd = compute_dtype(logits.dtype)
    z = logits.to(cd)
    mu = z.mean(dim=1, keepdim=True)
    var = (z - mu).pow(2).mean(dim=1, keepdim=True)
    return _standardize(z - mu, var).to(logits.dtype)


def _standardize(centred: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """``centred / sqrt(var)``; rows with ``var == 0`` (constant logits) give 0 with zero gradient
    (NaN rows stay NaN)."""
    ok = var != 0
    sd = torch.where(ok, var, torch.ones_like(var)).sqrt()
    return torch.where(ok, centred / sd, torch.zeros_like(centred))


def _z_loss_from_zc(zc: torch.Tensor, a: float, b: float) -> torch.Tensor:
    return F.softplus(a * (b - zc)) / a


def z_loss(
    logits: Any,
    targets: Any,
    *,
    a: float = 1.0,
    b: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Z-loss (de Brebisson & Vincent 2016): ``L = softplus(a (b - z_y)) / a``, ``z = (o - mean o) / std o``.

    ``mean``/``std`` are over the K logits of a sample (population std). Invariant to shifting a
    row of logits by a constant and to scaling all logits by ``s > 0`` (tested with hypothesis).
    ``a > 0`` sets the sharpness and ``b`` the target standardised score; since
    ``z_y <= sqrt(K - 1)``, a ``b`` beyond ``sqrt(K - 1)`` never lets the loss saturate.
    The paper tunes ``a`` and ``b`` per task; our defaults ``a = 1, b = 2`` are a neutral choice.
    Logits ``(n, K)`` or ``(n, K, d1, ...)`` and labels (any integer dtype) as ``F.cross_entropy``;
    ``ignore_index`` entries (default -100) are left out of the mean; NaN logits propagate.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import z_loss
    >>> z, y = torch.randn(4, 6, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    >>> bool(torch.allclose(z_loss(z, y), z_loss(7 * z + 3, y)))   # shift and scale invariant
    True
    """
    a, b = _check_ab(a, b)
    reduction = check_reduction(reduction)
    z, t, valid, shape, logits = prepare(
        logits, targets, soft=False, ignore_index=check_ignore_index(ignore_index)
    )
    cd = compute_dtype(logits.dtype)
    z = z_scores(z.to(cd))
    loss = _z_loss_from_zc(z.gather(1, t[:, None]).squeeze(1), a, b)
    return finish(loss, valid, shape, reduction, logits.dtype)


@dataclass(frozen=True, repr=False)
class SphericalStats(Result):
    """Class-count-free summaries of a linear output layer ``o = W h + bias`` (W: K x d).

    ``colsum = 1^T W`` (d,), ``gram = W^T W`` (d, d), ``wtb = W^T bias`` (d,), ``bsum = sum bias``,
    ``bsq = ||bias||^2``, ``num_classes = K``.
    """

    colsum: torch.Tensor
    gram: torch.Tensor
    wtb: torch.Tensor
    bsum: torch.Tensor
    bsq: torch.Tensor
    num_classes: int


def spherical_stats(weight: Any, bias: Any = None) -> SphericalStats:
    """Precompute :class:`SphericalStats` of ``W`` (K, d) and optional ``bias`` (K,) (cost O(K d^2), once).

    Half-precision weights are summarised in float32 (``W^T W`` overflows float16 long before
    the logits do).
    """
    weight = check_tensor(weight, "weight", ndim=2, floating=True)
    k, d = weight.shape
    if bias is None:
        bias = torch.zeros(k, dtype=weight.dtype, device=weight.device)
    bias = check_tensor(bias, "bias", ndim=1, floating=True)
    if bias.shape[0] != k:
        raise ValueError(f"`bias` must have K={k} entries, got {bias.shape[0]}")
    cd = compute_dtype(weight.dtype)
    weight, bias = weight.to(cd), bias.to(cd)
    return SphericalStats(
        colsum=weight.sum(0),
        gram=weight.T @ weight,
        wtb=weight.T @ bias,
        bsum=bias.sum(),
        bsq=bias @ bias,
        num_classes=k,
    )


def z_loss_spherical(
    h: Any,
    weight: Any,
    targets: Any,
    *,
    bias: Any = None,
    stats: SphericalStats | None = None,
    a: float = 1.0,
    b: float = 2.0,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """Z-loss of ``o = h W^T + bias`` computed without forming the K outputs (spherical family).

    The Z-loss depends on ``o`` only through ``o_y``, ``sum_k o_k`` and ``sum_k o_k^2``, and for a
    linear layer ``sum_k o_k = (1^T W) h + sum bias`` and
    ``sum_k o_k^2 = h^T (W^T W) h + 2 (W^T bias) . h + ||bias||^2``. With the ``d x d`` summaries
    of :func:`spherical_stats` precomputed, each sample costs O(d^2), independent of K; the
    gradient with respect to ``h`` (and, through the summaries, to ``W``) follows by autograd
    and equals the naive one (tested to 1e-10 in float64).

    Parameters
    ----------
    h : (n, d) features; weight : (K, d) (as ``nn.Linear.weight``); targets : (n,)
    bias : (K,) or None; stats : precomputed :class:`SphericalStats` (else computed here)
    ignore_index : labels equal to it (default -100) contribute 0 and are left out of the mean

    Labels of any integer dtype are read as class indices. Half-precision inputs are evaluated
    in float32 (only the ``n`` gathered rows of ``W`` are cast, so the cost stays free of K) and
    the result is cast back.

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import spherical_stats, z_loss, z_loss_spherical
    >>> W, h = torch.randn(1000, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    >>> y = torch.tensor([1, 20, 300, 999])
    >>> stats = spherical_stats(W)   # once per weight matrix
    >>> bool(torch.allclose(z_loss_spherical(h, W, y, stats=stats), z_loss(h @ W.T, y)))
    True
    """
    h = check_tensor(h, "h", ndim=2, floating=True)
    # no O(K d) finiteness scan of W here: the cost must not grow with K (spherical_stats checks it)
    weight = check_tensor(weight, "weight", ndim=2, floating=True, finite=False)
    if weight.shape[1] != h.shape[1]:
        raise ValueError(f"`weight` must have d={h.shape[1]} columns, got shape {tuple(weight.shape)}")
    k = weight.shape[0]
    ignore_index = check_ignore_index(ignore_index)
    valid, targets = _spherical_targets(targets, h.shape[0], k, ignore_index)
    a, b = _check_ab(a, b)
    reduction = check_reduction(reduction)
    if bias is not None:
        bias = check_tensor(bias, "bias", ndim=1, floating=True, finite=False)
        if bias.shape[0] != k:
            raise ValueError(f"`bias` must have K={k} entries, got {bias.shape[0]}")
    if stats is None:
        stats = spherical_stats(weight, bias)
    elif not isinstance(stats, SphericalStats) or stats.num_classes != k:
        raise ValueError("`stats` must be the SphericalStats of this `weight`")
    cd = compute_dtype(h.dtype)
    hc = h.to(cd)
    bias_y = 0.0 if bias is None else bias[targets].to(cd)
    o_y = (hc * weight[targets].to(cd)).sum(1) + bias_y
    colsum, gram, wtb = stats.colsum.to(cd), stats.gram.to(cd), stats.wtb.to(cd)
    s1 = hc @ colsum + stats.bsum.to(cd)
    s2 = ((hc @ gram) * hc).sum(1) + 2 * (hc @ wtb) + stats.bsq.to(cd)
    mu = s1 / k
    var = (s2 / k - mu**2).clamp_min(0)
    zc = _standardize(o_y - mu, var)
    return finish(_z_loss_from_zc(zc, a, b), valid, (h.shape[0],), reduction, h.dtype)


def _spherical_targets(targets: Any, n: int, k: int, ignore_index: int):
    """``(valid, labels)`` of integer ``targets`` (n,) in ``[0, K)`` or equal to ``ignore_index``."""
    targets = check_tensor(targets, "targets", ndim=1, floating=False)
    if targets.dtype == torch.bool:
        raise TypeError("`targets` must be integer class labels, got dtype torch.bool")
    if targets.shape[0] != n:
        raise ValueError(f"`targets` has {targets.shape[0]} entries but `h` has {n} rows")
    t = targets.long()
    valid = t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    if bool(((t < 0) | (t >= k)).any()):
        bad = targets[valid & ((t < 0) | (t >= k))][0]
        raise ValueError(
            f"`targets` must be class indices in [0, {k}) (or ignore_index={ignore_index}), found {int(bad)}"
        )
    return valid, t
