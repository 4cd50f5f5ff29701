r"""Half squared error: the regression loss of the NTK and edge-of-stability literature.

Per sample ``i`` it is :math:`\ell_i = \tfrac12 \|f(x_i) - y_i\|^2`, the squared norm summed over
every non-batch dimension (the output units, or the classes of one-hot targets); ``"mean"``
averages over the samples. With this convention the Hessian of the loss of a linear model
``f(x) = W x`` is ``kron(I, X^T X / n)`` and gradient flow on it is the kernel regression ODE
``df/dt = -Theta (f - y) / n`` (Jacot et al. 2018), which is why papers on kernels and sharpness
use it rather than ``F.mse_loss``'s mean over all entries.

Unlike ``F.mse_loss`` it never broadcasts: ``(n, 1)`` outputs against ``(n,)`` targets is an
error, not an ``(n, n)`` matrix of cross terms.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .._validate import check_int, check_tensor
from ._common import check_reduction, compute_dtype, reduce

__all__ = ["half_mse"]


def half_mse(
    outputs: Any,
    targets: Any,
    *,
    reduction: str = "mean",
    num_classes: int | None = None,
) -> torch.Tensor:
    r"""Half squared error :math:`\tfrac12\|f(x_i) - y_i\|^2` per sample, summed over the outputs.

    Parameters
    ----------
    outputs : floating tensor ``(n,)`` (one scalar per sample) or ``(n, d1, ...)``
    targets : floating tensor of exactly the shape of ``outputs`` (no broadcasting), or integer
        class labels ``(n,)`` for ``(n, K)`` outputs, read as one-hot rows (``K`` = ``num_classes``
        if given, else ``outputs.shape[1]``)
    reduction : "mean" (over the ``n`` samples, default) | "sum" | "none" (the ``(n,)`` per-sample
        losses)
    num_classes : the number of classes of integer ``targets`` (must equal ``outputs.shape[1]``);
        optional

    Returns
    -------
    torch.Tensor
        A scalar (or ``(n,)`` for ``reduction="none"``) in the dtype of ``outputs``; half inputs
        are evaluated in float32 and cast back.

    Notes
    -----
    For outputs of shape ``(n,)`` or ``(n, 1)`` the mean reduction equals
    ``0.5 * F.mse_loss(outputs, targets)``; for ``(n, K)`` outputs it is ``K`` times that (the
    squared norm is summed over the ``K`` outputs, then averaged over samples).

    Examples
    --------
    >>> import torch
    >>> from lossviz.losses import half_mse
    >>> float(half_mse(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])))  # (1 + 4) / 2
    2.5
    >>> float(half_mse(torch.tensor([[0.5, 0.5]]), torch.tensor([1])))  # one-hot (0, 1)
    0.25
    """
    reduction = check_reduction(reduction)
    if not isinstance(outputs, torch.Tensor):
        outputs = check_tensor(outputs, "outputs", finite=False)
    if not outputs.is_floating_point():
        raise TypeError(f"`outputs` must be a floating-point tensor, got dtype {outputs.dtype}")
    if outputs.ndim == 0 or outputs.numel() == 0:
        raise ValueError(
            f"`outputs` must be (n,) or (n, d1, ...) with n >= 1, got shape {tuple(outputs.shape)}"
        )
    if not isinstance(targets, torch.Tensor):
        targets = check_tensor(targets, "targets", finite=False)
    if targets.dtype == torch.bool or targets.is_complex():
        raise TypeError(f"`targets` must be real-valued or integer class labels, got dtype {targets.dtype}")
    if targets.device != outputs.device:
        raise ValueError(f"`targets` is on {targets.device} but `outputs` on {outputs.device}")
    n = outputs.shape[0]
    if not targets.is_floating_point():
        if outputs.ndim != 2:
            raise ValueError(
                f"integer `targets` (class labels) need `outputs` of shape (n, K), got {tuple(outputs.shape)}"
            )
        k = outputs.shape[1]
        if num_classes is not None and check_int(num_classes, "num_classes", minimum=1) != k:
            raise ValueError(f"`num_classes` ({num_classes}) must equal `outputs.shape[1]` ({k})")
        if tuple(targets.shape) != (n,):
            raise ValueError(f"integer `targets` must have shape ({n},), got {tuple(targets.shape)}")
        if bool(((targets < 0) | (targets >= k)).any()):
            raise ValueError(f"integer `targets` must be class indices in [0, {k})")
        targets = F.one_hot(targets.long(), k)
    elif tuple(targets.shape) != tuple(outputs.shape):
        raise ValueError(
            f"`targets` must have the shape of `outputs` {tuple(outputs.shape)} (no broadcasting), "
            f"got {tuple(targets.shape)}"
        )
    cd = compute_dtype(outputs.dtype)
    diff = outputs.to(cd) - targets.to(cd)
    per_sample = 0.5 * (diff.square() if diff.ndim == 1 else diff.square().reshape(n, -1).sum(1))
    if reduction == "none":
        return per_sample.to(outputs.dtype)
    return reduce(per_sample, reduction).to(outputs.dtype)
