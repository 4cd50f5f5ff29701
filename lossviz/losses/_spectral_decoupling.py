r"""Spectral decoupling: cross-entropy plus an L2 penalty on the logits (not on the weights).

Paper: Mohammad Pezeshki, Sekou-Oumar Kaba, Yoshua Bengio, Aaron Courville, Doina Precup,
Guillaume Lajoie, "Gradient Starvation: A Learning Proclivity in Neural Networks", NeurIPS 2021,
arXiv:2011.09468 (eq. 5: ``L = CE + (lambda/2) ||y_hat||^2``).

Per sample ``i``: ``CE_i + (lam/2) sum_k z_ik^2`` for ``K``-class logits ``z_i``; for one binary logit
``f_i`` and a label ``y_i = +-1`` it is ``softplus(-y_i f_i) + (lam/2) f_i^2``. Penalising the logits
removes the coupling through which a feature that already classifies the data starves the gradient
of the others; the per-sample optimum of the binary loss puts the margin ``m = y f`` at the root of
``lam m = 1 / (1 + e^m)`` (finite, unlike plain CE whose margins grow without bound).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_float, check_tensor
from ._common import check_ignore_index, check_reduction, compute_dtype, finish, prepare, reduce

__all__ = ["spectral_decoupling"]


def _binary_labels(targets: Any, n: int) -> torch.Tensor:
    if not isinstance(targets, torch.Tensor):
        targets = check_tensor(targets, "targets", finite=False)
    if targets.dtype == torch.bool or targets.is_complex():
        raise TypeError(f"`targets` must be real labels +-1 or 0/1, got dtype {targets.dtype}")
    if targets.numel() != n or (targets.ndim > 1 and targets.reshape(-1).shape[0] != n):
        raise ValueError(f"`targets` must hold one label per logit ({n}), got shape {tuple(targets.shape)}")
    t = targets.reshape(-1)
    pm = bool(((t == 1) | (t == -1)).all())
    if not pm and not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("`targets` of a binary (one-logit) batch must all be in {-1, +1} or all in {0, 1}")
    return t if pm else 2 * t - 1


def spectral_decoupling(
    logits: Any,
    targets: Any,
    *,
    lam: float = 0.1,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    r"""Spectral decoupling (Pezeshki et al. 2021): ``CE + (lam/2) ||logits||^2`` per sample.

    Parameters
    ----------
    logits : ``(n, K)`` / ``(n, K, d1, ...)`` with ``K >= 2`` (classes in dimension 1, read as
        ``F.cross_entropy`` reads them), or one binary logit per sample, ``(n,)`` or ``(n, 1)``
    targets : for ``K >= 2``: integer labels ``(n,)`` / ``(n, d1, ...)`` or soft targets of the
        logits' shape; for a binary logit: ``n`` labels, all in ``{-1, +1}`` or all in ``{0, 1}``
        (integer or float)
    lam : the penalty weight ``lambda >= 0`` (default 0.1, the K06 toy's value; the paper tunes it
        per task). ``lam = 0`` is plain (softmax or logistic) cross-entropy.
    reduction : "mean" | "sum" | "none" (``"mean"`` averages over the non-ignored entries)
    ignore_index : integer labels equal to it contribute 0 (class labels only; default -100)

    The penalty is ``(lam/2)`` times the squared norm of a sample's logit vector (``sum_k z_k^2``),
    then reduced like the CE term. Half inputs are evaluated in float32 and cast back.

    Examples
    --------
    >>> import torch, math
    >>> from lossviz.losses import spectral_decoupling
    >>> z = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    >>> float(spectral_decoupling(z, torch.tensor([1]), lam=0.5)) == math.log(2)
    True
    >>> round(float(spectral_decoupling(torch.tensor([2.0]), torch.tensor([1.0]), lam=0.1)), 4)
    0.3269
    """
    lam = check_float(lam, "lam", minimum=0.0)
    reduction = check_reduction(reduction)
    ignore_index = check_ignore_index(ignore_index)
    if not isinstance(logits, torch.Tensor):
        logits = check_tensor(logits, "logits", finite=False)
    if not logits.is_floating_point():
        raise TypeError(f"`logits` must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        if logits.numel() == 0:
            raise ValueError(f"`logits` must not be empty, got shape {tuple(logits.shape)}")
        cd = compute_dtype(logits.dtype)
        f = logits.reshape(-1).to(cd)
        y = _binary_labels(targets, f.numel()).to(device=f.device, dtype=cd)
        loss = F.softplus(-y * f) + 0.5 * lam * f.square()
        if reduction == "none":
            return loss.to(logits.dtype).reshape(logits.shape)
        return reduce(loss, reduction).to(logits.dtype)
    z, t, valid, shape, logits = prepare(logits, targets, ignore_index=ignore_index)
    cd = compute_dtype(logits.dtype)
    zc = z.to(cd)
    tc = t.to(cd) if t.is_floating_point() else t
    loss = F.cross_entropy(zc, tc, reduction="none") + 0.5 * lam * zc.square().sum(1)
    return finish(loss, valid, shape, reduction, logits.dtype)
