r"""L03: the scalar network and its gradient-flow solution (GFS), in closed form.

Paper: I. Kreisler, M. Shpigel Nacson, D. Soudry, Y. Carmon, "Gradient Descent Monotonically
Decreases the Sharpness of Gradient Flow Solutions in Scalar Networks and Beyond", ICML 2023,
arXiv:2305.13064. Notebook: ``notebooks/landscape/L03_gfs_sharpness.ipynb``.

The depth-``D`` scalar network ``f(x) = (prod_i w_i) x`` on the single point ``x = 1`` with the
squared loss ``L = (prod_i w_i - y)^2 / 2``. Gradient flow conserves ``w_i^2 - w_j^2``, so the
point it converges to from ``w`` (the GFS) is ``sign(w) sqrt(w^2 + s)`` with one scalar ``s``; on
the minimiser manifold the Hessian is ``g g^T`` with ``g_i = y / w_i`` and sharpness
``y^2 sum_i 1 / w_i^2``. The paper proves that GD at the edge of stability lowers the GFS
sharpness at every step.

>>> import numpy as np
>>> w_star, s = gradient_flow_solution([1.0, 2.0, 3.0], 5.0)
>>> bool(abs(np.prod(w_star) - 5.0) < 1e-12), bool(abs(s - 25 * np.sum(1 / w_star**2)) < 1e-9)
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validate import check_float, check_tensor

__all__ = ["ScalarNetwork", "gradient_flow_solution"]


class ScalarNetwork(nn.Module):
    r"""The depth-``D`` scalar network ``f(x) = (prod_i w_i) x`` with weights ``w`` of shape (D,).

    Kreisler, Shpigel Nacson, Soudry & Carmon, "Gradient Descent Monotonically Decreases the
    Sharpness of Gradient Flow Solutions in Scalar Networks and Beyond", ICML 2023,
    arXiv:2305.13064. With the squared loss ``L = (f(x) - y)^2 / 2`` on the single point
    ``x = 1``, the Hessian on the minimiser manifold ``prod w = y`` is ``grad f grad f^T`` with
    the single non-zero eigenvalue ``y^2 sum_i 1 / w_i^2``.
    """

    def __init__(self, w: Any, *, dtype: torch.dtype | None = torch.float64):
        super().__init__()
        w = torch.as_tensor(np.asarray(w) if not isinstance(w, torch.Tensor) else w)
        w = check_tensor(w.reshape(-1).to(dtype or torch.get_default_dtype()), "w", ndim=1)
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.prod(self.w)


def gradient_flow_solution(w: Any, y: float) -> tuple[np.ndarray, float]:
    r"""The point where gradient flow from ``w`` converges, for the scalar network and target ``y``.

    Gradient flow on ``L = (prod_i w_i - y)^2 / 2`` conserves ``w_i^2 - w_j^2``, so its limit is
    ``sign(w) sqrt(w^2 + s)`` with the scalar ``s`` that makes the product equal ``y``; ``s`` is
    found by :func:`scipy.optimize.brentq`. Returns ``(w_star, sharpness)`` with the GFS sharpness
    ``y^2 sum_i 1 / w_star_i^2``. Requires ``sign(prod w) = sign(y)`` and no zero weight.
    """
    from scipy.optimize import brentq

    w = np.asarray(
        torch.as_tensor(w).detach().cpu().to(torch.float64) if isinstance(w, torch.Tensor) else w,
        dtype=np.float64,
    ).reshape(-1)
    y = check_float(y, "y")
    if w.size == 0 or np.any(w == 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"`w` must be finite and non-zero, got {w}")
    if y == 0 or np.sign(np.prod(w)) != np.sign(y):
        raise ValueError(
            f"gradient_flow_solution needs sign(prod w) = sign(y) != 0; got prod w = {np.prod(w)}, y = {y}"
        )
    sq, sg, target = w**2, np.sign(w), math.log(abs(y))

    def h(s):
        return 0.5 * np.sum(np.log(sq + s)) - target

    m = float(sq.min())
    if h(0.0) > 0:  # product too large: shrink, s in (-min w^2, 0); h -> -inf as s -> -min w^2
        k = 1
        while h(-m + m * 10.0**-k) > 0:
            k += 1
            if k > 300:
                raise ValueError("gradient_flow_solution: no bracket found")
        s = brentq(h, -m + m * 10.0**-k, 0.0, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    elif h(0.0) < 0:
        hi = 1.0
        while h(hi) < 0:
            hi *= 2
        s = brentq(h, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=1000)
    else:
        s = 0.0
    w_star = sg * np.sqrt(sq + s)
    return w_star, float(y**2 * np.sum(1.0 / w_star**2))
