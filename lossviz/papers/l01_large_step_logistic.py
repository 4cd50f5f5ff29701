r"""L01: logistic regression by gradient descent with large step sizes, and its perceptron limit.

The set-up of ``notebooks/landscape/L01_large_step_logistic.ipynb`` (moved here from
``lossviz.landscape.large_steps``; the old names in :mod:`lossviz.landscape` warn and forward).

Reference: Alexander Tyurin, "From Logistic Regression to the Perceptron Algorithm: Exploring
Gradient Descent with Large Step Sizes", Proceedings of the AAAI Conference on Artificial
Intelligence 39 (2025), arXiv:2412.08424.

For data :math:`(x_i, y_i)`, :math:`y_i \in \{-1, +1\}`, the logistic loss is

.. math:: f(w) = \frac1n \sum_i \log\big(1 + e^{-y_i \langle x_i, w\rangle}\big), \qquad
          \nabla f(w) = -\frac1n \sum_i y_i x_i\, \sigma(-y_i \langle x_i, w\rangle).

LR+GD is :math:`w_{t+1} = w_t - \gamma \nabla f(w_t)`. From :math:`w_0 = 0`, write
:math:`w_t = \gamma v_t`; then :math:`v_{t+1} = v_t + \frac1n\sum_i y_i x_i \sigma(-\gamma y_i
\langle x_i, v_t\rangle)` and as :math:`\gamma \to \infty` the sigmoid becomes the Heaviside step
with :math:`H(0) = \sigma(0) = 1/2`: the **batch perceptron**

.. math:: v_{t+1} = v_t + \frac1n \sum_i y_i x_i\, H(-y_i \langle x_i, v_t\rangle).

Normalized LR+GD divides the step by the loss, :math:`w_{t+1} = w_t - \gamma \nabla f(w_t) /
f(w_t)` (Tyurin 2025), which keeps the effective step large once the loss is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._result import Result
from .._validate import check_dtype, check_float, check_int, check_tensor

__all__ = [
    "GDRun",
    "separable_cloud",
    "logistic_loss",
    "logistic_gd",
    "batch_perceptron",
]


@dataclass(frozen=True, repr=False)
class GDRun(Result):
    """Iterates of (normalised) LR+GD for several step sizes, or of the batch perceptron.

    Attributes
    ----------
    gammas : ndarray (G,)  (``inf`` for the perceptron)
    w : tensor (G, T+1, d)   iterates, ``w[:, 0] = w0``
    loss : ndarray (G, T+1)  logistic loss of each iterate (of ``v_t`` for the perceptron)
    errors : ndarray (G, T+1)  number of points with ``y_i <x_i, w> <= 0``
    steps_to_zero : ndarray (G,)  first ``t`` with zero errors (-1 if never within ``steps``)
    normalized : bool
    """

    gammas: np.ndarray
    w: torch.Tensor
    loss: np.ndarray
    errors: np.ndarray
    steps_to_zero: np.ndarray
    normalized: bool


def separable_cloud(
    n: int = 200,
    *,
    variances: tuple[float, float] = (8.0, 1.0),
    rotation: float = 0.6,
    margin: float = 0.1,
    shift: tuple[float, float] = (1.5, -0.5),
    seed: int = 0,
    dtype: torch.dtype | str = torch.float64,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linearly separable, anisotropic, off-centre data (the L01 set-up) with a bias feature.

    Points ``z ~ N(0, R diag(variances) R^T)`` (``R`` = rotation by ``rotation`` radians) with
    ``|z_2| >= margin`` (rejection sampling), labels ``y = sign(z_2)``, inputs
    ``x = (z + shift, 1)``. Two isotropic blobs would be separated by the first GD step; this
    cloud makes the large-step behaviour visible.

    Returns ``(X, y)``: ``X`` (n, 3), ``y`` (n,) in {-1, +1}, both of ``dtype``.
    """
    n = check_int(n, "n", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    margin = check_float(margin, "margin", minimum=0.0)
    dtype = check_dtype(dtype) or torch.float64
    rng = np.random.default_rng(seed)
    c, s = math.cos(rotation), math.sin(rotation)
    R = np.array([[c, -s], [s, c]])
    L = R @ np.diag(np.sqrt(np.asarray(variances, dtype=float)))
    pts = []
    while sum(len(p) for p in pts) < n:
        z = rng.standard_normal((2 * n, 2)) @ L.T
        pts.append(z[np.abs(z[:, 1]) >= margin])
    z = np.concatenate(pts)[:n]
    y = np.sign(z[:, 1])
    x = np.concatenate([z + np.asarray(shift, dtype=float), np.ones((n, 1))], axis=1)
    return (torch.as_tensor(x, dtype=dtype, device=device), torch.as_tensor(y, dtype=dtype, device=device))


def logistic_loss(X: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss; ``w`` may be (d,) or batched (..., d). Stable (softplus)."""
    margins = (w @ X.T) * y  # (..., n)
    return torch.nn.functional.softplus(-margins).mean(-1)


def _check_data(X, y):
    X = check_tensor(X, "X", ndim=2, floating=True)
    y = check_tensor(y, "y", ndim=1, floating=True)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"`y` has {y.shape[0]} entries but `X` has {X.shape[0]} rows")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("`y` must contain labels -1 and +1")
    return X, y


def _finish(gammas, W, losses, errors, normalized):
    errors = torch.stack(errors, 1).cpu().numpy()  # (G, T+1)
    zero = errors == 0
    steps_to_zero = np.where(zero.any(1), zero.argmax(1), -1)
    loss = torch.stack(losses, 1).to(torch.float64).cpu().numpy()
    return GDRun(np.asarray(gammas, dtype=float), torch.stack(W, 1), loss, errors, steps_to_zero, normalized)


def logistic_gd(
    X: torch.Tensor,
    y: torch.Tensor,
    gammas,
    steps: int,
    *,
    normalized: bool = False,
    w0: torch.Tensor | None = None,
    stop_when_separated: bool = False,
) -> GDRun:
    r"""LR+GD (or Normalized LR+GD) for every step size in ``gammas`` at once.

    ``w_{t+1} = w_t - gamma * grad f(w_t)`` (divided by ``f(w_t)`` if ``normalized``), from
    ``w0`` (default 0), for ``steps`` steps, in the dtype of ``X`` (use float64: the losses at
    large ``gamma`` span many orders of magnitude). With ``stop_when_separated`` the run ends at
    the first step at which every step size has reached zero training errors (``steps`` is then a
    cap).

    Examples
    --------
    >>> from lossviz.papers import l01_large_step_logistic as l01
    >>> X, y = l01.separable_cloud(50, seed=0)
    >>> run = l01.logistic_gd(X, y, [0.1, 1.0], steps=20)
    >>> run.w.shape
    torch.Size([2, 21, 3])
    """
    X, y = _check_data(X, y)
    steps = check_int(steps, "steps", minimum=1)
    g = np.atleast_1d(np.asarray(gammas, dtype=float))
    if g.ndim != 1 or not np.all(np.isfinite(g)) or not np.all(g > 0):
        raise ValueError(f"`gammas` must be positive finite step sizes, got {gammas!r}")
    G, d = len(g), X.shape[1]
    gam = torch.as_tensor(g, dtype=X.dtype, device=X.device).reshape(G, 1)
    w = torch.zeros(G, d, dtype=X.dtype, device=X.device)
    if w0 is not None:
        w0 = check_tensor(w0, "w0", ndim=1)
        if w0.shape[0] != d:
            raise ValueError(f"`w0` must have {d} entries, got {w0.shape[0]}")
        w = w + w0.to(X)
    Xy = X * y[:, None]  # rows y_i x_i
    W, losses, errors = [w], [], []
    done = torch.zeros(G, dtype=torch.bool, device=X.device)
    for t in range(steps + 1):
        m = w @ Xy.T  # (G, n) margins
        f = torch.nn.functional.softplus(-m).mean(-1)
        losses.append(f)
        errors.append((m <= 0).sum(-1))
        done |= errors[-1] == 0
        if t == steps or (stop_when_separated and bool(done.all())):
            break
        grad = -(torch.sigmoid(-m) @ Xy) / X.shape[0]
        step = gam * grad
        if normalized:
            step = step / f[:, None]
        w = w - step
        W.append(w)
    return _finish(g, W, losses, errors, normalized)


def batch_perceptron(
    X: torch.Tensor, y: torch.Tensor, steps: int, *, w0: torch.Tensor | None = None
) -> GDRun:
    r"""The :math:`\gamma \to \infty` limit of LR+GD: the batch perceptron with :math:`H(0) = 1/2`.

    :math:`v_{t+1} = v_t + \frac1n \sum_i y_i x_i H(-y_i\langle x_i, v_t\rangle)`; LR+GD with
    step :math:`\gamma` from 0 satisfies :math:`w_t/\gamma \to v_t`.
    """
    X, y = _check_data(X, y)
    steps = check_int(steps, "steps", minimum=1)
    v = torch.zeros(1, X.shape[1], dtype=X.dtype, device=X.device)
    if w0 is not None:
        v = v + check_tensor(w0, "w0", ndim=1).to(X)
    Xy = X * y[:, None]
    V, losses, errors = [v], [], []
    for t in range(steps + 1):
        m = v @ Xy.T
        losses.append(torch.nn.functional.softplus(-m).mean(-1))
        errors.append((m <= 0).sum(-1))
        if t == steps:
            break
        heav = torch.where(m < 0, 1.0, torch.where(m == 0, 0.5, 0.0)).to(X.dtype)
        v = v + heav @ Xy / X.shape[0]
        V.append(v)
    return _finish([math.inf], V, losses, errors, False)


def run_until_separated(
    X: torch.Tensor,
    y: torch.Tensor,
    gammas,
    *,
    normalized: bool = False,
    first_cap: int = 1000,
    max_steps: int = 10**7,
) -> GDRun:
    r"""LR+GD (or Normalized LR+GD) for every step size until each has reached zero training error.

    No fixed step budget: the cap starts at ``first_cap`` and is multiplied by 4 until every
    step size has separated the data (the total work is at most 4/3 of the final run). For
    :math:`\gamma \le 1` the count grows like :math:`1/\gamma` and depends on the data (one
    cloud needs 51,554 steps at :math:`\gamma = 0.01`), so any fixed cap fails for some seed.
    ``max_steps`` only stops non-separable data from running forever: reaching it raises a
    ``ValueError`` naming the step sizes that did not separate.

    Examples
    --------
    >>> from lossviz.papers import l01_large_step_logistic as l01
    >>> X, y = l01.separable_cloud(50, seed=0)
    >>> run = l01.run_until_separated(X, y, [0.1, 1.0], first_cap=10)
    >>> bool((run.steps_to_zero > 0).all())
    True
    """
    cap = check_int(first_cap, "first_cap", minimum=1)
    max_steps = check_int(max_steps, "max_steps", minimum=1)
    while True:
        cap = min(cap, max_steps)
        run = logistic_gd(X, y, gammas, cap, normalized=normalized, stop_when_separated=True)
        if (run.steps_to_zero >= 0).all():
            return run
        if cap >= max_steps:
            bad = run.gammas[run.steps_to_zero < 0].tolist()
            raise ValueError(
                f"step sizes {bad} did not reach zero training error within `max_steps`={max_steps} "
                "(is the data linearly separable?)"
            )
        cap *= 4


def flip_labels(y: torch.Tensor, fraction: float = 0.1, *, seed: int = 0) -> torch.Tensor:
    """A copy of ``y`` (labels +-1) with a random ``fraction`` of the labels flipped.

    With ``separable_cloud`` this gives the L01 control: the same cloud, no longer linearly
    separable, so no step size can reach zero training error and the batch perceptron never
    settles.
    """
    fraction = check_float(fraction, "fraction", minimum=0.0, maximum=1.0)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    k = int(round(fraction * y.shape[0]))
    idx = torch.as_tensor(rng.choice(y.shape[0], size=k, replace=False), device=y.device)
    out = y.clone()
    out[idx] = -out[idx]
    return out


def loss_slopes(run: GDRun, steps=(1, 2, 3, 4, 5), *, min_gamma: float = 100.0) -> np.ndarray:
    r"""Log-log slope of the logistic loss against :math:`\gamma \ge` ``min_gamma`` at each step.

    In the perceptron regime the iterate is :math:`w_t \approx \gamma v_t`, so the loss of every
    misclassified point is about :math:`\gamma |\langle x_i, v_t\rangle|`: the loss at a fixed
    step grows like :math:`\gamma^1` (the paper's "larger step sizes give higher losses").
    Returns one slope per step in ``steps`` (least squares in log-log, :func:`lossviz.stats.loglog_slope`).
    """
    from .. import stats

    sel = np.asarray(run.gammas) >= float(min_gamma)
    if sel.sum() < 2:
        raise ValueError(f"`run` has fewer than two step sizes >= `min_gamma`={min_gamma}")
    return np.array([stats.loglog_slope(run.gammas[sel], run.loss[sel, t]).slope for t in steps])
