"""Small statistics the notebooks share: log-log slope fits and Gram / cosine matrices.

>>> import numpy as np
>>> from lossviz import stats
>>> fit = stats.loglog_slope([1, 10, 100], [2.0, 0.2, 0.02])
>>> round(fit.slope, 6), round(fit.r2, 6)
(-1.0, 1.0)
>>> stats.cosine_matrix([[1.0, 0.0], [1.0, 1.0]]).round(4).tolist()
[[1.0, 0.7071], [0.7071, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._result import Result

__all__ = ["SlopeFit", "loglog_slope", "gram_matrix", "cosine_matrix"]


@dataclass(frozen=True, repr=False)
class SlopeFit(Result):
    r"""Least-squares line through :math:`(\log x, \log y)`: :math:`\log y = a + s \log x`.

    ``slope`` :math:`s`, ``intercept`` :math:`a` (natural log), ``r2`` the coefficient of
    determination in log space, ``n`` the number of points used.
    """

    slope: float
    intercept: float
    r2: float
    n: int

    def predict(self, x: Any) -> np.ndarray:
        """The fitted power law :math:`e^a x^s` at ``x``."""
        return np.exp(self.intercept) * np.asarray(x, dtype=float) ** self.slope


def _as_array(v: Any, name: str) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    try:
        return np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be numbers (array-like), got {type(v).__name__}") from None


def loglog_slope(x: Any, y: Any) -> SlopeFit:
    """Fit a power law ``y ~ x**slope`` by least squares in log-log space.

    ``x`` and ``y`` are 1-D of equal length >= 2 with positive finite entries; anything else is a
    ``ValueError`` naming the argument.
    """
    xa, ya = _as_array(x, "x").reshape(-1), _as_array(y, "y").reshape(-1)
    if xa.shape != ya.shape:
        raise ValueError(f"`x` has {xa.size} values but `y` has {ya.size}")
    if xa.size < 2:
        raise ValueError(f"`x` needs at least 2 points for a slope, got {xa.size}")
    for arr, name in ((xa, "x"), (ya, "y")):
        if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            raise ValueError(f"`{name}` must be positive and finite for a log-log fit, got {arr}")
    lx, ly = np.log(xa), np.log(ya)
    if np.ptp(lx) == 0:
        raise ValueError("`x` values are all equal: the slope is undefined")
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (intercept + slope * lx)
    ss = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss if ss > 0 else 1.0
    return SlopeFit(float(slope), float(intercept), r2, int(xa.size))


def _rows(v: Any, name: str) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        v = torch.as_tensor(_as_array(v, name), device="cpu")
    if v.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (one vector per row), got shape {tuple(v.shape)}")
    if not v.is_floating_point():
        v = v.double()
    if not torch.isfinite(v).all():
        raise ValueError(f"`{name}` has non-finite entries")
    return v.detach().to(torch.float64)


def gram_matrix(v: Any) -> np.ndarray:
    """``V V^T`` of the rows of ``v`` in float64, as a NumPy array."""
    r = _rows(v, "v")
    return (r @ r.T).cpu().numpy()


def cosine_matrix(v: Any) -> np.ndarray:
    """Pairwise cosines of the rows of ``v`` (float64); a zero row is a ``ValueError``."""
    r = _rows(v, "v")
    norms = r.norm(dim=1)
    if (norms == 0).any():
        raise ValueError(
            f"`v` has zero rows {torch.nonzero(norms == 0).flatten().tolist()}: cosine undefined"
        )
    u = r / norms[:, None]
    return (u @ u.T).clamp(-1, 1).cpu().numpy()
