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

The notebook's experiment: :func:`imbalanced_start` (the curriculum's start points),
:func:`gd_run` (plain full-batch GD in numpy, the GFS sharpness and the iterate's own sharpness at
every step) and :func:`eos_statistics` / :func:`eos_claim` (what the claim check asserts).

>>> import numpy as np
>>> w_star, s = gradient_flow_solution([1.0, 2.0, 3.0], 5.0)
>>> bool(abs(np.prod(w_star) - 5.0) < 1e-12), bool(abs(s - 25 * np.sum(1 / w_star**2)) < 1e-9)
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._result import Result
from .._validate import check_float, check_int, check_tensor

__all__ = [
    "ScalarNetwork",
    "gradient_flow_solution",
    "scalar_hessian",
    "imbalanced_start",
    "ScalarGDRun",
    "gd_run",
    "eos_statistics",
    "eos_claim",
]


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
        w = w if isinstance(w, torch.Tensor) else torch.as_tensor(np.asarray(w), device="cpu")
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
        w.detach().cpu().to(torch.float64) if isinstance(w, torch.Tensor) else w,
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


def scalar_hessian(w: Any, y: float) -> np.ndarray:
    r"""The exact Hessian of ``L = (prod_i w_i - y)^2 / 2`` at ``w`` (numpy, float64).

    ``H = g g^T + (p - y) M`` with ``p = prod w``, ``g_i = p / w_i`` and ``M_ij = p / (w_i w_j)``
    off the diagonal, ``0`` on it (the Hessian of ``p``).
    """
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    p = float(np.prod(w))
    g = p / w
    M = p / np.outer(w, w)
    np.fill_diagonal(M, 0.0)
    return np.outer(g, g) + (p - y) * M


def imbalanced_start(depth: int, y: float, rng: np.random.Generator) -> np.ndarray:
    r"""A start point whose GFS is imbalanced (the curriculum's set-up).

    Target GFS ``w*^2 = y^{2/D} exp(2 z)`` with ``z`` standard normal, centred and scaled to
    ``max |z| = 1``; start at ``w0^2 = w*^2 - min(w*^2) / 2`` (all weights positive). Randomly
    drawn near-balanced starts tend to stall in a long period-2 oscillation instead.
    """
    depth = check_int(depth, "depth", minimum=2)
    z = rng.standard_normal(depth)
    z -= z.mean()
    z /= np.abs(z).max()
    w_star_sq = y ** (2 / depth) * np.exp(2 * z)
    return np.sqrt(w_star_sq - 0.5 * w_star_sq.min())


@dataclass(frozen=True, repr=False)
class ScalarGDRun(Result):
    """Full-batch GD on the scalar network: iterates, loss, GFS sharpness and iterate sharpness.

    ``gfs_sharpness[t]`` is the sharpness of the GFS of ``w[t]`` (NaN where no GFS exists, after a
    sign flip of the product); ``sharpness[t]`` is the top eigenvalue of the Hessian at ``w[t]``.
    """

    w: np.ndarray
    loss: np.ndarray
    gfs_sharpness: np.ndarray
    sharpness: np.ndarray
    eta: float
    y: float

    @property
    def steps(self) -> int:
        return len(self.loss) - 1


def _gfs_or_nan(w, y) -> float:
    try:
        return gradient_flow_solution(w, y)[1]
    except ValueError:  # no GFS: a diverging run jumped past prod w = 0
        return math.nan


def gd_run(w0: Any, eta: float, y: float, *, max_steps: int = 30000, tol: float = 1e-14) -> ScalarGDRun:
    r"""Gradient descent ``w <- w - eta (prod w - y) prod w / w`` until the loss is below ``tol``.

    Stops after ``max_steps`` steps, below ``tol``, or at a non-finite loss. Returns a
    :class:`ScalarGDRun` with the GFS sharpness and the iterate's sharpness at every step.
    """
    eta = check_float(eta, "eta", positive=True)
    max_steps = check_int(max_steps, "max_steps", minimum=0)
    w = np.array(w0, dtype=np.float64).reshape(-1)
    ws, losses = [w.copy()], [0.5 * (np.prod(w) - y) ** 2]
    while len(ws) <= max_steps and losses[-1] >= tol and np.isfinite(losses[-1]):
        p = np.prod(w)
        w = w - eta * (p - y) * p / w
        ws.append(w.copy())
        losses.append(0.5 * (np.prod(w) - y) ** 2)
    W = np.array(ws)
    gfs = np.array([_gfs_or_nan(v, y) for v in W])
    sharp = np.array(
        [np.linalg.eigvalsh(scalar_hessian(v, y))[-1] if np.all(np.isfinite(v)) else np.nan for v in W]
    )
    return ScalarGDRun(W, np.array(losses), gfs, sharp, float(eta), float(y))


def eos_statistics(run: ScalarGDRun) -> dict:
    r"""What the claim check measures on one run.

    * ``loss_rises``: number of steps at which the loss went up (GD is not monotone);
    * ``gfs_max_rise``: ``max_t S_{t+1} / S_t - 1`` of the GFS sharpness (<= 0 when monotone);
    * ``gfs_drop``: ``1 - S_T / S_0``; ``final_ratio``: ``S_T eta / 2``;
    * ``iterate_max_rise``, ``iterate_max_fall``: the largest relative one-step rise and fall of
      the iterate's own sharpness (the contrast: at the edge of stability it goes both ways, it
      oscillates, while the GFS sharpness only falls);
    * ``final_loss``.
    """
    S, s, loss = run.gfs_sharpness, run.sharpness, run.loss
    return {
        "loss_rises": int(np.sum(np.diff(loss) > 0)),
        "gfs_max_rise": float(np.max(S[1:] / S[:-1] - 1)) if len(S) > 1 else 0.0,
        "gfs_drop": float(1 - S[-1] / S[0]),
        "final_ratio": float(S[-1] * run.eta / 2),
        "iterate_max_rise": float(np.max(s[1:] / s[:-1] - 1)) if len(s) > 1 else 0.0,
        "iterate_max_fall": float(np.max(1 - s[1:] / s[:-1])) if len(s) > 1 else 0.0,
        "final_loss": float(loss[-1]),
    }


def eos_claim(stats: dict, *, monotone_tol: float = 1e-12, min_drop: float = 0.1) -> bool:
    r"""The claim's test on one run: GD at the edge of stability (the loss rises at least once)
    drives the GFS sharpness down monotonically (``S_{t+1} <= S_t (1 + monotone_tol)``) by at
    least ``min_drop``, to ``0.75 <= S_T eta / 2 <= 1 + 1e-3``, and converges (loss < 1e-12)."""
    return (
        stats["loss_rises"] >= 1
        and stats["gfs_max_rise"] <= monotone_tol
        and stats["gfs_drop"] >= min_drop
        and 0.75 <= stats["final_ratio"] <= 1 + 1e-3
        and stats["final_loss"] < 1e-12
    )
