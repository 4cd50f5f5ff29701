r"""The class structure of the Hessian's outliers: class-mean gradients and subspace energy.

For a classifier trained on ``K`` well-separated classes, the Gauss-Newton part of the Hessian
behaves like ``sum_c g_c g_c^T`` plus a spread-out remainder, where ``g_c`` is the mean loss
gradient over class ``c``: the top ``K`` eigenvectors lie in ``span{g_1, ..., g_K}`` and the
``K(K-1)`` cross-class means (the gradient of class ``c``'s loss as if its label were ``c'``)
span the next level of outliers (V. Papyan, "Measurements of Three-Level Hierarchical Structure in
the Outliers in the Spectrum of Deepnet Hessians", ICML 2019, arXiv:1901.08244; V. Papyan,
"Traces of Class/Cross-Class Structure Pervade Deep Learning Spectra", JMLR 21, 2020,
arXiv:2008.11865). L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of
the Hessian of Over-Parametrized Neural Networks", 2017, arXiv:1706.04454, observed that the
number of outliers follows the number of classes.

:func:`subspace_energy` measures how much of each eigenvector lies in such a span.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._model import map_inputs
from .._validate import check_tensor
from ._operator import HessianOperator, ParamSelection

__all__ = ["class_mean_gradients", "subspace_energy"]


def class_mean_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any,
    *,
    cross: bool = False,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
) -> torch.Tensor:
    r"""Per-class mean loss gradients, the directions that carry the Hessian's outliers.

    With integer labels ``y`` in ``[0, K)``: row ``c`` is
    ``g_c = (1/n_c) sum_{i: y_i = c} grad_theta loss(f(x_i), c)``; with ``cross=True`` the result
    has shape ``(K, K, n)`` and entry ``[c, c']`` is the mean over class ``c`` of the gradient of
    the loss *as if the label were* ``c'`` (V. Papyan, "Measurements of Three-Level Hierarchical
    Structure in the Outliers in the Spectrum of Deepnet Hessians", ICML 2019, arXiv:1901.08244:
    the ``K`` class means explain the top outliers, the ``K(K-1)`` cross-class means the next
    level). L. Sagun, U. Evci, V. U. Guney, Y. Dauphin, L. Bottou, "Empirical Analysis of the
    Hessian of Over-Parametrized Neural Networks", 2017, arXiv:1706.04454, observed that the number
    of outliers follows the number of classes.

    ``loss_fn`` must be a mean over the batch (so the class means are sample means). Returns a
    float tensor in the operator's dtype, parameters flattened as in :class:`HessianOperator`.
    """
    op = HessianOperator(model, loss_fn, data, params=params, dtype=dtype, mode=mode)
    x, y = op.batches.cat()
    if y.ndim != 1 or y.is_floating_point():
        raise TypeError(
            f"`data` targets must be integer class labels of shape (n,), got {y.dtype} {tuple(y.shape)}"
        )
    classes = int(y.max()) + 1
    out = torch.zeros(
        (classes, classes, op.size) if cross else (classes, op.size), dtype=op.dtype, device=op.device
    )
    for c in range(classes):
        m = y == c
        if not bool(m.any()):
            raise ValueError(
                f"`data` has no sample of class {c} (labels must be 0..K-1 with every class present)"
            )
        for c2 in range(classes) if cross else [c]:
            leaves = op._leaves()
            with torch.enable_grad():
                loss = op._loss_on(leaves, map_inputs(x, lambda t, m=m: t[m]), torch.full_like(y[m], c2))
                g = op._flat(torch.autograd.grad(loss, leaves, allow_unused=True)).detach()
            if cross:
                out[c, c2] = g
            else:
                out[c] = g
    return out


def subspace_energy(vectors: torch.Tensor, spanning: torch.Tensor, *, rtol: float = 1e-10) -> torch.Tensor:
    r"""Fraction of each vector's squared norm inside ``span(spanning)``.

    ``vectors`` has shape ``(n, m)`` (columns, e.g. eigenvectors), ``spanning`` shape ``(r, n)``
    (rows). Returns ``||P v_j||^2 / ||v_j||^2`` for each column, with ``P`` the orthogonal projector
    on the span (rank decided by the singular values above ``rtol`` times the largest).
    """
    V = check_tensor(vectors, "vectors", ndim=2, floating=True)
    S = check_tensor(spanning, "spanning", ndim=2, floating=True)
    if S.shape[1] != V.shape[0]:
        raise ValueError(
            f"`spanning` rows must have length {V.shape[0]} (the vectors' length), got {tuple(S.shape)}"
        )
    U, sv, _ = torch.linalg.svd(S.T.to(V.dtype), full_matrices=False)
    rank = int((sv > rtol * sv.max()).sum()) if sv.numel() else 0
    Q = U[:, :rank]
    return ((Q.T @ V) ** 2).sum(0) / (V**2).sum(0)
