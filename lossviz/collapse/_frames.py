r"""Target geometries of neural collapse: simplex ETF, orthogonal frame, imbalanced frame.

* :func:`simplex_etf`: ``K`` unit vectors with pairwise cosine :math:`-1/(K-1)`, the geometry of
  the centred class means at the optimum of the cross-entropy unconstrained-feature model on
  balanced data (Papyan, Han & Donoho, PNAS 2020, arXiv:2008.08186);
* :func:`orthogonal_frame`: the optimum of the bias-free MSE model on balanced data;
* :func:`imbalanced_frame`: the closed form of the bias-free MSE model on imbalanced data, with
  class-dependent norms and minority collapse (Dang, Tran, Osher, Tran-The, Ho & Nguyen, ICML
  2023, arXiv:2301.00437);
* :func:`frame_distance` measures a set of vectors against a target through Gram matrices;
* :func:`minority_collapse` the smallest angle between minority-class vectors (Fang, He, Long &
  Su, PNAS 2021, arXiv:2101.12699).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_choice, check_float, check_int, check_tensor
from ._checks import F64

__all__ = [
    "simplex_etf",
    "orthogonal_frame",
    "ImbalancedFrame",
    "imbalanced_frame",
    "frame_distance",
    "MinorityCollapse",
    "minority_collapse",
]


# ---------------------------------------------------------------------------- Gram helpers


def offdiag_mean(m: torch.Tensor) -> float:
    k = m.shape[0]
    mask = ~torch.eye(k, dtype=torch.bool, device=m.device)
    return float(m[mask].mean())


def coefficient_of_variation(x: torch.Tensor) -> float:
    mean = x.mean()
    if float(mean) == 0.0:
        return float("nan")
    return float(x.std(unbiased=False) / mean)


def cosines(v: torch.Tensor) -> torch.Tensor:
    norms = v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)
    u = v / norms
    return u @ u.T


def etf_gram(k: int, dtype=F64, device=None) -> torch.Tensor:
    return torch.eye(k, dtype=dtype, device=device) - torch.full((k, k), 1.0 / k, dtype=dtype, device=device)


def normalized_gram_distance(v: torch.Tensor, target_gram: torch.Tensor) -> float:
    g = v @ v.T
    gn = g.norm()
    if float(gn) == 0.0:
        return float("nan")
    return float((g / gn - target_gram / target_gram.norm()).norm())


# ---------------------------------------------------------------------------- target geometries


def simplex_etf(
    num_classes: int, dim: int | None = None, *, dtype: torch.dtype = F64, device=None
) -> torch.Tensor:
    r"""A simplex equiangular tight frame: ``K`` unit rows with pairwise cosine ``-1/(K-1)``.

    Rows are :math:`\sqrt{K/(K-1)}\,(e_k - \mathbf 1/K)` expressed in an orthonormal basis of the
    ``(K-1)``-dimensional subspace orthogonal to :math:`\mathbf 1`, padded with zeros to ``dim``
    (default ``K - 1``; must be ``>= K - 1``). They sum to zero.

    >>> m = simplex_etf(3)
    >>> [round(v, 6) for v in (m @ m.T)[0].tolist()]
    [1.0, -0.5, -0.5]
    """
    k = check_int(num_classes, "num_classes", minimum=2)
    dim = k - 1 if dim is None else check_int(dim, "dim", minimum=k - 1)
    p = etf_gram(k) * math.sqrt(k / (k - 1))
    evals, evecs = torch.linalg.eigh(etf_gram(k))
    basis = evecs[:, evals > 0.5]  # (K, K-1) orthonormal basis of 1^perp
    m = p @ basis
    out = torch.zeros(k, dim, dtype=F64, device=m.device)
    out[:, : k - 1] = m
    return out.to(dtype=dtype, device=device)


def orthogonal_frame(
    num_classes: int, dim: int | None = None, *, dtype: torch.dtype = F64, device=None
) -> torch.Tensor:
    """``K`` orthonormal rows (the first ``K`` standard basis vectors of ``R^dim``, ``dim >= K``).

    The optimum of the bias-free MSE unconstrained-feature model on balanced data.
    """
    k = check_int(num_classes, "num_classes", minimum=1)
    dim = k if dim is None else check_int(dim, "dim", minimum=k)
    return torch.eye(k, dim, dtype=dtype, device=device)


@dataclass(frozen=True, repr=False)
class ImbalancedFrame(Result):
    r"""Closed-form optimum of the bias-free MSE UFM on imbalanced data (depth 1).

    ``feature_norms[k] = ||h_k||``, ``classifier_norms[k] = ||w_k||``, ``shrink[k] = p_k``;
    means (and classifier rows) are mutually orthogonal; classes with ``p_k = 0`` have collapsed
    to zero (minority collapse). ``threshold`` is the class size below which that happens.
    """

    counts: tuple[int, ...]
    shrink: np.ndarray
    feature_norms: np.ndarray
    classifier_norms: np.ndarray
    threshold: float
    lambda_W: float
    lambda_H: float

    @property
    def collapsed(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.nonzero(self.shrink == 0)[0])

    def feature_gram(self) -> np.ndarray:
        return np.diag(self.feature_norms**2)

    def classifier_gram(self) -> np.ndarray:
        return np.diag(self.classifier_norms**2)

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Closed-form norms against the class size (see :func:`plotting.plot_imbalanced_frame`)."""
        from .plotting import plot_imbalanced_frame

        return plot_imbalanced_frame(self, backend=backend, ax=ax, **kw)


def imbalanced_frame(
    counts: Sequence[int], lambda_W: float, lambda_H: float | None = None
) -> ImbalancedFrame:
    r"""Target geometry of the imbalanced bias-free MSE UFM (Dang et al. 2023, Theorem for depth 1).

    For :math:`\min_{W,H} \frac{1}{2N}\|WH-Y\|_F^2 + \frac{\lambda_W}{2}\|W\|_F^2 + \frac{\lambda_H}{2}\|H\|_F^2`
    (penalty on ``H`` summed over samples; ``H`` has one column per sample, ``d >= K``), the
    optimum has collapsed features, mutually orthogonal class means and classifier rows, and

    .. math::
        p_k = \max\Big(0,\ 1 - \frac{N\sqrt{\lambda_W\lambda_H}}{\sqrt{n_k}}\Big),\quad
        \|h_k\|^2 = p_k\sqrt{\frac{\lambda_W}{\lambda_H n_k}},\quad
        \|w_k\|^2 = p_k\sqrt{\frac{\lambda_H n_k}{\lambda_W}},

    so with :math:`\lambda_W=\lambda_H=\lambda`: :math:`\|h_k\|^2 = p_k/\sqrt{n_k}`,
    :math:`\|w_k\|^2 = p_k\sqrt{n_k}`. Classes with :math:`n_k \le N^2\lambda_W\lambda_H` collapse to
    zero (minority collapse). The derivation (per class, AM-GM on the two penalties, then a
    scalar quadratic) is in :mod:`lossviz.derivations.collapse`.

    References
    ----------
    Hien Dang, Tho Tran, Stanley Osher, Hung Tran-The, Nhat Ho & Tan Nguyen, "Neural Collapse in
    Deep Linear Networks: From Balanced to Imbalanced Data", ICML 2023, arXiv:2301.00437.

    Example
    -------
    >>> t = imbalanced_frame([200, 100, 50, 25], 5e-3)
    >>> bool((np.diff(t.feature_norms) > 0).all())   # smaller classes have LONGER features here
    True
    """
    counts = tuple(check_int(c, "counts[i]", minimum=1) for c in counts)
    if len(counts) < 2:
        raise ValueError(f"`counts` needs at least two classes, got {len(counts)}")
    lw = check_float(lambda_W, "lambda_W", positive=True)
    lh = lw if lambda_H is None else check_float(lambda_H, "lambda_H", positive=True)
    n = np.asarray(counts, dtype=np.float64)
    total = n.sum()
    p = np.maximum(0.0, 1.0 - total * math.sqrt(lw * lh) / np.sqrt(n))
    return ImbalancedFrame(
        counts=counts,
        shrink=p,
        feature_norms=np.sqrt(p * np.sqrt(lw / (lh * n))),
        classifier_norms=np.sqrt(p * np.sqrt(lh * n / lw)),
        threshold=float(total**2 * lw * lh),
        lambda_W=lw,
        lambda_H=lh,
    )


def frame_distance(
    vectors: torch.Tensor, target: str | torch.Tensor | np.ndarray = "etf", *, center: bool = False
) -> float:
    r"""Distance of ``K`` vectors (rows) to a target geometry, through their Gram matrix.

    * ``target="etf"``: :math:`\|G/\|G\|_F - G_{ETF}/\|G_{ETF}\|_F\|_F` with
      :math:`G_{ETF} = I - \mathbf 1\mathbf 1^\top/K` (scale-free);
    * ``target="orthogonal"``: the same with :math:`I` (scale-free);
    * a ``(K, K)`` Gram matrix (e.g. ``ImbalancedFrame.feature_gram()``): the relative distance
      :math:`\|G - G^*\|_F/\|G^*\|_F`, which checks the norms too.

    ``center=True`` subtracts the mean row first (use it for class means).
    """
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(F64)
    if center:
        v = v - v.mean(0)
    k = v.shape[0]
    if isinstance(target, str):
        check_choice(target, "target", ("etf", "orthogonal"))
        tg = etf_gram(k, device=v.device) if target == "etf" else torch.eye(k, dtype=F64, device=v.device)
        return normalized_gram_distance(v, tg)
    tg = check_tensor(target, "target", ndim=2, floating=True).to(F64).to(v.device)
    if tuple(tg.shape) != (k, k):
        raise ValueError(f"`target` Gram matrix must have shape ({k}, {k}), got {tuple(tg.shape)}")
    return float((v @ v.T - tg).norm() / tg.norm())


@dataclass(frozen=True, repr=False)
class MinorityCollapse(Result):
    """Angles (degrees) between classifier (or mean) vectors; the smallest among ``minority``."""

    min_angle: float
    pair: tuple[int, int]
    angles: np.ndarray
    minority: tuple[int, ...]

    def plot(self, backend: str = "plotly", ax=None, **kw):
        """Heatmap of the pairwise angles (see :func:`plotting.plot_angles`)."""
        from .plotting import plot_angles

        return plot_angles(self, backend=backend, ax=ax, **kw)


def minority_collapse(vectors: torch.Tensor | nn.Linear, minority: Sequence[int]) -> MinorityCollapse:
    r"""Minority-collapse diagnostic: the smallest angle between the vectors of minority classes.

    Under strong imbalance the classifier rows of minority classes collapse towards one
    direction (Fang, He, Long & Su, "Exploring Deep Neural Networks via Layer-Peeled Model:
    Minority Collapse in Imbalanced Training", PNAS 2021, arXiv:2101.12699): their pairwise angles
    shrink from :math:`\arccos(-1/(K-1))` towards 0.

    Parameters
    ----------
    vectors : ``(K, d)`` rows (classifier weights or centred means) or an ``nn.Linear``.
    minority : indices of the minority classes (at least two).
    """
    if isinstance(vectors, nn.Linear):
        vectors = vectors.weight
    v = check_tensor(vectors, "vectors", ndim=2, floating=True).detach().to(F64)
    k = v.shape[0]
    minority = tuple(check_int(i, "minority[i]", minimum=0, maximum=k - 1) for i in minority)
    if len(set(minority)) < 2:
        raise ValueError(f"`minority` needs at least two distinct classes, got {minority}")
    ang = torch.rad2deg(torch.arccos(cosines(v).clamp(-1.0, 1.0))).cpu().numpy()
    best, pair = math.inf, (minority[0], minority[1])
    for a in range(len(minority)):
        for b in range(a + 1, len(minority)):
            i, j = minority[a], minority[b]
            if ang[i, j] < best:
                best, pair = float(ang[i, j]), (i, j)
    return MinorityCollapse(min_angle=best, pair=pair, angles=ang, minority=minority)
