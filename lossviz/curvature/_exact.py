r"""The dense Hessian of the mean loss, column by column, for small models and references.

``H e_i`` for every unit vector ``e_i`` (blocks of them through a vmapped double backward pass),
then symmetrised ``(H + H^T) / 2``; the asymmetry before symmetrising is kept as a diagnostic.
Memory is ``8 n^2`` bytes in float64, so :func:`exact_hessian` refuses more than ``max_params``
parameters. The tests compare every matrix-free estimator with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._result import Result
from .._validate import check_int
from ._operator import ParamSelection, _operator

__all__ = ["ExactHessian", "exact_hessian"]


@dataclass(frozen=True, repr=False)
class ExactHessian(Result):
    """The dense Hessian of the mean loss (symmetrised) and how it was obtained.

    Attributes
    ----------
    matrix : torch.Tensor (n, n)
        ``(H + H^T) / 2`` of the numerically computed Hessian.
    names, shapes : parameter names and shapes, in the flattening order.
    loss : float
        The mean loss at the model's parameters.
    asymmetry : float
        ``max |H - H^T|`` before symmetrising (a numerical-accuracy diagnostic).
    """

    matrix: torch.Tensor
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    loss: float
    asymmetry: float
    dtype: torch.dtype
    mode: str

    @property
    def eigenvalues(self) -> torch.Tensor:
        """All eigenvalues in ascending order (``torch.linalg.eigvalsh``)."""
        return torch.linalg.eigvalsh(self.matrix)

    def eigh(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues (ascending) and orthonormal eigenvectors (columns)."""
        return torch.linalg.eigh(self.matrix)


def exact_hessian(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: Any = None,
    *,
    params: ParamSelection = None,
    dtype: torch.dtype | str | None = None,
    mode: str = "eval",
    max_params: int = 6000,
    block: int | None = None,
) -> ExactHessian:
    r"""The full Hessian ``H`` (n x n) of the sample-weighted mean loss, for small models.

    Computed column by column as ``H e_i`` (blocks of ``block`` unit vectors through a vmapped
    double backward pass; default :meth:`HessianOperator.default_block`), then symmetrised. Refuses more than ``max_params`` parameters
    (memory ``8 n^2`` bytes in float64).

    Parameters are as for :class:`HessianOperator`; pass ``dtype=torch.float64`` for a
    reference. ``model`` may also be a :class:`HessianOperator`.
    """
    op = _operator(model, loss_fn, data, params, dtype, mode)
    max_params = check_int(max_params, "max_params", minimum=1)
    if op.size > max_params:
        raise ValueError(
            f"exact_hessian: {op.size} parameters exceed `max_params`={max_params} (memory {8 * op.size**2 / 2**30:.1f} GiB "
            "in float64); select fewer with `params` or use top_eigenvalues / spectral_density"
        )
    eye = torch.eye(op.size, dtype=op.dtype, device=op.device)
    H = op.matmat(eye, block=block)
    asym = float((H - H.T).abs().max()) if op.size else 0.0
    H = (H + H.T) / 2
    loss = op._loss_value if op._loss_value is not None else float(op.loss().detach())
    return ExactHessian(H, tuple(op.names), tuple(op.shapes), loss, asym, op.dtype, op.mode)
