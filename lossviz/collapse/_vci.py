r"""The Variability Collapse Index (VCI) of Xu & Liu.

.. math::
    \mathrm{VCI} = 1 - \frac{\operatorname{Tr}(\Sigma_T^{+}\Sigma_B)}{\operatorname{rank}(\Sigma_B)}

with the total and the sample-weighted between-class covariance; ``Tr(Sigma_T^+ Sigma_B)`` is the
label variance explained by a least-squares linear probe, so VCI is invariant to invertible
linear maps of the features.

Reference: Jing Xu & Haoxiong Liu, "Quantifying the Variability Collapse of Neural Networks",
ICML 2023, arXiv:2306.03440.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from .._result import Result
from .._validate import check_float
from ._checks import F64
from ._statistics import class_statistics

__all__ = ["VCIResult", "vci"]


@dataclass(frozen=True, repr=False)
class VCIResult(Result):
    r"""Variability Collapse Index and its parts.

    ``value = 1 - explained / rank_between`` with ``explained`` :math:`=\operatorname{Tr}(\Sigma_T^+\Sigma_B)`.
    ``float(result)`` gives ``value``.
    """

    value: float
    explained: float
    rank_between: int
    rank_total: int
    num_classes: int
    num_samples: int
    rcond: float

    def __float__(self) -> float:
        return self.value


def vci(
    features: torch.Tensor | Iterable[tuple[torch.Tensor, torch.Tensor]],
    labels: torch.Tensor | None = None,
    *,
    num_classes: int | None = None,
    rcond: float = 1e-10,
    batch_size: int = 8192,
) -> VCIResult:
    r"""Variability Collapse Index (VCI) of Xu & Liu.

    .. math::
        \mathrm{VCI} = 1 - \frac{\operatorname{Tr}(\Sigma_T^{+}\Sigma_B)}{\operatorname{rank}(\Sigma_B)},

    with the total covariance :math:`\Sigma_T = \frac1N\sum_i (h_i-\bar h)(h_i-\bar h)^\top` and
    the sample-weighted between-class covariance
    :math:`\Sigma_B = \sum_k \frac{n_k}{N}(\mu_k-\bar h)(\mu_k-\bar h)^\top` (so
    :math:`\Sigma_T = \Sigma_W + \Sigma_B`). :math:`\operatorname{Tr}(\Sigma_T^+\Sigma_B)` is the
    variance of the centred one-hot labels (whitened by class frequency) explained by a
    least-squares linear probe on the features, which is why VCI is invariant to every invertible
    linear map of the features (NC1 is not). VCI is 0 for collapsed features and near 1 when the
    features carry no linear information about the labels.

    ``Sigma_T^+`` is a Hermitian pseudo-inverse (eigen-decomposition, eigenvalues below
    ``rcond * max`` dropped): dead units make ``Sigma_T`` singular. ``rank(Sigma_B)`` is the
    numerical rank (same ``rcond``), normally ``K - 1``.

    Parameters
    ----------
    features, labels, num_classes, batch_size : as in :func:`class_statistics`.
    rcond : relative eigenvalue cut-off for the pseudo-inverse and the rank.

    References
    ----------
    Jing Xu & Haoxiong Liu, "Quantifying the Variability Collapse of Neural Networks", ICML 2023,
    arXiv:2306.03440.

    Example
    -------
    >>> import torch
    >>> h = torch.tensor([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0], [2.0, 3.0]])
    >>> round(vci(h, torch.tensor([0, 0, 1, 1])).value, 12)   # collapsed: 0
    0.0
    """
    rcond = check_float(rcond, "rcond", minimum=0.0, maximum=1.0)
    st = class_statistics(
        features, labels, num_classes=num_classes, global_mean="weighted", batch_size=batch_size
    )
    p = st.counts.to(F64) / st.counts.sum()
    c = (st.means - st.global_mean) * p.sqrt()[:, None]  # Sigma_B = c^T c
    total = st.within + c.T @ c
    total = 0.5 * (total + total.T)
    evals, evecs = torch.linalg.eigh(total)
    top = float(evals[-1])
    keep = evals > rcond * top if top > 0 else torch.zeros_like(evals, dtype=torch.bool)
    proj = (c @ evecs[:, keep]) / evals[keep].sqrt()
    explained = float(proj.square().sum())
    sv = torch.linalg.svdvals(c)
    rank_b = int((sv.square() > rcond * float(sv[0]) ** 2).sum()) if float(sv[0]) > 0 else 0
    if rank_b == 0:
        raise ValueError("all class means of `features` coincide: rank(Sigma_B) = 0 and VCI is undefined")
    return VCIResult(
        value=1.0 - explained / rank_b,
        explained=explained,
        rank_between=rank_b,
        rank_total=int(keep.sum()),
        num_classes=st.num_classes,
        num_samples=st.num_samples,
        rcond=rcond,
    )
